package sendpb

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/adapters/grpc/internal/wire/wiretest"
)

// clientMessage builds a message as the official Go client v5.1.4 does
// (PublishingMessage.toProtobuf): topic with the client's namespace, keys,
// message id, born timestamp and host, body encoding IDENTITY, message
// type, user properties, body; optional tag, trace context, delivery
// timestamp, message group, lite topic and priority.
func clientMessage(i int, opts ...func(*v2.Message)) *v2.Message {
	m := &v2.Message{
		Topic: &v2.Resource{Name: "orders", ResourceNamespace: ""},
		SystemProperties: &v2.SystemProperties{
			MessageId:     "0100155D0A1B2C3D4E5F60718293A4B5C" + strconv.Itoa(i),
			BornTimestamp: timestamppb.New(time.Date(2026, 12, 6, 18, 0, 0, 123456789, time.UTC)),
			BornHost:      "client-host-7",
			BodyEncoding:  v2.Encoding_IDENTITY,
			MessageType:   v2.MessageType_NORMAL,
		},
		Body: bytes.Repeat([]byte{'x'}, 1024),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

func withTag(m *v2.Message)  { m.SystemProperties.Tag = proto.String("tag-a") }
func withKeys(m *v2.Message) { m.SystemProperties.Keys = []string{"order-1", "customer-9"} }
func withProps(m *v2.Message) {
	m.UserProperties = map[string]string{"region": "eu", "trace": "on", "": "empty key", "empty value": ""}
}
func withTrace(m *v2.Message) {
	m.SystemProperties.TraceContext = proto.String("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
}
func withDelay(m *v2.Message) {
	m.SystemProperties.MessageType = v2.MessageType_DELAY
	m.SystemProperties.DeliveryTimestamp = timestamppb.New(time.Date(2026, 12, 6, 19, 0, 0, 0, time.UTC))
}
func withGroup(m *v2.Message) {
	m.SystemProperties.MessageType = v2.MessageType_FIFO
	m.SystemProperties.MessageGroup = proto.String("group-1")
}
func withNamespace(m *v2.Message) { m.Topic.ResourceNamespace = "tenant-a" }
func withEmptyBody(m *v2.Message) { m.Body = nil }
func withTransaction(m *v2.Message) {
	m.SystemProperties.MessageType = v2.MessageType_TRANSACTION
}
func withLite(m *v2.Message) {
	m.SystemProperties.LiteTopic = proto.String("lite-1")
	m.SystemProperties.Priority = proto.Int32(3)
}

// javaStyle sets the queue id as the Java client 5.x does.
func javaStyle(m *v2.Message) { m.SystemProperties.QueueId = 3 }

func withEmptyTag(m *v2.Message) { m.SystemProperties.Tag = proto.String("") }
func withGzip(m *v2.Message)     { m.SystemProperties.BodyEncoding = v2.Encoding_GZIP }

// clientRequests are requests as the Go client sends them: one message
// with each combination the client produces, and batches.
func clientRequests() map[string]*v2.SendMessageRequest {
	one := func(opts ...func(*v2.Message)) *v2.SendMessageRequest {
		return &v2.SendMessageRequest{Messages: []*v2.Message{clientMessage(0, opts...)}}
	}
	all := []func(*v2.Message){withTag, withKeys, withProps, withTrace, withNamespace}
	return map[string]*v2.SendMessageRequest{
		"plain":         one(),
		"tag":           one(withTag),
		"keys":          one(withKeys),
		"properties":    one(withProps),
		"trace":         one(withTrace),
		"delay":         one(withDelay, withTag),
		"fifo":          one(withGroup, withKeys),
		"transaction":   one(withTransaction, withProps),
		"namespace":     one(withNamespace),
		"empty body":    one(withEmptyBody),
		"lite":          one(withLite),
		"empty tag":     one(withEmptyTag),
		"gzip":          one(withGzip),
		"java queue id": one(javaStyle, withTag, withKeys, withProps),
		"everything":    one(append(all, withDelay)...),
		"batch": {Messages: []*v2.Message{clientMessage(0, withTag, withKeys), clientMessage(1, withProps),
			clientMessage(2), clientMessage(3, withKeys, withEmptyBody)}},
		"batch of empties": {Messages: []*v2.Message{{}, {}, {Topic: &v2.Resource{}}}},
		"empty":            {},
	}
}

// rawSeeds are encodings the Go client never produces, each exercising a
// rule of the decoder: most must fall back to proto.Unmarshal.
func rawSeeds() map[string][]byte {
	tag, bytesField, varintField := wiretest.Tag, wiretest.BytesField, wiretest.VarintField
	request := func(msgs ...[]byte) []byte {
		var b []byte
		for _, m := range msgs {
			b = bytesField(b, 1, m)
		}
		return b
	}
	topic := bytesField(nil, 2, []byte("orders"))
	ts := varintField(varintField(nil, 1, 1764763200), 2, 5)
	sys := bytesField(bytesField(nil, 3, []byte("id-1")), 7, ts)
	msg := func(extra ...[]byte) []byte {
		b := bytesField(bytesField(nil, 1, topic), 3, sys)
		for _, e := range extra {
			b = append(b, e...)
		}
		return b
	}
	entry := func(k, v string) []byte { return bytesField(bytesField(nil, 1, []byte(k)), 2, []byte(v)) }
	nonMinimal := []byte{0x8a, 0x80, 0x80, 0x00} // tag 1, bytes, in four bytes
	seeds := map[string][]byte{
		"minimal":                  request(msg()),
		"unknown request field":    varintField(request(msg()), 2, 7),
		"unknown message field":    request(msg(varintField(nil, 9, 1))),
		"unknown resource field":   request(bytesField(nil, 1, bytesField(topic, 3, []byte("x")))),
		"unknown system field":     request(bytesField(nil, 3, varintField(sys, 99, 1))),
		"unknown timestamp field":  request(bytesField(nil, 3, bytesField(nil, 7, varintField(ts, 3, 1)))),
		"unknown map entry field":  request(msg(bytesField(nil, 2, varintField(entry("k", "v"), 3, 1)))),
		"topic twice":              request(msg(bytesField(nil, 1, bytesField(nil, 1, []byte("ns"))))),
		"system twice":             request(msg(bytesField(nil, 3, bytesField(nil, 1, []byte("tag"))))),
		"body twice":               request(msg(bytesField(nil, 4, []byte("a")), bytesField(nil, 4, []byte("b")))),
		"name twice":               request(bytesField(nil, 1, bytesField(topic, 2, []byte("other")))),
		"message id twice":         request(bytesField(nil, 3, bytesField(sys, 3, []byte("id-2")))),
		"born time twice":          request(bytesField(nil, 3, bytesField(sys, 7, varintField(nil, 2, 9)))),
		"seconds twice":            request(bytesField(nil, 3, bytesField(nil, 7, varintField(ts, 1, 3)))),
		"message type twice":       request(bytesField(nil, 3, varintField(varintField(sys, 6, 1), 6, 2))),
		"tag twice":                request(bytesField(nil, 3, bytesField(bytesField(sys, 1, []byte("a")), 1, []byte("b")))),
		"map key twice":            request(msg(bytesField(nil, 2, bytesField(entry("k", "v"), 1, []byte("k2"))))),
		"same map key twice":       request(msg(bytesField(nil, 2, entry("k", "v1")), bytesField(nil, 2, entry("k", "v2")))),
		"map value only":           request(msg(bytesField(nil, 2, bytesField(nil, 2, []byte("v"))))),
		"map key only":             request(msg(bytesField(nil, 2, bytesField(nil, 1, []byte("k"))))),
		"empty map entry":          request(msg(bytesField(nil, 2, nil))),
		"keys interleaved":         request(bytesField(nil, 3, bytesField(bytesField(bytesField(sys, 2, []byte("k1")), 8, []byte("host")), 2, []byte("k2")))),
		"packed message type":      request(bytesField(nil, 3, bytesField(sys, 6, []byte{1, 2}))),
		"packed body encoding":     request(bytesField(nil, 3, bytesField(sys, 5, []byte{1}))),
		"varint body":              request(msg(varintField(nil, 4, 1))),
		"varint topic":             request(varintField(nil, 1, 1)),
		"fixed64 seconds":          request(bytesField(nil, 3, bytesField(nil, 7, protowire.AppendFixed64(tag(nil, 1, protowire.Fixed64Type), 5)))),
		"bytes seconds":            request(bytesField(nil, 3, bytesField(nil, 7, bytesField(nil, 1, []byte{5})))),
		"varint keys":              request(bytesField(nil, 3, varintField(sys, 2, 1))),
		"negative enum":            request(bytesField(nil, 3, varintField(sys, 6, ^uint64(0)))),
		"large enum":               request(bytesField(nil, 3, varintField(sys, 5, 1<<40+3))),
		"large priority":           request(bytesField(nil, 3, varintField(sys, 22, 1<<33+5))),
		"negative nanos":           request(bytesField(nil, 3, bytesField(nil, 11, varintField(nil, 2, ^uint64(0))))),
		"invalid utf8 name":        request(bytesField(nil, 1, bytesField(nil, 2, []byte{0xff, 'a'}))),
		"invalid utf8 key":         request(bytesField(nil, 3, bytesField(sys, 2, []byte{0xc3}))),
		"invalid utf8 map key":     request(msg(bytesField(nil, 2, entry("\xfe", "v")))),
		"invalid utf8 map value":   request(msg(bytesField(nil, 2, entry("k", "\xed\xa0\x80")))),
		"invalid utf8 tag":         request(bytesField(nil, 3, bytesField(sys, 1, []byte{0x80}))),
		"invalid utf8 body":        request(msg(bytesField(nil, 4, []byte{0xff, 0xfe}))),
		"utf8 strings":             request(bytesField(nil, 1, bytesField(bytesField(nil, 1, []byte("命名空间")), 2, []byte("主题")))),
		"non-minimal tag":          append(append([]byte{}, nonMinimal...), protowire.AppendBytes(nil, msg())...),
		"non-minimal length":       append([]byte{0x0a, 0x80 | byte(len(msg())&0x7f), 0x80 | byte(len(msg())>>7), 0x00}, msg()...),
		"field number zero":        varintField(nil, 0, 1),
		"start group":              append(request(msg()), tag(nil, 5, protowire.StartGroupType)...),
		"group in message":         request(append(msg(), protowire.AppendVarint(tag(tag(nil, 6, protowire.StartGroupType), 1, protowire.VarintType), 1)...)),
		"end group":                tag(nil, 1, protowire.EndGroupType),
		"truncated tag":            []byte{0x8a},
		"truncated length":         []byte{0x0a, 0x85},
		"length past end":          []byte{0x0a, 0x05, 0x0a},
		"overlong varint":          append([]byte{0x0a}, bytes.Repeat([]byte{0xff}, 11)...),
		"store timestamp":          request(bytesField(nil, 3, bytesField(sys, 9, ts))),
		"body digest":              request(bytesField(nil, 3, bytesField(sys, 4, varintField(nil, 1, 1)))),
		"queue id":                 request(bytesField(nil, 3, varintField(sys, 13, 4))),
		"queue id twice":           request(bytesField(nil, 3, varintField(varintField(sys, 13, 4), 13, 5))),
		"negative queue id":        request(bytesField(nil, 3, varintField(sys, 13, ^uint64(0)))),
		"empty submessages":        request(bytesField(bytesField(bytesField(nil, 1, nil), 3, bytesField(bytesField(nil, 7, nil), 11, nil)), 4, nil)),
		"empty message":            request(nil),
		"huge field number":        varintField(nil, protowire.MaxValidNumber, 1),
		"messages as varint field": varintField(nil, 1, 0),
	}
	seeds["most messages decoded here"] = bytes.Repeat([]byte{0x0a, 0x00}, maxMessages)
	seeds["too many messages"] = bytes.Repeat([]byte{0x0a, 0x00}, maxMessages+1)
	return seeds
}

// harness tests Unmarshal against proto.Unmarshal.
var harness = wiretest.Decoder[*v2.SendMessageRequest]{
	Unmarshal: Unmarshal,
	Accepted: func(b []byte) bool {
		var d decoder
		return d.request(b)
	},
	Stale: func() *v2.SendMessageRequest {
		return &v2.SendMessageRequest{Messages: []*v2.Message{{Body: []byte("stale")}}}
	},
}

func TestUnmarshalClientRequests(t *testing.T) { harness.ClientRequests(t, clientRequests()) }

func TestUnmarshalOddEncodings(t *testing.T) {
	// Inputs the fast path must decode itself (all others fall back).
	fast := map[string]bool{"minimal": true, "same map key twice": true, "map value only": true, "map key only": true,
		"empty map entry": true, "keys interleaved": true, "negative enum": true, "large enum": true, "large priority": true,
		"negative nanos": true, "invalid utf8 body": true, "utf8 strings": true, "non-minimal tag": true,
		"non-minimal length": true, "empty submessages": true, "empty message": true, "most messages decoded here": true,
		"queue id": true, "negative queue id": true}
	harness.OddEncodings(t, rawSeeds(), fast)
}

// TestStringsShareOneBuffer checks the allocation layout the package
// promises: strings in one buffer apart from the body, messages in one
// arena slice, nothing aliasing the input.
func TestStringsShareOneBuffer(t *testing.T) {
	b := wiretest.Marshal(t, clientRequests()["batch"])
	got := new(v2.SendMessageRequest)
	if err := Unmarshal(b, got); err != nil {
		t.Fatal(err)
	}
	first := got.Messages[0]
	topic, id := first.GetTopic().GetName(), first.GetSystemProperties().GetMessageId()
	last := got.Messages[len(got.Messages)-1].GetSystemProperties().GetKeys()[1]
	// The strings were copied in the order of the input, one after another.
	lo, hi := wiretest.StringAddr(topic), wiretest.StringAddr(last)+uintptr(len(last))
	if wiretest.StringAddr(id) <= lo || wiretest.StringAddr(id) >= hi {
		t.Errorf("message id outside the string buffer [%#x, %#x)", lo, hi)
	}
	body := wiretest.BytesAddr(first.Body)
	if body >= lo && body < hi {
		t.Error("the body shares the strings' buffer")
	}
	in, inEnd := wiretest.BytesAddr(b), wiretest.BytesAddr(b)+uintptr(len(b))
	for _, p := range []uintptr{lo, body} {
		if p >= in && p < inEnd {
			t.Error("the result aliases the input")
		}
	}
	if got.Messages[1].Topic == first.Topic || got.Messages[1].SystemProperties == first.SystemProperties {
		t.Error("two messages share a submessage")
	}
}

// typicalRequest is a Go client's send of one 1 KiB message without
// keys, tag or properties, as BenchmarkSendServerCost sends it.
func typicalRequest(tb testing.TB) []byte { return wiretest.Marshal(tb, clientRequests()["plain"]) }

func TestUnmarshalAllocations(t *testing.T) {
	harness.Allocations(t, []wiretest.AllocCase{
		// The arena slice, the string buffer, the body.
		{Name: "plain", Input: typicalRequest(t), Max: 3},
		// And the keys' slice and the properties' map (a map of up to 8
		// entries is the map and one group).
		{Name: "tag, keys, properties", Input: wiretest.Marshal(t, clientRequests()["everything"]), Max: 6},
	})
}

// BenchmarkDecodeSendMessage decodes a Go client's single-message send
// (1 KiB body) with proto.Unmarshal and with Unmarshal.
func BenchmarkDecodeSendMessage(b *testing.B) {
	in := typicalRequest(b)
	for _, c := range []struct {
		name   string
		decode func([]byte, *v2.SendMessageRequest) error
	}{
		{"proto.Unmarshal", func(b []byte, m *v2.SendMessageRequest) error { return proto.Unmarshal(b, m) }},
		{"sendpb.Unmarshal", Unmarshal},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.decode(in, new(v2.SendMessageRequest)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func FuzzUnmarshal(f *testing.F) { harness.Fuzz(f, clientRequests(), rawSeeds()) }
