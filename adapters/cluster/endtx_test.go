package cluster

import (
	"testing"

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
	}{
		{"Find prepared transaction message failed", domain.ReasonInvalidTransactionID},
		{"The producer group wrong", domain.ReasonInvalidTransactionID},
		{"The transaction state table offset wrong", domain.ReasonInvalidTransactionID},
		{"The commit log offset wrong", domain.ReasonInvalidTransactionID},
		{"OS page cache busy, please try another machine", domain.ReasonBrokerError},
		{"Create mapped file failed.", domain.ReasonBrokerError},
		{"in-sync replicas not enough", domain.ReasonBrokerError},
	}
	for _, c := range cases {
		t.Run(c.remark, func(t *testing.T) {
			var addr string
			addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
				switch remoting.RequestCode(req.Code) {
				case remoting.RequestGetBrokerClusterInfo:
					resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
					resp.Body = oneBrokerCluster(addr)
					return resp
				case remoting.RequestEndTransaction:
					return remoting.NewResponse(req, remoting.ResponseSystemError, c.remark)
				}
				return remoting.NewResponse(req, remoting.ResponseSuccess, "")
			})
			b := newTestBroker(t, addr, nil)
			id := transactionID{Broker: "b1", CommitLogOffset: 10, QueueOffset: 1, MessageID: "01AB"}.String()
			err := b.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "T", TransactionID: id, Resolution: ports.ResolutionCommit})
			if got := domain.ReasonOf(err); got != c.want {
				t.Fatalf("broker remark %q: reason %v (%v), want %v", c.remark, got, err, c.want)
			}
		})
	}
}
