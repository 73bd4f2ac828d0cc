// Package wiretest is the test harness the hand-written decoders (ackpb,
// sendpb) share, for their tests only: it compares a decoder with
// proto.Unmarshal under proto.Equal (results, errors, every truncation of a
// client's request, no aliasing of the input), checks which inputs the
// decoder takes itself and which it leaves to proto.Unmarshal, bounds its
// allocations, and builds odd encodings for seeds.
package wiretest

import (
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Decoder describes a decoder of requests of type M under test.
type Decoder[M proto.Message] struct {
	// Unmarshal is the decoder, with the result of proto.Unmarshal.
	Unmarshal func([]byte, M) error
	// Accepted reports whether Unmarshal decodes b itself (without
	// proto.Unmarshal).
	Accepted func(b []byte) bool
	// Stale returns a request with fields set, for Unmarshal to decode
	// into (and reset).
	Stale func() M
}

// empty returns an empty request.
func (d Decoder[M]) empty() M { return d.Stale().ProtoReflect().New().Interface().(M) }

// Check compares Unmarshal with proto.Unmarshal on b: equal results or the
// same error, and a result that does not alias b.
func (d Decoder[M]) Check(t *testing.T, b []byte) {
	t.Helper()
	input := append([]byte(nil), b...)
	got := d.Stale()
	gotErr := d.Unmarshal(input, got)
	want := d.empty()
	wantErr := proto.Unmarshal(b, want)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("input %x: Unmarshal error %v, proto.Unmarshal error %v", b, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	for i := range input { // gRPC reuses its receive buffer
		input[i] = 0xff
	}
	if !proto.Equal(got, want) {
		t.Fatalf("input %x:\nUnmarshal:       %v\nproto.Unmarshal: %v", b, got, want)
	}
}

// ClientRequests checks that the decoder takes each of reqs (requests as
// the official clients send them) itself and decodes it and its every
// truncation as proto.Unmarshal does.
func (d Decoder[M]) ClientRequests(t *testing.T, reqs map[string]M) {
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			b := Marshal(t, req)
			if !d.Accepted(b) {
				t.Fatalf("a request of the Go client falls back to proto.Unmarshal: %v", req)
			}
			d.Check(t, b)
			got := d.empty()
			if err := d.Unmarshal(b, got); err != nil || !proto.Equal(got, req) {
				t.Fatalf("Unmarshal = %v, %v; want %v", got, err, req)
			}
			for n := range len(b) { // every truncation
				d.Check(t, b[:n])
			}
		})
	}
}

// OddEncodings checks each of seeds as Check does, and that the decoder
// takes exactly those named in fast itself (all others fall back).
func (d Decoder[M]) OddEncodings(t *testing.T, seeds map[string][]byte, fast map[string]bool) {
	for name, b := range seeds {
		t.Run(name, func(t *testing.T) {
			if got := d.Accepted(b); got != fast[name] {
				t.Errorf("decoded without proto.Unmarshal: %v, want %v", got, fast[name])
			}
			d.Check(t, b)
		})
	}
}

// AllocCase is an input and the most allocations decoding it may take.
type AllocCase struct {
	Name  string
	Input []byte
	Max   float64
}

// Allocations checks that decoding each case into a reused request takes
// at most its Max allocations (skipped with -short), and logs them with
// proto.Unmarshal's.
func (d Decoder[M]) Allocations(t *testing.T, cases []AllocCase) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, c := range cases {
		req := d.empty()
		got := testing.AllocsPerRun(100, func() {
			if err := d.Unmarshal(c.Input, req); err != nil {
				t.Fatal(err)
			}
		})
		protoAllocs := testing.AllocsPerRun(100, func() { _ = proto.Unmarshal(c.Input, req) })
		t.Logf("%s: %.0f allocations (proto.Unmarshal: %.0f)", c.Name, got, protoAllocs)
		if got > c.Max {
			t.Errorf("%s: %.0f allocations per Unmarshal, want at most %.0f (proto.Unmarshal: %.0f)", c.Name, got, c.Max, protoAllocs)
		}
	}
}

// Fuzz runs Check on the fuzzer's inputs, seeded with reqs and seeds.
func (d Decoder[M]) Fuzz(f *testing.F, reqs map[string]M, seeds map[string][]byte) {
	for _, req := range reqs {
		f.Add(Marshal(f, req))
	}
	for _, b := range seeds {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d.Check(t, b)
	})
}

// Marshal encodes m deterministically.
func Marshal(tb testing.TB, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Tag appends a field's tag to b.
func Tag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(b, num, typ)
}

// BytesField appends a length-delimited field to b.
func BytesField(b []byte, num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(Tag(b, num, protowire.BytesType), v)
}

// VarintField appends a varint field to b.
func VarintField(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(Tag(b, num, protowire.VarintType), v)
}

// StringAddr returns the address of s's bytes.
func StringAddr(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }

// BytesAddr returns the address of b's bytes.
func BytesAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
