package localbroker

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func (c *checkRecorder) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, tc := range c.checks {
		out = append(out, tc.Message.ID)
	}
	return out
}

// flipByte flips a bit of the stored bytes of the message at origin (twice
// restores them).
func (h *harness) flipByte(origin int64) {
	h.t.Helper()
	path := h.e.clog.SegmentPath(origin)
	var base int64
	for _, s := range h.e.clog.Segments() {
		if s.Path == path {
			base = s.Base
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, origin-base+20); err != nil {
		h.t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, origin-base+20); err != nil {
		h.t.Fatal(err)
	}
}

// TestHalfMessageKeptOnReadError: a half message due for a check-back whose
// bytes cannot be read (a transient EIO) is kept and read again, with a
// growing wait, while the half messages after it are checked back; the log
// names the segment file. Before, it was discarded at the first failed read.
func TestHalfMessageKeptOnReadError(t *testing.T) {
	h := newHarness(t, nil)
	h.allow = append(h.allow, "cannot read a half message")
	rec := &checkRecorder{}
	h.e.SetTransactionCheckHandler(rec.handle)
	rs := h.send("tx", 0, txMsg("tx", "a"), txMsg("tx", "b"))
	origin := originOf(t, rs[0].TransactionID)
	path := h.e.clog.SegmentPath(origin)
	fault := h.failReads(origin, fmt.Errorf("commitlog: read %s: %w", path, syscall.EIO))

	h.fake().Advance(6 * time.Second) // transactionTimeout
	h.checkTxns()
	if got := rec.ids(); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("checked back %v, want [b] (the half message after the unreadable one)", got)
	}
	if n, ok := h.txnChecks(origin); !ok || n != 0 {
		t.Fatalf("unreadable half message: pending %v, checks %d; want kept, 0 checks", ok, n)
	}
	if !h.warns.contains("cannot read a half message", "file="+path, syscall.EIO.Error()) {
		t.Fatalf("no log naming the file %s: %q", path, h.warns.lines)
	}
	h.checkReadBackoff(fault, h.checkTxns)
	fault.on.Store(false)
	h.fake().Advance(4 * time.Second)
	h.checkTxns()
	if got := rec.ids(); !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("after the error cleared: checked back %v, want [b a]", got)
	}
	if n, ok := h.txnChecks(origin); !ok || n != 1 {
		t.Fatalf("after the error cleared: pending %v, checks %d; want 1 check", ok, n)
	}
}

// TestHalfMessageCommitOnReadErrorRetryable: a COMMIT of a half message
// whose bytes fail their checksum returns a retryable error and keeps the
// message; once the bytes are good again (restored from a backup) the
// commit succeeds. A ROLLBACK reads nothing. Before, the commit discarded
// the message.
func TestHalfMessageCommitOnReadErrorRetryable(t *testing.T) {
	h := newHarness(t, nil)
	h.allow = append(h.allow, "cannot read a half message")
	ctx := t.Context()
	rs := h.send("tx", 0, txMsg("tx", "c"), txMsg("tx", "r"))
	h.settle(h.e.clog.NextOffset())
	origin := originOf(t, rs[0].TransactionID)
	path := h.e.clog.SegmentPath(origin)
	end := func(i int, res ports.Resolution) error {
		return h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "tx", MessageID: rs[i].MessageID, TransactionID: rs[i].TransactionID, Resolution: res})
	}
	h.flipByte(origin)
	wantReason(t, end(0, ports.ResolutionCommit), domain.ReasonUnavailable)
	if _, ok := h.txnChecks(origin); !ok {
		t.Fatal("the half message was discarded by a commit that could not read it")
	}
	if !h.warns.contains("cannot read a half message", "file="+path, "checksum mismatch") {
		t.Fatalf("no log naming the file %s: %q", path, h.warns.lines)
	}
	h.failReads(originOf(t, rs[1].TransactionID), syscall.EIO)
	if err := end(1, ports.ResolutionRollback); err != nil {
		t.Fatalf("rollback of an unreadable half message: %v", err)
	}
	h.flipByte(origin) // restored
	if err := end(0, ports.ResolutionCommit); err != nil {
		t.Fatalf("commit after the bytes were restored: %v", err)
	}
	if got := h.popAll("g", "tx"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("delivered %v, want [c]", got)
	}
}

// TestHalfMessageMaxActionCommitKeptOnReadError: transactionCheckMaxAction
// commit of a half message that cannot be read keeps it and tries again
// later. Before, it was discarded.
func TestHalfMessageMaxActionCommitKeptOnReadError(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TransactionCheckMax = 1; c.TransactionCheckMaxAction = "commit" })
	h.allow = append(h.allow, "cannot read a half message", "committing it")
	rec := &checkRecorder{}
	h.e.SetTransactionCheckHandler(rec.handle)
	rs := h.send("tx", 0, txMsg("tx", "m"))
	origin := originOf(t, rs[0].TransactionID)
	h.fake().Advance(6 * time.Second)
	h.checkTxns() // the one check-back
	fault := h.failReads(origin, syscall.EIO)
	h.fake().Advance(30 * time.Second) // transactionCheckInterval: the action
	h.checkTxns()
	if fault.reads.Load() == 0 {
		t.Fatal("the action did not read the half message")
	}
	if _, ok := h.txnChecks(origin); !ok {
		t.Fatal("the half message was discarded by a commit that could not read it")
	}
	fault.on.Store(false)
	h.fake().Advance(time.Second)
	h.checkTxns()
	if got := h.popAll("g", "tx"); !slices.Equal(got, []string{"m"}) {
		t.Fatalf("delivered %v, want [m]", got)
	}
}

// TestHalfMessageOfRemovedSegmentDiscarded: a half message that is really
// gone (its segment removed) is discarded at its check-back, and the others
// are checked back.
func TestHalfMessageOfRemovedSegmentDiscarded(t *testing.T) {
	h := newHarness(t, nil)
	h.allow = append(h.allow, "half message discarded: its commit-log segment was removed")
	rec := &checkRecorder{}
	h.e.SetTransactionCheckHandler(rec.handle)
	rs := h.send("tx", 0, txMsg("tx", "a"), txMsg("tx", "b"))
	origin := originOf(t, rs[0].TransactionID)
	fault := h.failReads(origin, commitlog.ErrGone)
	h.fake().Advance(6 * time.Second)
	h.checkTxns()
	h.fake().Advance(time.Minute)
	h.checkTxns()
	if got := rec.ids(); !slices.Equal(got, []string{"b", "b"}) {
		t.Fatalf("checked back %v, want b twice", got)
	}
	if _, ok := h.txnChecks(origin); ok {
		t.Fatal("the half message of a removed segment is still pending")
	}
	if n := fault.reads.Load(); n != 1 {
		t.Fatalf("%d reads of the removed message, want 1 (discarded at once)", n)
	}
}
