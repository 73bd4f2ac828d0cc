package cluster

import (
	"slices"
	"sync"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

// TestPopDropsAndAcksFilteredMessages: of a pop answer whose messages
// carry tags a and b (the broker lets a colliding tag hash through), a
// receive filtering tag a gets the a messages, in order, each with its own
// receipt handle and properties; the b messages are acked and dropped.
func TestPopDropsAndAcksFilteredMessages(t *testing.T) {
	tagOf := func(i int) string {
		if i%3 == 1 {
			return "b"
		}
		return "a"
	}
	var mu sync.Mutex
	var acked []int64
	b := startPopBroker(t, 8, tagOf, func(req *remoting.Command) {
		var h remoting.AckMessageRequestHeader
		if err := h.DecodeFields(req.Fields); err != nil {
			t.Error(err)
		}
		mu.Lock()
		acked = append(acked, h.Offset)
		mu.Unlock()
	})
	f, err := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: "a"})
	if err != nil {
		t.Fatal(err)
	}
	req := popBenchRequest
	req.Filter = f
	msgs, err := b.Pop(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	handles := map[string]bool{}
	for _, m := range msgs {
		if m.Tag != "a" || m.Properties["MIN_OFFSET"] != "" || m.BornHost != "10.0.0.7" {
			t.Fatalf("message %+v", m)
		}
		h, err := domain.ParseReceiptHandle(m.ReceiptHandle)
		if err != nil || h.QueueOffset != m.QueueOffset || h.StartOffset != 100 || h.BrokerName != "b1" || h.CommitLogOffset != m.CommitLogOffset {
			t.Fatalf("message at %d: handle %q (%+v, %v)", m.QueueOffset, m.ReceiptHandle, h, err)
		}
		handles[m.ReceiptHandle] = true
		offsets = append(offsets, m.QueueOffset)
	}
	if want := []int64{100, 102, 103, 105, 106}; !slices.Equal(offsets, want) || len(handles) != len(want) {
		t.Fatalf("delivered offsets %v, want %v (%d distinct handles)", offsets, want, len(handles))
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(acked)
	if want := []int64{101, 104, 107}; !slices.Equal(acked, want) {
		t.Fatalf("acked %v, want %v", acked, want)
	}
}
