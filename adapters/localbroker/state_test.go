package localbroker

import "testing"

// TestQueuePromote: promote makes visible the pending entries whose
// records end at or before the visible offset, in order, and a queue whose
// entries all became visible keeps their room for the next ones (no
// allocation per send) unless it is large.
func TestQueuePromote(t *testing.T) {
	var q queueIndex
	for _, end := range []int64{10, 20, 30} {
		q.pend = append(q.pend, pendEntry{logEnd: end})
		q.count++
	}
	if n := q.promote(5); n != 0 || q.visible != 0 || len(q.pend) != 3 {
		t.Fatalf("promote(5) = %d: visible %d, %d pending", n, q.visible, len(q.pend))
	}
	if n := q.promote(25); n != 2 || q.visible != 2 || len(q.pend) != 1 || q.pend[0].logEnd != 30 {
		t.Fatalf("promote(25) = %d: visible %d, pending %v", n, q.visible, q.pend)
	}
	if n := q.promote(30); n != 1 || q.visible != 3 || len(q.pend) != 0 || q.pend == nil {
		t.Fatalf("promote(30) = %d: visible %d, pending %v (nil: %t)", n, q.visible, q.pend, q.pend == nil)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		q.pend = append(q.pend, pendEntry{logEnd: 40})
		q.count++
		if q.promote(40) != 1 {
			t.Fatal("not promoted")
		}
	}); allocs != 0 {
		t.Errorf("a send's pending entry allocates %v times once the queue drained, want 0", allocs)
	}
	q.pend = make([]pendEntry, 1, maxKeptPend+1)
	q.count++
	if n := q.promote(0); n != 1 || q.pend != nil || q.visible != q.count {
		t.Fatalf("large room: promote = %d, pending %v, visible %d of %d", n, q.pend, q.visible, q.count)
	}
}
