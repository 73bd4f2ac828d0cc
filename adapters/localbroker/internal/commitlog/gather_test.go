package commitlog

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// gatedSync is a Sync hook that, once armed, reports the size of the file
// each fdatasync covers and waits for the test to let it finish.
type gatedSync struct {
	armed   atomic.Bool
	sizes   chan int64
	release chan struct{}
}

func newGatedSync() *gatedSync {
	return &gatedSync{sizes: make(chan int64, 16), release: make(chan struct{}, 16)}
}

func (g *gatedSync) sync(f *os.File) error {
	if !g.armed.Load() {
		return nil // opening the log
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	g.sizes <- fi.Size()
	<-g.release
	return nil
}

// openGatheringLog opens a log whose writer gathers appends
// (GroupCommitWait of an hour) and whose fdatasyncs go through g, not armed
// yet.
func openGatheringLog(t *testing.T) (g *gatedSync, l *Log) {
	t.Helper()
	g = newGatedSync()
	opts := testOptions(t.TempDir())
	opts.SegmentSize = 1 << 20
	opts.GroupCommitWait = time.Hour
	opts.Sync = g.sync
	l, _ = openLog(t, opts, 0)
	return g, l
}

// open lets every held and later fdatasync through and closes l (deferred,
// so that a failed test does not hang in Close).
func (g *gatedSync) open(l *Log) {
	g.armed.Store(false)
	close(g.release)
	_ = l.Close(context.Background())
}

// next returns the size the next fdatasync covers (it is then held until
// g.release).
func (g *gatedSync) next(t *testing.T) int64 {
	t.Helper()
	select {
	case n := <-g.sizes:
		return n
	case <-t.Context().Done():
		t.Fatal("no fdatasync came")
		return 0
	}
}

func appendDurable(t *testing.T, l *Log, i int) int64 {
	t.Helper()
	_, end, err := l.Append(1, payloadN(i, 100), true)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return end
}

// TestGroupCommitGathersAfterASharedSync: once an fdatasync covered two
// durable appends, the writer waits (GroupCommitWait, here an hour) for two
// again before it syncs, so that one fdatasync covers both instead of one
// each.
func TestGroupCommitGathersAfterASharedSync(t *testing.T) {
	g, l := openGatheringLog(t)
	defer g.open(l)
	g.armed.Store(true)

	appendDurable(t, l, 1)
	g.next(t) // the first append is synced alone; the sync is held
	appendDurable(t, l, 2)
	end3 := appendDurable(t, l, 3)
	g.release <- struct{}{}
	if n := g.next(t); n != end3 { // the two that came meanwhile, together
		t.Fatalf("second fdatasync covered %d bytes, want %d", n, end3)
	}
	appendDurable(t, l, 4)
	g.release <- struct{}{}
	if err := l.Wait(t.Context(), end3); err != nil {
		t.Fatal(err)
	}
	end5 := appendDurable(t, l, 5)
	if n := g.next(t); n != end5 {
		t.Fatalf("third fdatasync covered %d bytes, want %d (appends 4 and 5 together)", n, end5)
	}
	g.release <- struct{}{}
	if err := l.Wait(t.Context(), end5); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitLoneWriterNeverWaits: appends made one after another, each
// waiting for the last, are each synced at once even with a GroupCommitWait
// of an hour (the test would hang otherwise).
func TestGroupCommitLoneWriterNeverWaits(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.SegmentSize = 1 << 20
	opts.GroupCommitWait = time.Hour
	l, _ := openLog(t, opts, 0)
	defer l.Close(context.Background())
	for i := range 20 {
		appendWait(t, l, 1, payloadN(i, 100))
	}
}

// TestGroupCommitWaitEndsOnClose: a writer gathering appends stops waiting
// when the log closes, and what it holds is synced.
func TestGroupCommitWaitEndsOnClose(t *testing.T) {
	g, l := openGatheringLog(t)
	g.armed.Store(true)

	appendDurable(t, l, 1)
	g.next(t)
	appendDurable(t, l, 2)
	appendDurable(t, l, 3)
	g.release <- struct{}{}
	g.next(t)
	end4 := appendDurable(t, l, 4)
	g.release <- struct{}{} // the writer now gathers: it holds 4 and wants 2
	closed := make(chan error, 1)
	go func() { closed <- l.Close(context.Background()) }()
	if n := g.next(t); n != end4 {
		t.Fatalf("the closing sync covered %d bytes, want %d", n, end4)
	}
	g.release <- struct{}{}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Close did not return")
	}
}
