package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestDelayBeyondTheBrokersTimerIsIllegalDeliveryTime: with
// messaging.limits.maxDelay lifted (0) or set beyond the brokers'
// timerMaxDelaySec (3 days by default), a delay message whose delivery
// time lies beyond the broker's reach is refused by the broker
// (MESSAGE_ILLEGAL "timer message illegal ..."), which reached the client
// as INTERNAL_SERVER_ERROR; it is the client's ILLEGAL_DELIVERY_TIME, as
// rmqproxy answers when its own limit refuses it. One within reach is
// stored. (A transactional message with a delivery time is refused
// before it reaches a broker: TestBadInputGetsPreciseCodes.)
func TestDelayBeyondTheBrokersTimerIsIllegalDeliveryTime(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Messaging.Limits.MaxDelay = 0
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "delay-beyond")
	p.CreateTopic(t, topic, domain.MessageTypeDelay, 1)
	raw := testenv.NewRawClient(t, p)
	send := func(in time.Duration) *v2.Status {
		m := testenv.RawMessage(topic, []byte("later"), "")
		m.SystemProperties.MessageType = v2.MessageType_DELAY
		m.SystemProperties.DeliveryTimestamp = timestamppb.New(time.Now().Add(in))
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if st := send(4 * 24 * time.Hour); st.GetCode() != v2.Code_ILLEGAL_DELIVERY_TIME || !strings.Contains(st.GetMessage(), "timerMaxDelaySec") {
		t.Errorf("delivery in 4 days: %v %q, want ILLEGAL_DELIVERY_TIME naming timerMaxDelaySec", st.GetCode(), st.GetMessage())
	}
	if st := send(2 * 24 * time.Hour); st.GetCode() != v2.Code_OK {
		t.Errorf("delivery in 2 days: %v %q", st.GetCode(), st.GetMessage())
	}

}

// TestCongestedTimerIsTooManyRequests: a broker whose timer wheel holds
// more messages due in one slot than its timerCongestNumEachSlot refuses
// another delay message for that delivery time (SYSTEM_ERROR "timer
// message is under flow control ..."), which reached the client as
// INTERNAL_SERVER_ERROR; it is TOO_MANY_REQUESTS, which the clients retry
// with back-off, saying that the broker's timer is congested, when the
// topic has no other broker. Once a second broker, with a timer of its
// own, serves a topic too, a send the congested broker refuses (it stored
// nothing) moves there and succeeds, where it failed as above.
func TestCongestedTimerIsTooManyRequests(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokersWith(t, 1, "timerCongestNumEachSlot=1")
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "delay-congested")
	p.CreateTopic(t, topic, domain.MessageTypeDelay, 1)
	raw := testenv.NewRawClient(t, p)
	// One delivery time for all, a whole second: the broker's timer slots
	// are a second wide by default.
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	sent := 0
	var refused *v2.Status
	// The timer counts a message in its slot once it has moved it from the
	// commit log into the wheel, a little after the send: send until the
	// broker refuses one.
	testenv.WaitFor(t, time.Minute, func() error {
		m := testenv.RawMessage(topic, []byte("at the same time"), "")
		m.SystemProperties.MessageType = v2.MessageType_DELAY
		m.SystemProperties.DeliveryTimestamp = timestamppb.New(at)
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil {
			t.Fatal(err)
		}
		if st := resp.GetStatus(); st.GetCode() != v2.Code_OK {
			refused = st
			return nil
		}
		sent++
		return fmt.Errorf("%d messages due at %s stored, none refused yet", sent, at)
	})
	t.Logf("refused after %d: %v %q", sent, refused.GetCode(), refused.GetMessage())
	if refused.GetCode() != v2.Code_TOO_MANY_REQUESTS || !strings.Contains(refused.GetMessage(), "timer is congested") {
		t.Errorf("after %d messages due at the same time: %v %q, want TOO_MANY_REQUESTS saying the broker's timer is congested",
			sent, refused.GetCode(), refused.GetMessage())
	}
	if sent < 2 {
		t.Errorf("refused after %d messages; timerCongestNumEachSlot=1 takes 2", sent)
	}

	// The first broker's slot at that time stays full: it refuses every
	// further message due then, whatever its topic.
	second := testenv.AddClusterBrokerTo(t, brokers[0].Cluster)
	p2 := testenv.Start(t, cfg) // a view of the cluster with both brokers
	both := testenv.Name(t, "delay-congested-both")
	p2.CreateTopic(t, both, domain.MessageTypeDelay, 1)
	raw2 := testenv.NewRawClient(t, p2)
	// Create returns once the NameServers route the topic to both brokers.
	resp, err := raw2.QueryRoute(raw2.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: both}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, q := range resp.GetMessageQueues() {
		seen[q.GetBroker().GetName()] = true
	}
	if !seen[brokers[0].Name] || !seen[second.Name] {
		t.Fatalf("route of %s right after its create: brokers %v (%v), want %s and %s", both, seen, resp.GetStatus(), brokers[0].Name, second.Name)
	}
	// Sends take the topic's queues in turn: half of them went to the
	// congested broker first.
	for i := range 6 {
		m := testenv.RawMessage(both, []byte("at the same time"), "")
		m.SystemProperties.MessageType = v2.MessageType_DELAY
		m.SystemProperties.DeliveryTimestamp = timestamppb.New(at)
		resp, err := raw2.SendMessage(raw2.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil {
			t.Fatal(err)
		}
		if st := resp.GetStatus(); st.GetCode() != v2.Code_OK {
			t.Errorf("send %d due at %s with a second broker in the topic: %v %q, want OK (stored by the broker whose timer is not congested)",
				i, at, st.GetCode(), st.GetMessage())
		}
	}
}
