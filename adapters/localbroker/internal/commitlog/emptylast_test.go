package commitlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestDamagedLastRecordBeforeAnEmptySegmentRefused: the writer fdatasyncs a
// segment before it creates the next one, so a crash right after the
// roll leaves an empty last segment after a complete one: a bad last
// record of the complete segment is damage to a synced record, not a torn
// tail. recovery: strict refuses (it used to cut the record as a torn tail
// and delete the empty segment); truncate cuts it.
func TestDamagedLastRecordBeforeAnEmptySegmentRefused(t *testing.T) {
	for _, mode := range []RecoveryMode{RecoveryStrict, RecoveryTruncate} {
		dir := t.TempDir()
		l, _ := openLog(t, testOptions(dir), 0)
		var offs []int64
		for i := 0; len(l.Segments()) < 2; i++ {
			off, _ := appendWait(t, l, 1, payloadN(i, 300))
			offs = append(offs, off)
		}
		l.Close(t.Context())
		last := offs[len(offs)-2] // the first segment's last record
		if err := os.Truncate(lastSegment(t, dir), 0); err != nil {
			t.Fatal(err)
		}
		first := filepath.Join(dir, SegmentName(0))
		b, _ := os.ReadFile(first)
		b[last+PayloadStart+3] ^= 0xff
		os.WriteFile(first, b, 0o644)

		opts := testOptions(dir)
		opts.Recovery = mode
		if mode == RecoveryStrict {
			_, err := Open(opts, 0, func(int64, byte, []byte) error { return nil })
			var cerr *CorruptionError
			if !errors.As(err, &cerr) || cerr.Offset != last {
				t.Fatalf("strict: got %v, want a *CorruptionError at %d", err, last)
			}
			continue
		}
		l2, got := openLog(t, opts, 0)
		if len(got) != len(offs)-2 || l2.NextOffset() != last {
			t.Fatalf("truncate: kept %d records, end %d; want %d and %d", len(got), l2.NextOffset(), len(offs)-2, last)
		}
		l2.Close(t.Context())
	}
}
