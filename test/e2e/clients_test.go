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

// TestUnlimitedBodySizeReachesProducers: messaging.limits.maxBodySize 0
// turns the proxy's body size check off, and the size pushed to producers
// in their settings (publishing.max_body_size, which the official clients
// check before sending) must not be 0 then: the Go client refused every
// message with a body client-side ("message body size exceeds the
// threshold, max size=0 bytes"). They get the largest request the proxy
// takes (grpc.maxRecvMessageSize).
func TestUnlimitedBodySizeReachesProducers(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Messaging.Limits.MaxBodySize = 0
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "unlimited-body")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("with a body")}); err != nil {
		t.Fatalf("send with messaging.limits.maxBodySize 0: %v", err)
	}
	raw := testenv.NewRawClient(t, p)
	stream, err := raw.Telemetry(raw.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ct := v2.ClientType_PRODUCER
	if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{ClientType: &ct,
		PubSub: &v2.Settings_Publishing{Publishing: &v2.Publishing{Topics: []*v2.Resource{{Name: topic}}}}}}}); err != nil {
		t.Fatal(err)
	}
	reply, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := reply.GetSettings().GetPublishing().GetMaxBodySize(), int32(cfg.GRPC.MaxRecvMessageSize); got != want {
		t.Fatalf("publishing.max_body_size %d, want %d (grpc.maxRecvMessageSize)", got, want)
	}
}
