// Package wire holds what the hand-written protobuf decoders of packages
// ackpb and sendpb share: walking length-delimited fields, decoding each
// singular field at most once, and the strings of a two-pass decode (the
// first pass checks every string as protobuf does and counts its bytes,
// the second copies them into one buffer of that size). Its functions
// report false, never an error, for any input the decoders leave to
// proto.Unmarshal. The differential tests and fuzz targets of ackpb and
// sendpb test it with them; package wiretest holds their shared harness.
package wire

import (
	"strings"
	"unicode/utf8"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/encoding/protowire"
)

// Bytes consumes the length-delimited field at the start of b and returns
// its number, its value and the bytes consumed, or n < 0 when b starts with
// anything else (another wire type, a malformed tag or length).
func Bytes(b []byte) (num protowire.Number, v []byte, n int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || typ != protowire.BytesType {
		return 0, nil, -1
	}
	v, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return 0, nil, -1
	}
	return num, v, n + m
}

// Seen records the fields of a message decoded so far, numbers 1 to 31.
type Seen uint32

// Once records field num and reports whether it was new: a singular field
// that comes again means a merge or override, which protobuf does.
func (s *Seen) Once(num protowire.Number) bool {
	bit := Seen(1) << uint(num)
	if *s&bit != 0 {
		return false
	}
	*s |= bit
	return true
}

// Has reports whether field num was recorded.
func (s Seen) Has(num protowire.Number) bool { return s&(Seen(1)<<uint(num)) != 0 }

// Pass is the state of a two-pass decode: which pass runs, and the
// request's strings. A decoder holds one and must not be copied once used.
type Pass struct {
	// Build is false in the first pass, which only checks the input and
	// counts, and true in the second, which builds the result (from input
	// the first pass accepted).
	Build bool
	// strLen totals the string bytes of the request (first pass).
	strLen int
	strs   strings.Builder
}

// Second starts the second pass, with room for every string the first
// pass counted.
func (p *Pass) Second() {
	p.Build = true
	if p.strLen > 0 {
		p.strs.Grow(p.strLen)
	}
}

// Str returns the string value v: in the first pass it checks v as
// protobuf does (valid UTF-8) and counts its bytes, in the second it copies
// v into the request's string buffer.
func (p *Pass) Str(v []byte) (string, bool) {
	if !p.Build {
		if !utf8.Valid(v) {
			return "", false
		}
		p.strLen += len(v)
		return "", true
	}
	if len(v) == 0 {
		return "", true
	}
	off := p.strs.Len()
	p.strs.Write(v) // within the capacity grown for the request: never moves
	return p.strs.String()[off:], true
}

// Strings decodes b, a message whose fields are strings numbered 1 to
// len(out) (at most 31), each at most once: field i into out[i-1] ("" in
// the first pass; an absent field leaves its element, "" as protobuf's
// default when out was zero). It returns the fields found.
func (p *Pass) Strings(b []byte, out []string) (Seen, bool) {
	var seen Seen
	for len(b) > 0 {
		num, v, n := Bytes(b)
		if n < 0 || num < 1 || int(num) > len(out) || !seen.Once(num) {
			return 0, false
		}
		b = b[n:]
		s, ok := p.Str(v)
		if !ok {
			return 0, false
		}
		out[num-1] = s
	}
	return seen, true
}

// Resource field numbers (apache/rocketmq/v2/definition.proto).
const (
	fieldResourceNamespace = 1 // Resource.resource_namespace, string
	fieldResourceName      = 2 // Resource.name, string
)

// Resource decodes an apache.rocketmq.v2.Resource into r (nil in the first
// pass).
func (p *Pass) Resource(b []byte, r *v2.Resource) bool {
	var f [2]string
	if _, ok := p.Strings(b, f[:]); !ok {
		return false
	}
	if r != nil {
		r.ResourceNamespace, r.Name = f[fieldResourceNamespace-1], f[fieldResourceName-1]
	}
	return true
}
