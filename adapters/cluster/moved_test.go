package cluster

import (
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestHandleRequestsFollowABrokerRestartedElsewhere: a broker restarted at
// a new address (a Kubernetes pod's new IP, a new port) while the cluster
// view still named the old one: every ack and invisible-time change of a
// handle it minted before the restart, and every end of a transaction it
// holds, failed with UNAVAILABLE until the view was read again (each
// failed ack a redelivery, a duplicate for the consumer; each failed end
// an error for the producer), although the NameServers named the new
// address. A request that could not be sent (no connection to the old
// address) now goes to the address the NameServers give, once, when it
// differs.
func TestHandleRequestsFollowABrokerRestartedElsewhere(t *testing.T) {
	const oldAddr = "127.0.0.1:1" // nothing listens there any more
	var addr string
	addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command { // the NameServer, and b1 at its new address
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetBrokerClusterInfo:
			resp.Body = oneBrokerCluster(addr)
		case remoting.RequestChangeMessageInvisibletime:
			var h remoting.ChangeInvisibleTimeRequestHeader
			_ = h.DecodeFields(req.Fields)
			resp.Fields = remoting.EncodeHeader(&remoting.ChangeInvisibleTimeResponseHeader{PopTime: time.Now().UnixMilli(), InvisibleTime: h.InvisibleTime, ReviveQid: 3})
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	moved := func() {
		b.meta.cluster, b.meta.clusterStale = &clusterView{brokers: map[string]string{"b1": oldAddr}, members: []string{"b1"}, fetched: time.Now()}, false
	}
	handle := domain.ReceiptHandle{StartOffset: 5, RetrieveTime: time.Now().UnixMilli(), InvisibleTime: 30000, ReviveQueueID: 3,
		BrokerName: "b1", QueueOffset: 5, CommitLogOffset: 100}
	req := ports.AckRequest{Group: "G", Topic: "T", MessageID: "m", Handle: handle}
	for _, batch := range []bool{true, false} {
		b.cfg.BatchAck = batch
		moved()
		if err := b.Ack(t.Context(), req); err != nil {
			t.Errorf("batchAck %v: ack: %v (reason %v)", batch, err, domain.ReasonOf(err))
		}
	}
	moved()
	id := transactionID{Broker: "b1", CommitLogOffset: 10, QueueOffset: 1, MessageID: "01AB"}.String()
	if err := b.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "T", TransactionID: id, Resolution: ports.ResolutionCommit}); err != nil {
		t.Errorf("transaction commit: %v (reason %v)", err, domain.ReasonOf(err))
	}
	moved()
	if _, err := b.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: req, InvisibleTime: time.Minute}); err != nil {
		t.Errorf("invisible-time change: %v (reason %v)", err, domain.ReasonOf(err))
	}
}
