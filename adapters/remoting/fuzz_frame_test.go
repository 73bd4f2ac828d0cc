package remoting_test

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// FuzzDecode: Decode and ReadCommand never panic, agree with each other,
// and a decoded command re-encodes to a frame that decodes to itself.
// Seeds: the golden frames here and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, g := range []string{golden111, golden112, golden113} {
		f.Add(unhex(f, g))
	}
	f.Add(jsonFrame(`{"code":310,"language":"GO","extFields":{"a":"PG","k\u00e9":"v\"\n","n":1,"z":null}}`, []byte("body")))
	f.Add(jsonFrame(`{"code":0,"flag":1,"extFields":{},"x":[{"y":[1,{}]}]}`, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd, _, err := remoting.Decode(b, 1<<20)
		rd, rerr := remoting.ReadCommand(bufio.NewReader(bytes.NewReader(b)), 1<<20)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Decode err %v, ReadCommand err %v", err, rerr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(cmd, rd) {
			t.Fatalf("Decode %+v != ReadCommand %+v", cmd, rd)
		}
		enc, err := remoting.AppendCommand(nil, cmd)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", cmd, err)
		}
		again, m, err := remoting.Decode(enc, 0)
		if err != nil || m != len(enc) {
			t.Fatalf("decode re-encoded %q: %v", enc, err)
		}
		if !reflect.DeepEqual(cmd, again) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", again, cmd)
		}
	})
}
