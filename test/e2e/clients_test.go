package e2e_test

import (
	"fmt"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// pushReceive receives like a push consumer does (auto-renewed by the proxy).
func pushReceive(t *testing.T, c *testenv.RawClient, group, topic string) []*v2.Message {
	t.Helper()
	req := testenv.ReceiveRequest(group, topic, 8, 0)
	req.InvisibleDuration = nil
	req.AutoRenew = true
	st, msgs := c.Receive(t, req)
	if st.GetCode() != v2.Code_OK {
		t.Fatalf("receive: %v", st)
	}
	return msgs
}

// TestDepartedClientsReleaseTheirMessages: messages held by a push consumer
// (kept invisible by the proxy's renewals) come back quickly when that
// client says goodbye (NotifyClientTermination) or falls silent (session
// expiry), instead of staying invisible.
func TestDepartedClientsReleaseTheirMessages(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	cfg.Messaging.Clients.ExpiryTimeout = 10 * time.Second
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "held-departed"), testenv.Name(t, "g-held-departed")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	other := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	// waitRedelivered waits until the other consumer gets message id, acking
	// whatever it receives, and returns how long that took.
	waitRedelivered := func(id string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		testenv.WaitFor(t, within, func() error {
			ms, err := other.Receive(t.Context(), 1, 30*time.Second)
			for _, m := range ms {
				if err := other.Ack(t.Context(), m); err != nil {
					t.Errorf("ack of %s: %v", m.GetMessageId(), err)
				}
				if m.GetMessageId() == id {
					return nil
				}
			}
			return fmt.Errorf("%s not released yet: %v", id, err)
		})
		return time.Since(start)
	}

	// A push consumer takes the message and says goodbye.
	leaver := testenv.NewRawClient(t, p)
	leaver.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	msgs := pushReceive(t, leaver, group, topic)
	if len(msgs) != 1 {
		t.Fatalf("push receive got %d", len(msgs))
	}
	resp, err := leaver.NotifyClientTermination(leaver.Ctx(t), &v2.NotifyClientTerminationRequest{Group: &v2.Resource{Name: group}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("terminate: %v %v", resp, err)
	}
	// Its default invisible time is 60s: delivered again within the 20s
	// wait, it was released by the goodbye.
	d := waitRedelivered(msgs[0].GetSystemProperties().GetMessageId(), 20*time.Second)
	t.Logf("released %v after the goodbye", d)

	// A push consumer takes it again and then falls silent.
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	silent := testenv.NewRawClient(t, p)
	// Before the client's last request (its receive): its session cannot
	// expire less than clients.expiryTimeout after this, however long the
	// answer takes to come back on a loaded machine.
	start := time.Now()
	silent.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	msgs = pushReceive(t, silent, group, topic)
	if len(msgs) != 1 {
		t.Fatalf("push receive got %d", len(msgs))
	}
	// No heartbeat for clients.expiryTimeout: the session expires and its
	// message is released well before its 60s invisible time would end.
	waitRedelivered(msgs[0].GetSystemProperties().GetMessageId(), 40*time.Second)
	if d := time.Since(start); d < cfg.Messaging.Clients.ExpiryTimeout {
		t.Fatalf("released after %v, before the session could expire", d)
	}
}
