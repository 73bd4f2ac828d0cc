package localbroker

import (
	"math/rand/v2"
	"testing"
)

// ackSet.count agrees with a plain set over ranges that start and end
// inside chunks, across chunk boundaries, and over full and empty chunks.
func TestAckSetCount(t *testing.T) {
	var s ackSet
	want := map[int64]bool{}
	add := func(off int64) { s.add(off); want[off] = true }
	s.addRange(3*ackChunkBits, 5*ackChunkBits) // two full chunks
	for off := int64(3 * ackChunkBits); off < 5*ackChunkBits; off++ {
		want[off] = true
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		add(int64(r.IntN(7 * ackChunkBits)))
	}
	for range 200 {
		from := int64(r.IntN(8 * ackChunkBits))
		to := from + int64(r.IntN(3*ackChunkBits))
		var n int64
		for off := from; off < to; off++ {
			if want[off] {
				n++
			}
		}
		if got := s.count(from, to); got != n {
			t.Fatalf("count(%d, %d) = %d, want %d", from, to, got, n)
		}
	}
	if got := s.count(0, 0); got != 0 {
		t.Fatalf("count of an empty range = %d", got)
	}
}
