package commitlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/tmpfs"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// blockingSync makes fdatasync wait until release is closed, so that
// appended records pile up behind the writer.
func blockingSync(release chan struct{}) func(*os.File) error {
	return func(f *os.File) error {
		<-release
		return fdatasync(f)
	}
}

// TestPendingBytesBounded: while the writer is stuck, appends stop at
// MaxPending (ErrBusy), consumer-state types at twice it; WaitRoom waits
// within its context and returns once the writer catches up.
func TestPendingBytesBounded(t *testing.T) {
	for _, prealloc := range []int64{0, 32 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) { testPendingBytesBounded(t, prealloc) })
	}
}

func testPendingBytesBounded(t *testing.T, prealloc int64) {
	release := make(chan struct{})
	opts := testOptions(t.TempDir())
	opts.Preallocate = prealloc
	opts.SegmentSize, opts.MaxPending = 1<<20, 4096
	opts.Sync = func(f *os.File) error { return nil }
	opts.ReserveType = func(typ byte) bool { return typ == 2 }
	l, _ := openLog(t, opts, 0)
	l.opts.Sync = blockingSync(release) // the first durable append blocks the writer in fdatasync
	defer func() { _ = l.Close(context.Background()) }()
	_, end, err := l.Append(1, payloadN(0, 100), true)
	if err != nil {
		t.Fatal(err)
	}
	waitfor.True(t, 10*time.Second, time.Millisecond, "the condition", func() bool { return l.written.Load() >= end }) // written, now syncing
	var accepted, state int
	for {
		_, _, err := l.Append(1, payloadN(1, 500), true)
		if errors.Is(err, ErrBusy) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
	}
	if p := l.PendingBytes(); p > opts.MaxPending || accepted == 0 {
		t.Fatalf("%d bytes pending after %d appends, bound %d", p, accepted, opts.MaxPending)
	}
	for {
		_, _, err := l.Append(2, payloadN(2, 100), false)
		if errors.Is(err, ErrBusy) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		state++
	}
	if p := l.PendingBytes(); p > 2*opts.MaxPending || state == 0 {
		t.Fatalf("%d bytes pending after %d state appends", p, state)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := l.WaitRoom(ctx, 500); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitRoom with a full buffer: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- l.WaitRoom(t.Context(), 500) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("WaitRoom after the writer caught up: %v", err)
	}
	if _, _, err := l.Append(1, payloadN(3, 500), true); err != nil {
		t.Fatalf("append after the writer caught up: %v", err)
	}
}

// TestSyncErrorIsPermanent: a failed fdatasync fails the waiters and every
// later append, until the log is reopened.
func TestSyncErrorIsPermanent(t *testing.T) {
	opts := testOptions(t.TempDir())
	l, _ := openLog(t, opts, 0)
	appendWait(t, l, 1, payloadN(0, 10))
	l.opts.Sync = func(*os.File) error { return syscall.EIO }
	_, end, err := l.Append(1, payloadN(1, 10), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(t.Context(), end); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Wait after a failed fdatasync: %v", err)
	}
	if _, _, err := l.Append(1, payloadN(2, 10), true); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append after a failed fdatasync: %v", err)
	}
	if l.Failure() == nil {
		t.Fatal("Failure() is nil")
	}
	_ = l.Close(context.Background())
	l, got := openLog(t, opts, 0)
	defer l.Close(context.Background())
	if len(got) < 1 {
		t.Fatalf("reopened log lost the first record: %d records", len(got))
	}
	appendWait(t, l, 1, payloadN(3, 10))
}

// TestDiskFullRecovers fills a small tmpfs: appends of ordinary types fail
// with ErrDiskFull, consumer-state types go on into the reserve, nothing
// written is lost, and the log accepts everything again once the file
// system grows.
func TestDiskFullRecovers(t *testing.T) {
	for _, prealloc := range []int64{0, 32 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) { testDiskFullRecovers(t, prealloc) })
	}
}

func testDiskFullRecovers(t *testing.T, prealloc int64) {
	dir := filepath.Join(tmpfs.Mount(t, "1m"), "log")
	opts := testOptions(dir)
	opts.Preallocate = prealloc
	opts.SegmentSize, opts.MaxRecordSize = 256<<10, 16<<10
	opts.Reserve = 128 << 10
	opts.DiskRetry = 20 * time.Millisecond
	opts.ReserveType = func(typ byte) bool { return typ == 2 }
	l, _ := openLog(t, opts, 0)
	defer func() { _ = l.Close(context.Background()) }()
	ctx := t.Context()
	var stored []int64 // offsets of records answered durable
	for i := 0; ; i++ {
		off, end, err := l.Append(1, payloadN(i, 8<<10), true)
		if errors.Is(err, ErrDiskFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err = l.Wait(wctx, end)
		cancel()
		if err == nil {
			stored = append(stored, off)
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait: %v", err)
		}
		if i > 1000 {
			t.Fatal("a 1 MiB file system never filled")
		}
	}
	if full, err := l.DiskFull(); !full || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("DiskFull() = %v, %v", full, err)
	}
	// Consumer-state records use the reserve.
	for i := range 20 {
		off, _ := appendWait(t, l, 2, payloadN(i, 200))
		stored = append(stored, off)
	}
	if _, _, err := l.Append(1, payloadN(0, 100), true); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("ordinary append while full: %v", err)
	}
	tmpfs.Resize(t, filepath.Dir(dir), "4m")
	waitfor.True(t, 10*time.Second, time.Millisecond, "the condition", func() bool { full, _ := l.DiskFull(); return !full })
	for i := range 10 {
		off, _ := appendWait(t, l, 1, payloadN(i, 8<<10))
		stored = append(stored, off)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l, got := openLog(t, opts, 0)
	have := map[int64]bool{}
	for _, r := range got {
		have[r.off] = true
	}
	for _, off := range stored {
		if !have[off] {
			t.Errorf("record at %d was answered durable but is not in the log", off)
		}
	}
	t.Logf("%d records stored, %d in the log after reopening", len(stored), len(got))
}

// TestHeldDurableAppendsSyncedOnceWritten: a durable append whose write
// found the disk full is held; once the writer made room (shrinking the
// reserve) and wrote it, it is fdatasync'ed then, so that its waiter is
// answered at once, not at the next periodic flush (FlushInterval, an hour
// here). Consumer-state appends go on past the first shrink of the reserve
// until one is held and written after the second.
func TestHeldDurableAppendsSyncedOnceWritten(t *testing.T) {
	for _, prealloc := range []int64{0, 32 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) { testHeldDurableAppendsSyncedOnceWritten(t, prealloc) })
	}
}

func testHeldDurableAppendsSyncedOnceWritten(t *testing.T, prealloc int64) {
	dir := filepath.Join(tmpfs.Mount(t, "1m"), "log")
	opts := testOptions(dir)
	opts.Preallocate = prealloc
	opts.SegmentSize, opts.MaxRecordSize = 256<<10, 16<<10
	opts.Reserve = 256 << 10 // shrunk in steps of 64 KiB
	opts.DiskRetry = time.Hour
	opts.ReserveType = func(typ byte) bool { return typ == 2 }
	l, _ := openLog(t, opts, 0)
	defer func() { _ = l.Close(context.Background()) }()
	ctx := t.Context()
	// Fill the disk with records forced durable by Sync (its request
	// outlives a hold, unlike a durable append's).
	for i := 0; ; i++ {
		_, end, err := l.Append(1, payloadN(i, 8<<10), false)
		if errors.Is(err, ErrDiskFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(ctx, end); err != nil {
			t.Fatal(err)
		}
		if i > 1000 {
			t.Fatal("a 1 MiB file system never filled")
		}
	}
	// 12 records of 8 KiB need more than the 64 KiB the first shrink
	// freed and less than the reserve: at least one is held and written
	// once the reserve shrank again.
	for i := range 12 {
		_, end, err := l.Append(2, payloadN(i, 8<<10), true)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = l.Wait(wctx, end)
		cancel()
		if err != nil {
			t.Fatalf("durable consumer-state append %d while the disk is full: %v (written up to %d, synced up to %d, record ends at %d)",
				i, err, l.written.Load(), l.SyncedOffset(), end)
		}
	}
}
