package record

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

func sampleMessage() Message {
	return Message{
		Message: domain.Message{
			Topic: "t", Body: []byte("hello"), Compressed: true, Tag: "TagA",
			Keys: []string{"k1", "k2"}, ID: "0100AABB", Group: "g1",
			DeliverAt: time.Unix(1700000000, 123).UTC(), Transactional: true,
			TransactionRecovery: 3 * time.Second, TraceContext: "00-abc", BornHost: "10.0.0.1",
			BornAt: time.Unix(0, 0).UTC(), ReconsumeTimes: 2, Properties: map[string]string{"a": "1", "b": ""},
		},
		StoredAt:   time.UnixMilli(1700000001000).UTC(),
		DeadLetter: &domain.DeadLetterOrigin{Topic: "orig", MessageID: "X"},
	}
}

func samples() []struct {
	typ Type
	v   any
} {
	m := sampleMessage()
	plain := Message{Message: domain.Message{Topic: "t", ID: "id", Body: []byte{}}}
	dm := sampleMessage()
	dm.Topic = "%DLQ%g"
	dm.PriorAttempts = 4
	committed := Message{Message: domain.Message{Topic: "t", ID: "c", Body: []byte("x"), DeliverAt: time.UnixMilli(5).UTC()}, TxnOrigin: 99}
	return []struct {
		typ Type
		v   any
	}{
		{TypeMessageBatch, Batch{Topic: "t", QueueID: 3, QueueOffset: 10, Messages: []Message{m, plain}}},
		{TypeMessageBatch, Batch{Topic: "t", QueueID: 0, QueueOffset: -1, Messages: []Message{plain}}},
		{TypeDispatch, Dispatch{Topic: "t", QueueID: 1, QueueOffset: 2, CommitLogOffset: 3, Size: 4, CRC: 5, TagHash: 6, StoredAt: time.UnixMilli(7).UTC()}},
		{TypePop, Pop{Group: "g", Topic: "t", QueueID: 1, Receipt: 1 << 41, PopTime: time.UnixMilli(5).UTC(), Deadline: time.UnixMilli(9).UTC(), Next: 4,
			Entries: []PopEntry{{Kind: PopDelivered, Offset: 1, Attempt: 2, MsgGroup: "x"}, {Kind: PopConsumed, Offset: 2}, {Kind: PopPassed, Offset: 3, MsgGroup: "y"}}}},
		{TypePop, Pop{Group: "g", Topic: "t", QueueID: 1, Receipt: 7, PopTime: time.UnixMilli(5).UTC(), Deadline: time.UnixMilli(9).UTC(), Next: 4,
			Entries: []PopEntry{{Kind: PopDelivered, Offset: 1, Attempt: 1, MsgGroup: "x"}, {Kind: PopDelivered, Offset: 2, Attempt: 1, MsgGroup: "x"}}, Orderly: true}},
		{TypeAck, Ack{Group: "g", Topic: "t", QueueID: 2, Offset: 7, Receipt: 99}},
		{TypeChangeInvisible, ChangeInvisible{Group: "g", Topic: "t", QueueID: 2, Offset: 7, OldReceipt: 1, NewReceipt: 2, Deadline: time.UnixMilli(100).UTC()}},
		{TypeDeadLetter, DeadLetter{Group: "g", Topic: "t", QueueID: 2, Offset: 7, Receipt: 3, Copy: Batch{Topic: "%DLQ%g", QueueOffset: 0, Messages: []Message{dm}}}},
		{TypeTopicDeleted, Deleted{Name: "t", Incarnation: 42}},
		{TypeGroupDeleted, Deleted{Name: "g", Incarnation: 43}},
		{TypeResolve, Resolve{Kind: ResolveTimerFire, Origin: 12, DeliverAt: 1700000000000, Copy: &Batch{Topic: "t", QueueID: 1, QueueOffset: 5, Messages: []Message{plain}}}},
		{TypeResolve, Resolve{Kind: ResolveTxnCommit, Origin: 99, Copy: &Batch{Topic: "t", QueueID: 1, QueueOffset: -1, Messages: []Message{committed}}}},
		{TypeResolve, Resolve{Kind: ResolveTimerRecall, Origin: 7, DeliverAt: -3}},
		{TypeResolve, Resolve{Kind: ResolveTxnRollback, Origin: 8}},
		{TypeTxnCheck, TxnCheck{Origin: 77, Checks: 3, At: time.UnixMilli(1700000000000).UTC()}},
		{TypeOffsetCommit, OffsetCommit{Group: "g", Topic: "t", QueueID: 2, Offset: 1 << 40}},
		{TypeTopicPut, TopicPut{Topic: domain.Topic{Name: "t", Type: domain.MessageTypeMixed, QueueCount: 8, Permission: domain.PermReadWrite,
			Description: "d", CreatedAt: time.UnixMilli(1700000000000).UTC(), UpdatedAt: time.UnixMilli(1700000000001).UTC()}, Incarnation: 1<<40 | 3}},
		{TypeGroupPut, GroupPut{Group: domain.ConsumerGroup{Name: "g", MaxDeliveryAttempts: 17, Orderly: true, Description: "x",
			RetryPolicy: domain.RetryPolicy{Initial: time.Second, Max: time.Minute, Multiplier: 2, Delays: []time.Duration{time.Second, 5 * time.Second}},
			CreatedAt:   time.UnixMilli(1700000000000).UTC()}, Incarnation: 7}},
		{TypeGroupPut, GroupPut{Group: domain.ConsumerGroup{Name: "h"}}},
		{TypeConsumerReset, ConsumerReset{Group: "g", Topic: "t", Queues: []QueueReset{{QueueID: 0, Offset: 5}, {QueueID: 3, Offset: 1 << 40}}}},
		{TypeConsumerReset, ConsumerReset{Group: "g", Topic: "t"}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.typ.String(), func(t *testing.T) {
			p, err := Encode(nil, s.v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(s.typ, p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, s.v) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, s.v)
			}
		})
	}
}

func TestBatchLocations(t *testing.T) {
	b := Batch{Topic: "t", QueueOffset: 0, Messages: []Message{sampleMessage(), {Message: domain.Message{ID: "2", Body: []byte("b")}}}}
	p, locs := AppendBatch(nil, &b)
	_, dlocs, err := DecodeBatch(p)
	if err != nil || !reflect.DeepEqual(locs, dlocs) {
		t.Fatalf("locations %v vs %v (%v)", locs, dlocs, err)
	}
	for i, l := range locs {
		m, err := DecodeMessage(p[l.Pos:l.Pos+l.Size], "t")
		if err != nil || m.ID != b.Messages[i].ID || !bytes.Equal(m.Body, b.Messages[i].Body) {
			t.Fatalf("message %d at %v: %+v %v", i, l, m, err)
		}
	}
	d := DeadLetter{Group: "g", Topic: "t", Copy: Batch{Topic: "%DLQ%g", Messages: []Message{sampleMessage()}}}
	p, locs = AppendDeadLetter(nil, &d)
	m, err := DecodeMessage(p[locs[0].Pos:locs[0].Pos+locs[0].Size], "%DLQ%g")
	if err != nil || m.DeadLetter == nil || m.DeadLetter.Topic != "orig" {
		t.Fatalf("dead-letter copy: %+v %v", m, err)
	}
}

// TestDecodeBatchMeta: the same batch as DecodeBatch, without the fields
// indexing does not read (the id only of transactional messages), and the
// same verdict on damaged payloads.
func TestDecodeBatchMeta(t *testing.T) {
	full := sampleMessage()
	plain := sampleMessage()
	plain.Transactional = false
	b := Batch{Topic: "t", QueueID: 1, QueueOffset: 4, Messages: []Message{full, plain, {Message: domain.Message{ID: "2", Body: []byte("b")}}}}
	p, locs := AppendBatch(nil, &b)
	got, glocs, err := DecodeBatchMeta(p)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := DecodeBatch(p)
	for i := range want.Messages {
		m := &want.Messages[i]
		m.Body, m.Keys, m.Properties = nil, nil, nil
		m.Group, m.TraceContext, m.BornHost = "", "", ""
		if !m.Transactional {
			m.ID = ""
		}
	}
	if got.Messages[0].ID != full.ID || got.Messages[1].ID != "" || got.Messages[0].Tag != full.Tag {
		t.Fatalf("DecodeBatchMeta ids and tag: %q %q %q", got.Messages[0].ID, got.Messages[1].ID, got.Messages[0].Tag)
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(glocs, locs) {
		t.Fatalf("DecodeBatchMeta:\n got %#v %v\nwant %#v %v", got, glocs, want, locs)
	}
	var d MetaDecoder
	for round := range 2 { // the second decodes into the room the first left
		dgot, dlocs, err := d.Decode(p, nil)
		if err != nil || !reflect.DeepEqual(dgot, want) || !reflect.DeepEqual(dlocs, locs) {
			t.Fatalf("MetaDecoder round %d:\n got %#v %v %v\nwant %#v %v", round, dgot, dlocs, err, want, locs)
		}
	}
	for cut := range len(p) {
		_, _, errFull := DecodeBatch(p[:cut])
		_, _, errMeta := DecodeBatchMeta(p[:cut])
		if (errFull == nil) != (errMeta == nil) {
			t.Fatalf("payload cut at %d: DecodeBatch says %v, DecodeBatchMeta %v", cut, errFull, errMeta)
		}
	}
}

// TestMetaDecoderAllocs pins what decoding the record of a one-message
// send costs the engine: nothing once the decoder has room and the topic
// name is known, whatever the message's id, group, trace context and born
// host (a transactional message's id is the one string copied); a name the
// topic function does not know is copied.
func TestMetaDecoderAllocs(t *testing.T) {
	m := Message{Message: domain.Message{ID: "0100AABBCCDD", Group: "group", TraceContext: "00-abc-def", BornHost: "10.0.0.1:1234",
		Body: make([]byte, 1024), Keys: []string{"k"}, Properties: map[string]string{"p": "v"}}, StoredAt: time.UnixMilli(1700000000000)}
	b := Batch{Topic: "some-topic", QueueID: 3, QueueOffset: 7, Messages: []Message{m}}
	p, _ := AppendBatch(nil, &b)
	txn := b
	txn.QueueOffset, txn.Messages = -1, []Message{m}
	txn.Messages[0].Transactional = true
	pt, _ := AppendBatch(nil, &txn)
	known := func(name []byte) (string, bool) {
		if string(name) == b.Topic {
			return b.Topic, true
		}
		return "", false
	}
	unknown := func([]byte) (string, bool) { return "", false }
	var d MetaDecoder
	for _, c := range []struct {
		name  string
		p     []byte
		topic func([]byte) (string, bool)
		max   float64
	}{
		{"known topic", p, known, 0},
		{"transactional", pt, known, 1},
		{"unknown topic", p, unknown, 1},
		{"no topic function", p, nil, 1},
	} {
		var err error
		got := testing.AllocsPerRun(100, func() {
			var b Batch
			b, _, err = d.Decode(c.p, c.topic)
			if err == nil && b.Topic != "some-topic" {
				t.Fatalf("topic %q", b.Topic)
			}
		})
		if err != nil || got > c.max {
			t.Errorf("%s: %v allocations per decode (%v), want at most %v", c.name, got, err, c.max)
		}
	}
}

// TestAppendBatchLocs: the locations AppendBatch returns, appended after
// those in locs, without allocating when dst and locs have room (the
// engine encodes a one-message send so).
func TestAppendBatchLocs(t *testing.T) {
	b := Batch{Topic: "t", QueueOffset: 0, Messages: []Message{sampleMessage(), {Message: domain.Message{ID: "2", Body: []byte("b")}}}}
	p, want := AppendBatch([]byte("prefix"), &b)
	prior := Location{Pos: 1, Size: 2}
	q, got := AppendBatchLocs([]byte("prefix"), &b, []Location{prior})
	if !bytes.Equal(p, q) || !reflect.DeepEqual(got, append([]Location{prior}, want...)) {
		t.Fatalf("AppendBatchLocs: %v, want %v after %v", got, want, prior)
	}
	one := Batch{Topic: "t", QueueOffset: 0, Messages: []Message{{Message: domain.Message{ID: "0100AABBCCDD", Body: make([]byte, 1024)}}}}
	dst := make([]byte, 0, 4096)
	if allocs := testing.AllocsPerRun(100, func() {
		var room [1]Location
		_, locs := AppendBatchLocs(dst, &one, room[:0])
		if len(locs) != 1 {
			t.Fatal("not one location")
		}
	}); allocs != 0 {
		t.Errorf("encoding a one-message batch allocates %v times, want 0", allocs)
	}
}

// TestBatchLayout pins the batch layout (each message as a uvarint length
// and its AppendMessage encoding) for bodies whose encodings need 1, 2 and
// 3 length bytes, with a prefix already in dst and properties present.
func TestBatchLayout(t *testing.T) {
	var msgs []Message
	for _, n := range []int{0, 60, 100, 127, 128, 200, 16300, 16383, 16384, 20000} {
		m := sampleMessage()
		m.Body = bytes.Repeat([]byte{'x'}, n)
		msgs = append(msgs, m)
	}
	b := Batch{Topic: "topic", QueueID: 2, QueueOffset: 77, Messages: msgs}
	dst := []byte("prefix")
	p, locs := AppendBatch(dst, &b)
	want := writer{b: []byte("prefix")}
	want.str(b.Topic)
	want.varint(int64(b.QueueID))
	want.varint(b.QueueOffset)
	want.uvarint(uint64(len(msgs)))
	for i := range msgs {
		enc := AppendMessage(nil, &msgs[i])
		want.uvarint(uint64(len(enc)))
		if got := (Location{Pos: len(want.b) - len("prefix"), Size: len(enc)}); locs[i] != got {
			t.Errorf("message %d: location %+v, want %+v", i, locs[i], got)
		}
		want.b = append(want.b, enc...)
	}
	if !bytes.Equal(p, want.b) {
		t.Fatalf("AppendBatch wrote %d bytes that differ from the layout (%d bytes)", len(p), len(want.b))
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		p, _ := Encode(nil, s.v)
		f.Add(byte(s.typ), p)
	}
	f.Add(byte(1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, typ byte, p []byte) {
		v, err := Decode(Type(typ), p)
		if err != nil {
			return
		}
		re, err := Encode(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := Decode(Type(typ), re)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("re-encoding changed the record:\n%#v\n%#v", v, v2)
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	m := sampleMessage()
	f.Add(AppendMessage(nil, &m))
	m.PriorAttempts = 1 << 20
	f.Add(AppendMessage(nil, &m))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b, "t")
		if err != nil {
			return
		}
		m2, err := DecodeMessage(AppendMessage(nil, &m), "t")
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoding changed the message: %v", err)
		}
	})
}

// TestMessageLayoutWithoutPriorAttempts pins the encoding of messages
// written before dead-letter copies kept their prior attempts: they decode
// with a count of 0, and a message without a count is still written that
// way (so that older versions read it).
func TestMessageLayoutWithoutPriorAttempts(t *testing.T) {
	m := sampleMessage() // a dead-letter copy
	m.Compressed, m.Transactional = false, false
	old := writer{}
	old.byte1(flagDeadLetter)
	encodeTime(&old, m.StoredAt)
	old.str(m.ID)
	old.str(m.Tag)
	old.uvarint(2)
	old.str("k1")
	old.str("k2")
	old.str(m.Group)
	encodeTime(&old, m.DeliverAt)
	old.varint(int64(m.TransactionRecovery))
	old.str(m.TraceContext)
	old.str(m.BornHost)
	encodeTime(&old, m.BornAt)
	old.varint(int64(m.ReconsumeTimes))
	old.uvarint(2)
	old.str("a")
	old.str("1")
	old.str("b")
	old.str("")
	old.str(m.DeadLetter.Topic)
	old.str(m.DeadLetter.MessageID)
	old.bytes(m.Body)
	got, err := DecodeMessage(old.b, m.Topic)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("old layout decoded as\n%#v\nwant\n%#v", got, m)
	}
	if enc := AppendMessage(nil, &m); !bytes.Equal(enc, old.b) {
		t.Fatalf("a message without prior attempts is no longer written in the old layout:\n%x\n%x", enc, old.b)
	}
	m.PriorAttempts = 3
	enc := AppendMessage(nil, &m)
	if enc[0] != flagDeadLetter|flagPriorAttempts {
		t.Fatalf("flags %08b", enc[0])
	}
	if got, err := DecodeMessage(enc, m.Topic); err != nil || got.PriorAttempts != 3 {
		t.Fatalf("prior attempts %d (%v)", got.PriorAttempts, err)
	}
	// The flag with a count of 0 is not an encoding AppendMessage makes.
	bad := slices.Clone(enc)
	bad[len(old.b)-len(m.Body)-1] = 0 // the count, just before the body's length
	if _, err := DecodeMessage(bad, m.Topic); err == nil {
		t.Fatal("a zero prior-attempt count was accepted")
	}
}

// TestCopyHeadroomBoundsCopies: the records that carry a copy of a stored
// message (dead-letter move, timer firing, transaction commit) are at most
// CopyHeadroom bytes larger than the message's encoding, with the longest
// names and the widest varints.
func TestCopyHeadroomBoundsCopies(t *testing.T) {
	topic := strings.Repeat("t", domain.MaxTopicNameLength)
	group := strings.Repeat("g", domain.MaxGroupNameLength)
	orig := Message{Message: domain.Message{Topic: topic, ID: strings.Repeat("i", 40), Body: []byte("body")}}
	_, locs := AppendBatch(nil, &Batch{Topic: topic, Messages: []Message{orig}})
	stored := locs[0].Size
	cp := orig
	cp.StoredAt = time.Unix(0, math.MaxInt64)
	cp.TxnOrigin = math.MaxInt64
	cp.PriorAttempts = math.MaxInt32
	cp.DeadLetter = &domain.DeadLetterOrigin{Topic: topic, MessageID: orig.ID}
	dlq := domain.DeadLetterTopic(group)
	copyOf := func(topic string) Batch {
		return Batch{Topic: topic, QueueID: math.MinInt32, QueueOffset: math.MinInt64, Messages: []Message{cp}}
	}
	dead, _ := AppendDeadLetter(nil, &DeadLetter{Group: group, Topic: topic, QueueID: math.MinInt32, Offset: math.MinInt64, Receipt: math.MinInt64, Copy: copyOf(dlq)})
	b := copyOf(topic)
	resolve, _ := AppendResolve(nil, &Resolve{Kind: ResolveTxnCommit, Origin: math.MaxInt64, DeliverAt: math.MinInt64, Copy: &b})
	for name, p := range map[string][]byte{"dead letter": dead, "resolve": resolve} {
		if grown, room := len(p)-stored, CopyHeadroom(orig.ID); grown > room {
			t.Errorf("%s record is %d bytes larger than the message's encoding, CopyHeadroom allows %d", name, grown, room)
		}
	}
}

// TestDecodeAckView: the same ack as DecodeAck, decoded without
// allocating; its names alias the payload.
func TestDecodeAckView(t *testing.T) {
	a := Ack{Group: "g-orders", Topic: "orders", QueueID: 3, Offset: 1 << 40, Receipt: 77}
	p := AppendAck(nil, &a)
	got, err := DecodeAckView(p)
	if err != nil || got != a {
		t.Fatalf("DecodeAckView = %+v, %v; want %+v", got, err, a)
	}
	if want, err := DecodeAck(p); err != nil || got != want {
		t.Fatalf("DecodeAckView = %+v, DecodeAck = %+v, %v", got, want, err)
	}
	for n := range len(p) {
		_, err1 := DecodeAck(p[:n])
		_, err2 := DecodeAckView(p[:n])
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("truncated to %d: DecodeAck error %v, DecodeAckView error %v", n, err1, err2)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = DecodeAckView(p) }); allocs != 0 {
		t.Errorf("%.0f allocations per DecodeAckView, want 0", allocs)
	}
}
