package localbroker

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
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
			ps[i] = e.registerLocked(k.topic, []int32{k.qid}, group, false, false)
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
		fifo = append(fifo, e.registerLocked(k.topic, []int32{k.qid}, "g", true, false))
		plain = append(plain, e.registerLocked(k.topic, []int32{k.qid}, "g", false, false))
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
	a := e.registerLocked("t", []int32{0, 1}, "g", false, true)
	b := e.registerLocked("t", []int32{1}, "g", false, false)
	other := e.registerLocked("t", []int32{0, 1}, "other", false, true)
	a.wake()
	e.leaveLocked(a)
	if len(b.ch) != 1 || len(other.ch) != 0 {
		t.Fatalf("after a woken poller left: its group's other poller has %d wake-ups, another group's %d; want 1, 0", len(b.ch), len(other.ch))
	}
	// One that looked after its wake-up (took it) passes nothing on.
	<-b.ch
	c := e.registerLocked("t", []int32{1}, "g", false, false)
	e.leaveLocked(b)
	if len(c.ch) != 0 {
		t.Fatal("a poller without a pending wake-up woke another on leaving")
	}
}

// waitPollers waits until at least n long pollers (pops or pulls) wait on
// queue qid of topic.
func (h *harness) waitPollers(topic string, qid int32, n int) {
	h.t.Helper()
	waitfor.Condition(h.t, 10*time.Second, time.Millisecond, func() error {
		h.e.mu.Lock()
		defer h.e.mu.Unlock()
		if got := len(h.e.waiters[queueKey{topic, qid}]); got < n {
			return fmt.Errorf("%d of %d pollers wait on queue %d of %s", got, n, qid, topic)
		}
		return nil
	})
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
	h.waitPollers("t", 2, consumers)
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
	both := e.registerLocked("t", []int32{0, 1}, "g", false, true)
	if n := e.wakeLocked(queueKey{"t", 1}, "", false, 1); n != 1 || len(both.ch) != 1 {
		t.Fatalf("a new message of queue 1 woke %d pollers", n)
	}
	q0 := e.registerLocked("t", []int32{0}, "g", false, false)
	q1 := e.registerLocked("t", []int32{1}, "g", false, false)
	e.leaveLocked(both)
	if len(q1.ch) != 1 || len(q0.ch) != 0 {
		t.Fatalf("the wake-up for queue 1 went to the reader of queue 0 (%d) and of queue 1 (%d); want 0, 1", len(q0.ch), len(q1.ch))
	}
}

// TestArrivalWakesAnyQueueAndOneQueuePollersApart: a group's pop pollers
// that read any queue and those that read only the message's queue are
// woken apart (as a RocketMQ broker wakes one of each per arrival): the
// one reading any queue may take another queue's message, and this one
// must not then wait for the poll time of the one that reads only its
// queue.
func TestArrivalWakesAnyQueueAndOneQueuePollersApart(t *testing.T) {
	h := newHarness(t, nil)
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	anyQ := e.registerLocked("t", []int32{0, 1}, "g", false, true)
	q0 := e.registerLocked("t", []int32{0}, "g", true, false)
	if n := e.wakeLocked(queueKey{"t", 0}, "", false, 1); n != 2 || len(anyQ.ch) != 1 || len(q0.ch) != 1 {
		t.Fatalf("a new message of queue 0 woke %d pollers: any-queue %d, queue-0 %d; want 2: 1, 1", n, len(anyQ.ch), len(q0.ch))
	}
	<-anyQ.ch
	<-q0.ch
	if e.wakeLocked(queueKey{"t", 0}, "g", true, 1); len(q0.ch) != 1 {
		t.Fatalf("an ack on queue 0 did not wake its FIFO poller of queue 0")
	}
}

// TestAnyQueuePopperDoesNotStrandAnotherQueuesMessage: a simple consumer
// pops any queue, a FIFO push consumer of the same group queue 0 only; two
// messages, of queue 0 and queue 1, become visible again at once while the
// simple consumer is busy looking (held up at queue 7, which another pop of
// the group holds). The wake-up for queue 0 must reach the queue-0
// consumer even when the simple consumer got one too and, looking at
// queue 1 first, takes that message instead: before, the wake-up went to
// one of the two (map order), and when it was the simple consumer the
// queue-0 message waited out the poll time.
func TestAnyQueuePopperDoesNotStrandAnotherQueuesMessage(t *testing.T) {
	h := newHarness(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Which of the two the old code woke was up to map order, so the
	// scenario is repeated, the consumers registering in either order.
	for round := range 24 {
		topic := fmt.Sprint("t", round)
		h.send(topic, 0, msg(topic, "A", ""))
		h.send(topic, 1, msg(topic, "B", ""))
		// Taken and left: A's invisible time ends before B's, both when
		// the clock moves on.
		if got := h.pop("g", topic, 0, 1, 10*time.Second); len(got) != 1 {
			t.Fatalf("round %d: popped %v from queue 0", round, ids(got))
		}
		h.fake().Advance(time.Millisecond)
		if got := h.pop("g", topic, 1, 1, 10*time.Second); len(got) != 1 {
			t.Fatalf("round %d: popped %v from queue 1", round, ids(got))
		}
		h.e.mu.Lock()
		gate := h.e.gateLocked(consKey{"g", topic, 7})
		h.e.mu.Unlock()
		gate.Lock()
		anyQ, q0 := make(chan []domain.StoredMessage, 1), make(chan []domain.StoredMessage, 1)
		popInto := func(out chan<- []domain.StoredMessage, qid int32) {
			ms, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: topic, QueueID: qid, MaxMessages: 1, InvisibleTime: time.Minute, PollTimeout: time.Minute})
			if err != nil {
				t.Error(err)
			}
			out <- ms
		}
		waiting := func(n0, n1 int) {
			waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
				h.e.mu.Lock()
				defer h.e.mu.Unlock()
				if n, m := len(h.e.waiters[queueKey{topic, 0}]), len(h.e.waiters[queueKey{topic, 1}]); n != n0 || m != n1 {
					return fmt.Errorf("%d pollers wait on queue 0, %d on queue 1; want %d, %d", n, m, n0, n1)
				}
				return nil
			})
		}
		// Each consumer is started once the other is parked where the
		// scenario wants it: the simple consumer done with queues 0 to 6
		// and held up at queue 7, the queue-0 consumer waiting for a
		// wake-up. Registered is not enough: a consumer registers before
		// it looks, and one still looking when the messages become
		// visible below could take A at once (seen as "not woken").
		if round%2 == 0 {
			go popInto(anyQ, -1)
			waiting(1, 1)
			parked(t, 0, 1)
			go popInto(q0, 0)
		} else {
			go popInto(q0, 0)
			waiting(1, 0)
			parked(t, 1, 0)
			go popInto(anyQ, -1)
		}
		waiting(2, 1)
		parked(t, 1, 1)
		h.e.mu.Lock()
		h.e.rr = 1 // the simple consumer's next look starts at queue 1
		h.e.mu.Unlock()
		h.fake().Advance(10 * time.Second)
		h.revive()
		gate.Unlock()
		deadline := time.After(10 * time.Second) // the poll time is a minute
		for range 2 {
			select {
			case ms := <-anyQ:
				if len(ms) != 1 {
					t.Fatalf("round %d: the any-queue consumer got %v", round, ids(ms))
				}
			case ms := <-q0:
				if len(ms) != 1 || ms[0].ID != "A" {
					t.Fatalf("round %d: the queue-0 consumer got %v, want A", round, ids(ms))
				}
			case <-deadline:
				t.Fatalf("round %d: a consumer was not woken for a message it could take", round)
			}
		}
	}
}

// gateWait matches a goroutine stack blocked on a queue's gate in
// popQueues: a pop that has looked at its other queues.
var gateWait = regexp.MustCompile(`\nsync\.\(\*Mutex\)\.Lock\([^\n]*\n[^\n]*\n[^\n]*localbroker\.\(\*Engine\)\.popQueues\(`)

// parked waits until, of the pops the calling test started, waiting wait
// for a wake-up (Engine.wait) and onGate are blocked on a queue's gate
// that another pop of their group holds. Registration alone (e.waiters)
// does not say that a pop has looked: it registers first.
func parked(t *testing.T, waiting, onGate int) {
	t.Helper()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		w, g := 0, 0
		for _, s := range goroutines.Stacks() {
			if !strings.Contains(s, "localbroker."+t.Name()+".") {
				continue // not one of this test's goroutines
			}
			switch {
			case strings.Contains(s, "localbroker.(*Engine).wait("):
				w++
			case gateWait.MatchString(s):
				g++
			}
		}
		if w != waiting || g != onGate {
			return fmt.Errorf("%d pops wait for a wake-up and %d are held up at a gate; want %d and %d", w, g, waiting, onGate)
		}
		return nil
	})
}
