package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestRegistrationsStayOnOneConnection: a broker keeps a client's group
// registrations per connection, UNREGISTER_CLIENT clears them from the
// connection it arrives on only, and a registration not renewed within
// 120 s makes the broker close its connection, failing every request in
// flight on it (CI saw a simple consumer's receive fail that way, two
// minutes after other tests' clients had gone). rmqproxy keeps its
// registrations on one connection per broker: with traffic spread over its
// connections and a heartbeat every 200 ms, the broker lists the proxy at
// one address for a consumer group and a producer group, and once the
// clients are gone, at none.
func TestRegistrationsStayOnOneConnection(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	cfg.Cluster.HeartbeatInterval = 200 * time.Millisecond
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "registrations"), testenv.Name(t, "g-registrations")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 4)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	producer := testenv.NewProducer(t, p, topic)
	consumer := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	bc := newBrokerClient(t, broker.Addr)
	addrs := func(code remoting.RequestCode, h remoting.Header) ([]string, error) {
		resp := bc.do(code, h)
		if resp.Code != int32(remoting.ResponseSuccess) {
			return nil, nil // the broker has no client of the group
		}
		var list struct {
			ConnectionSet []struct {
				ClientAddr string `json:"clientAddr"`
			} `json:"connectionSet"`
		}
		if err := remoting.DecodeJSONBody(resp.Body, &list); err != nil {
			return nil, fmt.Errorf("%v: %s", err, resp.Body)
		}
		var out []string
		for _, c := range list.ConnectionSet {
			out = append(out, c.ClientAddr)
		}
		return out, nil
	}
	registered := func() (consumers, producers []string) {
		t.Helper()
		consumers, err := addrs(remoting.RequestGetConsumerConnectionList, &remoting.ConsumerGroupRequestHeader{ConsumerGroup: group})
		if err != nil {
			t.Fatal(err)
		}
		producers, err = addrs(remoting.RequestGetProducerConnectionList, producerGroupHeader(topic))
		if err != nil {
			t.Fatal(err)
		}
		return consumers, producers
	}

	// 3 s of concurrent sends and receives (both connections of the pool
	// in use) while heartbeats go every 200 ms; the broker's lists are
	// read all along.
	ctx, stop := context.WithTimeout(t.Context(), 3*time.Second)
	defer stop()
	// over: the window ended. A send cut by it can fail with the proxy's
	// DEADLINE_EXCEEDED, which on a loaded machine arrives before the
	// client's own timer has marked ctx done (CI saw it).
	deadline, _ := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || time.Until(deadline) < 100*time.Millisecond }
	var wg sync.WaitGroup
	var sendErr error
	var once sync.Once
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := producer.Send(ctx, &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil && !over() {
					once.Do(func() { sendErr = err })
					return
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			ms, _ := consumer.Receive(ctx, 32, 20*time.Second)
			for _, m := range ms {
				_ = consumer.Ack(ctx, m)
			}
		}
	})
	var seenConsumer, seenProducer bool
	for ctx.Err() == nil {
		consumers, producers := registered()
		if len(consumers) > 1 || len(producers) > 1 {
			stop()
			wg.Wait()
			t.Fatalf("the broker lists the proxy at several connections: consumer group %v, producer group %v", consumers, producers)
		}
		seenConsumer = seenConsumer || len(consumers) == 1
		seenProducer = seenProducer || len(producers) == 1
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // the next reading of the broker's lists
		}
	}
	wg.Wait()
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	if !seenConsumer || !seenProducer {
		t.Fatalf("the broker never listed the proxy: consumer group %v, producer group %v", seenConsumer, seenProducer)
	}

	// The clients go: the proxy unregisters both groups, and no
	// registration is left behind to expire.
	if err := consumer.GracefulStop(); err != nil {
		t.Fatal(err)
	}
	if err := producer.GracefulStop(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, func() error {
		if consumers, producers := registered(); len(consumers)+len(producers) > 0 {
			return fmt.Errorf("the broker still lists the proxy: consumer group at %v, producer group at %v", consumers, producers)
		}
		return nil
	})
}

// producerGroupHeader is the header of GET_PRODUCER_CONNECTION_LIST, its
// one field producerGroup (GET_CONSUMER_CONNECTION_LIST's is
// remoting.ConsumerGroupRequestHeader).
type producerGroupHeader string

func (h producerGroupHeader) AppendFields(dst remoting.Fields) remoting.Fields {
	return append(dst, remoting.Field{Key: "producerGroup", Value: string(h)})
}

func (h producerGroupHeader) DecodeFields(remoting.Fields) error { return nil }

// TestGroupLeftWithoutSubscriptionsIsUnregistered: a consumer whose
// settings drop its last subscription (the Go client's Unsubscribe, sent
// with its next settings sync) leaves its group out of the proxy's
// heartbeat (a broker replaces a group's subscriptions with a heartbeat's
// set). The group must be unregistered then: left to expire, the broker
// lists the proxy in the group for two more minutes and then closes the
// connection it registered on, failing every request in flight there.
func TestGroupLeftWithoutSubscriptionsIsUnregistered(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	cfg.Cluster.HeartbeatInterval = 200 * time.Millisecond
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "unsubscribed"), testenv.Name(t, "g-unsubscribed")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	bc := newBrokerClient(t, broker.Addr)
	listed := func() bool {
		return bc.do(remoting.RequestGetConsumerConnectionList, &remoting.ConsumerGroupRequestHeader{ConsumerGroup: group}).Code ==
			int32(remoting.ResponseSuccess)
	}
	c := testenv.NewRawClient(t, p)
	testenv.Claim(t, "consumer group", group)
	stream, err := c.Telemetry(c.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	testenv.SendSettings(t, stream, v2.ClientType_SIMPLE_CONSUMER, group, topic)
	testenv.WaitFor(t, 15*time.Second, func() error {
		if !listed() {
			return fmt.Errorf("the broker does not list the proxy in group %s", group)
		}
		return nil
	})
	ct := v2.ClientType_SIMPLE_CONSUMER
	if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType: &ct, RequestTimeout: durationpb.New(3 * time.Second),
		PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: &v2.Resource{Name: group}}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if reply, err := stream.Recv(); err != nil || reply.GetSettings() == nil {
		t.Fatalf("settings reply: %v %v", reply, err)
	}
	testenv.WaitFor(t, 15*time.Second, func() error {
		if listed() {
			return fmt.Errorf("the broker still lists the proxy in group %s, whose one consumer subscribes to nothing now", group)
		}
		return nil
	})
}
