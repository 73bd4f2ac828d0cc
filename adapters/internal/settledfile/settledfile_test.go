package settledfile

import (
	"context"
	"errors"
	"testing"
)

// TestRead: an unchanged file is read once; a changed one twice, settled
// only when both reads found the same content; a cancelled wait is not
// settled.
func TestRead(t *testing.T) {
	sums := [][32]byte{{1}, {2}, {2}}
	reads := 0
	read := func() (int, [32]byte, error) {
		s := sums[min(reads, len(sums)-1)]
		reads++
		return reads, s, nil
	}
	inForce := [32]byte{1}
	changed := func(s [32]byte) bool { return s != inForce }
	noWait := func(context.Context) {}
	if v, _, settled, err := Read(t.Context(), read, changed, noWait); v != 1 || !settled || err != nil || reads != 1 {
		t.Fatalf("unchanged: value %d, settled %v, %v, %d reads", v, settled, err, reads)
	}
	// Changed: {2} then {2}: settled, the second read's value.
	if v, sum, settled, err := Read(t.Context(), read, changed, noWait); v != 3 || sum != [32]byte{2} || !settled || err != nil {
		t.Fatalf("changed and stable: value %d, sum %v, settled %v, %v", v, sum, settled, err)
	}
	// Changed between the reads: not settled.
	sums, reads = [][32]byte{{3}, {4}}, 0
	if _, _, settled, _ := Read(t.Context(), read, changed, noWait); settled {
		t.Fatal("a file that changed between the reads counted as settled")
	}
	// A cancelled wait: not settled, not read again.
	sums, reads = [][32]byte{{5}}, 0
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, settled, _ := Read(ctx, read, changed, Wait); settled || reads != 1 {
		t.Fatalf("cancelled: settled %v after %d reads", settled, reads)
	}
	// The read's error comes back.
	boom := errors.New("boom")
	failing := func() (int, [32]byte, error) { return 0, [32]byte{9}, boom }
	if _, _, _, err := Read(t.Context(), failing, changed, noWait); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
}
