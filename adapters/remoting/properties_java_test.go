package remoting_test

import (
	"encoding/binary"
	"maps"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// javaProperties is what upstream's MessageDecoder.string2messageProperties
// makes of s, restated: segments end at each \x02 (the last at the end of
// the text); a segment of 3 or more bytes is a property when the first
// \x01 from its start (searched to the end of the whole text) lies after
// its first byte and before its last; of duplicate keys the last counts.
func javaProperties(s string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(s); {
		end := len(s)
		if j := strings.IndexByte(s[i:], remoting.PropertySeparator); j >= 0 {
			end = i + j
		}
		if end-i >= 3 {
			kv := strings.IndexByte(s[i:], remoting.NameValueSeparator)
			if kv >= 0 {
				kv += i
			}
			if kv > i && kv < end-1 {
				m[s[i:kv]] = s[kv+1 : end]
			}
		}
		i = end + 1
	}
	return m
}

// asMap is p as a Java map: of duplicate keys the last counts.
func asMap(p remoting.Properties) map[string]string {
	m := map[string]string{}
	for _, f := range p {
		m[f.Key] = f.Value
	}
	return m
}

// withRawProperties returns a stored record of m with props as its
// properties text, as it is, whatever it holds.
func withRawProperties(t testing.TB, m remoting.Message, props string) []byte {
	m.Properties = nil
	rec, err := remoting.AppendMessage(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	rec = rec[:len(rec)-2] // the empty properties' length
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(props)))
	rec = append(rec, props...)
	binary.BigEndian.PutUint32(rec, uint32(len(rec)))
	return rec
}

// FuzzPropertiesAsJava: ParseProperties, and DecodeMessages for several
// records sharing one text and one slice of fields (room counted by
// propertySegments), read any properties text as upstream does: empty
// text, missing or doubled separators, no final \x02, values with \x01.
// Each message's properties are capped to its own.
func FuzzPropertiesAsJava(f *testing.F) {
	for _, s := range propertySeeds {
		f.Add(s, "a\x011\x02")
	}
	f.Add("", "\x02")
	f.Add("k\x01v\x01w", "\x01\x02a\x01\x02\x02b\x01c")
	f.Fuzz(func(t *testing.T, s1, s2 string) {
		if len(s1) > 1000 || len(s2) > 1000 {
			return
		}
		for _, s := range []string{s1, s2} {
			if got, want := asMap(remoting.ParseProperties(s)), javaProperties(s); !maps.Equal(got, want) {
				t.Fatalf("ParseProperties(%q) = %q, Java reads %q", s, got, want)
			}
		}
		texts := []string{s1, s2, "", s1 + s2, s2}
		var body []byte
		for _, s := range texts {
			body = append(body, withRawProperties(t, sampleMessage(), s)...)
		}
		msgs, err := remoting.DecodeMessages(body)
		if err != nil || len(msgs) != len(texts) {
			t.Fatalf("decode: %d messages, %v", len(msgs), err)
		}
		for k, s := range texts {
			p := msgs[k].Properties
			if got, want := asMap(p), javaProperties(s); !maps.Equal(got, want) {
				t.Fatalf("message %d of properties %q: %q, Java reads %q", k, s, got, want)
			}
			if cap(p) != len(p) {
				t.Fatalf("message %d: %d properties with room for %d (appending would write into the next's)", k, len(p), cap(p))
			}
		}
	})
}
