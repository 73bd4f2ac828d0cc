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

// TestForgedFramesInTornRecord: a torn last record whose body holds frames
// forged for their positions is a torn tail, not damage: recovery: strict
// starts (before, its search for a valid frame after the bad one found the
// forged frame and refused to start), and neither mode ever replays a forged
// frame as a record.
func TestForgedFramesInTornRecord(t *testing.T) {
	tears := map[string]func(frame []byte) []byte{
		"cut after the forged frames": func(f []byte) []byte { return f[:len(f)-40] },
		"whole with a bad checksum":   func(f []byte) []byte { c := bytes.Clone(f); c[len(c)-1] ^= 1; return c },
		"cut after the header":        func(f []byte) []byte { return f[:PayloadStart+200] },
	}
	for name, tear := range tears {
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
				appendFile(t, lastSegment(t, dir), tear(appendFrame(nil, end, 1, forgedBody(end+PayloadStart, 400))))
				opts := testOptions(dir)
				opts.Recovery = mode
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
