package cluster_test

import (
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
// stored.
func TestDelayBeyondTheBrokersTimerIsIllegalDeliveryTime(t *testing.T) {
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
