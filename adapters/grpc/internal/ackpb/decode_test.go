package ackpb

import (
	"bytes"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/adapters/grpc/internal/wire/wiretest"
)

// clientEntry is an entry as the official Go client v5.1.4 builds it
// (wrapAckMessageRequest of the simple and push consumers): message id and
// receipt handle, the lite topic for a lite push consumer only.
func clientEntry(i byte) *v2.AckMessageEntry {
	return &v2.AckMessageEntry{
		MessageId:     "0100155D0A1B2C3D4E5F60718293A4B5C" + string('0'+i),
		ReceiptHandle: "AAAAAAAAAGQAAAGTbOi9eQAAAAAAAHUwAQAAAAAIcm1xcHJveHkAAAADAAAAAAAAAAoAAAAAAAAoAA" + string('a'+i),
	}
}

// clientRequests are requests as the Go client sends them, and batches of
// entries as other clients may send.
func clientRequests() map[string]*v2.AckMessageRequest {
	group := &v2.Resource{Name: "g-orders"}
	topic := &v2.Resource{Name: "orders"}
	lite := clientEntry(0)
	lite.LiteTopic = proto.String("lite-1")
	emptyLite := clientEntry(0)
	emptyLite.LiteTopic = proto.String("")
	return map[string]*v2.AckMessageRequest{
		"one":            {Group: group, Topic: topic, Entries: []*v2.AckMessageEntry{clientEntry(0)}},
		"namespace":      {Group: &v2.Resource{Name: "g", ResourceNamespace: "tenant-a"}, Topic: &v2.Resource{Name: "t", ResourceNamespace: "tenant-a"}, Entries: []*v2.AckMessageEntry{clientEntry(1)}},
		"lite":           {Group: group, Topic: topic, Entries: []*v2.AckMessageEntry{lite}},
		"empty lite":     {Group: group, Topic: topic, Entries: []*v2.AckMessageEntry{emptyLite}},
		"batch":          {Group: group, Topic: topic, Entries: []*v2.AckMessageEntry{clientEntry(0), lite, clientEntry(2), {}}},
		"no entries":     {Group: group, Topic: topic},
		"empty entry":    {Group: group, Topic: topic, Entries: []*v2.AckMessageEntry{{}}},
		"empty resource": {Group: &v2.Resource{}, Topic: &v2.Resource{}, Entries: []*v2.AckMessageEntry{clientEntry(3)}},
		"empty":          {},
	}
}

// rawSeeds are encodings the Go client never produces, each exercising a
// rule of the decoder: most must fall back to proto.Unmarshal.
func rawSeeds() map[string][]byte {
	tag, bytesField, varintField := wiretest.Tag, wiretest.BytesField, wiretest.VarintField
	group := bytesField(nil, 2, []byte("g"))
	topic := bytesField(nil, 2, []byte("t"))
	entry := bytesField(bytesField(nil, 1, []byte("id-1")), 2, []byte("handle-1"))
	req := func(extra ...[]byte) []byte {
		b := bytesField(bytesField(bytesField(nil, 1, group), 2, topic), 3, entry)
		for _, e := range extra {
			b = append(b, e...)
		}
		return b
	}
	nonMinimal := []byte{0x8a, 0x80, 0x80, 0x00} // tag 1, bytes, in four bytes
	seeds := map[string][]byte{
		"minimal":                 req(),
		"entries first":           bytesField(bytesField(bytesField(nil, 3, entry), 1, group), 2, topic),
		"entries around":          bytesField(bytesField(bytesField(bytesField(nil, 3, entry), 1, group), 3, entry), 2, topic),
		"unknown request field":   req(varintField(nil, 4, 7)),
		"unknown entry field":     req(bytesField(nil, 3, varintField(entry, 9, 1))),
		"unknown resource field":  req(bytesField(nil, 2, bytesField(topic, 3, []byte("x")))),
		"group twice":             req(bytesField(nil, 1, group)),
		"topic twice":             req(bytesField(nil, 2, topic)),
		"name twice":              bytesField(nil, 1, bytesField(group, 2, []byte("h"))),
		"namespace twice":         bytesField(nil, 1, bytesField(bytesField(nil, 1, []byte("a")), 1, []byte("b"))),
		"message id twice":        bytesField(nil, 3, bytesField(entry, 1, []byte("id-2"))),
		"receipt handle twice":    bytesField(nil, 3, bytesField(entry, 2, []byte("handle-2"))),
		"lite topic twice":        bytesField(nil, 3, bytesField(bytesField(entry, 3, []byte("a")), 3, []byte("b"))),
		"lite topic":              bytesField(nil, 3, bytesField(entry, 3, []byte("lite"))),
		"varint group":            varintField(nil, 1, 1),
		"varint entries":          varintField(nil, 3, 1),
		"varint message id":       bytesField(nil, 3, varintField(nil, 1, 1)),
		"fixed32 name":            bytesField(nil, 1, protowire.AppendFixed32(tag(nil, 2, protowire.Fixed32Type), 5)),
		"invalid utf8 name":       bytesField(nil, 1, bytesField(nil, 2, []byte{0xff, 'a'})),
		"invalid utf8 namespace":  bytesField(nil, 2, bytesField(nil, 1, []byte{0xc3})),
		"invalid utf8 message id": bytesField(nil, 3, bytesField(nil, 1, []byte{0x80})),
		"invalid utf8 handle":     bytesField(nil, 3, bytesField(nil, 2, []byte("\xed\xa0\x80"))),
		"invalid utf8 lite topic": bytesField(nil, 3, bytesField(nil, 3, []byte{0xfe})),
		"utf8 strings":            bytesField(nil, 1, bytesField(bytesField(nil, 1, []byte("命名空间")), 2, []byte("组"))),
		"non-minimal tag":         append(append([]byte{}, nonMinimal...), protowire.AppendBytes(nil, group)...),
		"non-minimal length":      append([]byte{0x1a, 0x80 | byte(len(entry)&0x7f), 0x80 | byte(len(entry)>>7), 0x00}, entry...),
		"field number zero":       varintField(nil, 0, 1),
		"start group":             append(req(), tag(nil, 5, protowire.StartGroupType)...),
		"group in entry":          bytesField(nil, 3, append(append([]byte{}, entry...), protowire.AppendVarint(tag(tag(nil, 6, protowire.StartGroupType), 1, protowire.VarintType), 1)...)),
		"end group":               tag(nil, 1, protowire.EndGroupType),
		"truncated tag":           []byte{0x8a},
		"truncated length":        []byte{0x1a, 0x85},
		"length past end":         []byte{0x1a, 0x05, 0x0a},
		"overlong varint":         append([]byte{0x1a}, bytes.Repeat([]byte{0xff}, 11)...),
		"empty submessages":       bytesField(bytesField(bytesField(nil, 1, nil), 2, nil), 3, nil),
		"huge field number":       varintField(nil, protowire.MaxValidNumber, 1),
	}
	seeds["most entries decoded here"] = bytes.Repeat([]byte{0x1a, 0x00}, maxEntries)
	seeds["too many entries"] = bytes.Repeat([]byte{0x1a, 0x00}, maxEntries+1)
	return seeds
}

// harness tests Unmarshal against proto.Unmarshal.
var harness = wiretest.Decoder[*v2.AckMessageRequest]{
	Unmarshal: Unmarshal,
	Accepted: func(b []byte) bool {
		var d decoder
		return d.request(b, nil)
	},
	Stale: func() *v2.AckMessageRequest {
		return &v2.AckMessageRequest{Group: &v2.Resource{Name: "stale"}, Entries: []*v2.AckMessageEntry{{MessageId: "stale"}}}
	},
}

func TestUnmarshalClientRequests(t *testing.T) { harness.ClientRequests(t, clientRequests()) }

func TestUnmarshalOddEncodings(t *testing.T) {
	// Inputs the fast path must decode itself (all others fall back).
	fast := map[string]bool{"minimal": true, "entries first": true, "entries around": true, "lite topic": true,
		"utf8 strings": true, "non-minimal tag": true, "non-minimal length": true, "empty submessages": true,
		"most entries decoded here": true}
	harness.OddEncodings(t, rawSeeds(), fast)
}

// TestStringsShareOneBuffer checks the allocation layout the package
// promises: the strings in one buffer, the entries in arenas, nothing
// aliasing the input.
func TestStringsShareOneBuffer(t *testing.T) {
	for _, name := range []string{"one", "batch"} {
		req := clientRequests()[name]
		b := wiretest.Marshal(t, req)
		got := new(v2.AckMessageRequest)
		if err := Unmarshal(b, got); err != nil {
			t.Fatal(err)
		}
		first := got.GetGroup().GetName()
		lastEntry := got.Entries[len(got.Entries)-1]
		if lastEntry.GetReceiptHandle() == "" {
			lastEntry = got.Entries[len(got.Entries)-2]
		}
		last := lastEntry.GetReceiptHandle()
		// The strings were copied in the order of the input, one after another.
		lo, hi := wiretest.StringAddr(first), wiretest.StringAddr(last)+uintptr(len(last))
		if id := wiretest.StringAddr(got.Entries[0].GetMessageId()); id <= lo || id >= hi {
			t.Errorf("%s: message id outside the string buffer [%#x, %#x)", name, lo, hi)
		}
		if in := wiretest.BytesAddr(b); lo >= in && lo < in+uintptr(len(b)) {
			t.Errorf("%s: the result aliases the input", name)
		}
		if len(got.Entries) > 1 && got.Entries[0] == got.Entries[1] {
			t.Errorf("%s: two entries are one", name)
		}
	}
}

func TestUnmarshalAllocations(t *testing.T) {
	harness.Allocations(t, []wiretest.AllocCase{
		{Name: "one", Input: wiretest.Marshal(t, clientRequests()["one"]), Max: 2},     // the arena, the string buffer
		{Name: "batch", Input: wiretest.Marshal(t, clientRequests()["batch"]), Max: 4}, // and the entries' arenas and pointers
	})
}

func FuzzUnmarshal(f *testing.F) { harness.Fuzz(f, clientRequests(), rawSeeds()) }
