package remoting_test

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// §11.5: one batch record with body "hi".
const golden115 = `00 00 00 56 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 02 68 69 00 3e 54 41 47 53 01 54 61 67
41 02 55 4e 49 51 5f 4b 45 59 01 41 43 31 31 30
30 30 31 30 30 30 31 31 38 42 34 41 41 43 32 30
30 30 30 30 30 30 30 30 30 30 30 02 57 41 49 54
01 74 72 75 65 02`

func TestGoldenBatchRecord(t *testing.T) {
	want := unhex(t, golden115)
	msg := remoting.BatchMessage{Body: []byte("hi"), Properties: remoting.Properties{
		{"TAGS", "TagA"}, {"UNIQ_KEY", "AC110001000118B4AAC2000000000000"}, {"WAIT", "true"}}}
	got, err := remoting.EncodeBatch([]remoting.BatchMessage{msg})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode: %v\n got %x\nwant %x", err, got, want)
	}
	dec, err := remoting.DecodeBatch(want)
	if err != nil || len(dec) != 1 || !reflect.DeepEqual(dec[0], msg) {
		t.Fatalf("decode: %v %+v", err, dec)
	}
	two := append(append([]byte{}, want...), want...)
	if dec, err := remoting.DecodeBatch(two); err != nil || len(dec) != 2 {
		t.Fatalf("two records: %v %d", err, len(dec))
	}
	for _, bad := range [][]byte{want[:len(want)-1], append(append([]byte{}, want...), 0), {0, 0, 0, 5}} {
		if _, err := remoting.DecodeBatch(bad); err == nil {
			t.Fatalf("accepted %x", bad)
		}
	}
}

func TestGoldenMessageIDs(t *testing.T) {
	store := netip.MustParseAddrPort("192.168.0.10:10911")
	id := remoting.OffsetMsgID(store, 0x1234)
	if id != "C0A8000A00002A9F0000000000001234" {
		t.Fatalf("offset msgId %s", id)
	}
	a, off, err := remoting.ParseOffsetMsgID(strings.ToLower(id))
	if err != nil || a != store || off != 0x1234 {
		t.Fatalf("parse: %v %v %v", a, off, err)
	}
	v6 := netip.MustParseAddrPort("[2001:db8::1]:10911")
	id6 := remoting.OffsetMsgID(v6, 7)
	if len(id6) != 56 {
		t.Fatalf("IPv6 id %s", id6)
	}
	if a, off, err := remoting.ParseOffsetMsgID(id6); err != nil || a != v6 || off != 7 {
		t.Fatalf("parse v6: %v %v %v", a, off, err)
	}
	u, err := remoting.ParseUniqID("AC110001000118B4AAC2000000000000")
	want := remoting.UniqID{IP: netip.MustParseAddr("172.17.0.1"), PID: 1, ClassLoaderHash: 0x18B4AAC2}
	if err != nil || u != want || u.String() != "AC110001000118B4AAC2000000000000" {
		t.Fatalf("uniq id: %+v %v", u, err)
	}
	for _, bad := range []string{"", "C0A8", "ZZA8000A00002A9F0000000000001234", "C0A8000A80002A9F0000000000001234"} {
		if _, _, err := remoting.ParseOffsetMsgID(bad); err == nil {
			t.Fatalf("accepted offset id %q", bad)
		}
	}
}

func sampleMessage() remoting.Message {
	return remoting.Message{
		MagicCode: remoting.MagicV1, BodyCRC: 12, QueueID: 3, Flag: 7, QueueOffset: 42, CommitLogOffset: 0x1234,
		SysFlag: remoting.TransactionPrepared, BornTimestamp: 1700000000000,
		BornHost: netip.MustParseAddrPort("10.0.0.5:50000"), StoreTimestamp: 1700000000001,
		StoreHost: netip.MustParseAddrPort("192.168.0.10:10911"), ReconsumeTimes: 2, PreparedTransactionOffset: 9,
		Body: []byte("hello"), Topic: "TopicTest",
		Properties: remoting.Properties{{"UNIQ_KEY", "AC110001000118B4AAC2000000000000"}, {"TAGS", "TagA"}},
	}
}

func TestStoredMessageRoundTrip(t *testing.T) {
	v4 := sampleMessage()
	v6 := sampleMessage()
	v6.BornHost = netip.MustParseAddrPort("[::ffff:10.0.0.5]:1")
	v6.StoreHost = netip.MustParseAddrPort("[2001:db8::2]:10911")
	v6.SysFlag |= remoting.SysFlagBornHostV6 | remoting.SysFlagStoreHostV6
	long := sampleMessage()
	long.Topic = strings.Repeat("t", 200)
	long.MagicCode = remoting.MagicV2
	empty := remoting.Message{MagicCode: remoting.MagicV1, BornHost: netip.MustParseAddrPort("0.0.0.0:0"), StoreHost: netip.MustParseAddrPort("0.0.0.0:0")}
	var body []byte
	want := []remoting.Message{v4, v6, long, empty}
	for i := range want {
		var err error
		if body, err = remoting.AppendMessage(body, &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := remoting.DecodeMessages(body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got[0].OffsetMsgID() != "C0A8000A00002A9F0000000000001234" || got[0].MsgID() != "AC110001000118B4AAC2000000000000" {
		t.Fatalf("ids %s %s", got[0].OffsetMsgID(), got[0].MsgID())
	}
	if got[1].SysFlag&remoting.SysFlagStoreHostV6 == 0 || len(got[1].OffsetMsgID()) != 56 {
		t.Fatal("IPv6 store host")
	}
	if remoting.TransactionValue(got[0].SysFlag) != remoting.TransactionPrepared {
		t.Fatal("transaction bits")
	}
	// A corrupt second record: the first is still returned.
	first, _ := remoting.AppendMessage(nil, &want[0])
	bad2 := append(append([]byte{}, first...), 0, 0, 0, 1)
	msgs, err := remoting.DecodeMessages(bad2)
	var de *remoting.DecodeError
	if len(msgs) != 1 || !errors.As(err, &de) {
		t.Fatalf("partial: %d %v", len(msgs), err)
	}
	if _, err := remoting.DecodeMessage(first[:len(first)-1]); err == nil {
		t.Fatal("truncated record accepted")
	}
	m := sampleMessage()
	m.Body = []byte("x")
	m.BodyCRC = 0x0cdc1683 // crc32("x") = 0x8cdc1683, top bit cleared as brokers store it
	if !m.CRCValid() || remoting.BodyCRC([]byte("body-2")) != 1745213322 {
		t.Fatal("crc")
	}
}

func TestCompression(t *testing.T) {
	body := bytes.Repeat([]byte("rocketmq "), 200)
	for _, ct := range []remoting.CompressionType{remoting.CompressionZlib, remoting.CompressionLZ4, remoting.CompressionZstd} {
		t.Run(ct.String(), func(t *testing.T) {
			c, flag, err := remoting.Compress(body, ct, 5)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := remoting.MessageCompression(flag | remoting.TransactionPrepared); !ok || got != ct {
				t.Fatalf("flag %x: %v", flag, got)
			}
			out, err := remoting.Decompress(c, flag, len(body))
			if err != nil || !bytes.Equal(out, body) {
				t.Fatalf("decompress: %v", err)
			}
			if _, err := remoting.Decompress(c, flag, len(body)-1); err == nil {
				t.Fatal("size limit not enforced")
			}
			if _, err := remoting.Decompress(c[:len(c)/2], flag, len(body)); err == nil {
				t.Fatal("truncated stream accepted")
			}
		})
	}
	// Pre-5.0 producers: COMPRESSED without type bits means zlib.
	c, _, _ := remoting.Compress(body, remoting.CompressionZlib, 5)
	if out, err := remoting.Decompress(c, remoting.SysFlagCompressed, 1<<20); err != nil || !bytes.Equal(out, body) {
		t.Fatalf("legacy zlib: %v", err)
	}
	if out, _ := remoting.Decompress(body, 0, 1); !bytes.Equal(out, body) {
		t.Fatal("uncompressed body changed")
	}
}

func TestProperties(t *testing.T) {
	tests := []struct {
		in   string
		want remoting.Properties
	}{
		{"", nil},
		{"a\x011\x02b\x012\x02", remoting.Properties{{"a", "1"}, {"b", "2"}}},
		{"a\x011\x02b\x012", remoting.Properties{{"a", "1"}, {"b", "2"}}}, // no trailing separator
		{"\x02\x02a\x01\x02\x01v\x02ab\x02k\x01v\x01w\x02", remoting.Properties{{"k", "v\x01w"}}},
		{"a\x011\x02a\x012\x02", remoting.Properties{{"a", "1"}, {"a", "2"}}},
	}
	for _, tt := range tests {
		got := remoting.ParseProperties(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Fatalf("%q: got %q want %q", tt.in, got, tt.want)
		}
		// Room for one property per segment, with or without the
		// trailing separator (it was one more with it).
		if segs := strings.Count(strings.TrimSuffix(tt.in, "\x02"), "\x02") + 1; tt.in != "" && cap(got) > segs {
			t.Errorf("%q: room for %d properties, want at most %d", tt.in, cap(got), segs)
		}
	}
	p := remoting.ParseProperties("a\x011\x02a\x012\x02")
	if p.Value("a") != "2" {
		t.Fatal("last duplicate wins")
	}
	s, err := remoting.FormatProperties(remoting.Properties{{"TAGS", "A"}, {"KEYS", "k1 k2"}})
	if err != nil || s != "TAGS\x01A\x02KEYS\x01k1 k2\x02" {
		t.Fatalf("%q %v", s, err)
	}
	for _, bad := range []remoting.Properties{{{"", "v"}}, {{"k", ""}}, {{"k\x01", "v"}}, {{"k", "v\x02"}}} {
		if _, err := remoting.FormatProperties(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
	if got := remoting.FormatAttributes(map[string]string{"message.type": "FIFO"}, "x"); got != "+message.type=FIFO,-x" {
		t.Fatal(got)
	}
}

// bytesPerRun is testing.AllocsPerRun for the bytes f allocates.
func bytesPerRun(runs int, f func()) int {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return int((after.TotalAlloc - before.TotalAlloc) / uint64(runs))
}

// TestDecodeMessagesSharesPropertyText: the messages of one answer get
// their own properties (one with none gets nil), from one copy of their
// text and one slice of fields, each capped so that a Set on one copies it
// rather than overwrite the next; decoding 32 messages takes three
// allocations (the messages, the text, the fields). A malformed record
// still returns the messages before it with their properties.
func TestDecodeMessagesSharesPropertyText(t *testing.T) {
	var body []byte
	for i := range 32 {
		m := remoting.Message{MagicCode: remoting.MagicV1, QueueID: 1, QueueOffset: int64(i), Body: []byte("b"), Topic: "T",
			BornHost: netip.MustParseAddrPort("10.0.0.5:50000"), StoreHost: netip.MustParseAddrPort("10.0.0.6:10911")}
		if i != 5 {
			m.Properties = remoting.Properties{{Key: "UNIQ_KEY", Value: "ID" + string(rune('A'+i))}, {Key: "TAGS", Value: "t"}}
		}
		var err error
		if body, err = remoting.AppendMessage(body, &m); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := remoting.DecodeMessages(body)
	if err != nil || len(msgs) != 32 {
		t.Fatal(len(msgs), err)
	}
	for i := range msgs {
		p := msgs[i].Properties
		if i == 5 {
			if p != nil {
				t.Fatalf("message 5 has properties %v", p)
			}
			continue
		}
		if len(p) != 2 || cap(p) != 2 || p.Value("UNIQ_KEY") != "ID"+string(rune('A'+i)) || p.Value("TAGS") != "t" {
			t.Fatalf("message %d: properties %v (cap %d)", i, p, cap(p))
		}
	}
	msgs[0].Properties.Set("POP_CK", "x")
	if msgs[1].Properties.Value("UNIQ_KEY") != "IDB" || msgs[0].Properties.Value("POP_CK") != "x" {
		t.Fatalf("a Set on message 0 reached message 1: %v / %v", msgs[0].Properties, msgs[1].Properties)
	}
	if n := testing.AllocsPerRun(20, func() { _, _ = remoting.DecodeMessages(body) }); n > 3 {
		t.Errorf("decoding 32 messages: %v allocations, want at most 3", n)
	}
	// Room for 32 messages, their text and 62 properties (RocketMQ ends
	// each with \x02), each rounded up to its size class (at most an
	// eighth above these sizes) and an 8-byte malloc header: counted one
	// over per message (93 properties), and one message over, it was more.
	textLen := 0
	for i := range msgs {
		for _, f := range msgs[i].Properties {
			textLen += len(f.Key) + len(f.Value) + 2
		}
	}
	exact := 32*int(unsafe.Sizeof(remoting.Message{})) + textLen + 62*int(unsafe.Sizeof(remoting.Field{}))
	if got := bytesPerRun(20, func() { _, _ = remoting.DecodeMessages(body) }); got > exact*9/8+3*8 {
		t.Errorf("decoding 32 messages: %d bytes, want at most %d (%d exactly, size classes on top)", got, exact*9/8+3*8, exact)
	}
	bad := append(bytes.Clone(body[:len(body)/2]), 0, 0, 0, 99)
	msgs, err = remoting.DecodeMessages(bad)
	if err == nil || len(msgs) == 0 || msgs[0].Properties.Value("UNIQ_KEY") != "IDA" {
		t.Fatalf("malformed: %d messages, %v, %v", len(msgs), err, msgs)
	}
}
