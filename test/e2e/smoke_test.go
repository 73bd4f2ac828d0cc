package e2e_test

import (
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/domain"
)

func TestSmokeSendReceiveAck(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "smoke"), testenv.Name(t, "g-smoke")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 4)
	pr := testenv.NewProducer(t, p, topic)
	msg := &rmq.Message{Topic: topic, Body: []byte("hello")}
	msg.SetTag("a")
	r, err := pr.Send(t.Context(), msg)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	t.Logf("sent %s", r[0].MessageID)
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	var got []*rmq.MessageView
	testenv.WaitFor(t, 20*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 16, 10*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		got = append(got, ms...)
		if len(got) == 0 {
			return err
		}
		return nil
	})
	if string(got[0].GetBody()) != "hello" || got[0].GetMessageId() != r[0].MessageID {
		t.Fatalf("got %q id %s", got[0].GetBody(), got[0].GetMessageId())
	}
	if err := c.Ack(t.Context(), got[0]); err != nil {
		t.Fatalf("ack: %v", err)
	}
}
