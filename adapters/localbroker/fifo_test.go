package localbroker

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
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

func (h *harness) popFIFO(group, topic string, n int32, inv time.Duration) []domain.StoredMessage {
	h.t.Helper()
	got, err := h.e.Pop(h.t.Context(), ports.PopRequest{Group: group, Topic: topic, QueueID: -1, MaxMessages: n, InvisibleTime: inv, FIFO: true})
	if err != nil {
		h.t.Fatalf("Pop: %v", err)
	}
	return got
}

func TestFIFORetryBlocksItsGroupUntilAcked(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "B1", "B"), fifoMsg("f", "A2", "A"), fifoMsg("f", "A3", "A"))
	got := h.popFIFO("g", "f", 10, 10*time.Second)
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
	retry := h.popFIFO("g", "f", 10, 10*time.Second)
	if !slices.Equal(ids(retry), []string{"A1"}) || retry[0].DeliveryAttempt != 2 {
		t.Fatalf("retry %v (attempt %d)", ids(retry), retry[0].DeliveryAttempt)
	}
	// A retry changed to visible at once by the client keeps the order too.
	if _, err := h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", retry[0]), InvisibleTime: 0}); err != nil {
		t.Fatal(err)
	}
	again := h.popFIFO("g", "f", 10, 10*time.Second)
	if !slices.Equal(ids(again), []string{"A1"}) || again[0].DeliveryAttempt != 3 {
		t.Fatalf("after ChangeInvisible(0): %v", ids(again))
	}
	h.ack("g", again[0])
	var order []string
	for range 4 {
		next := h.popFIFO("g", "f", 10, 10*time.Second)
		if len(next) > 1 {
			t.Fatalf("two messages of one group at once: %v", ids(next))
		}
		for _, m := range next {
			order = append(order, m.ID)
			h.ack("g", m)
		}
	}
	if !slices.Equal(order, []string{"A2", "A3"}) {
		t.Fatalf("after A1 acked: %v", order)
	}
}

func TestFIFODeadLetterReleasesGroup(t *testing.T) {
	h := newHarness(t, nil)
	g := domain.NewConsumerGroup("g")
	g.MaxDeliveryAttempts = 2
	g.Orderly = true
	if _, err := h.e.CreateGroup(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "A3", "A"))
	for attempt := int32(1); attempt <= 2; attempt++ {
		got := h.popFIFO("g", "f", 10, 5*time.Second)
		if !slices.Equal(ids(got), []string{"A1"}) || got[0].DeliveryAttempt != attempt {
			t.Fatalf("attempt %d: %v", attempt, ids(got))
		}
		h.fake().Advance(5 * time.Second)
	}
	// A1 used its attempts: it goes to the DLQ and A2 follows.
	got := h.popFIFO("g", "f", 10, 5*time.Second)
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
		got := h.popFIFO("g", "f", 32, time.Minute)
		if len(got) > 1 {
			t.Fatalf("one send's messages of a group delivered together: %v", ids(got))
		}
		for _, m := range got {
			order = append(order, m.ID)
			h.ack("g", m)
		}
	}
	if !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
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
	for round := range per {
		got := h.popFIFO("g", "f", 64, time.Minute)
		if len(got) != groups {
			t.Fatalf("round %d: %d messages, want one per group (%d)", round, len(got), groups)
		}
		for _, m := range got {
			seen[m.Group] = append(seen[m.Group], m.ID)
			h.ack("g", m)
		}
	}
	// A stuck group does not hold the others back.
	h.send("f", 0, fifoMsg("f", "S1", "stuck"), fifoMsg("f", "S2", "stuck"), fifoMsg("f", "F1", "free"), fifoMsg("f", "F2", "free"))
	got := h.popFIFO("g", "f", 64, time.Minute)
	if !slices.Equal(ids(got), []string{"S1", "F1"}) {
		t.Fatalf("got %v", ids(got))
	}
	h.ack("g", got[1])
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

func TestFIFOOrderAcrossCrash(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "B1", "B"))
	got := h.popFIFO("g", "f", 10, time.Minute)
	if !slices.Equal(ids(got), []string{"A1", "B1"}) {
		t.Fatalf("first pop %v", ids(got))
	}
	h.ack("g", got[1])
	// The pop record is on disk: A1 stays in flight across the crash and A2
	// waits.
	h.crashRestart(true)
	if more := h.popFIFO("g", "f", 10, time.Minute); len(more) != 0 {
		t.Fatalf("after crash, delivered while A1 in flight: %v", ids(more))
	}
	h.fake().Advance(time.Minute)
	retry := h.popFIFO("g", "f", 10, time.Minute)
	if !slices.Equal(ids(retry), []string{"A1"}) {
		t.Fatalf("retry after crash: %v", ids(retry))
	}
	// Without the pop record (lost in the crash), A1 comes first again.
	h.crashRestart(false)
	h.fake().Advance(time.Minute)
	again := h.popFIFO("g", "f", 10, time.Minute)
	if !slices.Equal(ids(again), []string{"A1"}) {
		t.Fatalf("after losing the pop record: %v", ids(again))
	}
	h.ack("g", again[0])
	h.crashRestart(false)
	if last := h.popFIFO("g", "f", 10, time.Minute); !slices.Equal(ids(last), []string{"A2"}) {
		t.Fatalf("after A1 acked and a crash: %v", ids(last))
	}
}

// checkIndexes verifies that the pop indexes of every consumer state match
// its deliveries.
func (e *Engine) checkIndexes() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, c := range e.cons {
		var vis, free []int64
		grouped := map[string][]int64{}
		busy := map[string]int32{}
		for off, d := range c.inflight {
			switch {
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
	}
	return nil
}

// TestFIFORandomOperationsKeepOrder drives random pops (FIFO), acks,
// invisible-time changes, expiries and crashes, and checks that within each
// message group messages are consumed in order and the indexes stay in step.
func TestFIFORandomOperationsKeepOrder(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { fifoRandomOperations(t, seed) })
	}
}

func fifoRandomOperations(t *testing.T, seed uint64) {
	h := newHarness(t, nil)
	g := domain.NewConsumerGroup("g")
	g.MaxDeliveryAttempts = 1000
	if _, err := h.e.CreateGroup(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 2))
	const groups = 5
	sentPer := map[string]int{}
	nextWant := map[string]int{}
	consumed := map[string]bool{}
	held := map[string]domain.StoredMessage{} // the latest delivery of each message
	popped, ackFail := 0, 0
	pick := func() domain.StoredMessage {
		keys := slices.Sorted(maps.Keys(held))
		return held[keys[rng.IntN(len(keys))]]
	}
	for step := range 1500 {
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
			got := h.popFIFO("g", "f", int32(1+rng.IntN(8)), time.Duration(1+rng.IntN(20))*time.Second)
			seen := map[string]bool{}
			for _, m := range got {
				if m.Group != "" && seen[m.Group] {
					t.Fatalf("step %d: two messages of group %s in one pop", step, m.Group)
				}
				seen[m.Group] = true
			}
			popped += len(got)
			for _, m := range got {
				held[m.ID] = m
			}
		case op < 8 && len(held) > 0:
			m := pick()
			delete(held, m.ID)
			if err := h.e.Ack(t.Context(), ackReq("g", m)); err != nil {
				if domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
					ackFail++
					continue // expired or superseded meanwhile
				}
				t.Fatal(err)
			}
			if consumed[m.ID] {
				continue // an idempotent ack of a message consumed before
			}
			consumed[m.ID] = true
			if m.Group != "" {
				var n int
				fmt.Sscanf(m.ID[len(m.Group)+1:], "%d", &n)
				if n != nextWant[m.Group] {
					t.Fatalf("step %d: group %s consumed message %d, want %d", step, m.Group, n, nextWant[m.Group])
				}
				nextWant[m.Group]++
			}
		case op == 8 && len(held) > 0:
			m := pick()
			_, _ = h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", m), InvisibleTime: time.Duration(rng.IntN(3)) * time.Second})
		case op == 9:
			h.fake().Advance(time.Duration(rng.IntN(15)) * time.Second)
			if rng.IntN(20) == 0 {
				h.crashRestart(rng.IntN(2) == 0)
				clear(held) // receipts of lost pops may be stale; they only fail
			}
		}
		if err := h.e.checkIndexes(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	n := 0
	for _, v := range nextWant {
		n += v
	}
	t.Logf("sent %v consumed %d popped %d ackFail %d", sentPer, len(consumed), popped, ackFail)
	if n < 100 {
		t.Fatalf("only %d grouped messages consumed; the test exercises too little", n)
	}
}
