package cluster

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestEndTransactionRefusalCodes: a broker answers END_TRANSACTION with
// SYSTEM_ERROR both when the id names no pending half message of the group
// (the client's mistake, or the transaction is resolved already) and when
// its store failed (transient). Only the first is INVALID_TRANSACTION_ID;
// a store failure keeps the broker's error, which clients may retry.
func TestEndTransactionRefusalCodes(t *testing.T) {
	cases := []struct {
		remark string
		want   domain.Reason
		code   remoting.ResponseCode // SYSTEM_ERROR when 0
	}{
		{remark: "", want: domain.ReasonBadRequest, code: remoting.ResponseIllegalOperation}, // ended after CHECK_IMMUNITY_TIME_IN_SECONDS
		{remark: "Find prepared transaction message failed", want: domain.ReasonInvalidTransactionID},
		{remark: "The producer group wrong", want: domain.ReasonInvalidTransactionID},
		{remark: "The transaction state table offset wrong", want: domain.ReasonInvalidTransactionID},
		{remark: "The commit log offset wrong", want: domain.ReasonInvalidTransactionID},
		{remark: "OS page cache busy, please try another machine", want: domain.ReasonBrokerError},
		{remark: "Create mapped file failed.", want: domain.ReasonBrokerError},
		{remark: "in-sync replicas not enough", want: domain.ReasonBrokerError},
	}
	for _, c := range cases {
		t.Run(c.remark, func(t *testing.T) {
			addr := startFakeBroker(t, func(_ string, req, resp *remoting.Command) *remoting.Command {
				if remoting.RequestCode(req.Code) == remoting.RequestEndTransaction {
					if c.code != 0 {
						return remoting.NewResponse(req, c.code, c.remark)
					}
					return remoting.NewResponse(req, remoting.ResponseSystemError, c.remark)
				}
				return resp
			})
			b := newTestBroker(t, addr, nil)
			id := transactionID{Broker: "b1", CommitLogOffset: 10, QueueOffset: 1, MessageID: "01AB"}.String()
			err := b.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "T", TransactionID: id, Resolution: ports.ResolutionCommit})
			if got := domain.ReasonOf(err); got != c.want {
				t.Fatalf("broker remark %q: reason %v (%v), want %v", c.remark, got, err, c.want)
			}
			if c.code == remoting.ResponseIllegalOperation && !strings.Contains(domain.MessageOf(err), "recovery duration") {
				t.Fatalf("the broker's refusal after the recovery duration: %v", err)
			}
		})
	}
}

// TestEndTransactionOnce: a transaction this instance ended reaches the
// broker once; a second end, either resolution, is INVALID_TRANSACTION_ID
// (a broker would commit it again). An end the broker refused may be
// tried again, and the oldest ended transactions are forgotten first.
func TestEndTransactionOnce(t *testing.T) {
	var ends atomic.Int32
	var refuse atomic.Bool
	addr := startFakeBroker(t, func(_ string, req, resp *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestEndTransaction {
			ends.Add(1)
			if refuse.Load() {
				return remoting.NewResponse(req, remoting.ResponseSystemError, "OS page cache busy, please try another machine")
			}
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	end := func(msgID string, r ports.Resolution, fromCheck bool, clo int64) error {
		id := transactionID{Broker: "b1", CommitLogOffset: clo, QueueOffset: 1, MessageID: msgID}.String()
		return b.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "T", TransactionID: id, Resolution: r, FromCheck: fromCheck})
	}
	if err := end("01A", ports.ResolutionCommit, false, 10); err != nil {
		t.Fatal(err)
	}
	for _, again := range []struct {
		r         ports.Resolution
		fromCheck bool
		clo       int64 // a check-back names the broker's copy of the half message
	}{{ports.ResolutionCommit, false, 10}, {ports.ResolutionRollback, false, 10}, {ports.ResolutionCommit, true, 99}} {
		err := end("01A", again.r, again.fromCheck, again.clo)
		if domain.ReasonOf(err) != domain.ReasonInvalidTransactionID || !strings.Contains(domain.MessageOf(err), "already ended (COMMIT at ") {
			t.Fatalf("%v again (from check %v): %v", again.r, again.fromCheck, err)
		}
	}
	if n := ends.Load(); n != 1 {
		t.Fatalf("the broker got %d END_TRANSACTION, want 1", n)
	}
	refuse.Store(true)
	if err := end("01B", ports.ResolutionRollback, false, 20); domain.ReasonOf(err) != domain.ReasonBrokerError {
		t.Fatalf("an end the broker's store failed: %v", err)
	}
	refuse.Store(false)
	if err := end("01B", ports.ResolutionRollback, false, 20); err != nil {
		t.Fatalf("the end retried after a failure: %v", err)
	}
	if err := end("01C", ports.ResolutionUnknown, false, 30); err != nil {
		t.Fatal(err)
	}
	if err := end("01C", ports.ResolutionCommit, true, 30); err != nil {
		t.Fatalf("a commit after UNKNOWN: %v", err)
	}
}

func TestEndedTransactionsForgetTheOldestFirst(t *testing.T) {
	var e endedTransactions
	now := time.Now()
	for i := range maxEndedTransactions + 2 {
		k := endedKey("b", strconv.Itoa(i))
		if _, ok := e.begin(k, false); !ok {
			t.Fatalf("%s taken", k)
		}
		e.done(k, endedTransaction{}, ports.ResolutionCommit, now, endEnded)
	}
	if len(e.ended) != maxEndedTransactions {
		t.Fatalf("%d remembered, want %d", len(e.ended), maxEndedTransactions)
	}
	for i, want := range map[int]bool{0: false, 1: false, 2: true, maxEndedTransactions + 1: true} {
		if _, held := e.ended[endedKey("b", strconv.Itoa(i))]; held != want {
			t.Errorf("transaction %d remembered: %v, want %v", i, held, want)
		}
	}
	// A failed end's slot, when it is reused, leaves a later end of the
	// same transaction alone.
	k := endedKey("b", "retried")
	e.begin(k, false)
	e.done(k, endedTransaction{}, ports.ResolutionCommit, now, endFailed)
	for i := range maxEndedTransactions - 1 {
		kk := endedKey("c", strconv.Itoa(i))
		e.begin(kk, false)
		e.done(kk, endedTransaction{}, ports.ResolutionCommit, now, endEnded)
	}
	e.begin(k, false)
	e.done(k, endedTransaction{}, ports.ResolutionCommit, now, endEnded)
	if _, held := e.ended[k]; !held {
		t.Fatal("the retried transaction was forgotten with its failed end's slot")
	}
}

// startEndTxBroker is a broker (and its own NameServer) whose answers to
// END_TRANSACTION end decides, with the request's header: the answer, nil
// for none (a broker that read it and stalled, or whose answer was lost),
// or closed to close the connection after reading it. end may block (until
// the test ends at the latest). Every other request is answered SUCCESS.
// It returns the address and the END_TRANSACTION requests it read.
func startEndTxBroker(t *testing.T, end func(req *remoting.Command, h remoting.EndTransactionRequestHeader) (resp *remoting.Command, closed bool)) (string, *atomic.Int32) {
	t.Helper()
	var ends atomic.Int32
	addr := startFakeBroker(t, func(_ string, req, resp *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) != remoting.RequestEndTransaction {
			return resp
		}
		ends.Add(1)
		var h remoting.EndTransactionRequestHeader
		if err := h.DecodeFields(req.Fields); err != nil {
			t.Errorf("END_TRANSACTION header: %v", err)
			return nil
		}
		answer, closed := end(req, h)
		switch {
		case closed:
			return nil
		case answer == nil:
			return noAnswer
		}
		return answer
	})
	return addr, &ends
}

// endsInDoubt are brokers that read the first END_TRANSACTION (not a
// check-back's) and leave it unanswered: silent (the answer is lost, the
// broker stalled) or closing the connection. A check-back's is answered
// SUCCESS.
var endsInDoubt = []struct {
	name   string
	closes bool
}{{"unanswered", false}, {"connection closed", true}}

func leaveEndsInDoubt(closes bool) func(req *remoting.Command, h remoting.EndTransactionRequestHeader) (*remoting.Command, bool) {
	return func(req *remoting.Command, h remoting.EndTransactionRequestHeader) (*remoting.Command, bool) {
		if h.FromTransactionCheck {
			return remoting.NewResponse(req, remoting.ResponseSuccess, ""), false
		}
		return nil, closes
	}
}

// endTx ends transaction msgID (commit log offset 10) of broker b1 within
// timeout.
func endTx(t *testing.T, b *Broker, msgID string, r ports.Resolution, fromCheck bool, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	id := transactionID{Broker: "b1", CommitLogOffset: 10, QueueOffset: 1, MessageID: msgID}.String()
	return b.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "T", TransactionID: id, Resolution: r, FromCheck: fromCheck})
}

// TestEndTransactionInDoubtIsNotSentAgain: an END_TRANSACTION written to
// the broker and not answered (no answer in time, or the connection closed
// after it) may have ended the transaction; a retry would end it again (a
// second commit stores the message twice). It is answered OK, as the
// Apache proxy answers its oneway END_TRANSACTION, and the client's retry,
// either resolution, is refused without reaching the broker.
func TestEndTransactionInDoubtIsNotSentAgain(t *testing.T) {
	for _, c := range endsInDoubt {
		t.Run(c.name, func(t *testing.T) {
			addr, ends := startEndTxBroker(t, leaveEndsInDoubt(c.closes))
			b := newTestBroker(t, addr, nil)
			if err := endTx(t, b, "01A", ports.ResolutionCommit, false, 300*time.Millisecond); err != nil {
				t.Fatalf("an END_TRANSACTION written and not answered: %v, want OK (the check-back resolves it if it did not arrive)", err)
			}
			for _, r := range []ports.Resolution{ports.ResolutionCommit, ports.ResolutionRollback} {
				err := endTx(t, b, "01A", r, false, 5*time.Second)
				if domain.ReasonOf(err) != domain.ReasonInvalidTransactionID || !strings.Contains(domain.MessageOf(err), "did not answer") {
					t.Fatalf("%v retried after an end in doubt: %v", r, err)
				}
			}
			if n := ends.Load(); n != 1 {
				t.Fatalf("the broker got %d END_TRANSACTION, want 1", n)
			}
		})
	}
}

// TestEndTransactionCheckBackAfterAnEndInDoubt: the broker asks about a
// half message that nothing ended in its log; when this instance's end of
// it was in doubt, that end did not arrive (or was not processed), and the
// answer to the check-back must reach the broker, or it asks again and
// finally discards a message the application committed. Once answered,
// the transaction is ended.
func TestEndTransactionCheckBackAfterAnEndInDoubt(t *testing.T) {
	for _, c := range endsInDoubt {
		t.Run(c.name, func(t *testing.T) {
			addr, ends := startEndTxBroker(t, leaveEndsInDoubt(c.closes))
			b := newTestBroker(t, addr, nil)
			if err := endTx(t, b, "01A", ports.ResolutionCommit, false, 300*time.Millisecond); err != nil {
				t.Fatalf("an END_TRANSACTION written and not answered: %v, want OK", err)
			}
			if err := endTx(t, b, "01A", ports.ResolutionCommit, true, 5*time.Second); err != nil {
				t.Fatalf("the check-back's end after an end in doubt: %v", err)
			}
			if n := ends.Load(); n != 2 {
				t.Fatalf("the broker got %d END_TRANSACTION, want 2 (the check-back's reached it)", n)
			}
			err := endTx(t, b, "01A", ports.ResolutionCommit, true, 5*time.Second)
			if domain.ReasonOf(err) != domain.ReasonInvalidTransactionID || !strings.Contains(domain.MessageOf(err), "already ended (COMMIT at ") {
				t.Fatalf("a second check-back's end after the broker answered one: %v", err)
			}
			if n := ends.Load(); n != 2 {
				t.Fatalf("the broker got %d END_TRANSACTION, want 2", n)
			}
		})
	}
}

// TestEndTransactionCheckBackAnswerWithoutSourceAfterAnEndInDoubt: the
// official Go client (v5.1.4) answers a check-back with an EndTransaction
// that has no source (neither SOURCE_SERVER_CHECK nor SOURCE_CLIENT), naming
// the transaction id of the check-back. After an end left in doubt, that
// answer was refused as a retry ("is being ended already ... the broker's
// check-back resolves the transaction") and never reached the broker, which
// went on asking until transactionCheckMax and then discarded the half
// message: a transaction the producer committed, and was answered OK, was
// lost. An end naming a copy of the half message that a check-back relayed
// by this instance named is the answer to that check-back, whatever its
// source says: it is sent (as from a check), once.
func TestEndTransactionCheckBackAnswerWithoutSourceAfterAnEndInDoubt(t *testing.T) {
	for _, c := range endsInDoubt {
		t.Run(c.name, func(t *testing.T) {
			var fromCheck atomic.Bool
			addr, ends := startEndTxBroker(t, func(req *remoting.Command, h remoting.EndTransactionRequestHeader) (*remoting.Command, bool) {
				if h.CommitLogOffset == 10 { // the send receipt's copy: left in doubt
					return nil, c.closes
				}
				fromCheck.Store(h.FromTransactionCheck)
				return remoting.NewResponse(req, remoting.ResponseSuccess, ""), false
			})
			b := newTestBroker(t, addr, nil)
			if err := endTx(t, b, "01A", ports.ResolutionCommit, false, 300*time.Millisecond); err != nil {
				t.Fatalf("an END_TRANSACTION written and not answered: %v, want OK", err)
			}
			// The broker checks back (a new copy of the half message); this
			// instance relays it (onCheckTransaction records the copy).
			checkBack := transactionID{Broker: "b1", CommitLogOffset: 50, QueueOffset: 4, MessageID: "01A"}
			b.checked.record(endedKey("b1", "01A"), checkBack)
			end := func() error {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				return b.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "T", TransactionID: checkBack.String(), Resolution: ports.ResolutionCommit})
			}
			if err := end(); err != nil {
				t.Fatalf("the check-back's answer (no source) after an end in doubt: %v", err)
			}
			if n := ends.Load(); n != 2 {
				t.Fatalf("the broker got %d END_TRANSACTION, want 2 (the check-back's answer reached it)", n)
			}
			if !fromCheck.Load() {
				t.Error("the check-back's answer reached the broker as the producer's own end (fromTransactionCheck false)")
			}
			if err := end(); domain.ReasonOf(err) != domain.ReasonInvalidTransactionID || !strings.Contains(domain.MessageOf(err), "already ended (COMMIT at ") {
				t.Fatalf("the same answer again after the broker answered it: %v, want INVALID_TRANSACTION_ID already ended", err)
			}
			if n := ends.Load(); n != 2 {
				t.Fatalf("the broker got %d END_TRANSACTION, want 2", n)
			}
			// The producer's own retry (the send receipt's id) stays refused.
			if err := endTx(t, b, "01A", ports.ResolutionCommit, false, 5*time.Second); domain.ReasonOf(err) != domain.ReasonInvalidTransactionID {
				t.Fatalf("the producer's retry after the check-back's end: %v, want INVALID_TRANSACTION_ID", err)
			}
		})
	}
}

// TestEndTransactionNotSentMayBeRetried: an end whose request was never
// queued for writing (here its context ended first) did not reach the
// broker: it fails, and a retry is sent.
func TestEndTransactionNotSentMayBeRetried(t *testing.T) {
	addr, ends := startEndTxBroker(t, func(req *remoting.Command, _ remoting.EndTransactionRequestHeader) (*remoting.Command, bool) {
		return remoting.NewResponse(req, remoting.ResponseSuccess, ""), false
	})
	b := newTestBroker(t, addr, nil)
	if err := endTx(t, b, "01A", ports.ResolutionCommit, false, 5*time.Second); err != nil { // the broker's address is known now
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	id := transactionID{Broker: "b1", CommitLogOffset: 20, QueueOffset: 2, MessageID: "01B"}.String()
	if err := b.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "T", TransactionID: id, Resolution: ports.ResolutionCommit}); err == nil {
		t.Fatal("an end whose context had ended succeeded")
	}
	if err := b.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "T", TransactionID: id, Resolution: ports.ResolutionCommit}); err != nil {
		t.Fatalf("the retry of an end that was not sent: %v", err)
	}
	if n := ends.Load(); n != 2 {
		t.Fatalf("the broker got %d END_TRANSACTION, want 2", n)
	}
}

// TestEndTransactionAnsweredLate: the broker's SUCCESS to an end in doubt
// that comes after all (within the client's late window) settles it: a
// check-back of it, sent before the broker logged the end, is then
// refused instead of ending the transaction again.
func TestEndTransactionAnsweredLate(t *testing.T) {
	release := make(chan struct{})
	addr, ends := startEndTxBroker(t, func(req *remoting.Command, _ remoting.EndTransactionRequestHeader) (*remoting.Command, bool) {
		select {
		case <-release:
		case <-t.Context().Done():
		}
		return remoting.NewResponse(req, remoting.ResponseSuccess, ""), false
	})
	b := newTestBroker(t, addr, nil)
	if err := endTx(t, b, "01A", ports.ResolutionRollback, false, 300*time.Millisecond); err != nil {
		t.Fatalf("an END_TRANSACTION written and not answered: %v, want OK", err)
	}
	close(release)
	key := endedKey("b1", "01A")
	for deadline := time.Now().Add(10 * time.Second); ; {
		b.ended.mu.Lock()
		e := b.ended.ended[key]
		b.ended.mu.Unlock()
		if !e.inDoubt && e.resolution == ports.ResolutionRollback {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the late SUCCESS did not settle the end: %+v", e)
		}
		time.Sleep(10 * time.Millisecond)
	}
	err := endTx(t, b, "01A", ports.ResolutionCommit, true, 5*time.Second)
	if domain.ReasonOf(err) != domain.ReasonInvalidTransactionID || !strings.Contains(domain.MessageOf(err), "already ended (ROLLBACK at ") {
		t.Fatalf("a check-back's end after the late SUCCESS: %v", err)
	}
	if n := ends.Load(); n != 1 {
		t.Fatalf("the broker got %d END_TRANSACTION, want 1", n)
	}
}

// TestEndedTransactionsCheckBackTakesOverAnEndInDoubt: a check-back's end
// that fails leaves the end it took over in doubt, so that the next
// check-back's answer is sent again, and a retry is still refused.
func TestEndedTransactionsCheckBackTakesOverAnEndInDoubt(t *testing.T) {
	var e endedTransactions
	at := time.Unix(1_700_000_000, 0)
	k := endedKey("b", "01A")
	prev, _ := e.begin(k, false)
	e.done(k, prev, ports.ResolutionCommit, at, endInDoubt)
	for range 2 {
		if prev, ok := e.begin(k, false); ok || !prev.inDoubt {
			t.Fatalf("a retry of an end in doubt: taken %v, %+v", ok, prev)
		}
		prev, ok := e.begin(k, true)
		if !ok || !prev.inDoubt || prev.resolution != ports.ResolutionCommit || !prev.at.Equal(at) {
			t.Fatalf("a check-back's end of an end in doubt: taken %v, %+v", ok, prev)
		}
		if _, ok := e.begin(k, true); ok {
			t.Fatal("two check-backs' ends at once")
		}
		e.done(k, prev, ports.ResolutionCommit, at.Add(time.Minute), endFailed)
	}
	if cur := e.ended[k]; !cur.inDoubt || !cur.at.Equal(at) || len(e.order.ring) != 1 {
		t.Fatalf("after failed check-backs' ends: %+v, %d slots", cur, len(e.order.ring))
	}
}
