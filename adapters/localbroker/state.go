package localbroker

import (
	"container/heap"
	"slices"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
)

type queueKey struct {
	topic string
	qid   int32
}

type consKey struct {
	group string
	topic string
	qid   int32
}

// queueIndex is the engine's view of one consume queue.
type queueIndex struct {
	cq *consumequeue.Queue
	// count is the number of entries (next queue offset); visible counts the
	// leading entries whose records are stored per the flush policy.
	count   int64
	visible int64
	pend    []pendEntry // entries [visible, count), with the end of their record
}

type pendEntry struct{ logEnd int64 }

// promote makes visible every pending entry whose record ends at or before
// vis, and reports whether one did.
func (q *queueIndex) promote(vis int64) bool {
	n := 0
	for n < len(q.pend) && q.pend[n].logEnd <= vis {
		n++
	}
	if n == 0 {
		return false
	}
	q.visible += int64(n)
	q.pend = q.pend[n:]
	if len(q.pend) == 0 {
		q.pend = nil
	}
	return true
}

// delivery is the state of one offset in [floor, next) that is not consumed.
type delivery struct {
	attempt  int32 // deliveries so far (0: passed over, never delivered)
	receipt  int64 // receipt id of the current delivery
	deadline int64 // invisible until, Unix ms (0 when never delivered)
	visible  bool  // may be delivered (again) now
	msgGroup string
}

// consState is one consumer group's progress on one queue. Invariant: every
// offset in [floor, next) is either in inflight or in acked, never both.
//
// Deliveries are indexed for pops: visible lists the offsets of every
// visible delivery; for FIFO pops the same offsets are also split by message
// group (grouped, and free for messages without a group), and busy counts the
// invisible (in-flight) deliveries of each message group. A FIFO pop only
// looks at the first visible offset of each group that is not busy, so its
// cost does not grow with the backlog of a blocked group. track and untrack
// keep the indexes in step with every change of a delivery.
type consState struct {
	floor    int64
	next     int64
	inflight map[int64]*delivery
	acked    map[int64]struct{}
	visible  []int64            // sorted offsets of inflight entries with visible set
	free     []int64            // the visible offsets without a message group, sorted
	grouped  map[string][]int64 // the visible offsets of each message group, sorted
	busy     map[string]int32   // invisible deliveries per message group
}

func newConsState() *consState {
	return &consState{inflight: map[int64]*delivery{}, acked: map[int64]struct{}{}, grouped: map[string][]int64{}, busy: map[string]int32{}}
}

func insertSorted(s []int64, off int64) []int64 {
	if n := len(s); n == 0 || s[n-1] < off {
		return append(s, off) // the common case: offsets arrive in order
	}
	i, found := slices.BinarySearch(s, off)
	if found {
		return s
	}
	return slices.Insert(s, i, off)
}

func removeSorted(s []int64, off int64) []int64 {
	if len(s) > 0 && s[0] == off {
		return s[1:] // the common case: the oldest goes first; no copying
	}
	if i, found := slices.BinarySearch(s, off); found {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// track adds delivery d at off to the indexes.
func (c *consState) track(off int64, d *delivery) {
	switch {
	case !d.visible:
		if d.msgGroup != "" {
			c.busy[d.msgGroup]++
		}
	default:
		c.visible = insertSorted(c.visible, off)
		if d.msgGroup == "" {
			c.free = insertSorted(c.free, off)
		} else {
			c.grouped[d.msgGroup] = insertSorted(c.grouped[d.msgGroup], off)
		}
	}
}

// untrack removes delivery d at off from the indexes.
func (c *consState) untrack(off int64, d *delivery) {
	switch {
	case !d.visible:
		if d.msgGroup != "" {
			if c.busy[d.msgGroup]--; c.busy[d.msgGroup] <= 0 {
				delete(c.busy, d.msgGroup)
			}
		}
	default:
		c.visible = removeSorted(c.visible, off)
		if d.msgGroup == "" {
			c.free = removeSorted(c.free, off)
		} else if g := removeSorted(c.grouped[d.msgGroup], off); len(g) == 0 {
			delete(c.grouped, d.msgGroup)
		} else {
			c.grouped[d.msgGroup] = g
		}
	}
}

// setVisible makes the delivery at off visible again.
func (c *consState) setVisible(off int64, d *delivery) {
	if d.visible {
		return
	}
	c.untrack(off, d)
	d.visible = true
	c.track(off, d)
}

// fifoBlocked reports whether a message of group g that was never delivered
// must wait: an earlier message of its group is in flight or visible.
func (c *consState) fifoBlocked(g string) bool {
	return c.busy[g] > 0 || len(c.grouped[g]) > 0
}

// fifoCandidates returns, in offset order, the visible offsets a FIFO pop
// may deliver: the first visible offset of every message group that is not
// busy, and up to limit visible offsets without a group.
func (c *consState) fifoCandidates(limit int) []int64 {
	out := make([]int64, 0, len(c.grouped)+min(limit, len(c.free)))
	for g, offs := range c.grouped {
		if c.busy[g] == 0 {
			out = append(out, offs[0])
		}
	}
	out = append(out, c.free[:min(limit, len(c.free))]...)
	slices.Sort(out)
	return out
}

// consume marks off consumed.
func (c *consState) consume(off int64) {
	if off < c.floor {
		return
	}
	if d, ok := c.inflight[off]; ok {
		c.untrack(off, d)
		delete(c.inflight, off)
	}
	c.acked[off] = struct{}{}
	c.advanceFloor()
}

func (c *consState) advanceFloor() {
	for c.floor < c.next {
		if _, ok := c.acked[c.floor]; !ok {
			return
		}
		delete(c.acked, c.floor)
		c.floor++
	}
}

// consumed reports whether off is consumed.
func (c *consState) consumed(off int64) bool {
	if off < c.floor {
		return true
	}
	_, ok := c.acked[off]
	return ok
}

// inFlightCount counts deliveries that are invisible now.
func (c *consState) inFlightCount() int64 {
	var n int64
	for _, d := range c.inflight {
		if !d.visible {
			n++
		}
	}
	return n
}

// applyPop applies a pop record. Delivered entries become invisible until
// the record's deadline; the caller pushes them onto the deadline heap.
func (c *consState) applyPop(p *record.Pop) {
	if p.Next > c.next {
		c.next = p.Next
	}
	deadline := p.Deadline.UnixMilli()
	for _, e := range p.Entries {
		if e.Offset < c.floor || e.Offset >= c.next {
			continue
		}
		switch e.Kind {
		case record.PopDelivered:
			if c.consumed(e.Offset) {
				continue
			}
			d := c.inflight[e.Offset]
			if d == nil {
				d = &delivery{}
				c.inflight[e.Offset] = d
			} else {
				c.untrack(e.Offset, d)
			}
			*d = delivery{attempt: e.Attempt, receipt: p.Receipt, deadline: deadline, msgGroup: e.MsgGroup}
			c.track(e.Offset, d)
		case record.PopConsumed:
			c.consume(e.Offset)
		case record.PopPassed:
			if c.consumed(e.Offset) {
				continue
			}
			if _, ok := c.inflight[e.Offset]; !ok {
				d := &delivery{visible: true, msgGroup: e.MsgGroup}
				c.inflight[e.Offset] = d
				c.track(e.Offset, d)
			}
		}
	}
	// Offsets the cursor moved over without an entry cannot exist (a pop
	// records every offset it passes), but keep the invariant regardless.
	c.advanceFloor()
}

// applyChangeInvisible applies a change-invisible record and reports whether
// the delivery existed.
func (c *consState) applyChangeInvisible(ci *record.ChangeInvisible) bool {
	d, ok := c.inflight[ci.Offset]
	if !ok {
		return false
	}
	c.untrack(ci.Offset, d)
	d.visible = false
	d.receipt = ci.NewReceipt
	d.deadline = ci.Deadline.UnixMilli()
	c.track(ci.Offset, d)
	return true
}

// deadlineItem is an entry of the revive heap; stale items (acked, changed,
// redelivered) are skipped when popped.
type deadlineItem struct {
	deadline int64
	key      consKey
	offset   int64
	receipt  int64
}

type deadlineHeap []deadlineItem

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadlineItem)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (h *deadlineHeap) push(it deadlineItem) { heap.Push(h, it) }
func (h *deadlineHeap) pop() deadlineItem    { return heap.Pop(h).(deadlineItem) }
