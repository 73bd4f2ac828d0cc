package remoting_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

func TestSignature(t *testing.T) {
	// remoting-protocol.md §8.1 vectors (HMAC-SHA1 over "rocketmq2TopicTest" [+ "hello"]).
	cred := remoting.Credentials{AccessKey: "rocketmq2", SecretKey: "12345678"}
	cmd := remoting.Command{Fields: remoting.Fields{{"topic", "TopicTest"}}}
	cred.Sign(&cmd)
	if cmd.Fields.Value("AccessKey") != "rocketmq2" || cmd.Fields.Value("Signature") != "GeeGoP9mRvDhoVp4PD5omX0prgE=" {
		t.Fatalf("%v", cmd.Fields)
	}
	cmd = remoting.Command{Fields: remoting.Fields{{"topic", "TopicTest"}}, Body: []byte("hello")}
	cred.Sign(&cmd)
	if cmd.Fields.Value("Signature") != "VCoakk8D+zaEPRCyxQHvWUF4988=" {
		t.Fatalf("%v", cmd.Fields)
	}
	// Signing again (a retried request) ignores the old signature.
	cred.Sign(&cmd)
	if cmd.Fields.Value("Signature") != "VCoakk8D+zaEPRCyxQHvWUF4988=" || len(cmd.Fields) != 3 {
		t.Fatalf("re-sign: %v", cmd.Fields)
	}
}

// Vectors produced by running upstream's AclClientRPCHook (rocketmq-client
// 5.5.0 from Maven Central) on the same commands: non-ASCII values, a
// body, and a security token (which Java signs too).
func TestSignatureMatchesJava(t *testing.T) {
	fields := func() remoting.Fields {
		return remoting.Fields{{"topic", "TopicTest"}, {"a", "PG"}, {"Zeta", "é€😀"}, {"bname", "broker-a"}}
	}
	tests := []struct {
		cred remoting.Credentials
		want string
	}{
		{remoting.Credentials{AccessKey: "rocketmq2", SecretKey: "12345678"}, "k2aq/GY/2y7qKOK4S1xoDe40s74="},
		{remoting.Credentials{AccessKey: "ak", SecretKey: "sk", SecurityToken: "sts-token"}, "sNYPvnsHeHdKAwbjT8fTNgWiBII="},
	}
	for _, tt := range tests {
		cmd := remoting.Command{Fields: fields(), Body: []byte("hello")}
		tt.cred.Sign(&cmd)
		if got := cmd.Fields.Value("Signature"); got != tt.want {
			t.Fatalf("%s: got %s want %s", tt.cred.AccessKey, got, tt.want)
		}
	}
}

// manyFields returns about n ext fields in a shuffled order: distinct keys
// (ASCII, and with nonASCII also keys whose Java order differs from their
// byte order: characters above U+FFFF beside ones in U+E000..U+FFFF), a
// later duplicate of every tenth key, and a Signature field.
func manyFields(n int, nonASCII bool) remoting.Fields {
	rng := rand.New(rand.NewPCG(1, 2))
	f := make(remoting.Fields, 0, n+n/10+1)
	for i := range n {
		k := fmt.Sprintf("k%06d", i)
		if nonASCII {
			switch i % 4 {
			case 1:
				k = fmt.Sprintf("\uE000%d", i)
			case 2:
				k = fmt.Sprintf("😀%d", i)
			case 3:
				k = fmt.Sprintf("é%d\uFFFF", i)
			}
		}
		f = append(f, remoting.Field{Key: k, Value: fmt.Sprintf("v%d;", i)})
	}
	rng.Shuffle(len(f), func(i, j int) { f[i], f[j] = f[j], f[i] })
	for i := 0; i < n; i += 10 {
		f = append(f, remoting.Field{Key: f[i].Key, Value: fmt.Sprintf("later%d;", i)})
	}
	f = slices.Insert(f, len(f)/2, remoting.Field{Key: remoting.FieldSignature, Value: "old"})
	return f
}

// oracleContent is what upstream signs, computed the obvious way: a map of
// the fields (a later duplicate replaces an earlier one, as Java's HashMap
// put does) without the keys in skip, its keys in Java's String order
// (UTF-16 code units, as TreeMap sorts them), their values concatenated,
// then the body.
func oracleContent(fields remoting.Fields, body []byte, skip ...string) []byte {
	m := map[string]string{}
	for _, kv := range fields {
		m[kv.Key] = kv.Value
	}
	for _, k := range skip {
		delete(m, k)
	}
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, utf16Order)
	var content []byte
	for _, k := range keys {
		content = append(content, m[k]...)
	}
	return append(content, body...)
}

// utf16Order is Java's String order, computed the obvious way; keys Java
// cannot tell apart (invalid UTF-8 decodes to U+FFFD) in byte order.
func utf16Order(a, b string) int {
	if c := slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b))); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func hmacSHA1Base64(secret string, content []byte) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write(content)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// TestSignatureOfManyFields: on 20,000 fields, duplicates and keys whose
// Java order is not their byte order among them, the signature and the
// content an ingress verifies are upstream's (see oracleContent).
func TestSignatureOfManyFields(t *testing.T) {
	body := []byte("hello")
	fields := manyFields(20000, true)
	if got, want := remoting.Signature(fields, body, "sk"), hmacSHA1Base64("sk", oracleContent(fields, body, remoting.FieldSignature)); got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}

	sig := base64.StdEncoding.EncodeToString(make([]byte, 20))
	fields = append(manyFields(20000, false), remoting.Field{Key: remoting.FieldAccessKey, Value: "ak"},
		remoting.Field{Key: "_UNIQUE_KEY_QUERY", Value: "true"}, remoting.Field{Key: remoting.FieldSignature, Value: sig})
	for _, tt := range []struct {
		version int32
		skip    []string
	}{
		{479, []string{remoting.FieldSignature}},
		{399, []string{remoting.FieldSignature, "_UNIQUE_KEY_QUERY"}},
	} {
		ak, content, _, fault := remoting.RequestCredentials(&remoting.Command{Version: tt.version, Fields: fields, Body: body})
		if fault != "" || ak != "ak" {
			t.Fatalf("version %d: %q %q", tt.version, ak, fault)
		}
		if want := oracleContent(fields, body, tt.skip...); !bytes.Equal(content, want) {
			t.Fatalf("version %d: content of %d bytes differs from upstream's (%d bytes)", tt.version, len(content), len(want))
		}
	}
}

// BenchmarkSignature signs, and reads the credentials of, requests of n
// ext fields: the work grows as n log n (sorting the keys), where it
// grew as n² before (each field looked for a later duplicate of its key).
func BenchmarkSignature(b *testing.B) {
	body := []byte("hello")
	sig := base64.StdEncoding.EncodeToString(make([]byte, 20))
	for _, n := range []int{16, 1 << 10, 10 << 10} {
		fields := manyFields(n, true)
		b.Run(fmt.Sprintf("sign/fields=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				remoting.Signature(fields, body, "sk")
			}
		})
		cmd := &remoting.Command{Version: 479, Body: body, Fields: append(manyFields(n, false),
			remoting.Field{Key: remoting.FieldAccessKey, Value: "ak"}, remoting.Field{Key: remoting.FieldSignature, Value: sig})}
		b.Run(fmt.Sprintf("verify/fields=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				remoting.RequestCredentials(cmd)
			}
		})
	}
}

// TestSignedOrderComparesNLogNTimes counts the key comparisons of
// ordering the signed fields: at most 2·n·log2(n) for n fields (sorting),
// where looking for a later duplicate of every field, as before, took
// about n²/2 (200 million for the 20,000 fields here).
func TestSignedOrderComparesNLogNTimes(t *testing.T) {
	for _, n := range []int{16, 1 << 10, 20000} {
		fields := manyFields(n, true)
		calls := 0
		counted := func(a, b string) int { calls++; return remoting.JavaOrder(a, b) }
		idx := remoting.SignedOrder(fields, func(k string) bool { return k == remoting.FieldSignature }, counted)
		m := len(fields)
		if budget := 2 * m * bits.Len(uint(m)); calls > budget {
			t.Errorf("%d fields: %d key comparisons, want at most %d", m, calls, budget)
		}
		if len(idx) != n {
			t.Errorf("%d fields (%d distinct keys besides Signature): %d signed", m, n, len(idx))
		}
	}
}

// TestJavaOrder: the key order is Java's String.compareTo (UTF-16 code
// units, computed the obvious way here), and only equal keys compare 0.
func TestJavaOrder(t *testing.T) {
	keys := []string{"", "a", "ab", "b", "Z", "é", "\uE000", "\uFFFF", "😀", "😀a", "𝄞", "\U0010FFFF", "\xff", "\xfe", "\uFFFD",
		"a\xff", "a\uFFFD", "\xed\xa0\x80", "k000001", "k000010"}
	for _, a := range keys {
		for _, b := range keys {
			if got, want := remoting.JavaOrder(a, b), utf16Order(a, b); got != want {
				t.Errorf("JavaOrder(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

func FuzzJavaOrder(f *testing.F) {
	f.Add("\uFFFF", "😀")
	f.Add("a\xff", "a\uFFFD")
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := remoting.JavaOrder(a, b), utf16Order(a, b); got != want {
			t.Fatalf("JavaOrder(%q, %q) = %d, want %d", a, b, got, want)
		}
	})
}

// FuzzSignature: the signature of any four fields (duplicates, Signature
// and invalid UTF-8 among them) is the HMAC of upstream's content.
func FuzzSignature(f *testing.F) {
	f.Add("topic", "TopicTest", "AccessKey", "rocketmq2", "Signature", "x", "topic", "T2", []byte("hello"))
	f.Add("\uFFFF", "a", "😀", "b", "\xff", "c", "\uFFFD", "d", []byte{})
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3, k4, v4 string, body []byte) {
		fields := remoting.Fields{{k1, v1}, {k2, v2}, {k3, v3}, {k4, v4}}
		if got, want := remoting.Signature(fields, body, "sk"), hmacSHA1Base64("sk", oracleContent(fields, body, remoting.FieldSignature)); got != want {
			t.Fatalf("%q: signature %s, want %s", fields, got, want)
		}
	})
}
