package localbroker

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

func sampleSnapshot() *snapshot {
	return &snapshot{
		logOffset: 12345,
		queues:    []snapQueue{{topic: "t", qid: 0, count: 10}, {topic: "%DLQ%g", qid: 0, count: 1}},
		states: []snapState{{
			key: consKey{"g", "t", 0}, floor: 2, next: 8,
			deliveries: []snapDelivery{{offset: 3, d: delivery{attempt: 2, receipt: 1<<40 | 7, deadline: 1700000000000, msgGroup: "A"}},
				{offset: 5, d: delivery{visible: true, msgGroup: "B"}}},
			acked: []int64{4, 6, 7},
		}},
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	s := sampleSnapshot()
	got, err := decodeSnapshot(encodeSnapshot(s))
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	b := encodeSnapshot(s)
	b[len(b)-6] ^= 1
	if _, err := decodeSnapshot(b); err == nil {
		t.Fatal("checksum not verified")
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(sampleSnapshot()))
	f.Add(encodeSnapshot(&snapshot{}))
	f.Add([]byte("RMQSNAP1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		s2, err := decodeSnapshot(encodeSnapshot(s))
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoding changed the snapshot: %v", err)
		}
	})
}

// FuzzDecodeSnapshotBody checksums arbitrary bodies so the fuzzer reaches
// the body decoder rather than stopping at the checksum.
func FuzzDecodeSnapshotBody(f *testing.F) {
	full := encodeSnapshot(sampleSnapshot())
	f.Add(full[len(snapMagic) : len(full)-4])
	f.Fuzz(func(t *testing.T, body []byte) {
		w := snapWriter{b: append(bytes.Clone(snapMagic), body...)}
		b := encodeSnapshotRaw(w.b)
		s, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		s2, err := decodeSnapshot(encodeSnapshot(s))
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-encoding changed the snapshot: %v", err)
		}
	})
}

func sampleTopics() []topicMeta {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []topicMeta{
		{Topic: domain.Topic{Name: "a", Type: domain.MessageTypeFIFO, QueueCount: 4, Permission: domain.PermReadWrite, Description: "d", CreatedAt: now, UpdatedAt: now}, incarnation: 5},
		{Topic: domain.Topic{Name: "%DLQ%g", Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermRead, CreatedAt: now, UpdatedAt: now}, incarnation: 6},
	}
}

func sampleGroups() []groupMeta {
	g := domain.NewConsumerGroup("g")
	g.Orderly = true
	h := domain.NewConsumerGroup("h")
	h.RetryPolicy = domain.RetryPolicy{Initial: time.Second, Max: time.Minute, Multiplier: 2}
	return []groupMeta{{ConsumerGroup: g, incarnation: 1}, {ConsumerGroup: h, incarnation: 2}}
}

func TestMetaRoundTrip(t *testing.T) {
	ts, err := decodeTopics(encodeTopics(sampleTopics()))
	if err != nil || !reflect.DeepEqual(ts, sampleTopics()) {
		t.Fatalf("topics: %+v %v", ts, err)
	}
	gs, err := decodeGroups(encodeGroups(sampleGroups()))
	if err != nil || !reflect.DeepEqual(gs, sampleGroups()) {
		t.Fatalf("groups: %+v %v", gs, err)
	}
	if n, err := decodeBoot(encodeBoot(42)); err != nil || n != 42 {
		t.Fatalf("boot: %d %v", n, err)
	}
}

func FuzzDecodeTopics(f *testing.F) {
	f.Add(encodeTopics(sampleTopics()))
	f.Add([]byte(`{"format":1,"topics":[{"name":"x","type":"BAD"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := decodeTopics(b)
		if err != nil {
			return
		}
		ts2, err := decodeTopics(encodeTopics(ts))
		if err != nil || len(ts2) != len(ts) {
			t.Fatalf("re-encoding changed the topics: %v", err)
		}
		for i := range ts {
			if ts[i].Name != ts2[i].Name || ts[i].QueueCount != ts2[i].QueueCount || ts[i].incarnation != ts2[i].incarnation || !ts[i].CreatedAt.Equal(ts2[i].CreatedAt) {
				t.Fatalf("topic %d changed", i)
			}
		}
	})
}

func FuzzDecodeGroups(f *testing.F) {
	f.Add(encodeGroups(sampleGroups()))
	f.Add(encodeBoot(3))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeBoot(b)
		gs, err := decodeGroups(b)
		if err != nil {
			return
		}
		gs2, err := decodeGroups(encodeGroups(gs))
		if err != nil || len(gs2) != len(gs) {
			t.Fatalf("re-encoding changed the groups: %v", err)
		}
		for i := range gs {
			if gs[i].Name != gs2[i].Name || gs[i].MaxDeliveryAttempts != gs2[i].MaxDeliveryAttempts || gs[i].incarnation != gs2[i].incarnation {
				t.Fatalf("group %d changed", i)
			}
		}
	})
}
