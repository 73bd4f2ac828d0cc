package localbroker

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
)

// readFault is a read error injected by failReads: reads fail while on is
// set, and reads counts the failed ones; rounds counts the test clock's
// instants at which reads failed.
type readFault struct {
	on    atomic.Bool
	reads atomic.Int32
	mu    sync.Mutex
	at    map[int64]bool
}

// rounds is the number of instants of the test clock at which reads
// failed. The engine's own timer loop runs beside a test's fireTimers and
// may read a due message outside the lock as the test's pass reads it too
// (on a loaded machine its read can land after the pass): two reads for
// one firing, which reads counts and rounds does not.
func (f *readFault) rounds() int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int32(len(f.at))
}

// failReads makes reads of the deferred message at origin fail with err
// until the returned fault is turned off, and counts them.
func (h *harness) failReads(origin int64, err error) *readFault {
	h.t.Helper()
	f := &readFault{at: map[int64]bool{}}
	f.on.Store(true)
	fault := func(off int64) error {
		if off != origin || !f.on.Load() {
			return nil
		}
		f.reads.Add(1)
		f.mu.Lock()
		f.at[h.clock.Now().UnixNano()] = true
		f.mu.Unlock()
		return err
	}
	h.e.readFault.Store(&fault)
	h.t.Cleanup(func() { h.e.readFault.Store(nil) })
	return f
}

// checkReadBackoff checks that the message whose reads fault fails is read
// again after 1 s, then after 2 s more, not in a loop: fire (what reads it)
// runs at once and after each further second.
func (h *harness) checkReadBackoff(fault *readFault, fire func()) {
	h.t.Helper()
	for _, step := range []struct {
		advance time.Duration
		reads   int32
	}{{0, 1}, {time.Second, 2}, {time.Second, 2}, {time.Second, 3}} {
		h.fake().Advance(step.advance)
		fire()
		n := fault.rounds()
		if n != step.reads {
			h.t.Fatalf("after %v more: reads at %d instants, want %d", step.advance, n, step.reads)
		}
		if r := fault.reads.Load(); r > 2*n {
			h.t.Fatalf("after %v more: %d reads at %d instants: read in a loop", step.advance, r, n)
		}
	}
}

func originOfReceipt(t *testing.T, handle string) int64 {
	t.Helper()
	rh, err := decodeRecallHandle(handle)
	if err != nil {
		t.Fatal(err)
	}
	return rh.origin
}

// TestDueTimerKeptOnReadError: a due timer whose message cannot be read (a
// transient EIO) is kept and read again, with a growing wait, while the
// timers after it fire; the log names the segment file. Before, it was
// dropped for good at the first failed read.
func TestDueTimerKeptOnReadError(t *testing.T) {
	h := newHarness(t, nil)
	h.allow = append(h.allow, "cannot read a due delay message")
	now := h.clock.Now()
	rs := h.send("d", 0, delayMsg("d", "a", now.Add(time.Minute)))
	h.send("d", 0, delayMsg("d", "b", now.Add(time.Minute+time.Second)))
	origin := originOfReceipt(t, rs[0].RecallHandle)
	path := h.e.clog.SegmentPath(origin)
	fault := h.failReads(origin, fmt.Errorf("commitlog: read %s: %w", path, syscall.EIO))

	h.fake().Advance(time.Minute + time.Second)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("delivered %v, want [b] (the timer after the unreadable one)", got)
	}
	if !h.warns.contains("cannot read a due delay message", "file="+path, syscall.EIO.Error()) {
		t.Fatalf("no log naming the file %s: %q", path, h.warns.lines)
	}
	h.checkReadBackoff(fault, h.fireTimers)
	fault.on.Store(false)
	h.fake().Advance(4 * time.Second)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after the error cleared: delivered %v, want [a]", got)
	}
}

// TestDueTimerOfRemovedSegmentDropped: a timer whose message is really gone
// (its segment removed) is dropped, and the others fire.
func TestDueTimerOfRemovedSegmentDropped(t *testing.T) {
	h := newHarness(t, nil)
	h.allow = append(h.allow, "delay message discarded: its commit-log segment was removed")
	now := h.clock.Now()
	rs := h.send("d", 0, delayMsg("d", "a", now.Add(time.Minute)))
	h.send("d", 0, delayMsg("d", "b", now.Add(time.Minute)))
	fault := h.failReads(originOfReceipt(t, rs[0].RecallHandle), commitlog.ErrGone)
	h.fake().Advance(time.Minute)
	h.fireTimers()
	h.fake().Advance(time.Hour)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("delivered %v, want [b]", got)
	}
	if n := fault.reads.Load(); n != 1 {
		t.Fatalf("%d reads of the removed message, want 1 (dropped at once)", n)
	}
}

// TestDamagedTimerDoesNotHoldUpLaterOnes: a timer whose message keeps
// failing its checksum is kept and retried later while the timers due after
// it fire; once the bytes are good again (restored from a backup) it fires.
// Before, it was dropped at the first failed read.
func TestDamagedTimerDoesNotHoldUpLaterOnes(t *testing.T) {
	h := newHarness(t, nil)
	h.allow = append(h.allow, "cannot read a due delay message")
	now := h.clock.Now()
	rs := h.send("d", 0, delayMsg("d", "damaged", now.Add(time.Minute)))
	for i := range 3 {
		h.send("d", 0, delayMsg("d", fmt.Sprint("later-", i), now.Add(time.Minute+time.Duration(i+1)*time.Second)))
	}
	h.settle(h.e.clog.NextOffset())
	origin := originOfReceipt(t, rs[0].RecallHandle)
	path := h.e.clog.SegmentPath(origin)
	var base int64
	for _, s := range h.e.clog.Segments() {
		if s.Path == path {
			base = s.Base
		}
	}
	flipAt := func() {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, origin-base+20); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x40
		if _, err := f.WriteAt(b, origin-base+20); err != nil {
			t.Fatal(err)
		}
	}
	flipAt()
	for range 4 {
		h.fake().Advance(time.Second)
	}
	h.fake().Advance(time.Minute)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"later-0", "later-1", "later-2"}) {
		t.Fatalf("delivered %v, want the three later timers", got)
	}
	if !h.warns.contains("cannot read a due delay message", "file="+path, "checksum mismatch") {
		t.Fatalf("no log naming the file %s: %q", path, h.warns.lines)
	}
	flipAt() // restored
	h.fake().Advance(timerRetryMax)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"damaged"}) {
		t.Fatalf("after the bytes were restored: delivered %v, want [damaged]", got)
	}
}
