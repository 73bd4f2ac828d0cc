package cluster

import (
	"slices"
	"strconv"
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

// TestDeliveriesAllocs: turning a pop answer of 32 messages (as the Go
// client's, without keys or user properties) into deliveries takes three
// allocations: the messages, one string holding all their receipt handles
// and the text of their store host.
func TestDeliveriesAllocs(t *testing.T) {
	raw, err := remoting.DecodeMessages(popAnswerBody(t, 32, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp := remoting.PopMessageResponseHeader{PopTime: 1764763200200, InvisibleTime: 60000, ReviveQid: 3,
		StartOffsetInfo: "0 0 100", MsgOffsetInfo: "0 0 100"}
	for i := 101; i < 132; i++ {
		resp.MsgOffsetInfo += "," + strconv.Itoa(i)
	}
	cks, err := remoting.PopExtraInfos("T", &resp, "b1", false, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{}
	var out []domain.StoredMessage
	n := testing.AllocsPerRun(20, func() { out = b.deliveries(t.Context(), popBenchRequest, "b1", filter.All, raw, cks) })
	if n > 3 {
		t.Errorf("%v allocations for 32 deliveries, want at most 3", n)
	}
	if len(out) != 32 {
		t.Fatalf("%d deliveries", len(out))
	}
	for i, m := range out {
		want, _ := handleOf(cks[i], raw[i].CommitLogOffset)
		if m.ReceiptHandle != want.String() || m.ID != raw[i].MsgID() || m.StoreHost != "127.0.0.1:10911" {
			t.Fatalf("delivery %d: handle %q want %q, id %q, store host %q", i, m.ReceiptHandle, want.String(), m.ID, m.StoreHost)
		}
	}
}
