package cluster

import (
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
		if _, ok := e.begin(k); !ok {
			t.Fatalf("%s taken", k)
		}
		e.done(k, ports.ResolutionCommit, now, true)
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
	e.begin(k)
	e.done(k, ports.ResolutionCommit, now, false)
	for i := range maxEndedTransactions - 1 {
		kk := endedKey("c", strconv.Itoa(i))
		e.begin(kk)
		e.done(kk, ports.ResolutionCommit, now, true)
	}
	e.begin(k)
	e.done(k, ports.ResolutionCommit, now, true)
	if _, held := e.ended[k]; !held {
		t.Fatal("the retried transaction was forgotten with its failed end's slot")
	}
}
