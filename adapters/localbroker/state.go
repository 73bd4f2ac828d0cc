package localbroker

import (
	"cmp"
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
	// minStart and minOff cache minOffsetLocked's answer for the commit
	// log's start offset minStart (0: none yet): the first entry retention
	// kept moves only when retention moves the start.
	minStart, minOff int64
	// firstAt caches EarliestStoreTime's read: the store time of the
	// message at queue offset firstAtOff-1 (0: none read yet).
	firstAt, firstAtOff int64
}

type pendEntry struct{ logEnd int64 }

// promote makes visible every pending entry whose record ends at or before
// vis, and reports whether one did.
func (q *queueIndex) promote(vis int64) int {
	n := 0
	for n < len(q.pend) && q.pend[n].logEnd <= vis {
		n++
	}
	if n == 0 {
		return 0
	}
	q.visible += int64(n)
	switch {
	case n < len(q.pend):
		q.pend = q.pend[n:]
	case cap(q.pend) <= maxKeptPend:
		// All visible: the room is kept for the next sends' entries.
		q.pend = q.pend[:0]
	default:
		q.pend = nil
	}
	return n
}

// maxKeptPend bounds the room for pending entries a queue keeps once they
// are all visible.
const maxKeptPend = 256

// deliveryState is what a snapshot keeps of a delivery.
type deliveryState struct {
	attempt  int32 // attempt of the latest delivery (0: passed over, never delivered); see nextAttempt
	receipt  int64 // receipt id of the current delivery
	deadline int64 // invisible until, Unix ms (0 when never delivered)
	visible  bool  // may be delivered (again) now
	msgGroup string
	// run is the receipt id of the FIFO pop that delivered this message
	// together with later messages of its group (a run), 0 otherwise.
	run int64
	// held is set when the consumer acked the message while an earlier
	// message of its run was still in flight: it is consumed once every
	// earlier one is, and delivered again with them if one of them becomes
	// visible again (as the Apache broker's orderly pop does).
	held bool
}

// delivery is the state of one offset in [floor, next) that is not consumed.
type delivery struct {
	deliveryState
	offset int64
	cs     *consState
	hidx   int // index in the deadline heap, -1 when not in it
	// keepAttempt (live only) makes the next delivery keep attempt: a
	// FIFO receive retried with its attempt id gets it again as the same
	// delivery (see attempts.go). The pop record carries the attempt it
	// gave, so replay needs no flag; set clears it.
	keepAttempt bool
}

func newDelivery(c *consState, off int64, st deliveryState) *delivery {
	return &delivery{deliveryState: st, offset: off, cs: c, hidx: -1}
}

// inFlight reports whether the delivery is invisible and awaits its ack:
// exactly those are in the deadline heap.
func (d *delivery) inFlight() bool { return !d.visible && !d.held }

// consState is one consumer group's progress on one queue. Invariant: every
// offset in [floor, next) is either in inflight or in acked, never both.
//
// Deliveries are indexed for pops: visible lists the offsets of every
// visible delivery; for FIFO pops the same offsets are also split by message
// group (grouped, and free for messages without a group), and busy counts the
// in-flight deliveries of each message group. A FIFO pop only looks at the
// visible offsets of the groups that are not busy, so its cost does not grow
// with the backlog of a blocked group; passed counts the deliveries never
// made, which FIFO pops bound (maxPassedPerQueue). Every in-flight delivery is in the
// engine's deadline heap, and nothing else is. track and untrack keep the
// indexes and the heap in step with every change of a delivery.
type consState struct {
	key      consKey
	floor    int64
	next     int64
	inflight map[int64]*delivery
	acked    ackSet
	visible  []int64            // sorted offsets of inflight entries with visible set
	free     []int64            // the visible offsets without a message group, sorted
	grouped  map[string][]int64 // the visible offsets of each message group, sorted
	busy     map[string]int32   // in-flight deliveries per message group
	passed   int                // deliveries never made (attempt 0): passed FIFO messages
	inFlight int64              // deliveries in flight (in the deadline heap)
	// runs lists the offsets of every FIFO run of two or more messages; an
	// offset whose delivery has a different run is stale.
	runs map[runKey][]int64
	dl   *deadlineHeap
	// cow is the engine's capture of consumer states for a snapshot (nil
	// until the state is added to the engine) and snapGen the capture
	// that copied this state or that started after it was created (see
	// touch).
	cow     *snapCOW
	snapGen uint64
}

func newConsState(k consKey, dl *deadlineHeap) *consState {
	return &consState{key: k, inflight: map[int64]*delivery{}, grouped: map[string][]int64{}, busy: map[string]int32{},
		runs: map[runKey][]int64{}, dl: dl}
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

// track adds delivery d to the indexes.
func (c *consState) track(d *delivery) {
	if d.attempt == 0 {
		c.passed++
	}
	switch {
	case d.held:
	case !d.visible:
		if d.msgGroup != "" {
			c.busy[d.msgGroup]++
		}
		c.inFlight++
		c.dl.add(d)
	default:
		c.visible = insertSorted(c.visible, d.offset)
		if d.msgGroup == "" {
			c.free = insertSorted(c.free, d.offset)
		} else {
			c.grouped[d.msgGroup] = insertSorted(c.grouped[d.msgGroup], d.offset)
		}
	}
}

// untrack removes delivery d from the indexes.
func (c *consState) untrack(d *delivery) {
	c.touch() // before any change: a snapshot may be capturing c
	if d.attempt == 0 {
		c.passed--
	}
	switch {
	case d.held:
	case !d.visible:
		if d.msgGroup != "" {
			if c.busy[d.msgGroup]--; c.busy[d.msgGroup] <= 0 {
				delete(c.busy, d.msgGroup)
			}
		}
		c.inFlight--
		c.dl.remove(d)
	default:
		off := d.offset
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

// set replaces the state of the delivery at off (creating it).
func (c *consState) set(off int64, st deliveryState) *delivery {
	c.touch() // before any change: a snapshot may be capturing c
	d := c.inflight[off]
	if d == nil {
		d = newDelivery(c, off, st)
		c.inflight[off] = d
	} else {
		c.untrack(d)
		d.deliveryState, d.keepAttempt = st, false
	}
	c.track(d)
	return d
}

// setVisible makes delivery d visible (again).
func (c *consState) setVisible(d *delivery) {
	c.touch() // before any change: a snapshot may be capturing c
	if d.visible {
		return
	}
	c.untrack(d)
	d.visible, d.held = true, false
	c.track(d)
}

// release drops every delivery from the deadline heap (the state is being
// discarded).
func (c *consState) release() {
	c.touch() // before any change: a snapshot may be capturing c
	for _, d := range c.inflight {
		c.dl.remove(d)
	}
}

// fifoBlocked reports whether a message of group g that was never delivered
// must wait: an earlier message of its group is in flight or visible.
func (c *consState) fifoBlocked(g string) bool {
	return c.busy[g] > 0 || len(c.grouped[g]) > 0
}

// runKey names a run: the pop that delivered it and its message group.
type runKey struct {
	run   int64
	group string
}

func (d *delivery) runKey() runKey { return runKey{d.run, d.msgGroup} }

// runMembers returns the offsets of a run, in order, dropping stale ones.
func (c *consState) runMembers(rk runKey) []int64 {
	offs := c.runs[rk]
	live := offs[:0]
	for _, off := range offs {
		if d := c.inflight[off]; d != nil && d.run == rk.run {
			live = append(live, off)
		}
	}
	switch {
	case len(live) == 0:
		delete(c.runs, rk)
	case len(live) < len(offs):
		c.runs[rk] = live
	}
	return live
}

// ack applies a consumer's ack of off: the message is consumed, unless an
// earlier message of its FIFO run is not, in which case it is held (an
// earlier one in flight) or made visible again with them (an earlier one
// visible again).
func (c *consState) ack(off int64) {
	c.touch() // before any change: a snapshot may be capturing c
	d := c.inflight[off]
	if d != nil && d.run != 0 {
		inFlight, visible := false, false
		for _, m := range c.runMembers(d.runKey()) {
			if m >= off {
				break
			}
			md := c.inflight[m]
			visible = visible || md.visible
			inFlight = inFlight || !md.visible
		}
		switch {
		case visible:
			c.setVisible(d)
			return
		case inFlight:
			c.untrack(d)
			d.held = true
			c.track(d)
			return
		}
	}
	c.consume(off)
}

// consume marks off consumed (acked, dead-lettered or filtered out); later
// messages of its run that were held are consumed with it.
func (c *consState) consume(off int64) {
	c.touch() // before any change: a snapshot may be capturing c
	if off < c.floor || off >= c.next {
		return
	}
	d, ok := c.inflight[off]
	if ok {
		c.untrack(d)
		delete(c.inflight, off)
	}
	c.acked.add(off)
	if ok && d.run != 0 {
		for _, m := range c.runMembers(d.runKey()) {
			md := c.inflight[m]
			if !md.held {
				break
			}
			c.untrack(md)
			delete(c.inflight, m)
			c.acked.add(m)
		}
	}
	c.advanceFloor()
}

func (c *consState) advanceFloor() {
	c.touch() // before any change: a snapshot may be capturing c
	if c.floor < c.next && c.acked.has(c.floor) {
		c.floor = c.acked.next(c.floor, c.next, false)
		c.acked.trim(c.floor)
	}
}

// consumed reports whether off is consumed.
func (c *consState) consumed(off int64) bool {
	return off < c.floor || c.acked.has(off)
}

// revive makes an in-flight delivery whose deadline passed visible again,
// with the later messages of its run that were held.
func (c *consState) revive(d *delivery) {
	c.setVisible(d)
	c.releaseRun(d)
}

// reviveAll is revive for many in-flight deliveries of c whose deadlines
// passed, taken out of the deadline heap already: their offsets join the
// sorted visible indexes in one merge each, where one revive at a time
// inserts each, moving the later ones (quadratic when the deadlines do not
// follow the offsets).
func (c *consState) reviveAll(ds []*delivery) {
	c.touch() // before any change: a snapshot may be capturing c
	slices.SortFunc(ds, func(a, b *delivery) int { return cmp.Compare(a.offset, b.offset) })
	var vis, free []int64
	var grouped map[string][]int64
	for _, d := range ds {
		if d.visible || d.held {
			continue
		}
		c.untrack(d)
		d.visible = true
		// What track does for a visible delivery, but appending: the
		// offsets come in order.
		if d.attempt == 0 {
			c.passed++
		}
		vis = append(vis, d.offset)
		if d.msgGroup == "" {
			free = append(free, d.offset)
		} else {
			if grouped == nil {
				grouped = map[string][]int64{}
			}
			grouped[d.msgGroup] = append(grouped[d.msgGroup], d.offset)
		}
	}
	c.visible = mergeSorted(c.visible, vis)
	c.free = mergeSorted(c.free, free)
	for g, offs := range grouped {
		c.grouped[g] = mergeSorted(c.grouped[g], offs)
	}
	for _, d := range ds {
		c.releaseRun(d)
	}
}

// mergeSorted merges two sorted lists of offsets into one, without
// duplicates; it may reuse a.
func mergeSorted(a, b []int64) []int64 {
	switch {
	case len(b) == 0:
		return a
	case len(a) == 0:
		return b
	case a[len(a)-1] < b[0]:
		return append(a, b...)
	}
	out := make([]int64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var v int64
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			v, i = a[i], i+1
		case i == len(a) || b[j] < a[i]:
			v, j = b[j], j+1
		default:
			v, i, j = a[i], i+1, j+1
		}
		out = append(out, v)
	}
	return out
}

// releaseRun makes the later messages of d's run that were held visible:
// d left flight without being consumed.
func (c *consState) releaseRun(d *delivery) {
	if d.run == 0 {
		return
	}
	for _, m := range c.runMembers(d.runKey()) {
		if md := c.inflight[m]; m > d.offset && md.held {
			c.setVisible(md)
		}
	}
}

// inFlightCount counts deliveries that are in flight now (kept by track
// and untrack: GroupStats asks it under the engine's lock, of queues that
// may hold local.maxInflightPerQueue deliveries).
func (c *consState) inFlightCount() int64 { return c.inFlight }

// applyPop applies a pop record. Delivered entries become invisible until
// the record's deadline; the messages of one group that an orderly pop
// delivered together form a run.
func (c *consState) applyPop(p *record.Pop) {
	c.touch() // before any change: a snapshot may be capturing c
	if p.Next > c.next {
		c.next = p.Next
	}
	deadline := p.Deadline.UnixMilli()
	var runLen map[string]int
	if p.Orderly {
		for _, e := range p.Entries {
			if e.Kind == record.PopDelivered && e.MsgGroup != "" {
				if runLen == nil {
					runLen = map[string]int{}
				}
				runLen[e.MsgGroup]++
			}
		}
	}
	for _, e := range p.Entries {
		if e.Offset < c.floor || e.Offset >= c.next {
			continue
		}
		// A pop only touches visible deliveries; one that is in flight in
		// this state is one whose expiry replay did not see (expiries are
		// not logged): release its run as that expiry did.
		old := c.inflight[e.Offset]
		var oldRun runKey
		if old != nil && old.run != 0 && e.Kind != record.PopPassed {
			oldRun = old.runKey()
			c.releaseRun(old)
		}
		switch e.Kind {
		case record.PopDelivered:
			if c.consumed(e.Offset) {
				continue
			}
			st := deliveryState{attempt: e.Attempt, receipt: p.Receipt, deadline: deadline, msgGroup: e.MsgGroup}
			if runLen[e.MsgGroup] > 1 {
				st.run = p.Receipt
				rk := runKey{p.Receipt, e.MsgGroup}
				c.runs[rk] = append(c.runs[rk], e.Offset)
			}
			c.set(e.Offset, st)
			if oldRun.run != 0 {
				c.runMembers(oldRun) // drops the offset from its old run
			}
		case record.PopConsumed:
			c.consume(e.Offset)
		case record.PopPassed:
			if c.consumed(e.Offset) {
				continue
			}
			if _, ok := c.inflight[e.Offset]; !ok {
				c.set(e.Offset, deliveryState{visible: true, msgGroup: e.MsgGroup})
			}
		}
	}
	for g := range runLen {
		if offs := c.runs[runKey{p.Receipt, g}]; len(offs) > 1 {
			slices.Sort(offs)
		}
	}
	// Offsets the cursor moved over without an entry cannot exist (a pop
	// records every offset it passes), but keep the invariant regardless.
	c.advanceFloor()
}

// applyChangeInvisible applies a change-invisible record and reports whether
// the delivery existed.
func (c *consState) applyChangeInvisible(ci *record.ChangeInvisible) bool {
	c.touch() // before any change: a snapshot may be capturing c
	d, ok := c.inflight[ci.Offset]
	if !ok || d.held {
		return false
	}
	st := d.deliveryState
	st.visible = false
	st.receipt = ci.NewReceipt
	st.deadline = ci.Deadline.UnixMilli()
	c.set(ci.Offset, st)
	return true
}

// deadlineHeap is a min-heap by deadline of every in-flight delivery (of
// all consumer states); acks, changes and revivals remove or move their
// entries, so it holds one entry per message in flight.
type deadlineHeap []*delivery

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *deadlineHeap) Push(x any) {
	d := x.(*delivery)
	d.hidx = len(*h)
	*h = append(*h, d)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.hidx = -1
	return d
}

func (h *deadlineHeap) add(d *delivery) {
	if d.hidx >= 0 {
		heap.Fix(h, d.hidx)
		return
	}
	heap.Push(h, d)
}

func (h *deadlineHeap) remove(d *delivery) {
	if d.hidx >= 0 {
		heap.Remove(h, d.hidx)
	}
}
