package cluster

import (
	"context"
	"encoding/base64"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestHandleRequestsFollowABrokerRestartedElsewhere: a broker restarted at
// a new address (a Kubernetes pod's new IP, a new port) while the cluster
// view still named the old one: every ack and invisible-time change of a
// handle it minted before the restart (dead-letter forwards too), every
// recall of a delay message it holds and every end of a transaction it
// holds, failed with UNAVAILABLE until the view was read again (each
// failed ack a redelivery, a duplicate for the consumer; each failed end
// an error for the producer), although the NameServers named the new
// address. A request that could not be sent (no connection to the old
// address) now goes to the address the NameServers give, once, when it
// differs.
func TestHandleRequestsFollowABrokerRestartedElsewhere(t *testing.T) {
	const oldAddr = "127.0.0.1:1"                                                              // nothing listens there any more
	addr := startFakeBroker(t, func(_ string, req, resp *remoting.Command) *remoting.Command { // the NameServer, and b1 at its new address
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestViewMessageById:
			body, err := remoting.AppendMessage(nil, &remoting.Message{MagicCode: remoting.MagicV1, CommitLogOffset: 100,
				BornHost: netip.MustParseAddrPort("10.0.0.1:1234"), StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"),
				Topic: "T", Body: []byte("b")})
			if err != nil {
				return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
			}
			resp.Body = body
		case remoting.RequestRecallMessage:
			resp.Fields = (&remoting.RecallMessageResponseHeader{MsgID: "01AB"}).AppendFields(nil)
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
	moved()
	if err := b.ForwardToDeadLetter(t.Context(), req); err != nil {
		t.Errorf("dead-letter forward: %v (reason %v)", err, domain.ReasonOf(err))
	}
	moved()
	recallHandle := base64.URLEncoding.EncodeToString([]byte("v1 T b1 " + strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10) + " 01AB"))
	if id, err := b.Recall(t.Context(), "T", recallHandle); err != nil || id != "01AB" {
		t.Errorf("recall: %q, %v (reason %v)", id, err, domain.ReasonOf(err))
	}
}

// TestSendFollowsABrokerRestartedElsewhere: a send to a broker restarted
// at a new address while the cached route named the old one failed with
// UNAVAILABLE when no other broker could take it (a cluster of one
// broker; any FIFO message, which stays on its queue), although the
// NameServers routed the topic to the new address. A send that could not
// be sent (no connection) now goes to the same queue at the address the
// route, read again, gives, when it differs.
func TestSendFollowsABrokerRestartedElsewhere(t *testing.T) {
	const oldAddr = "127.0.0.1:1" // nothing listens there any more
	var stored atomic.Int32
	addr := startB1(t, 4, rw, func(_ string, req, resp *remoting.Command) *remoting.Command { // the NameServer, and b1 at its new address
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestSendMessageV2:
			var h remoting.SendMessageRequestHeader
			if err := h.DecodeFieldsV2(req.Fields); err != nil {
				return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
			}
			sr := remoting.SendMessageResponseHeader{MsgID: "0A00000100002A9F0000000000000000", QueueID: h.QueueID, QueueOffset: int64(stored.Add(1) - 1)}
			resp.Fields = sr.AppendFields(nil)
		}
		return resp
	}).addr
	b := newTestBroker(t, addr, nil)
	for i, group := range []string{"", "fifo-group"} {
		b.meta.forgetTopic("T")
		e, err := b.meta.topic(t.Context(), "T")
		if err != nil {
			t.Fatal(err)
		}
		e.masters["b1"] = oldAddr // read before the broker moved
		b.meta.cluster, b.meta.clusterStale = &clusterView{brokers: map[string]string{"b1": oldAddr}, members: []string{"b1"}, fetched: time.Now()}, false
		m := domain.Message{Topic: "T", Body: []byte("body"), ID: "ID00000" + string(rune('0'+i)), Group: group, BornAt: time.Now()}
		if _, err := b.Send(t.Context(), domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 1}, []domain.Message{m}); err != nil {
			t.Errorf("send (message group %q) to a broker restarted at a new address: %v (reason %v)", group, err, domain.ReasonOf(err))
		}
	}
}

// TestReceiveFollowsABrokerRestartedElsewhere: a receive naming a broker
// restarted at a new address (or finding only it) while the cached route
// named the old one failed with UNAVAILABLE; it now pops at the address
// the route, read again, gives.
func TestReceiveFollowsABrokerRestartedElsewhere(t *testing.T) {
	const oldAddr = "127.0.0.1:1" // nothing listens there any more
	var pops atomic.Int32
	addr := startB1(t, 4, rw, func(_ string, req, resp *remoting.Command) *remoting.Command { // the NameServer, and b1 at its new address
		if remoting.RequestCode(req.Code) == remoting.RequestPopMessage {
			pops.Add(1)
			return remoting.NewResponse(req, remoting.ResponsePollingTimeout, "no new message")
		}
		return resp
	}).addr
	b := newTestBroker(t, addr, nil)
	e, err := b.meta.topic(t.Context(), "T")
	if err != nil {
		t.Fatal(err)
	}
	e.masters["b1"] = oldAddr // read before the broker moved
	ms, err := b.Pop(t.Context(), ports.PopRequest{Group: "G", Topic: "T", BrokerName: "b1", QueueID: -1, MaxMessages: 1,
		InvisibleTime: time.Minute, PollTimeout: 10 * time.Millisecond})
	if err != nil || len(ms) != 0 || pops.Load() != 1 {
		t.Errorf("receive from a broker restarted at a new address: %d messages, %v (reason %v), %d pops at the new address; want none, nil, 1",
			len(ms), err, domain.ReasonOf(err), pops.Load())
	}
}

// TestReceiveOutlivesABrokerRestart: a long-polling receive whose broker
// connection was closed by a broker restart (no answer) failed at once
// with UNAVAILABLE, which the clients take as throttling: the Java push
// consumer receives again after 20 ms and, while the broker is still
// down, gets UNAVAILABLE again at once, an error line each time. A receive
// whose broker went away now pops again, once the broker answers, within
// its polling time: here the restarted broker answers that there is no new
// message, and the receive is empty, without an error. So too after a
// GO_AWAY (a broker shutting down answers so without acting).
func TestReceiveOutlivesABrokerRestart(t *testing.T) {
	var pops atomic.Int32
	var goAway atomic.Bool
	addr := startB1(t, 4, rw, func(_ string, req, resp *remoting.Command) *remoting.Command { // the NameServer, and b1
		if remoting.RequestCode(req.Code) == remoting.RequestPopMessage {
			if pops.Add(1) == 1 {
				if goAway.Load() { // shutting down (5.3.1+), the pop not acted on
					return remoting.NewResponse(req, remoting.ResponseGoAway, "broker is shutting down")
				}
				return nil // the broker restarts: the connection closes unanswered
			}
			return remoting.NewResponse(req, remoting.ResponsePollingTimeout, "no new message")
		}
		return resp
	}).addr
	b := newTestBroker(t, addr, nil)
	for i, named := range []string{"b1", "", "b1"} {
		goAway.Store(i == 2)
		pops.Store(0)
		ms, err := b.Pop(t.Context(), ports.PopRequest{Group: "G", Topic: "T", BrokerName: named, QueueID: -1, MaxMessages: 1,
			InvisibleTime: time.Minute, PollTimeout: 20 * time.Second})
		if err != nil || len(ms) != 0 || pops.Load() != 2 {
			t.Errorf("receive (broker %q, GO_AWAY %v) whose broker went away: %d messages, %v (reason %v), %d pops; want none, nil, 2",
				named, goAway.Load(), len(ms), err, domain.ReasonOf(err), pops.Load())
		}
	}
}

// TestReceiveFromABrokerAwayForItsWholePollFails: a broker that stays
// away for the whole polling time (it closes the receive's connection
// unanswered and takes no other) is still an error for the receive
// (UNAVAILABLE, which the clients retry), not an empty answer, and the
// receive ends before its deadline.
func TestReceiveFromABrokerAwayForItsWholePollFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	brokerAddr := serveFakeSocket(t, ln, func(req *remoting.Command) *remoting.Command {
		if remoting.RequestCode(req.Code) == remoting.RequestPopMessage {
			return nil
		}
		return topicConfigAnswer(req)
	})
	b := newTestBroker(t, newFakeNameServer(brokerAddr, 4, rw).start(t, nil).addr, nil)
	if _, err := b.meta.topic(t.Context(), "T"); err != nil { // read while the broker was up
		t.Fatal(err)
	}
	ln.Close() // the broker goes away
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err = b.Pop(ctx, ports.PopRequest{Group: "G", Topic: "T", BrokerName: "b1", QueueID: -1, MaxMessages: 1,
		InvisibleTime: time.Minute, PollTimeout: 20 * time.Second})
	if domain.ReasonOf(err) != domain.ReasonUnavailable || ctx.Err() != nil {
		t.Errorf("receive from a broker away for its whole poll: %v (reason %v, context %v); want UNAVAILABLE before the deadline", err, domain.ReasonOf(err), ctx.Err())
	}
}

// TestRequestsOfABrokerNotInTheRouteSayWhy: while a broker restarts, the
// NameServers do not list it until it has registered again, and the acks
// and changes of the handles it minted are answered BAD_REQUEST (which the
// Go push consumer retries). The message said the broker "is not a broker
// of this cluster", which read in a client's log as a misconfiguration; it
// says that the broker is not in the cluster's route now, why that may be,
// and that the client's retry succeeds once it has registered again.
func TestRequestsOfABrokerNotInTheRouteSayWhy(t *testing.T) {
	b := newTestBroker(t, startB1(t, 1, rw, nil).addr, nil)
	change := changeOf(ports.SystemClock{}, time.Minute, false)
	change.Handle.BrokerName = "b2" // restarting: not listed
	_, changeErr := b.ChangeInvisible(t.Context(), change)
	for name, err := range map[string]error{"ack": b.Ack(t.Context(), change.AckRequest), "change": changeErr} {
		msg := domain.MessageOf(err)
		if domain.ReasonOf(err) != domain.ReasonBadRequest || !strings.Contains(msg, `broker "b2" is not in the cluster's route now (restarting`) ||
			!strings.Contains(msg, "removed from the cluster") || !strings.Contains(msg, "retry succeeds once") {
			t.Errorf("%s of a handle of a broker the NameServers do not list: %v (reason %v); want BAD_REQUEST saying it is not in the route now and the retry succeeds once it is back",
				name, err, domain.ReasonOf(err))
		}
	}
}
