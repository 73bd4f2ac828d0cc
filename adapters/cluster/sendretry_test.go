package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestSendNotWrittenMovesToAnotherBroker: with one connection to broker b1
// and one in-flight slot on it, send A is written to b1, which holds it
// unanswered, and send B waits for the slot; then b1 closes the
// connection. B was never written, so nothing of it can be stored on b1:
// it moves to b2 and succeeds. A was written, so b1 may have stored it: it
// is not sent again anywhere (that could duplicate it) and fails with a
// code the clients retry (TOO_MANY_REQUESTS, from ReasonUnavailable).
// Before, only a failed dial counted as "not stored", and B failed as A
// did.
func TestSendNotWrittenMovesToAnotherBroker(t *testing.T) {
	for _, coalesce := range []bool{false, true} {
		t.Run(fmt.Sprintf("coalesceSends=%v", coalesce), func(t *testing.T) {
			b1 := startHoldingBroker(t)
			var mu sync.Mutex
			var stored []string // bodies b2 stored
			b2 := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
				switch remoting.RequestCode(req.Code) {
				case remoting.RequestGetTopicConfig:
					return topicConfigAnswer(req)
				case remoting.RequestSendMessageV2:
					var h remoting.SendMessageRequestHeader
					if err := h.DecodeFieldsV2(req.Fields); err != nil {
						return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
					}
					mu.Lock()
					stored = append(stored, string(req.Body))
					off := len(stored) - 1
					mu.Unlock()
					resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
					sr := remoting.SendMessageResponseHeader{MsgID: "0A00000100002A9F0000000000000000", QueueID: h.QueueID, QueueOffset: int64(off)}
					resp.Fields = sr.AppendFields(nil)
					return resp
				}
				return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
			})
			ns := startFakeSocket(t, twoBrokerNameServer(b1.addr, b2))
			b := newOnFakeSocket(t, ns, func(c *Config) {
				c.ConnectionsPerBroker, c.MaxInFlight, c.CoalesceSends = 1, 1, coalesce
			})
			q := domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 1}

			a := sendInBackground(t, b, q, "A")
			select {
			case <-b1.held:
			case r := <-a:
				t.Fatalf("send A ended before b1 held it: %+v", r)
			}
			bb := sendInBackground(t, b, q, "B")
			// A waits for its answer and B for A's slot, both parked in
			// the client's call; only then does b1 drop the connection.
			waitCallsParked(t, 2)
			b1.drop()

			ra, rb := <-a, <-bb
			var ce *client.Error
			switch {
			case ra.err == nil:
				t.Fatalf("send A, held by b1 when it closed the connection, succeeded: %+v", ra.receipts)
			case domain.ReasonOf(ra.err) != domain.ReasonUnavailable || !errors.As(ra.err, &ce) || !ce.MaybeDelivered():
				t.Fatalf("send A: %v (reason %v), want a maybe-delivered connection error as ReasonUnavailable", ra.err, domain.ReasonOf(ra.err))
			}
			if rb.err != nil {
				t.Fatalf("send B, never written to b1, failed instead of moving to b2: %v", rb.err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(stored) != 1 || stored[0] != "B" || rb.receipts[0].QueueID != 1 {
				t.Fatalf("b2 stored %q (B's receipt %+v), want B alone, in queue 1: A may be stored on b1 and must not be sent again", stored, rb.receipts)
			}
		})
	}
}

// holdingBroker is broker b1 on a loopback port: it answers
// GET_TOPIC_CONFIG, and holds the first SEND_MESSAGE_V2 of a connection
// unanswered (announcing it on held) until drop, then closes that
// connection.
type holdingBroker struct {
	addr string
	held chan struct{}
	drop func()
}

func startHoldingBroker(t *testing.T) *holdingBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dropped := make(chan struct{})
	h := &holdingBroker{addr: ln.Addr().String(), held: make(chan struct{}, 1), drop: sync.OnceFunc(func() { close(dropped) })}
	var wg sync.WaitGroup
	t.Cleanup(func() { h.drop(); ln.Close(); wg.Wait() })
	acceptEach(t, &wg, ln, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		for {
			req, err := remoting.ReadCommand(br, 0)
			if err != nil {
				return
			}
			var resp *remoting.Command
			switch remoting.RequestCode(req.Code) {
			case remoting.RequestGetTopicConfig:
				resp = topicConfigAnswer(req)
			case remoting.RequestSendMessageV2:
				select {
				case h.held <- struct{}{}:
				default:
				}
				<-dropped
				return
			default:
				resp = remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
			}
			b, _ := remoting.AppendCommand(nil, resp)
			if _, err := nc.Write(b); err != nil {
				return
			}
		}
	})
	return h
}

// twoBrokerNameServer answers as a NameServer of brokers b1 and b2 (at
// addr1 and addr2), each with 4 queues of topic T.
func twoBrokerNameServer(addr1, addr2 string) func(*remoting.Command) *remoting.Command {
	brokers := []remoting.BrokerData{
		{Cluster: "DefaultCluster", BrokerName: "b1", BrokerAddrs: map[int64]string{0: addr1}},
		{Cluster: "DefaultCluster", BrokerName: "b2", BrokerAddrs: map[int64]string{0: addr2}}}
	return func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetRouteinfoByTopic:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicRouteData{
				QueueDatas: []remoting.QueueData{
					{BrokerName: "b1", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6},
					{BrokerName: "b2", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
				BrokerDatas: brokers})
		case remoting.RequestGetBrokerClusterInfo:
			resp.Body = twoBrokerCluster(addr1, addr2)
		default:
			return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
		}
		return resp
	}
}

// topicConfigAnswer answers GET_TOPIC_CONFIG for T, a normal topic of 4
// queues.
func topicConfigAnswer(req *remoting.Command) *remoting.Command {
	resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
	resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "T", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6,
		Attributes: map[string]string{remoting.TopicAttributeMessageType: "NORMAL"}})
	return resp
}

type sendOutcome struct {
	receipts []domain.SendReceipt
	err      error
}

// sendInBackground sends one message with body (also its id's suffix) to q
// on a goroutine of its own (see waitCallsParked) and returns where its
// outcome goes.
func sendInBackground(t *testing.T, b *Broker, q domain.QueueRef, body string) <-chan sendOutcome {
	out := make(chan sendOutcome, 1)
	m := domain.Message{Topic: q.Topic, Body: []byte(body), ID: "ID-" + body}
	go func() {
		r, err := b.Send(t.Context(), q, []domain.Message{m})
		out <- sendOutcome{r, err}
	}()
	return out
}

// waitCallsParked waits until n goroutines of sendInBackground are parked
// in a select of the Remoting client's call on a connection, which is
// where a call waits for an in-flight slot, for room in the write queue
// or for its answer. The client offers no other view of a call that waits
// for a slot, and the test must not drop the connection before one does.
func waitCallsParked(t *testing.T, n int) {
	t.Helper()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		parked := 0
		for _, g := range goroutines.Stacks() {
			lines := strings.Split(g, "\n")
			if !strings.Contains(lines[0], " [select") || !strings.Contains(g, "\ncreated by github.com/rmqproxy/rmqproxy/adapters/cluster.sendInBackground") {
				continue
			}
			// The first frame outside the runtime (each frame is a
			// function line and a file line; the runtime's are shown with
			// GOTRACEBACK=system only) is the function that selects.
			for i := 1; i < len(lines); i += 2 {
				if !strings.HasPrefix(lines[i], "runtime.") {
					if strings.HasPrefix(lines[i], "github.com/rmqproxy/rmqproxy/adapters/remoting/client.(*conn).invoke(") {
						parked++
					}
					break
				}
			}
		}
		if parked != n {
			return fmt.Errorf("%d sends parked in a Remoting call, want %d", parked, n)
		}
		return nil
	})
}

// TestCongestedTimerMovesToAnotherBroker: a broker whose timer is
// congested at a delay message's delivery time (SYSTEM_ERROR "timer
// message is under flow control ...") refuses the message before storing
// it, and another broker's timer is a wheel of its own: the send moves to
// b2 and succeeds there, where it failed with b1's refusal. A delivery
// time beyond b1's timer (MESSAGE_ILLEGAL "timer message illegal ...") is
// the client's to fix, and stays ILLEGAL_DELIVERY_TIME without trying b2.
func TestCongestedTimerMovesToAnotherBroker(t *testing.T) {
	for _, tt := range []struct {
		name   string
		code   remoting.ResponseCode
		remark string
		moves  bool
		reason domain.Reason
	}{
		{"congested", remoting.ResponseSystemError, "timer message is under flow control, max num limit is 2 or the current value is greater than 1 and less than 2, trigger random flow control", true, 0},
		{"beyond reach", remoting.ResponseMessageIllegal, "timer message illegal, the delay time should not be bigger than the max delay 259200000ms; or if set del msg, the delay time should be bigger than the current time", false, domain.ReasonIllegalDeliveryTime},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var refused, stored []string // bodies b1 refused, b2 stored
			broker := func(refuse bool) func(*remoting.Command) *remoting.Command {
				return func(req *remoting.Command) *remoting.Command {
					switch remoting.RequestCode(req.Code) {
					case remoting.RequestGetTopicConfig:
						return topicConfigAnswer(req)
					case remoting.RequestSendMessageV2:
						mu.Lock()
						defer mu.Unlock()
						if refuse {
							refused = append(refused, string(req.Body))
							return remoting.NewResponse(req, tt.code, tt.remark)
						}
						var h remoting.SendMessageRequestHeader
						if err := h.DecodeFieldsV2(req.Fields); err != nil {
							return remoting.NewResponse(req, remoting.ResponseSystemError, err.Error())
						}
						stored = append(stored, string(req.Body))
						resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
						sr := remoting.SendMessageResponseHeader{MsgID: "0A00000100002A9F0000000000000000", QueueID: h.QueueID, QueueOffset: int64(len(stored) - 1)}
						resp.Fields = sr.AppendFields(nil)
						return resp
					}
					return remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported, "not supported here")
				}
			}
			b1, b2 := startFakeSocket(t, broker(true)), startFakeSocket(t, broker(false))
			b := newOnFakeSocket(t, startFakeSocket(t, twoBrokerNameServer(b1, b2)), func(*Config) {})
			m := domain.Message{Topic: "T", Body: []byte("later"), ID: "ID-later", DeliverAt: time.Now().Add(time.Hour)}
			receipts, err := b.Send(t.Context(), domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 1}, []domain.Message{m})
			mu.Lock()
			defer mu.Unlock()
			if len(refused) != 1 {
				t.Fatalf("b1 was asked %d times, want once", len(refused))
			}
			if !tt.moves {
				if domain.ReasonOf(err) != tt.reason || len(stored) != 0 {
					t.Fatalf("send: %v (reason %v), b2 stored %q; want reason %v and nothing sent to b2", err, domain.ReasonOf(err), stored, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("send refused by b1's congested timer failed instead of moving to b2: %v", err)
			}
			if len(stored) != 1 || receipts[0].QueueID != 1 {
				t.Fatalf("b2 stored %q (receipt %+v), want the message once, in queue 1", stored, receipts)
			}
		})
	}
}
