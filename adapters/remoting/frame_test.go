package remoting_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Golden frames of remoting-protocol.md §11.
var (
	golden111 = `00 00 00 87 00 00 00 83 7b 22 63 6f 64 65 22 3a
31 30 35 2c 22 65 78 74 46 69 65 6c 64 73 22 3a
7b 22 74 6f 70 69 63 22 3a 22 54 6f 70 69 63 54
65 73 74 22 7d 2c 22 66 6c 61 67 22 3a 30 2c 22
6c 61 6e 67 75 61 67 65 22 3a 22 4a 41 56 41 22
2c 22 6f 70 61 71 75 65 22 3a 31 2c 22 73 65 72
69 61 6c 69 7a 65 54 79 70 65 43 75 72 72 65 6e
74 52 50 43 22 3a 22 4a 53 4f 4e 22 2c 22 76 65
72 73 69 6f 6e 22 3a 34 37 39 7d`
	golden112 = `00 00 00 2d 01 00 00 29 00 69 09 01 df 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 14
00 05 74 6f 70 69 63 00 00 00 09 54 6f 70 69 63 54 65 73 74`
	golden113 = `00 00 00 29  01 00 00 25 00 00  00  01 df  00 00 00 07  00 00 00 01
00 00 00 02  4f 4b 00 00 00 0e  00 06 6f 66 66 73 65 74  00 00 00 02 34 32`
)

func TestGoldenFrames(t *testing.T) {
	body114 := []byte(`{"consumerIdList":["10.0.0.1@1234"]}`)
	frame114 := append(unhex(t, "00 00 00 87 00 00 00 5f"),
		`{"code":0,"flag":1,"language":"JAVA","opaque":2,"serializeTypeCurrentRPC":"JSON","version":479}`...)
	frame114 = append(frame114, body114...)
	tests := []struct {
		name  string
		frame []byte
		cmd   remoting.Command
	}{
		{"11.1 JSON route request", unhex(t, golden111), remoting.Command{
			Code: 105, Language: remoting.LanguageJava, Version: 479, Opaque: 1,
			Fields: remoting.Fields{{"topic", "TopicTest"}}, Serialize: remoting.JSON}},
		{"11.2 binary route request", unhex(t, golden112), remoting.Command{
			Code: 105, Language: remoting.LanguageGo, Version: 479, Opaque: 1,
			Fields: remoting.Fields{{"topic", "TopicTest"}}, Serialize: remoting.RocketMQ}},
		{"11.3 binary response", unhex(t, golden113), remoting.Command{
			Code: 0, Language: remoting.LanguageJava, Version: 479, Opaque: 7, Flag: remoting.FlagResponse,
			Remark: "OK", Fields: remoting.Fields{{"offset", "42"}}, Serialize: remoting.RocketMQ}},
		{"11.4 JSON response with body", frame114, remoting.Command{
			Code: 0, Language: remoting.LanguageJava, Version: 479, Opaque: 2, Flag: remoting.FlagResponse,
			Body: body114, Serialize: remoting.JSON}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := remoting.AppendCommand(nil, &tt.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.frame) {
				t.Fatalf("encode:\n got %x\nwant %x", got, tt.frame)
			}
			dec, n, err := remoting.Decode(tt.frame, 0)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.frame) || !reflect.DeepEqual(*dec, tt.cmd) {
				t.Fatalf("decode: n=%d %+v, want %+v", n, *dec, tt.cmd)
			}
			rd, err := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(tt.frame)), 0)
			if err != nil || !reflect.DeepEqual(*rd, tt.cmd) {
				t.Fatalf("ReadCommand: %v %+v", err, rd)
			}
		})
	}
	if remoting.RequestPopMessage&0xFFFF != 3442 {
		t.Fatal("11.6: 200050 & 0xFFFF")
	}
}

func TestDecodeAcceptsWhatPeersEmit(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   remoting.Command
	}{
		{"Go client v2 (remark empty, language GO, extFields order)",
			`{"code":310,"language":"GO","version":317,"opaque":5,"flag":0,"remark":"","extFields":{"a":"PG","b":"T"}}`,
			remoting.Command{Code: 310, Language: remoting.LanguageGo, Version: 317, Opaque: 5,
				Fields: remoting.Fields{{"a", "PG"}, {"b", "T"}}}},
		{"broker response with empty extFields and unknown keys",
			`{"code":17,"extFields":{},"flag":1,"language":"JAVA","opaque":9,"remark":"topic[x] not exist","serializeTypeCurrentRPC":"JSON","version":479,"suspended":false,"future":{"a":[1,2,{"b":null}]}}`,
			remoting.Command{Code: 17, Language: remoting.LanguageJava, Version: 479, Opaque: 9, Flag: 1, Remark: "topic[x] not exist"}},
		{"escapes, numbers as strings, numeric values, nulls",
			" {\"code\":\"0\",\"extFields\":{\"k\\u00e9\":\"v\\\"\\n\\ud83d\\ude00\",\"n\":12,\"b\":true,\"z\":null},\"language\":3,\"remark\":null}\n",
			remoting.Command{Code: 0, Language: remoting.LanguagePython,
				Fields: remoting.Fields{{"ké", "v\"\n😀"}, {"n", "12"}, {"b", "true"}}}},
		{"unknown language name", `{"code":1,"language":"COBOL"}`,
			remoting.Command{Code: 1, Language: remoting.LanguageOther}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := jsonFrame(tt.header, nil)
			got, _, err := remoting.Decode(frame, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func jsonFrame(header string, body []byte) []byte {
	n := 4 + len(header) + len(body)
	b := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 0, byte(len(header) >> 16), byte(len(header) >> 8), byte(len(header))}
	b = append(b, header...)
	return append(b, body...)
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"short prefix", []byte{0, 0, 0}, io.ErrUnexpectedEOF},
		{"incomplete frame", unhex(t, golden112)[:20], io.ErrUnexpectedEOF},
		{"length below 4", []byte{0, 0, 0, 3, 0, 0, 0}, &remoting.FrameError{}},
		{"negative length", []byte{0xff, 0xff, 0xff, 0xff}, &remoting.FrameError{}},
		{"too large", []byte{0x01, 0, 0, 0, 0, 0, 0, 0}, remoting.ErrFrameTooLarge},
		{"header longer than frame", []byte{0, 0, 0, 5, 0, 0, 0, 9, 'x'}, &remoting.FrameError{}},
		{"unknown serialize type", []byte{0, 0, 0, 6, 2, 0, 0, 2, '{', '}'}, &remoting.FrameError{}},
		{"JSON not an object", jsonFrame(`[1]`, nil), &remoting.FrameError{}},
		{"JSON truncated", jsonFrame(`{"code":1`, nil), &remoting.FrameError{}},
		{"JSON code not int32", jsonFrame(`{"code":99999999999}`, nil), &remoting.FrameError{}},
		{"JSON trailing data", jsonFrame(`{"code":1} x`, nil), &remoting.FrameError{}},
		{"JSON too deep", jsonFrame(`{"x":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`, nil), &remoting.FrameError{}},
		{"binary header short", []byte{0, 0, 0, 6, 1, 0, 0, 2, 0, 0}, &remoting.FrameError{}},
		{"binary remark overruns", binFrame(t, "00 01 00 00 00 00 00 00 01 00 00 00 00 7f ff ff ff 00 00 00 00"), &remoting.FrameError{}},
		{"binary ext overruns", binFrame(t, "00 01 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 10 00 01"), &remoting.FrameError{}},
		{"binary key overruns", binFrame(t, "00 01 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 06 00 09 00 00 00 00"), &remoting.FrameError{}},
		{"binary value overruns", binFrame(t, "00 01 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 07 00 01 6b 00 00 00 09"), &remoting.FrameError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := remoting.Decode(tt.frame, 1024)
			if n != 0 || err == nil {
				t.Fatalf("n=%d err=%v", n, err)
			}
			if fe := (*remoting.FrameError)(nil); errors.As(tt.want, &fe) {
				if !errors.As(err, &fe) {
					t.Fatalf("err %v (%T), want a *FrameError", err, err)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if _, err := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(tt.frame)), 1024); err == nil {
				t.Fatal("ReadCommand accepted it")
			}
		})
	}
}

func binFrame(t *testing.T, header string) []byte {
	h := unhex(t, header)
	n := 4 + len(h)
	return append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n), 1, byte(len(h) >> 16), byte(len(h) >> 8), byte(len(h))}, h...)
}

func TestReadCommandEOF(t *testing.T) {
	if _, err := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(nil)), 0); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
	f := unhex(t, golden112)
	if _, err := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(f[:10])), 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("mid-frame: %v", err)
	}
	// Two frames back to back.
	r := bufio.NewReader(bytes.NewReader(append(append([]byte{}, f...), f...)))
	for i := 0; i < 2; i++ {
		if _, err := remoting.ReadCommand(r, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendCommandRefuses(t *testing.T) {
	tests := []struct {
		name string
		cmd  remoting.Command
	}{
		{"pop code in a binary header", remoting.Command{Code: int32(remoting.RequestPopMessage), Serialize: remoting.RocketMQ}},
		{"version beyond 16 bits", remoting.Command{Version: 70000, Serialize: remoting.RocketMQ}},
		{"long key", remoting.Command{Fields: remoting.Fields{{strings.Repeat("k", 40000), "v"}}, Serialize: remoting.RocketMQ}},
		{"unknown serialize type", remoting.Command{Serialize: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := remoting.AppendCommand(dst, &tt.cmd)
			var fe *remoting.FrameError
			if !errors.As(err, &fe) || string(got) != "keep" {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	cmd := remoting.Command{Code: 200050, Language: remoting.LanguageGo, Version: 513, Opaque: -5, Flag: 3,
		Remark: "r\x00\"é\xff", Fields: remoting.Fields{{"a", "1"}, {"", ""}, {"a", "2"}, {"ctl", "\t\x01"}},
		Body: []byte{0, 1, 2}}
	for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
		c := cmd
		c.Serialize = st
		if st == remoting.RocketMQ {
			c.Code = 310
		}
		b, err := remoting.AppendCommand([]byte("prefix"), &c)
		if err != nil {
			t.Fatal(err)
		}
		got, n, err := remoting.Decode(b[6:], 0)
		if err != nil || n != len(b)-6 {
			t.Fatal(st, err, n)
		}
		if !reflect.DeepEqual(*got, c) {
			t.Fatalf("%v:\n got %+v\nwant %+v", st, *got, c)
		}
		if v, _ := got.Fields.Get("a"); v != "2" {
			t.Fatalf("Get returns the last duplicate, got %q", v)
		}
	}
}

func TestFields(t *testing.T) {
	var f remoting.Fields
	f.Set("a", "1")
	f.Set("b", "2")
	f.Set("a", "3")
	f = append(f, remoting.Field{"b", "4"})
	f.Delete("b")
	if !reflect.DeepEqual(f, remoting.Fields{{"a", "3"}}) || f.Value("a") != "3" || f.Value("x") != "" {
		t.Fatalf("%v", f)
	}
}

// TestReadCommandAllocations: a JSON answer without body (an ack's, a send's
// header) costs two allocations: the command with room for its ext fields,
// and the header's text the fields' strings point into.
func TestReadCommandAllocations(t *testing.T) {
	frame, err := remoting.AppendCommand(nil, &remoting.Command{Opaque: 7, Flag: remoting.FlagResponse, Version: 513,
		Fields: (&remoting.SendMessageResponseHeader{MsgID: "7F00000100002A9F0000000000A1B2C3", QueueID: 3, QueueOffset: 123456,
			TransactionID: "0100155D0A1B2C3D4E5F60718293A4B5C6", MsgRegion: "DefaultRegion", TraceOn: "true"}).AppendFields(nil)})
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(frame)
	br := bufio.NewReaderSize(r, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(frame)
		br.Reset(r)
		c, err := remoting.ReadCommand(br, 0)
		if err != nil || c.Opaque != 7 || len(c.Fields) < 6 {
			t.Fatalf("ReadCommand: %+v, %v", c, err)
		}
	})
	if allocs > 2 {
		t.Errorf("ReadCommand allocates %.0f objects for an answer without body, want 2", allocs)
	}
}

// TestReadCommandBeyond16MiB: a broker's answer may be longer than the
// frames it reads (a pop answer of many large messages), so a reader
// allowing more reads it whole, in either header encoding; a length
// prefix whose bytes never come fails as a frame cut short.
func TestReadCommandBeyond16MiB(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), (40<<20)/16+3)
	for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
		cmd := remoting.Command{Code: 200, Serialize: st, Fields: remoting.Fields{{"a", "1"}}, Body: body}
		frame, err := remoting.AppendCommand(nil, &cmd)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(frame)), 0); err == nil {
			t.Fatalf("%v: a %d-byte frame read with the default limit", st, len(frame))
		}
		got, err := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(frame)), 64<<20)
		if err != nil || !bytes.Equal(got.Body, body) || got.Code != 200 {
			t.Fatalf("%v: %v (or not the frame written)", st, err)
		}
		if _, err := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(frame[:20<<20])), 64<<20); err != io.ErrUnexpectedEOF {
			t.Fatalf("%v: a frame cut short: %v", st, err)
		}
	}
}
