package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestResetOffsetOnTheBroker: rmqproxy group reset (POST
// /v1/groups/{name}/reset) in cluster mode sends INVOKE_BROKER_TO_RESET_OFFSET
// to the 5.5.0 broker, which moves the pop group: reset to the beginning
// it gets the three messages it consumed again, reset to the end it skips
// a backlog of two; the answer names the broker and each queue's old
// offset (the broker's consumer offset) and new one, and the broker's
// consumer offset is the new one. A message in flight at a skip comes
// back after its invisible time (the broker does not reset what is in
// flight; local mode drops it: docs/compatibility.md). Unknown groups,
// topics and queues are refused as in local mode.
func TestResetOffsetOnTheBroker(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "reset-orders"), testenv.Name(t, "reset-group")
	testenv.Claim(t, "topic", topic)
	testenv.Claim(t, "group", group)
	if _, err := p.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Admin.CreateGroup(t.Context(), application.GroupSpec{Name: group}); err != nil {
		t.Fatal(err)
	}
	ac, err := admin.NewClient(p.AdminAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pr := testenv.NewProducer(t, p, topic)
	send := func(bodies ...string) {
		t.Helper()
		for _, b := range bodies {
			if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte(b)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	c := testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	brokerOffset := func() int64 {
		t.Helper()
		rc := client.New(client.Config{})
		defer rc.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		resp, err := rc.Invoke(ctx, broker.Addr, remoting.NewRequest(remoting.RequestGetConsumeStats,
			remoting.EncodeHeader(&remoting.GetConsumeStatsRequestHeader{ConsumerGroup: group, Topic: topic}), nil))
		if err == nil {
			err = remoting.Expect(resp)
		}
		if err != nil {
			t.Fatal(err)
		}
		var cs remoting.ConsumeStats
		if err := remoting.DecodeJSONBody(resp.Body, &cs); err != nil {
			t.Fatal(err)
		}
		for k, o := range cs.OffsetTable {
			if mq, _ := remoting.ParseMessageQueueKey(k); mq.Topic == topic && mq.QueueID == 0 {
				return o.ConsumerOffset
			}
		}
		t.Fatalf("the broker has no offset of %s on %s: %+v", group, topic, cs)
		return 0
	}

	send("a", "b", "c")
	if got := testenv.ReceiveBodies(t, c, 3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("first run: %v", got)
	}
	res, err := ac.ResetOffset(t.Context(), group, topic, -1, "earliest")
	if want := []admin.QueueReset{{Broker: broker.Name, QueueID: 0, OldOffset: 3, NewOffset: 0}}; err != nil || !slices.Equal(res.Queues, want) {
		t.Fatalf("reset to the beginning: %+v %v, want %+v", res, err, want)
	}
	if got := testenv.ReceiveBodies(t, c, 3); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after the reset to the beginning: %v", got)
	}

	send("d", "e")
	res, err = ac.ResetOffset(t.Context(), group, topic, 0, "latest")
	if want := []admin.QueueReset{{Broker: broker.Name, QueueID: 0, OldOffset: 3, NewOffset: 5}}; err != nil || !slices.Equal(res.Queues, want) {
		t.Fatalf("reset to the end: %+v %v, want %+v", res, err, want)
	}
	send("after")
	if got := testenv.ReceiveBodies(t, c, 1); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("after the skip: %v", got)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		if o := brokerOffset(); o != 6 {
			return fmt.Errorf("the broker's consumer offset is %d, want 6", o)
		}
		return nil
	})

	// A delivery in flight is not the broker's offset: a skip past it
	// leaves it to its invisible time, after which the broker revives it
	// (into the group's pop retry topic) and delivers it again.
	send("inflight")
	if m := testenv.ReceiveFirst(t, c, time.Minute, 2*time.Second); string(m.GetBody()) != "inflight" {
		t.Fatalf("received %s", m.GetBody())
	}
	if _, err := ac.ResetOffset(t.Context(), group, topic, -1, "latest"); err != nil {
		t.Fatal(err)
	}
	if got := testenv.ReceiveBodies(t, c, 1); !slices.Equal(got, []string{"inflight"}) {
		t.Fatalf("after a skip past a delivery in flight: %v", got)
	}

	for _, tc := range []struct {
		group, topic string
		queue        int32
		want         domain.Reason
	}{
		{testenv.Name(t, "reset-nogroup"), topic, -1, domain.ReasonConsumerGroupNotFound},
		{group, testenv.Name(t, "reset-notopic"), -1, domain.ReasonTopicNotFound},
		{group, topic, 1, domain.ReasonBadRequest},
	} {
		_, err := ac.ResetOffset(t.Context(), tc.group, tc.topic, tc.queue, "1h")
		if !domain.HasReason(err, tc.want) {
			t.Errorf("reset of %s on %s#%d: %v, want %v", tc.group, tc.topic, tc.queue, err, tc.want)
		}
	}
}
