package localbroker

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/timerindex"
	"github.com/rmqproxy/rmqproxy/domain"
)

func sampleSnapshot() *snapshot {
	return &snapshot{
		logOffset: 12345,
		queues:    []snapQueue{{topic: "t", qid: 0, count: 10}, {topic: "%DLQ%g", qid: 0, count: 1}},
		states: []snapState{{
			key: consKey{"g", "t", 0}, floor: 2, next: 8,
			deliveries: []snapDelivery{{offset: 3, d: deliveryState{attempt: 2, receipt: 1<<40 | 7, deadline: 1700000000000, msgGroup: "A", run: 1<<40 | 5}},
				{offset: 5, d: deliveryState{visible: true, msgGroup: "B"}},
				{offset: 6, d: deliveryState{attempt: 1, receipt: 1<<40 | 5, deadline: 1700000000000, msgGroup: "A", run: 1<<40 | 5, held: true}}},
			acked: []offRange{{2, 3}, {4, 5}, {7, 8}},
		}},
		timers: []timerindex.State{{Start: 1_700_000_040_000, Length: 300, Adds: 4, Dones: 1, MinOrigin: 77}},
		txns: []snapTxn{{origin: 99, st: txnState{topic: "tx", qid: 1, size: 40, crc: 0xfeedface, msgID: "01AB",
			storedAt: 1_700_000_000_000, recovery: 5000, checks: 2, lastCheck: 1_700_000_030_000}}},
		offsets: []snapOffset{{key: consKey{"p", "t", 2}, offset: 7}},
		deleted: []snapDeleted{{topic: "old", offset: 4242}},
		defs:    true,
		topics: []record.TopicPut{{Topic: domain.Topic{Name: "t", Type: domain.MessageTypeFIFO, QueueCount: 4, Permission: domain.PermReadWrite,
			CreatedAt: time.UnixMilli(1_700_000_000_000).UTC(), UpdatedAt: time.UnixMilli(1_700_000_000_001).UTC()}, Incarnation: 1<<40 | 2}},
		groups: []record.GroupPut{{Group: domain.ConsumerGroup{Name: "g", MaxDeliveryAttempts: 3, Orderly: true,
			RetryPolicy: domain.RetryPolicy{Delays: []time.Duration{time.Second}}}, Incarnation: 1<<40 | 3}},
	}
}

// encodeSnapshotOld writes s in the layout of an older version (1 to 3):
// acked offsets one by one, deliveries without run id and held flag,
// without the sections later versions added.
func encodeSnapshotOld(s *snapshot, version int) []byte {
	magic := [][]byte{snapMagicV1, snapMagicV2, snapMagicV3}[version-1]
	w := snapWriter{b: bytes.Clone(magic)}
	w.i(s.logOffset)
	w.queues(s.queues)
	w.u(uint64(len(s.states)))
	for _, st := range s.states {
		w.stateHead(&st)
		for _, d := range st.deliveries {
			w.deliveryV1(&d)
		}
		var acked []int64
		for _, a := range st.acked {
			for o := a.from; o < a.to; o++ {
				acked = append(acked, o)
			}
		}
		w.u(uint64(len(acked)))
		for _, a := range acked {
			w.i(a)
		}
	}
	// The later sections are the current encoding's, after an empty head
	// (magic, then one byte each: offset 0, no queue, no state).
	rest := encodeSnapshot(&snapshot{timers: s.timers, txns: s.txns, offsets: s.offsets, deleted: s.deleted, topics: s.topics, groups: s.groups})
	rest = rest[len(snapMagic)+3 : len(rest)-4]
	switch version {
	case 1:
		rest = nil
	case 2:
		rest = rest[:len(rest)-2] // without the (empty) definitions
	}
	return encodeSnapshotRaw(append(w.b, rest...))
}

// TestOldSnapshotsStillRead reads snapshots of versions 1 (written before
// delay and transactional messages existed), 2 (before topics and groups
// were log records: no definitions) and 3 (before FIFO runs and acked
// ranges).
func TestOldSnapshotsStillRead(t *testing.T) {
	s := sampleSnapshot()
	s.states[0].deliveries = s.states[0].deliveries[:2]
	s.states[0].deliveries[0].d.run = 0
	got, err := decodeSnapshot(encodeSnapshotOld(s, 3))
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("v3 snapshot: %+v %v", got, err)
	}
	s.defs, s.topics, s.groups = false, nil, nil
	got, err = decodeSnapshot(encodeSnapshotOld(s, 2))
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("v2 snapshot: %+v %v", got, err)
	}
	s.timers, s.txns, s.offsets, s.deleted = nil, nil, nil, nil
	got, err = decodeSnapshot(encodeSnapshotOld(s, 1))
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("v1 snapshot: %+v %v", got, err)
	}
}

func FuzzDecodeRecallHandle(f *testing.F) {
	f.Add(encodeRecallHandle("t", "b", 1_700_000_000_000, "01AB", 12345))
	f.Add("djEgdCBiIDEgaWQgMg")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := decodeRecallHandle(s)
		if err != nil {
			if !domain.HasReason(err, domain.ReasonBadRequest) {
				t.Fatalf("error without the bad-request reason: %v", err)
			}
			return
		}
		if strings.Contains(h.topic, " ") || strings.Contains(h.msgID, " ") {
			return // fields with spaces do not round-trip; real ones have none
		}
		h2, err := decodeRecallHandle(encodeRecallHandle(h.topic, h.broker, h.deliverAt, h.msgID, h.origin))
		if err != nil || h2 != h {
			t.Fatalf("re-encoding changed the handle: %+v %+v %v", h, h2, err)
		}
	})
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
	for v := 1; v <= 3; v++ {
		f.Add(encodeSnapshotOld(sampleSnapshot(), v))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		s.defs = true // older versions are written as the current one
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

func FuzzDecodeBootFile(f *testing.F) {
	f.Add(encodeBoot(7))
	f.Add(append(encodeBootSlot(3), encodeBootSlot(4)...))
	f.Add(encodeBootSlot(1 << 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		boot, slot, err := decodeBootFile(b)
		if err != nil {
			return
		}
		if slot != 0 && slot != 1 {
			t.Fatalf("slot %d", slot)
		}
		file := make([]byte, 2*bootSlotSize)
		copy(file[slot*bootSlotSize:], encodeBootSlot(boot))
		if b2, _, err := decodeBootFile(file); err != nil || b2 != boot {
			t.Fatalf("re-encoding changed the counter: %d %d %v", boot, b2, err)
		}
	})
}

// TestBootCounterSlots: the counter grows across restarts from a JSON file
// of an older version, and a torn slot falls back to the other one.
func TestBootCounterSlots(t *testing.T) {
	h := newClosedHarness(t, nil)
	meta := filepath.Join(h.cfg.DataDir, "meta")
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(meta, bootFile), encodeBoot(41), 0o644); err != nil {
		t.Fatal(err)
	}
	for want := uint64(42); want < 46; want++ {
		h.open()
		if h.e.boot != want {
			t.Fatalf("boot %d, want %d", h.e.boot, want)
		}
		if err := h.e.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// Slots: 42 went to slot 1 (slot 0 held the JSON), 43 to slot 0, 44 to
	// 1, 45 to 0. Tear the slot written last (0): the other (44) is read,
	// and the next boot is 45 again, which is fine: ids of a boot are only
	// issued after its counter is durable, and 45's write never completed.
	p := filepath.Join(meta, bootFile)
	b, _ := os.ReadFile(p)
	b[10] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h.open()
	if h.e.boot != 45 {
		t.Fatalf("after a torn slot: boot %d, want 45", h.e.boot)
	}
}
