package application

import (
	"fmt"
	"slices"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestAckMessageOneBrokerCallForAllEntries: the entries of one AckMessage
// go to the broker in one batch (one wait for durability); entries with a
// bad or expired handle get their own error and stay out of it.
func TestAckMessageOneBrokerCallForAllEntries(t *testing.T) {
	cfg := DefaultConfig()
	m, b, _ := newTestMessaging(cfg)
	for i := range 5 {
		b.add("t", fmt.Sprint("m", i), "")
	}
	msgs, err := m.ReceiveMessage(asClient(t.Context(), "c1"), receiveReq("g", "t", "*", false))
	if err != nil || len(msgs) != 5 {
		t.Fatalf("receive: %d %v", len(msgs), err)
	}
	entries := []AckEntry{{MessageID: "bad", ReceiptHandle: "not a handle"}}
	for _, msg := range msgs {
		entries = append(entries, AckEntry{MessageID: msg.ID, ReceiptHandle: msg.ReceiptHandle})
	}
	res, err := m.AckMessage(asClient(t.Context(), "c1"), "g", "t", entries)
	if err != nil {
		t.Fatal(err)
	}
	if !domain.HasReason(res[0], domain.ReasonInvalidReceiptHandle) || slices.ContainsFunc(res[1:], func(e error) bool { return e != nil }) {
		t.Fatalf("results %v", res)
	}
	if !slices.Equal(b.batches, []int{5}) || len(b.acks) != 5 {
		t.Fatalf("broker batches %v, acks %d; want one batch of 5", b.batches, len(b.acks))
	}
}

// TestRenewalsShareBrokerCalls: held deliveries due for renewal are renewed
// renewBatch at a time.
func TestRenewalsShareBrokerCalls(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	const n = 150
	for i := range n {
		b.add("t", fmt.Sprint("m", i), "")
	}
	for got := 0; got < n; {
		msgs, err := m.ReceiveMessage(asClient(t.Context(), "c1"), receiveReq("g", "t", "*", true))
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		got += len(msgs)
	}
	clock.Advance(cfg.Consumer.DefaultInvisibleTime - cfg.Consumer.RenewAhead)
	m.renewer.renewDue(t.Context())
	if got := len(b.changesSnapshot()); got != n {
		t.Fatalf("%d renewals, want %d", got, n)
	}
	slices.Sort(b.batches)
	if !slices.Equal(b.batches, []int{n - 2*renewBatch, renewBatch, renewBatch}) {
		t.Fatalf("renewal batches %v", b.batches)
	}
	// A departed client's deliveries are released in one call.
	b.batches = nil
	m.renewer.release(t.Context(), "c1", "g")
	if !slices.Equal(b.batches, []int{n}) {
		t.Fatalf("release batches %v", b.batches)
	}
}
