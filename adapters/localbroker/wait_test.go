package localbroker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// woken counts the pollers holding a wake-up.
func woken(ps []*poller) int {
	n := 0
	for _, p := range ps {
		n += len(p.ch)
	}
	return n
}

// TestNewMessagesWakeOnePopPollerEachPerGroup: a consumer group's pop
// pollers compete for a message, so n new messages wake n of them (passing
// over one already woken), of every group; every pull poller reads for
// itself and is woken. Waking every poller per message made each idle
// consumer look (and take the engine lock) for every message.
func TestNewMessagesWakeOnePopPollerEachPerGroup(t *testing.T) {
	h := newHarness(t, nil)
	e := h.e
	k := queueKey{"t", 0}
	e.mu.Lock()
	defer e.mu.Unlock()
	reg := func(n int, group string) []*poller {
		ps := make([]*poller, n)
		for i := range ps {
			ps[i] = e.registerLocked(k.topic, []int32{k.qid}, group, false)
		}
		return ps
	}
	g1, g2, pull := reg(5, "g1"), reg(3, "g2"), reg(2, "")
	if n := e.wakeLocked(k, "", false, 1); n != 2 {
		t.Errorf("one new message woke %d pop pollers, want 2 (one per group)", n)
	}
	if woken(g1) != 1 || woken(g2) != 1 || woken(pull) != 2 {
		t.Fatalf("one new message woke g1 %d, g2 %d, pull %d; want 1, 1, 2", woken(g1), woken(g2), woken(pull))
	}
	e.wakeLocked(k, "", false, 3)
	if woken(g1) != 4 || woken(g2) != 3 {
		t.Fatalf("three more messages: g1 %d, g2 %d woken; want 4, 3", woken(g1), woken(g2))
	}
	// A message visible again is for its group only.
	e.wakeLocked(k, "g1", false, 1)
	if woken(g1) != 5 || woken(g2) != 3 {
		t.Fatalf("an expiry in g1: g1 %d, g2 %d woken; want 5, 3", woken(g1), woken(g2))
	}
}

// TestAckWakesOneFIFOPoller: an ack may unblock one FIFO message group.
func TestAckWakesOneFIFOPoller(t *testing.T) {
	h := newHarness(t, nil)
	e := h.e
	k := queueKey{"f", 0}
	e.mu.Lock()
	defer e.mu.Unlock()
	var fifo, plain []*poller
	for range 3 {
		fifo = append(fifo, e.registerLocked(k.topic, []int32{k.qid}, "g", true))
		plain = append(plain, e.registerLocked(k.topic, []int32{k.qid}, "g", false))
	}
	e.wakeLocked(k, "g", true, 1)
	if woken(fifo) != 1 || woken(plain) != 0 {
		t.Fatalf("an ack woke %d FIFO and %d other pollers, want 1 and 0", woken(fifo), woken(plain))
	}
}

// TestLeavingPollerPassesItsWakeUpOn: a poller that leaves holding a
// wake-up it did not look after (its caller gave up) hands it to another
// poller of its group, or the message would wait for their poll times.
func TestLeavingPollerPassesItsWakeUpOn(t *testing.T) {
	h := newHarness(t, nil)
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.registerLocked("t", []int32{0, 1}, "g", false)
	b := e.registerLocked("t", []int32{1}, "g", false)
	other := e.registerLocked("t", []int32{0, 1}, "other", false)
	a.wake()
	e.leaveLocked(a)
	if len(b.ch) != 1 || len(other.ch) != 0 {
		t.Fatalf("after a woken poller left: its group's other poller has %d wake-ups, another group's %d; want 1, 0", len(b.ch), len(other.ch))
	}
	// One that looked after its wake-up (took it) passes nothing on.
	<-b.ch
	c := e.registerLocked("t", []int32{1}, "g", false)
	e.leaveLocked(b)
	if len(c.ch) != 0 {
		t.Fatal("a poller without a pending wake-up woke another on leaving")
	}
}

// TestEveryNewMessageReachesAnIdleConsumer: eight consumers wait with one
// message each at most; a batch of eight arrives: each gets one at once,
// none waits out its poll time.
func TestEveryNewMessageReachesAnIdleConsumer(t *testing.T) {
	h := newHarness(t, nil)
	h.clock = ports.SystemClock{}
	h.restart()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const consumers = 8
	got := make(chan []domain.StoredMessage, consumers)
	for range consumers {
		go func() {
			ms, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute, PollTimeout: time.Minute})
			if err != nil {
				t.Error(err)
			}
			got <- ms
		}()
	}
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		h.e.mu.Lock()
		defer h.e.mu.Unlock()
		if n := len(h.e.waiters[queueKey{"t", 2}]); n != consumers {
			return fmt.Errorf("%d of %d consumers waiting", n, consumers)
		}
		return nil
	})
	var batch []domain.Message
	for i := range consumers {
		batch = append(batch, msg("t", fmt.Sprint(i), ""))
	}
	h.send("t", 2, batch...)
	deadline := time.After(10 * time.Second) // the poll time is a minute
	seen := map[string]bool{}
	for range consumers {
		select {
		case ms := <-got:
			if len(ms) != 1 || seen[ms[0].ID] {
				t.Fatalf("a consumer got %v (seen %v)", ids(ms), seen)
			}
			seen[ms[0].ID] = true
		case <-deadline:
			t.Fatalf("a consumer was not woken for a message of the batch (got %v)", seen)
		}
	}
}

// TestPassedOnWakeUpGoesToAReaderOfItsQueue: pollers of one group may read
// different queues (a FIFO push consumer pops each assigned queue, a simple
// consumer of the group any queue). A poller woken for a message of one
// queue that leaves without looking hands the wake-up to a poller that
// reads that queue, not to one that reads only another of its queues and
// would find nothing while the message waits out the poll time.
func TestPassedOnWakeUpGoesToAReaderOfItsQueue(t *testing.T) {
	h := newHarness(t, nil)
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	both := e.registerLocked("t", []int32{0, 1}, "g", false)
	if n := e.wakeLocked(queueKey{"t", 1}, "", false, 1); n != 1 || len(both.ch) != 1 {
		t.Fatalf("a new message of queue 1 woke %d pollers", n)
	}
	q0 := e.registerLocked("t", []int32{0}, "g", false)
	q1 := e.registerLocked("t", []int32{1}, "g", false)
	e.leaveLocked(both)
	if len(q1.ch) != 1 || len(q0.ch) != 0 {
		t.Fatalf("the wake-up for queue 1 went to the reader of queue 0 (%d) and of queue 1 (%d); want 0, 1", len(q0.ch), len(q1.ch))
	}
}
