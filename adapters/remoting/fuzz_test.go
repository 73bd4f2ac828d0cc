package remoting_test

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// go test ./adapters/remoting -run TestWriteFuzzSeeds -write-fuzz-seeds
// rewrites testdata/fuzz/*/seed-* from the seeds below (the fuzz targets
// also add them with f.Add, so the corpus files are a copy for tools).
var writeSeeds = flag.Bool("write-fuzz-seeds", false, "write the fuzz seed corpus to testdata/fuzz")

func messageSeeds(t testing.TB) [][]byte {
	m := sampleMessage()
	one, err := remoting.AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	m6 := sampleMessage()
	m6.StoreHost = netip.MustParseAddrPort("[2001:db8::2]:10911")
	m6.Topic = strings.Repeat("t", 130)
	two, err := remoting.AppendMessage(append([]byte{}, one...), &m6)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{one, two, one[:40]}
}

var (
	propertySeeds  = []string{"TAGS\x01TagA\x02UNIQ_KEY\x01AC110001000118B4AAC2000000000000\x02WAIT\x01true\x02", "a\x01b", "\x02\x01\x02k\x01v\x01w"}
	extraInfoSeeds = []string{"100 1700000000000 60000 3 0 broker-a 2 105", "1 2 3 999 2 b 0", "1 2 3 4 1 b 0 5 6789", "1 2 3"}
	infoSeeds      = []string{"0 1 100;1 1 5", "0 1 100,101,103", "0 qo1%100 2;0 1 0", "0 1"}
	jsonSeeds      = []string{fastjsonRoute, standardRoute, `{"consumerIdList":["a"]}`, `{{"a":1}:2,x:[true,null]}`, `[[[`, consumeStatsBody,
		`{"topicConfigTable":{"T":{"topicName":"T","readQueueNums":4,"writeQueueNums":4,"perm":6,"attributes":{"message.type":"FIFO"}}},"dataVersion":{"counter":3}}`,
		`{"table":{"orders":"EU orders","pay\u00e9":"line 1\nline 2"}}`, `{"table":{}}`, batchAckBody,
		`{"autoCommit":true,"consumeResult":"CR_SUCCESS","order":false,"remark":"from gRPC client","spentTimeMills":12}`,
		`{"subscriptionGroupTable":{"G":{"groupName":"G","retryMaxTimes":3,"groupRetryPolicy":{"type":"EXPONENTIAL","exponentialRetryPolicy":{"initial":1000,"max":60000,"multiplier":2}}}}}`}
	msgIDSeeds = []string{"C0A8000A00002A9F0000000000001234", "AC110001000118B4AAC2000000000000", "20010db8000000000000000000000002" + "00002A9F0000000000000007"}
)

func seedFiles(t testing.TB) map[string][]string {
	q := func(b []byte) string { return "[]byte(" + strconv.Quote(string(b)) + ")\n" }
	s := func(v string) string { return "string(" + strconv.Quote(v) + ")\n" }
	files := map[string][]string{}
	for _, g := range []string{golden111, golden112, golden113} {
		files["FuzzDecode"] = append(files["FuzzDecode"], q(unhex(t, g)))
		files["FuzzHeaders"] = append(files["FuzzHeaders"], q(unhex(t, g)))
	}
	for _, h := range headerSamples() {
		b, _ := remoting.AppendCommand(nil, &remoting.Command{Fields: remoting.EncodeHeader(h.full)})
		files["FuzzHeaders"] = append(files["FuzzHeaders"], q(b))
	}
	for _, b := range messageSeeds(t) {
		files["FuzzDecodeMessages"] = append(files["FuzzDecodeMessages"], q(b))
	}
	files["FuzzDecodeBatch"] = []string{q(unhex(t, golden115))}
	for _, v := range propertySeeds {
		files["FuzzParseProperties"] = append(files["FuzzParseProperties"], s(v))
	}
	for _, v := range extraInfoSeeds {
		files["FuzzParseExtraInfo"] = append(files["FuzzParseExtraInfo"], s(v))
	}
	for _, v := range infoSeeds {
		files["FuzzOffsetInfos"] = append(files["FuzzOffsetInfos"], s(v))
	}
	for _, v := range jsonSeeds {
		files["FuzzJSONBody"] = append(files["FuzzJSONBody"], q([]byte(v)))
	}
	for _, v := range msgIDSeeds {
		files["FuzzMessageIDs"] = append(files["FuzzMessageIDs"], s(v))
	}
	for _, ct := range []remoting.CompressionType{remoting.CompressionZlib, remoting.CompressionLZ4, remoting.CompressionZstd} {
		c, flag, _ := remoting.Compress([]byte("hello hello hello"), ct, 5)
		files["FuzzDecompress"] = append(files["FuzzDecompress"], q(c)+"int32("+strconv.Itoa(int(flag))+")\n")
	}
	return files
}

func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-fuzz-seeds to rewrite testdata/fuzz")
	}
	for target, seeds := range seedFiles(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			if err := os.WriteFile(name, []byte("go test fuzz v1\n"+s), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzHeaders: every typed header decodes any ext fields without panicking,
// and what it decodes re-encodes to fields that decode to the same value.
func FuzzHeaders(f *testing.F) {
	for _, h := range headerSamples() {
		b, _ := remoting.AppendCommand(nil, &remoting.Command{Fields: remoting.EncodeHeader(h.full)})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		cmd, _, err := remoting.Decode(frame, 1<<20)
		if err != nil {
			return
		}
		for _, h := range headerSamples() {
			typ := reflect.TypeOf(h.new).Elem()
			got := reflect.New(typ).Interface().(remoting.Header)
			if err := got.DecodeFields(cmd.Fields); err != nil {
				continue
			}
			again := reflect.New(typ).Interface().(remoting.Header)
			if err := again.DecodeFields(remoting.EncodeHeader(got)); err != nil {
				t.Fatalf("%s: re-decode: %v", h.name, err)
			}
			if !reflect.DeepEqual(got, again) {
				t.Fatalf("%s: round trip %+v != %+v", h.name, again, got)
			}
		}
		if _, err := remoting.DecodeSendMessageRequestHeader(cmd.Code, cmd.Fields); err != nil {
			return
		}
	})
}

// FuzzDecodeMessages: stored-format bodies never panic the decoder, and
// decoded messages re-encode to records that decode to the same messages.
func FuzzDecodeMessages(f *testing.F) {
	for _, b := range messageSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := remoting.DecodeMessages(body)
		if err == nil && len(body) > 0 && len(msgs) == 0 {
			t.Fatal("no messages and no error")
		}
		var enc []byte
		for i := range msgs {
			if enc, err = remoting.AppendMessage(enc, &msgs[i]); err != nil {
				t.Fatalf("re-encode %d: %v", i, err)
			}
		}
		again, err := remoting.DecodeMessages(enc)
		if err != nil || (len(msgs) > 0 && !reflect.DeepEqual(again, msgs)) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, again, msgs)
		}
		// DecodeMessage takes exactly one record.
		one, err := remoting.DecodeMessage(body)
		if all, aerr := remoting.DecodeMessages(body); (err == nil) != (aerr == nil && len(all) == 1) {
			t.Fatalf("DecodeMessage err %v, DecodeMessages %d messages, err %v", err, len(all), aerr)
		} else if err == nil && !reflect.DeepEqual(one, all[0]) {
			t.Fatalf("DecodeMessage %+v != DecodeMessages %+v", one, all[0])
		}
	})
}

// FuzzDecodeBatch: batch bodies never panic the decoder and round-trip.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(unhex(f, golden115))
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := remoting.DecodeBatch(body)
		if err != nil {
			return
		}
		enc, err := remoting.EncodeBatch(msgs)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := remoting.DecodeBatch(enc)
		if err != nil || (len(msgs) > 0 && !reflect.DeepEqual(again, msgs)) {
			t.Fatalf("round trip: %v %+v %+v", err, again, msgs)
		}
	})
}

// FuzzParseProperties: any string parses, and what parses formats and
// parses back to itself.
func FuzzParseProperties(f *testing.F) {
	for _, s := range propertySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := remoting.ParseProperties(s)
		out, err := remoting.FormatProperties(p)
		if err != nil {
			t.Fatalf("format %q: %v", p, err)
		}
		if again := remoting.ParseProperties(out); !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip %q != %q", again, p)
		}
	})
}

// FuzzParseExtraInfo: checkpoint and receipt-handle strings never panic the
// parser, and what parses formats and parses back to itself.
func FuzzParseExtraInfo(f *testing.F) {
	for _, s := range extraInfoSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := remoting.ParseExtraInfo(s)
		if err != nil {
			return
		}
		again, err := remoting.ParseExtraInfo(e.String())
		if err != nil || again != e {
			t.Fatalf("round trip %q: %+v %v", e.String(), again, err)
		}
	})
}

// FuzzOffsetInfos: the pop response's info strings never panic the parsers.
func FuzzOffsetInfos(f *testing.F) {
	for _, s := range infoSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = remoting.ParseStartOffsetInfo(s)
		_, _ = remoting.ParseMsgOffsetInfo(s)
		_, _ = remoting.ParseOrderCountInfo(s)
		resp := remoting.PopMessageResponseHeader{StartOffsetInfo: s, MsgOffsetInfo: s, OrderCountInfo: s}
		_ = remoting.PopCheckpoints("T", &resp, "b", true, []remoting.Message{{Topic: "T", QueueID: 1, QueueOffset: 100}})
	})
}

// FuzzJSONBody: fastjson bodies never panic the normalizer or the typed
// decoders, and normalizing is idempotent.
func FuzzJSONBody(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var route remoting.TopicRouteData
		_ = remoting.DecodeJSONBody(b, &route)
		var hb remoting.HeartbeatData
		_ = remoting.DecodeJSONBody(b, &hb)
		var topics remoting.TopicConfigWrapper
		_ = remoting.DecodeJSONBody(b, &topics)
		var groups remoting.SubscriptionGroupWrapper
		_ = remoting.DecodeJSONBody(b, &groups)
		var stats remoting.ConsumeStats
		if remoting.DecodeJSONBody(b, &stats) == nil {
			for k := range stats.OffsetTable {
				_, _ = remoting.ParseMessageQueueKey(k)
			}
		}
		_, _ = remoting.ParseMessageQueueKey(string(b))
		var reset remoting.ResetOffsetBody
		if remoting.DecodeJSONBody(b, &reset) == nil {
			for k := range reset.OffsetTable {
				_, _ = remoting.ParseMessageQueueKey(k)
			}
		}
		var list remoting.TopicList
		_ = remoting.DecodeJSONBody(b, &list)
		var kv remoting.KVTable
		_ = remoting.DecodeJSONBody(b, &kv)
		var direct remoting.ConsumeMessageDirectlyResult
		_ = remoting.DecodeJSONBody(b, &direct)
		var acks remoting.BatchAckMessageRequestBody
		if remoting.DecodeJSONBody(b, &acks) == nil {
			for i := range acks.Acks {
				_ = acks.Acks[i].AckedOffsets()
			}
		}
		norm, err := remoting.NormalizeJSON(b)
		if err != nil {
			return
		}
		again, err := remoting.NormalizeJSON(norm)
		if err != nil || !bytes.Equal(again, norm) {
			t.Fatalf("not idempotent: %q -> %q (%v)", norm, again, err)
		}
	})
}

// FuzzMessageIDs: offset and unique ids never panic the parsers and format
// back to themselves (upper case).
func FuzzMessageIDs(f *testing.F) {
	for _, s := range msgIDSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if a, off, err := remoting.ParseOffsetMsgID(s); err == nil {
			if got := remoting.OffsetMsgID(a, off); got != strings.ToUpper(s) {
				t.Fatalf("offset id %q -> %q", s, got)
			}
		}
		if u, err := remoting.ParseUniqID(s); err == nil {
			if got := u.String(); got != strings.ToUpper(s) {
				t.Fatalf("uniq id %q -> %q", s, got)
			}
		}
	})
}

// FuzzDecompress: compressed bodies never panic and never inflate past the
// limit.
func FuzzDecompress(f *testing.F) {
	for _, ct := range []remoting.CompressionType{remoting.CompressionZlib, remoting.CompressionLZ4, remoting.CompressionZstd} {
		c, flag, _ := remoting.Compress([]byte("hello hello hello"), ct, 5)
		f.Add(c, flag)
	}
	f.Fuzz(func(t *testing.T, b []byte, flag int32) {
		out, err := remoting.Decompress(b, flag, 1<<16)
		if err == nil && len(out) > 1<<16 {
			t.Fatalf("inflated to %d bytes", len(out))
		}
	})
}
