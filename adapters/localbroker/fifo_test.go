package localbroker

import (
	"fmt"
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
