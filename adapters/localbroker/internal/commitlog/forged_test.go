package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// forgedBody is a message body a producer can send when it can predict the
// logical offset at which the body is stored (bodyAt): it holds, at byte 100,
// frames that validate at their positions, as if records followed there.
func forgedBody(bodyAt int64, n int) []byte {
	body := bytes.Repeat([]byte{'p'}, 100)
	for i := range 3 {
		body = appendFrame(body, bodyAt+int64(len(body)), 1, []byte("forged-"+string(rune('0'+i))))
	}
	return append(body, bytes.Repeat([]byte{'q'}, n-len(body))...)
}

// TestForgedFramesInTornRecord: frames forged for their positions in the
// body of a torn last record are never replayed. A complete last frame whose
// checksum fails is a torn tail in both modes: its claimed extent is never
// searched. A record cut short claims more than the segment holds, which a
// damaged length does too (TestDamagedLengthInTheLastSegmentRefused), so
// recovery: strict refuses it when the cut part holds something that looks
// like a record, and truncate starts without it.
func TestForgedFramesInTornRecord(t *testing.T) {
	tears := map[string]struct {
		tear          func(frame []byte) []byte
		strictRefuses bool
	}{
		"cut after the forged frames": {func(f []byte) []byte { return f[:len(f)-40] }, true},
		"whole with a bad checksum":   {func(f []byte) []byte { c := bytes.Clone(f); c[len(c)-1] ^= 1; return c }, false},
		"cut after the header":        {func(f []byte) []byte { return f[:PayloadStart+200] }, true},
	}
	for name, tc := range tears {
		for _, mode := range []RecoveryMode{RecoveryStrict, RecoveryTruncate} {
			t.Run(fmt.Sprintf("%s/mode=%d", name, mode), func(t *testing.T) {
				dir := t.TempDir()
				l, _ := openLog(t, testOptions(dir), 0)
				var end int64
				for i := range 3 {
					_, end = appendWait(t, l, 1, payloadN(i, 50))
				}
				l.Close(t.Context())
				// The record as it would have been written at end, torn.
				appendFile(t, lastSegment(t, dir), tc.tear(appendFrame(nil, end, 1, forgedBody(end+PayloadStart, 400))))
				opts := testOptions(dir)
				opts.Recovery = mode
				if mode == RecoveryStrict && tc.strictRefuses {
					_, err := Open(opts, 0, func(int64, byte, []byte) error { return nil })
					var cerr *CorruptionError
					if !errors.As(err, &cerr) || cerr.Offset != end {
						t.Fatalf("got %v, want a *CorruptionError at %d", err, end)
					}
					return
				}
				l2, got := openLog(t, opts, 0)
				defer l2.Close(t.Context())
				for _, r := range got {
					if strings.HasPrefix(string(r.payload), "forged") {
						t.Fatalf("replayed a forged record at %d", r.off)
					}
				}
				if len(got) != 3 || l2.NextOffset() != end {
					t.Fatalf("replayed %d records, log ends at %d; want 3 and %d", len(got), l2.NextOffset(), end)
				}
			})
		}
	}
}

// TestRecoverySearchBounded: after a bad frame whose length is not plausible
// (a hole: zeros), the search for a valid frame further on checks each
// plausible header's checksum; bytes crafted so that every fifth position
// holds one with a long length cost a checksum of that length each. The
// work must stay within a few times the bytes searched (before, about 3 GB
// of checksums for 256 KiB here), and recovery: strict refuses, as it
// cannot rule out valid records, while truncate cuts at the bad frame.
func TestRecoverySearchBounded(t *testing.T) {
	opts := func(dir string, mode RecoveryMode) Options {
		o := testOptions(dir)
		o.SegmentSize, o.MaxRecordSize, o.Recovery = 4<<20, 64<<10, mode
		return o
	}
	build := func(t *testing.T) (string, int64, int64) {
		dir := t.TempDir()
		l, _ := openLog(t, opts(dir, RecoveryStrict), 0)
		var end int64
		for i := range 3 {
			_, end = appendWait(t, l, 1, payloadN(i, 50))
		}
		l.Close(t.Context())
		// At every position p ≡ 0 (mod 5): length 0x0000F001 (61,441),
		// type 1, a checksum that fails.
		crafted := bytes.Repeat([]byte{0, 0, 0xF0, 0x01, 0}, (256<<10)/5)
		tail := append(make([]byte, PayloadStart), crafted...)
		tail = append(tail, make([]byte, 64<<10)...) // room for each claimed length
		appendFile(t, lastSegment(t, dir), tail)
		return dir, end, int64(len(tail))
	}
	t.Run("truncate", func(t *testing.T) {
		dir, end, searched := build(t)
		l, got := openLog(t, opts(dir, RecoveryTruncate), 0)
		defer l.Close(t.Context())
		if len(got) != 3 || l.NextOffset() != end {
			t.Fatalf("replayed %d records, log ends at %d; want 3 and %d", len(got), l.NextOffset(), end)
		}
		if limit := 32*searched + 8*(64<<10); l.searchWork > limit {
			t.Fatalf("the search examined %d bytes, more than %d for %d bytes after the bad frame", l.searchWork, limit, searched)
		}
	})
	t.Run("strict", func(t *testing.T) {
		dir, end, _ := build(t)
		_, err := Open(opts(dir, RecoveryStrict), 0, func(int64, byte, []byte) error { return nil })
		var cerr *CorruptionError
		if !errors.As(err, &cerr) || cerr.Offset != end {
			t.Fatalf("got %v, want a *CorruptionError at %d", err, end)
		}
		if st, _ := os.Stat(lastSegment(t, dir)); st.Size() <= end {
			t.Fatal("strict recovery changed the segment")
		}
	})
}

// TestDamagedLengthInTheLastSegmentRefused: a length field damaged (a bit
// flip) so that a record in the middle of the last segment claims more than
// the segment holds looks, by its length alone, like a torn last write; the
// records after it are intact, and recovery: strict must refuse rather than
// cut them away (truncate cuts at the damage, as it says it does).
func TestDamagedLengthInTheLastSegmentRefused(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, testOptions(dir), 0)
	var offs []int64
	for i := range 5 {
		off, _ := appendWait(t, l, 1, payloadN(i, 50))
		offs = append(offs, off)
	}
	l.Close(t.Context())
	seg := lastSegment(t, dir)
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The second record's length: 59 (50 + 9) becomes 59 | 0x200 = 571,
	// plausible (under MaxRecordSize 1024) and beyond the segment's data.
	pos := offs[1] - offs[0]
	b[pos+2] |= 0x02
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(testOptions(dir), 0, func(int64, byte, []byte) error { return nil })
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Offset != offs[1] {
		t.Fatalf("strict recovery of a damaged length with intact records after it: %v, want a *CorruptionError at %d", err, offs[1])
	}
	if st, _ := os.Stat(seg); st.Size() != int64(len(b)) {
		t.Fatal("strict recovery changed the segment")
	}
}
