package localbroker

import "container/heap"

// walkHeapInOrder visits the items of a binary heap laid out as
// container/heap lays it out (n items, less its order) in the order
// successive pops would return them, without changing it, until visit
// returns false or the items run out. Visiting k items costs O(k log k),
// whatever n is: a best-first walk from the root, whose children are
// never before it.
func walkHeapInOrder(n int, less func(i, j int) bool, visit func(i int) bool) {
	if n == 0 {
		return
	}
	f := &heapFrontier{less: less, idx: []int{0}}
	for f.Len() > 0 {
		i := heap.Pop(f).(int)
		if !visit(i) {
			return
		}
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < n {
				heap.Push(f, c)
			}
		}
	}
}

// heapFrontier holds the indexes a walkHeapInOrder may visit next, ordered
// by their items.
type heapFrontier struct {
	less func(i, j int) bool
	idx  []int
}

func (f *heapFrontier) Len() int           { return len(f.idx) }
func (f *heapFrontier) Less(i, j int) bool { return f.less(f.idx[i], f.idx[j]) }
func (f *heapFrontier) Swap(i, j int)      { f.idx[i], f.idx[j] = f.idx[j], f.idx[i] }
func (f *heapFrontier) Push(x any)         { f.idx = append(f.idx, x.(int)) }
func (f *heapFrontier) Pop() any {
	n := len(f.idx) - 1
	x := f.idx[n]
	f.idx = f.idx[:n]
	return x
}
