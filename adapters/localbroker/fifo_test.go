package localbroker

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func fifoMsg(topic, id, group string) domain.Message {
	m := msg(topic, id, "")
	m.Group = group
	return m
}

// popFIFO pops as a simple consumer of an orderly group does (runs).
func (h *harness) popFIFO(group, topic string, n int32, inv time.Duration) []domain.StoredMessage {
	h.t.Helper()
	return h.popFIFOMode(group, topic, n, inv, true)
}

// popFIFOMode pops with or without runs (push consumers get one message per
// group).
func (h *harness) popFIFOMode(group, topic string, n int32, inv time.Duration, runs bool) []domain.StoredMessage {
	h.t.Helper()
	got, err := h.e.Pop(h.t.Context(), ports.PopRequest{Group: group, Topic: topic, QueueID: -1, MaxMessages: n, InvisibleTime: inv, FIFO: true, FIFORuns: runs})
	if err != nil {
		h.t.Fatalf("Pop: %v", err)
	}
	return got
}

func TestFIFORetryBlocksItsGroupUntilAcked(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "B1", "B"), fifoMsg("f", "A2", "A"), fifoMsg("f", "A3", "A"))
	got := h.popFIFO("g", "f", 2, 10*time.Second)
	if !slices.Equal(ids(got), []string{"A1", "B1"}) {
		t.Fatalf("first pop %v", ids(got))
	}
	h.ack("g", got[1])
	// A1 fails (not acked): nothing of A until it is redelivered.
	for range 3 {
		if more := h.popFIFO("g", "f", 10, 10*time.Second); len(more) != 0 {
			t.Fatalf("delivered while A1 is in flight: %v", ids(more))
		}
		h.fake().Advance(3 * time.Second)
	}
	h.fake().Advance(time.Second)
	retry := h.popFIFO("g", "f", 1, 10*time.Second)
	if !slices.Equal(ids(retry), []string{"A1"}) || retry[0].DeliveryAttempt != 2 {
		t.Fatalf("retry %v (attempt %d)", ids(retry), retry[0].DeliveryAttempt)
	}
	// A retry changed to visible at once by the client keeps the order too.
	if _, err := h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", retry[0]), InvisibleTime: 0}); err != nil {
		t.Fatal(err)
	}
	again := h.popFIFO("g", "f", 10, 10*time.Second)
	if !slices.Equal(ids(again), []string{"A1", "A2", "A3"}) || again[0].DeliveryAttempt != 3 || again[1].DeliveryAttempt != 1 {
		t.Fatalf("after ChangeInvisible(0): %v", ids(again))
	}
	for _, m := range again {
		h.ack("g", m)
	}
	if next := h.popFIFO("g", "f", 10, 10*time.Second); len(next) != 0 {
		t.Fatalf("after the run acked: %v", ids(next))
	}
}

// TestFIFORunRedeliveredWhenItsHeadIsNotAcked: a FIFO pop hands out a run
// of consecutive messages of a group; when the consumer acks the later ones
// but not the first, the whole run is delivered again after the invisible
// time, as the Apache broker's orderly pop does (its consume offset only
// moves past acked messages at the start of the run). Acks of a run are
// final once its first message is acked, across restarts too.
func TestFIFORunRedeliveredWhenItsHeadIsNotAcked(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "A3", "A"), fifoMsg("f", "A4", "A"))
	run := h.popFIFO("g", "f", 3, 10*time.Second)
	if !slices.Equal(ids(run), []string{"A1", "A2", "A3"}) {
		t.Fatalf("run %v", ids(run))
	}
	h.ack("g", run[1])
	h.ack("g", run[2])
	h.ack("g", run[2]) // idempotent
	if _, err := h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", run[1]), InvisibleTime: time.Second}); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		t.Fatalf("ChangeInvisible of an acked message: %v", err)
	}
	h.crashRestart(true)
	if more := h.popFIFO("g", "f", 3, 10*time.Second); len(more) != 0 {
		t.Fatalf("delivered while A1 in flight: %v", ids(more))
	}
	h.fake().Advance(10 * time.Second)
	again := h.popFIFO("g", "f", 3, 10*time.Second)
	if !slices.Equal(ids(again), []string{"A1", "A2", "A3"}) {
		t.Fatalf("after A1 expired: %v", ids(again))
	}
	for i, m := range again {
		if m.DeliveryAttempt != 2 {
			t.Errorf("%s attempt %d, want 2", ids(again)[i], m.DeliveryAttempt)
		}
	}
	// Acked out of order again, then the first: all final.
	h.ack("g", again[2])
	h.ack("g", again[0])
	h.ack("g", again[1])
	h.crashRestart(false)
	h.fake().Advance(time.Minute)
	if next := h.popFIFO("g", "f", 3, 10*time.Second); !slices.Equal(ids(next), []string{"A4"}) {
		t.Fatalf("after the run acked: %v", ids(next))
	}
	if err := h.e.checkIndexes(); err != nil {
		t.Fatal(err)
	}
}

// TestFIFOWithoutRunsOneMessagePerGroup: without runs (push consumers) a
// FIFO pop hands out one message per group.
func TestFIFOWithoutRunsOneMessagePerGroup(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "B1", "B"), fifoMsg("f", "A2", "A"), fifoMsg("f", "B2", "B"), fifoMsg("f", "N1", ""), fifoMsg("f", "N2", ""))
	got := h.popFIFOMode("g", "f", 10, time.Minute, false)
	if !slices.Equal(ids(got), []string{"A1", "B1", "N1", "N2"}) {
		t.Fatalf("first pop %v", ids(got))
	}
	h.ack("g", got[0])
	if next := h.popFIFOMode("g", "f", 10, time.Minute, false); !slices.Equal(ids(next), []string{"A2"}) {
		t.Fatalf("after A1 acked: %v", ids(next))
	}
}

func TestFIFODeadLetterReleasesGroup(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 2, true)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "A3", "A"))
	for attempt := int32(1); attempt <= 2; attempt++ {
		got := h.popFIFO("g", "f", 1, 5*time.Second)
		if !slices.Equal(ids(got), []string{"A1"}) || got[0].DeliveryAttempt != attempt {
			t.Fatalf("attempt %d: %v", attempt, ids(got))
		}
		h.fake().Advance(5 * time.Second)
	}
	// A1 used its attempts: it goes to the DLQ and A2 follows.
	h.revive()
	got := h.popFIFO("g", "f", 1, 5*time.Second)
	if !slices.Equal(ids(got), []string{"A2"}) || got[0].DeliveryAttempt != 1 {
		t.Fatalf("after A1 dead-lettered: %v", ids(got))
	}
	// An explicit move to the DLQ releases the group as well.
	if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("g", got[0])); err != nil {
		t.Fatal(err)
	}
	got = h.popFIFO("g", "f", 10, 5*time.Second)
	if !slices.Equal(ids(got), []string{"A3"}) {
		t.Fatalf("after A2 forwarded: %v", ids(got))
	}
	if d := h.pop("x", domain.DeadLetterTopic("g"), 0, 10, time.Minute); !slices.Equal(ids(d), []string{"A1", "A2"}) {
		t.Fatalf("DLQ holds %v", ids(d))
	}
}

// TestFIFODeadLetterOfRunHeadReleasesHeldAcks: the first message of a run
// goes to the DLQ after its last attempt; the later ones, acked meanwhile,
// are then consumed, not delivered again.
func TestFIFODeadLetterOfRunHeadReleasesHeldAcks(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 1, true)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "A3", "A"))
	run := h.popFIFO("g", "f", 2, 5*time.Second)
	h.ack("g", run[1])
	h.fake().Advance(5 * time.Second)
	h.revive()
	if got := h.popFIFO("g", "f", 10, 5*time.Second); !slices.Equal(ids(got), []string{"A3"}) {
		t.Fatalf("after A1 dead-lettered: %v", ids(got))
	}
}

func TestFIFOBatchKeepsOrder(t *testing.T) {
	h := newHarness(t, nil)
	var batch []domain.Message
	var want []string
	for i := range 8 {
		id := fmt.Sprint("A", i)
		batch = append(batch, fifoMsg("f", id, "A"))
		want = append(want, id)
	}
	h.send("f", 3, batch...)
	var order []string
	for range 20 {
		got := h.popFIFO("g", "f", 3, time.Minute)
		if len(got) > 0 {
			if more := h.popFIFO("g", "f", 3, time.Minute); len(more) != 0 {
				t.Fatalf("a run of a group handed out while another is in flight: %v then %v", ids(got), ids(more))
			}
		}
		for _, m := range got {
			order = append(order, m.ID)
			h.ack("g", m)
		}
	}
	if !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	h.send("f", 3, batch...)
	if got := h.popFIFO("g", "f", 32, time.Minute); len(got) != len(batch) {
		t.Fatalf("one pop of 32 got %d of the group's %d messages", len(got), len(batch))
	}
}

func TestFIFOGroupsProceedInParallel(t *testing.T) {
	h := newHarness(t, nil)
	const groups, per = 10, 3
	var batch []domain.Message
	for i := range per {
		for g := range groups {
			batch = append(batch, fifoMsg("f", fmt.Sprintf("G%d-%d", g, i), fmt.Sprint("G", g)))
		}
	}
	h.send("f", 0, batch...)
	seen := map[string][]string{}
	got := h.popFIFO("g", "f", 64, time.Minute)
	if len(got) != groups*per {
		t.Fatalf("%d messages, want all %d", len(got), groups*per)
	}
	for _, m := range got {
		seen[m.Group] = append(seen[m.Group], m.ID)
		h.ack("g", m)
	}
	// A stuck group does not hold the others back.
	h.send("f", 0, fifoMsg("f", "S1", "stuck"), fifoMsg("f", "S2", "stuck"), fifoMsg("f", "F1", "free"), fifoMsg("f", "F2", "free"))
	got = h.popFIFO("g", "f", 2, time.Minute)
	if !slices.Equal(ids(got), []string{"S1", "S2"}) {
		t.Fatalf("got %v", ids(got))
	}
	next := h.popFIFO("g", "f", 1, time.Minute)
	if !slices.Equal(ids(next), []string{"F1"}) {
		t.Fatalf("free group blocked by the stuck one: %v", ids(next))
	}
	h.ack("g", next[0])
	if next := h.popFIFO("g", "f", 64, time.Minute); !slices.Equal(ids(next), []string{"F2"}) {
		t.Fatalf("free group blocked by the stuck one: %v", ids(next))
	}
	for g := range groups {
		want := []string{fmt.Sprintf("G%d-0", g), fmt.Sprintf("G%d-1", g), fmt.Sprintf("G%d-2", g)}
		if !slices.Equal(seen[fmt.Sprint("G", g)], want) {
			t.Fatalf("group %d order %v", g, seen[fmt.Sprint("G", g)])
		}
	}
}

// TestFIFOPassedMessagesBounded is the regression test of a blocked
// message group's backlog turned into deliveries: each new message of a
// group that must wait was recorded as passed, and a pop that passed some
// looked again at once, so one empty pop passed the group's whole backlog
// (100,000 messages: 100,000 deliveries of ~150 B, all in pop records and
// snapshots). The cursor now stops at maxPassedPerQueue passed messages;
// later messages of other groups wait there, earlier ones proceed.
func TestFIFOPassedMessagesBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 16 << 20 })
	const n = 3 * maxPassedPerQueue
	early, late := 10, n-10 // offsets of group B's messages, before and beyond the bound
	var batch []domain.Message
	for i := range n {
		m := fifoMsg("f", fmt.Sprint("A", i), "A")
		if i == early || i == late {
			m = fifoMsg("f", fmt.Sprint("B", i), "B")
		}
		if batch = append(batch, m); len(batch) == 100 || i == n-1 {
			h.send("f", 0, batch...)
			batch = nil
		}
	}
	got := h.popFIFOMode("g", "f", 32, time.Minute, false)
	if want := []string{"A0", fmt.Sprint("B", early)}; !slices.Equal(ids(got), want) {
		t.Fatalf("first pop %v, want %v", ids(got), want)
	}
	h.ack("g", got[1])
	if more := h.popFIFOMode("g", "f", 32, time.Minute, false); len(more) != 0 {
		t.Fatalf("delivered %v while A0 is in flight and B waits beyond the bound", ids(more))
	}
	h.e.mu.Lock()
	c := h.e.cons[consKey{"g", "f", 0}]
	deliveries, next := len(c.inflight), c.next
	h.e.mu.Unlock()
	if deliveries > maxPassedPerQueue+1 || next > maxPassedPerQueue+2 {
		t.Fatalf("after the pops: %d deliveries, cursor %d; want at most %d passed", deliveries, next, maxPassedPerQueue)
	}
	if err := h.e.checkIndexes(); err != nil {
		t.Fatal(err)
	}
	// Acking A0 releases the group: everything comes, in order per group.
	h.ack("g", got[0])
	seen := map[string][]string{"A": {"A0"}, "B": {fmt.Sprint("B", early)}}
	for total := 2; total < n; {
		more := h.popFIFO("g", "f", 32, time.Minute)
		if len(more) == 0 {
			t.Fatalf("nothing to pop after %d of %d messages", total, n)
		}
		for _, m := range more {
			seen[m.Group] = append(seen[m.Group], m.ID)
		}
		reqs := make([]ports.AckRequest, len(more))
		for i, m := range more {
			reqs[i] = ackReq("g", m)
		}
		for _, err := range h.e.AckBatch(t.Context(), reqs) {
			if err != nil {
				t.Fatal(err)
			}
		}
		total += len(more)
	}
	if want := []string{fmt.Sprint("B", early), fmt.Sprint("B", late)}; !slices.Equal(seen["B"], want) {
		t.Fatalf("group B got %v, want %v", seen["B"], want)
	}
	for i, id := range seen["A"] {
		if want := fmt.Sprint("A", i+min(i/early, 1)+min(i/(late-1), 1)); id != want {
			t.Fatalf("group A: message %d is %s, want %s", i, id, want)
		}
	}
}

func TestFIFOOrderAcrossCrash(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "B1", "B"))
	got := h.popFIFO("g", "f", 1, time.Minute)
	if !slices.Equal(ids(got), []string{"A1"}) {
		t.Fatalf("first pop %v", ids(got))
	}
	// The pop record is on disk: A1 stays in flight across the crash and A2
	// waits.
	h.crashRestart(true)
	if more := h.popFIFO("g", "f", 10, time.Minute); !slices.Equal(ids(more), []string{"B1"}) {
		t.Fatalf("after crash, with A1 in flight: %v", ids(more))
	}
	h.fake().Advance(time.Minute)
	retry := h.popFIFO("g", "f", 1, time.Minute)
	if !slices.Equal(ids(retry), []string{"A1"}) {
		t.Fatalf("retry after crash: %v", ids(retry))
	}
	// Without the pop record (lost in the crash), A1 comes first again.
	h.crashRestart(false)
	h.fake().Advance(time.Minute)
	again := h.popFIFO("g", "f", 1, time.Minute)
	if !slices.Equal(ids(again), []string{"A1"}) {
		t.Fatalf("after losing the pop record: %v", ids(again))
	}
	h.ack("g", again[0])
	h.crashRestart(false)
	if last := h.popFIFO("g", "f", 10, time.Minute); !slices.Equal(ids(last), []string{"A2", "B1"}) {
		t.Fatalf("after A1 acked and a crash: %v", ids(last))
	}
}

// checkIndexes verifies that the indexes by group hold every consumer
// state, gate and offset, and that the pop indexes of every consumer state match its
// deliveries.
func (e *Engine) checkIndexes() (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	inFlight := 0
	defer func() {
		if err == nil && inFlight != len(e.heap) {
			err = fmt.Errorf("%d deliveries in flight but %d in the deadline heap", inFlight, len(e.heap))
		}
	}()
	indexed := 0
	for group, byQueue := range e.groupCons {
		if len(byQueue) == 0 {
			return fmt.Errorf("group %q has an empty entry in the index by group", group)
		}
		for qk, c := range byQueue {
			if k := (consKey{group, qk.topic, qk.qid}); e.cons[k] != c {
				return fmt.Errorf("%v: the index by group holds a state the engine does not", k)
			}
		}
		indexed += len(byQueue)
	}
	if indexed != len(e.cons) {
		return fmt.Errorf("%d consumer states, %d of them in the index by group", len(e.cons), indexed)
	}
	keys := map[consKey]bool{}
	for k := range e.gates {
		keys[k] = true
	}
	for k := range e.offsets {
		keys[k] = true
	}
	indexed = 0
	for group, byQueue := range e.groupKeys {
		if len(byQueue) == 0 {
			return fmt.Errorf("group %q has an empty entry in the index of gates and offsets", group)
		}
		for qk := range byQueue {
			if k := (consKey{group, qk.topic, qk.qid}); !keys[k] {
				return fmt.Errorf("%v: in the index of gates and offsets without either", k)
			}
		}
		indexed += len(byQueue)
	}
	if indexed != len(keys) {
		return fmt.Errorf("%d queues of groups with a gate or an offset, %d of them in the index", len(keys), indexed)
	}
	for k, c := range e.cons {
		var vis, free []int64
		grouped := map[string][]int64{}
		busy := map[string]int32{}
		passed := 0
		var stateInFlight int64
		for off, d := range c.inflight {
			if d.offset != off || d.cs != c {
				return fmt.Errorf("%v: delivery %d names offset %d", k, off, d.offset)
			}
			if d.attempt == 0 {
				passed++
			}
			if d.inFlight() != (d.hidx >= 0) || d.hidx >= 0 && (d.hidx >= len(e.heap) || e.heap[d.hidx] != d) {
				return fmt.Errorf("%v: delivery %d in flight %v but heap index %d", k, off, d.inFlight(), d.hidx)
			}
			if d.inFlight() {
				inFlight++
				stateInFlight++
			}
			switch {
			case d.held:
			case !d.visible:
				if d.msgGroup != "" {
					busy[d.msgGroup]++
				}
			default:
				vis = append(vis, off)
				if d.msgGroup == "" {
					free = append(free, off)
				} else {
					grouped[d.msgGroup] = append(grouped[d.msgGroup], off)
				}
			}
		}
		slices.Sort(vis)
		slices.Sort(free)
		for _, g := range grouped {
			slices.Sort(g)
		}
		if !slices.Equal(vis, c.visible) || !slices.Equal(free, c.free) || !maps.EqualFunc(grouped, c.grouped, slices.Equal) || !maps.Equal(busy, c.busy) {
			return fmt.Errorf("%v: indexes out of step: visible %v/%v free %v/%v grouped %v/%v busy %v/%v",
				k, vis, c.visible, free, c.free, grouped, c.grouped, busy, c.busy)
		}
		if passed != c.passed {
			return fmt.Errorf("%v: %d passed deliveries but %d counted", k, passed, c.passed)
		}
		if stateInFlight != c.inFlightCount() {
			return fmt.Errorf("%v: %d deliveries in flight but %d counted", k, stateInFlight, c.inFlightCount())
		}
	}
	return nil
}

// TestFIFORandomOperationsKeepOrder drives random pops (FIFO), acks,
// invisible-time changes, expiries and crashes, and checks against a model:
// every pop hands out, per message group, a run of consecutive messages
// starting at the group's first message not finally consumed (an ack is
// final once every earlier message of its run is acked), never while a
// message of the group's previous run is still in flight; and the indexes
// and the deadline heap stay in step.
func TestFIFORandomOperationsKeepOrder(t *testing.T) {
	for seed := range uint64(8) {
		runs := seed%4 != 3
		t.Run(fmt.Sprint("seed", seed, "runs", runs), func(t *testing.T) { fifoRandomOperations(t, seed, runs) })
	}
}

// fifoRun is the model of the latest run of one message group.
type fifoRun struct {
	start    int // sequence number of its first message
	handles  []string
	acked    []bool
	deadline []time.Time
	lost     bool // a crash may have lost its pop record
}

func fifoRandomOperations(t *testing.T, seed uint64, runs bool) {
	h := newHarness(t, nil)
	h.createGroup("g", 1000, false)
	rng := rand.New(rand.NewPCG(seed, 2))
	const groups = 5
	sentPer := map[string]int{}
	confirmed := map[string]int{} // messages of each group finally consumed
	lastRun := map[string]*fifoRun{}
	held := map[string]domain.StoredMessage{} // the latest delivery of each message
	popped, ackFail, redelivered := 0, 0, 0
	seq := func(m domain.StoredMessage) int {
		var n int
		fmt.Sscanf(m.ID[len(m.Group)+1:], "%d", &n)
		return n
	}
	pick := func() domain.StoredMessage {
		keys := slices.Sorted(maps.Keys(held))
		return held[keys[rng.IntN(len(keys))]]
	}
	var trace []string
	tr := func(format string, a ...any) { trace = append(trace, fmt.Sprintf(format, a...)) }
	defer func() {
		if t.Failed() {
			t.Log(strings.Join(trace, "\n"))
		}
	}()
	for step := range 1500 {
		now := h.clock.Now()
		switch op := rng.IntN(10); {
		case op < 2:
			var batch []domain.Message
			for range 1 + rng.IntN(4) {
				grp := fmt.Sprint("G", rng.IntN(groups))
				if rng.IntN(5) == 0 {
					grp = "" // messages without a group mix in
				}
				id := fmt.Sprintf("%s-%d", grp, sentPer[grp])
				sentPer[grp]++
				batch = append(batch, fifoMsg("f", id, grp))
			}
			h.send("f", 0, batch...)
		case op < 4:
			inv := time.Duration(1+rng.IntN(20)) * time.Second
			got := h.popFIFOMode("g", "f", int32(1+rng.IntN(8)), inv, runs)
			tr("%d pop inv %v: %v", step, inv, ids(got))
			popped += len(got)
			byGroup := map[string][]domain.StoredMessage{}
			for _, m := range got {
				held[m.ID] = m
				if m.Group != "" {
					byGroup[m.Group] = append(byGroup[m.Group], m)
				}
			}
			for grp, ms := range byGroup {
				if !runs && len(ms) > 1 {
					t.Fatalf("step %d: %v of group %s in one pop without runs", step, ids(ms), grp)
				}
				if prev := lastRun[grp]; prev != nil && !prev.lost {
					for i := range prev.handles {
						if !prev.acked[i] && now.Before(prev.deadline[i]) {
							t.Fatalf("step %d: group %s delivered %v while %s-%d is in flight", step, grp, ids(ms), grp, prev.start+i)
						}
					}
				}
				r := &fifoRun{start: seq(ms[0])}
				if r.start != confirmed[grp] {
					t.Fatalf("step %d: group %s run starts at %d, but %d is the first not consumed", step, grp, r.start, confirmed[grp])
				}
				if r.start < sentPer[grp] && lastRun[grp] != nil && r.start < lastRun[grp].start+len(lastRun[grp].handles) {
					redelivered++
				}
				for i, m := range ms {
					if seq(m) != r.start+i {
						t.Fatalf("step %d: group %s run %v is not consecutive", step, grp, ids(ms))
					}
					r.handles = append(r.handles, m.ReceiptHandle)
					r.acked = append(r.acked, false)
					r.deadline = append(r.deadline, now.Add(inv))
				}
				lastRun[grp] = r
			}
		case op < 8 && len(held) > 0:
			m := pick()
			delete(held, m.ID)
			err := h.e.Ack(t.Context(), ackReq("g", m))
			tr("%d ack %s: %v", step, m.ID, err)
			if err != nil {
				if domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
					ackFail++
					continue // expired or superseded meanwhile
				}
				t.Fatal(err)
			}
			r := lastRun[m.Group]
			if m.Group == "" || r == nil || seq(m) < r.start || seq(m) >= r.start+len(r.handles) || r.handles[seq(m)-r.start] != m.ReceiptHandle {
				continue // no group, or an idempotent ack of a message consumed before
			}
			r.acked[seq(m)-r.start] = true
			for confirmed[m.Group] < r.start+len(r.handles) && r.acked[confirmed[m.Group]-r.start] {
				confirmed[m.Group]++
			}
		case op == 8 && len(held) > 0:
			m := pick()
			nh, err := h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", m), InvisibleTime: time.Duration(rng.IntN(3)) * time.Second})
			tr("%d change %s: %v %v", step, m.ID, nh.InvisibleTime, err)
			if err == nil {
				m.ReceiptHandle = nh.String()
				held[m.ID] = m
				if r := lastRun[m.Group]; m.Group != "" && r != nil && seq(m) >= r.start && seq(m) < r.start+len(r.handles) {
					r.handles[seq(m)-r.start] = m.ReceiptHandle
					r.deadline[seq(m)-r.start] = nh.NextVisibleTime()
				}
			}
		case op == 9:
			adv := time.Duration(rng.IntN(15)) * time.Second
			h.fake().Advance(adv)
			tr("%d advance %v", step, adv)
			if rng.IntN(20) == 0 {
				settle := rng.IntN(2) == 0
				tr("%d crash settle=%v", step, settle)
				h.crashRestart(settle)
				clear(held) // receipts of lost pops may be stale; they only fail
				for _, r := range lastRun {
					r.lost = true
				}
			}
		}
		if err := h.e.checkIndexes(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	n := 0
	for _, v := range confirmed {
		n += v
	}
	t.Logf("sent %v consumed %d popped %d ackFail %d runs delivered again %d", sentPer, n, popped, ackFail, redelivered)
	if n < 100 {
		t.Fatalf("only %d grouped messages consumed; the test exercises too little", n)
	}
}

// TestFIFOLongPollWokenByDeadLetter: a FIFO long poll waiting behind the
// head of a message group is woken when that head leaves for the
// dead-letter queue (moved by the consumer, or by the engine after its
// last attempt), as it is when the head is acked; it used to wait for
// its whole polling time although the next message was deliverable.
func TestFIFOLongPollWokenByDeadLetter(t *testing.T) {
	for _, tc := range []struct {
		name string
		move func(h *harness, head domain.StoredMessage)
	}{
		{"forwarded", func(h *harness, head domain.StoredMessage) {
			if err := h.e.ForwardToDeadLetter(h.t.Context(), ackReq("g", head)); err != nil {
				h.t.Fatal(err)
			}
		}},
		{"exhausted", func(h *harness, _ domain.StoredMessage) {
			h.fake().Advance(5 * time.Second)
			h.revive()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.createGroup("g", 1, true)
			h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"))
			head := h.popFIFOMode("g", "f", 1, 5*time.Second, false)
			if !slices.Equal(ids(head), []string{"A1"}) {
				t.Fatalf("first pop: %v", ids(head))
			}
			res := make(chan []domain.StoredMessage, 1)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			go func() {
				got, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "f", QueueID: -1, MaxMessages: 1,
					InvisibleTime: time.Minute, PollTimeout: time.Minute, FIFO: true})
				if err != nil {
					t.Error(err)
				}
				res <- got
			}()
			h.waitPollers("f", 0, 1)
			tc.move(h, head[0])
			if got := <-res; !slices.Equal(ids(got), []string{"A2"}) {
				t.Fatalf("the waiting FIFO pop got %v after the head left for the DLQ, want A2", ids(got))
			}
		})
	}
}

// TestForwardOfAnOutlivedRunMemberKeepsTheRunReleased: a FIFO run whose
// later message was acked (held) and whose earlier message's invisible
// time then passed is released: the later message is delivered again. A
// forward of the earlier message afterwards (its handle outlived, the
// message visible again) moved it to the dead-letter queue and left the
// later one visible; but expiries are not logged, so replay found the
// earlier one still in flight and the later one held, and consumed the
// later one with the move: after a restart it was never delivered again,
// and the recovered state differed from the live one. Replay now releases
// the run of a moved delivery whose invisible time had passed when it was
// moved, as the expiry did (unless it had used its last attempt: the
// reviver moves those without releasing their run).
func TestForwardOfAnOutlivedRunMemberKeepsTheRunReleased(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 4, true)
	h.send("f", 0, fifoMsg("f", "A0", "A"), fifoMsg("f", "A1", "A"))
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	run := h.popFIFO("g", "f", 2, time.Second)
	if !slices.Equal(ids(run), []string{"A0", "A1"}) {
		t.Fatalf("run %v", ids(run))
	}
	h.ack("g", run[1]) // held: A0 is in flight
	h.fake().Advance(time.Minute)
	h.revive() // A0 visible again, A1 released with it
	if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("g", run[0])); err != nil {
		t.Fatal(err)
	}
	h.requireReplaysMatch()
	if got := h.popFIFO("g", "f", 2, time.Minute); !slices.Equal(ids(got), []string{"A1"}) || got[0].DeliveryAttempt != 2 {
		t.Fatalf("after a restart: %v; want A1 again (attempt 2)", ids(got))
	}
}
