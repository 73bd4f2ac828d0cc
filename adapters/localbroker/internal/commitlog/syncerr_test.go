package commitlog

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestNoSpaceFromTheRollsSyncIsPermanent: fdatasync reports ENOSPC (or
// EDQUOT) when writeback of pages written before found no space (NFS, thin
// provisioning): those pages may be gone, and Linux reports a writeback
// error once, so the next fdatasync succeeds. The fdatasync that completes
// the old segment before a roll must therefore fail the log like any other
// fdatasync error, not hold the records as for a full disk: held, the
// writer synced the old segment again and answered the records written
// before the failed sync as durable.
func TestNoSpaceFromTheRollsSyncIsPermanent(t *testing.T) {
	opts := testOptions(t.TempDir())
	release := make(chan struct{})
	var calls atomic.Int32
	opts.Sync = func(f *os.File) error {
		switch calls.Add(1) {
		case 2: // the first record's: hold the writer while the others pile up
			<-release
		case 3: // the roll's: writeback of the records before it failed
			return syscall.ENOSPC
		}
		return fdatasync(f) // the error was reported once: later ones succeed
	}
	l, _ := openLog(t, opts, 0) // Open's fdatasync is call 1
	defer func() { _ = l.Close(context.Background()) }()
	_, end, err := l.Append(1, payloadN(0, 100), true)
	if err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 10*time.Second, time.Millisecond, "the first record written", func() bool { return l.written.Load() >= end })
	// Three records that fit in the first segment (4096 bytes), then one
	// that rolls: one group, the roll's sync after the three are written.
	var ends []int64
	for i := 1; i <= 4; i++ {
		_, end, err := l.Append(1, payloadN(i, 1000), true)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, end)
	}
	if ends[2] > opts.SegmentSize || ends[3] <= opts.SegmentSize {
		t.Fatalf("records end at %v: want the fourth to roll past %d", ends, opts.SegmentSize)
	}
	close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := l.Wait(ctx, ends[2]); !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrFailed) {
		t.Fatalf("Wait for a record the failed fdatasync covered: %v, want the log failed with ENOSPC", err)
	}
	if err := l.Wait(ctx, ends[3]); !errors.Is(err, ErrFailed) {
		t.Fatalf("Wait for the record after the roll: %v, want the log failed", err)
	}
	if _, _, err := l.Append(1, payloadN(5, 10), true); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after the failed fdatasync: %v", err)
	}
	if full, _ := l.DiskFull(); full {
		t.Fatal("a failed fdatasync put the log in the disk-full state")
	}
}

// TestBadFrameBeforeSyncedBeforeRefused: Options.SyncedBefore says the
// records before it were fdatasynced, so a bad last record there (its bytes
// damaged, or zeroed by a lost write) is no torn tail: strict refuses it,
// truncate cuts it. Without the bound both are cut as an interrupted write.
func TestBadFrameBeforeSyncedBeforeRefused(t *testing.T) {
	for _, zero := range []bool{false, true} {
		t.Run(map[bool]string{false: "flipped", true: "zeroed"}[zero], func(t *testing.T) {
			opts := testOptions(t.TempDir())
			l, _ := openLog(t, opts, 0)
			appendWait(t, l, 1, payloadN(0, 100))
			off, end := appendWait(t, l, 1, payloadN(1, 100))
			if err := l.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			seg := lastSegment(t, opts.Dir)
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if zero {
				clear(b[off:end])
			} else {
				b[off+20] ^= 0xff
			}
			if err := os.WriteFile(seg, b, 0o644); err != nil {
				t.Fatal(err)
			}
			opts.SyncedBefore = end
			_, err = Open(opts, FromStart, func(int64, byte, []byte) error { return nil })
			var cerr *CorruptionError
			if !errors.As(err, &cerr) || cerr.Offset != off {
				t.Fatalf("strict Open: %v, want a CorruptionError at %d", err, off)
			}
			opts.Recovery = RecoveryTruncate
			l, got := openLog(t, opts, FromStart)
			defer func() { _ = l.Close(context.Background()) }()
			if len(got) != 1 || l.NextOffset() != off {
				t.Fatalf("truncate: %d records, log ends at %d; want 1 and %d", len(got), l.NextOffset(), off)
			}
		})
	}
}
