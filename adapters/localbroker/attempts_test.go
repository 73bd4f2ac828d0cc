package localbroker

import (
	"slices"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func (h *harness) popAttempt(group, topic, attempt string, n int32, runs bool) []domain.StoredMessage {
	h.t.Helper()
	got, err := h.e.Pop(h.t.Context(), ports.PopRequest{Group: group, Topic: topic, QueueID: -1, MaxMessages: n,
		InvisibleTime: time.Minute, FIFO: true, FIFORuns: runs, AttemptID: attempt})
	if err != nil {
		h.t.Fatalf("Pop: %v", err)
	}
	return got
}

// TestFIFORetriedAttemptGetsItsMessagesAgain: a FIFO receive retried with
// the attempt id of one whose answer the client lost (it timed out) gets
// that receive's messages again, as a RocketMQ broker's orderly pop
// answers a pop with the attempt id of the one holding the queue, instead
// of leaving their message groups blocked for the invisible time (for a
// push consumer, whose deliveries the proxy renews, for hours). Another
// attempt still waits; what was acked, redelivered or renewed-and-acked
// since is not handed out again.
func TestFIFORetriedAttemptGetsItsMessagesAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "B1", "B"), fifoMsg("f", "B2", "B"))
	first := h.popAttempt("g", "f", "x1", 10, false)
	if !slices.Equal(ids(first), []string{"A1", "B1"}) {
		t.Fatalf("first pop %v", ids(first))
	}
	if more := h.popAttempt("g", "f", "other", 10, false); len(more) != 0 {
		t.Fatalf("another attempt got %v while A1 and B1 are in flight", ids(more))
	}
	// The proxy renews B1 (a push consumer's delivery) before the retry.
	if _, err := h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", first[1]), InvisibleTime: 3 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	again := h.popAttempt("g", "f", "x1", 10, false)
	if !slices.Equal(ids(again), []string{"A1", "B1"}) {
		t.Fatalf("retried attempt got %v, want A1 and B1 again", ids(again))
	}
	for _, m := range again {
		// The same delivery for the broker: its consumed counts carry over
		// for the same attempt id.
		if m.DeliveryAttempt != 1 {
			t.Errorf("%s delivery attempt %d, want 1 (a retried attempt is the same delivery)", m.ID, m.DeliveryAttempt)
		}
	}
	// The first answer's handles are superseded.
	wantReason(t, h.e.Ack(t.Context(), ackReq("g", first[0])), domain.ReasonInvalidReceiptHandle)
	h.ack("g", again[0])
	// Retried once more: only B1 is still in flight, A2 comes next in order.
	third := h.popAttempt("g", "f", "x1", 10, false)
	if !slices.Equal(ids(third), []string{"A2", "B1"}) {
		t.Fatalf("third pop %v, want A2 and B1", ids(third))
	}
	if third[0].DeliveryAttempt != 1 || third[1].DeliveryAttempt != 1 {
		t.Fatalf("third pop's delivery attempts %d and %d, want 1 and 1", third[0].DeliveryAttempt, third[1].DeliveryAttempt)
	}
	// A delivery made visible otherwise (a nack) counts as the next one.
	if _, err := h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", third[1])}); err != nil {
		t.Fatal(err)
	}
	h.ack("g", third[0])
	if next := h.popAttempt("g", "f", "z", 10, false); len(next) == 0 || next[0].ID != "B1" || next[0].DeliveryAttempt != 2 {
		t.Fatalf("after a nack of B1: %v, want B1 with delivery attempt 2", next)
	}

	// Runs (simple consumers) come again whole.
	h.send("r", 0, fifoMsg("r", "R1", "R"), fifoMsg("r", "R2", "R"), fifoMsg("r", "R3", "R"))
	run := h.popAttempt("g", "r", "y", 2, true)
	if !slices.Equal(ids(run), []string{"R1", "R2"}) {
		t.Fatalf("run %v", ids(run))
	}
	if run = h.popAttempt("g", "r", "y", 2, true); !slices.Equal(ids(run), []string{"R1", "R2"}) {
		t.Fatalf("retried run %v", ids(run))
	}
	for _, m := range run {
		h.ack("g", m)
	}
	if run = h.popAttempt("g", "r", "y", 2, true); !slices.Equal(ids(run), []string{"R3"}) {
		t.Fatalf("after the run was acked, the same attempt got %v, want R3", ids(run))
	}
	if err := h.e.checkIndexes(); err != nil {
		t.Fatal(err)
	}
}

// TestAttemptTableBounded: the attempts remembered stay within their
// bound, the latest is always kept, and an expired one is not handed out.
func TestAttemptTableBounded(t *testing.T) {
	var tab attemptTable
	now := time.Unix(1000, 0)
	for i := range maxAttemptPops + 100 {
		k := attemptKey{"g", "t", string(rune('a'+i%26)) + time.Duration(i).String()}
		tab.remember(k, now, attemptPop{deadline: now.Add(time.Minute)})
		if len(tab.pops) > maxAttemptPops {
			t.Fatalf("%d attempts remembered, bound %d", len(tab.pops), maxAttemptPops)
		}
		if _, ok := tab.pops[k]; !ok {
			t.Fatalf("the latest attempt %v was not remembered", k)
		}
	}
	k := attemptKey{"g", "t", "old"}
	tab.remember(k, now, attemptPop{deadline: now.Add(time.Second)})
	if _, ok := tab.take(k, now.Add(time.Second)); ok {
		t.Fatal("an attempt whose invisible time ended was handed out")
	}
}

// TestFIFORetriedAttemptAtTheLastDeliveryAttempt: a FIFO receive retried
// with its attempt id after the answer that held a message at its group's
// last delivery attempt was lost gets that message again, at the same
// attempt, as from a broker's orderly pop. Before, taking the delivery
// back counted as its end: the message went to the dead-letter queue
// without the consumer ever having had its last attempt, and the retry got
// the next message of the group instead.
func TestFIFORetriedAttemptAtTheLastDeliveryAttempt(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 2, true)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"))
	if first := h.popAttempt("g", "f", "x1", 10, false); !slices.Equal(ids(first), []string{"A1"}) {
		t.Fatalf("first pop %v", ids(first))
	}
	h.fake().Advance(time.Minute + time.Second)
	h.revive()
	last := h.popAttempt("g", "f", "x2", 10, false)
	if len(last) != 1 || last[0].ID != "A1" || last[0].DeliveryAttempt != 2 {
		t.Fatalf("second pop %v, want A1 at its last attempt (2)", last)
	}
	// Its answer is lost; the client retries with the same attempt id.
	again := h.popAttempt("g", "f", "x2", 10, false)
	if len(again) != 1 || again[0].ID != "A1" || again[0].DeliveryAttempt != 2 {
		t.Fatalf("retried attempt got %v, want A1 again at attempt 2", again)
	}
	h.e.mu.Lock()
	_, dlqExists := h.e.topics[domain.DeadLetterTopic("g")]
	h.e.mu.Unlock()
	if dlqExists {
		t.Fatal("dead-lettered although the retry got it")
	}
	// Not acked within its invisible time, it has used its last attempt.
	h.fake().Advance(time.Minute + time.Second)
	h.revive()
	h.settle(h.e.clog.NextOffset())
	if dl := h.popAll("dl", domain.DeadLetterTopic("g")); !slices.Equal(dl, []string{"A1"}) {
		t.Fatalf("dead-letter queue holds %v, want A1", dl)
	}
	if next := h.popAttempt("g", "f", "x3", 10, false); len(next) != 1 || next[0].ID != "A2" || next[0].DeliveryAttempt != 1 {
		t.Fatalf("after A1's dead-letter move: %v, want A2", next)
	}
}
