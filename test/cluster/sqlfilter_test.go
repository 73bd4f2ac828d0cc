package cluster_test

import (
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestSQL92FilterIsTheBrokers subscribes with a SQL92 expression that
// names a property the broker stores with every message (CLUSTER, its
// cluster name) but rmqproxy does not show to consumers. The broker
// evaluates the expression and delivers the matching message, as it does
// through the Apache proxy; rmqproxy used to evaluate it again on what it
// shows of the message, found no CLUSTER, and acked the message as "not
// for this subscription": it was lost to the group.
func TestSQL92FilterIsTheBrokers(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "sql-broker"), testenv.Name(t, "g-sql-broker")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pr := testenv.NewProducer(t, p, topic)
	send := func(region string) string {
		m := &rmq.Message{Topic: topic, Body: []byte(region)}
		m.AddProperty("region", region)
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		return r[0].MessageID
	}
	send("us")
	want := send("eu")
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{
		topic: rmq.NewFilterExpressionWithType("CLUSTER IS NOT NULL AND region = 'eu'", rmq.SQL92)})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		msgs, _ := c.Receive(t.Context(), 16, 20*time.Second)
		for _, m := range msgs {
			if m.GetMessageId() != want {
				t.Fatalf("received %s (properties %v), which the filter does not match", m.GetMessageId(), m.GetProperties())
			}
			if err := c.Ack(t.Context(), m); err != nil {
				t.Fatalf("ack: %v", err)
			}
			return
		}
	}
	t.Fatalf("the message matching the filter (%s) was not delivered within 20 s", want)
}
