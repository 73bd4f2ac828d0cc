package cluster_test

import (
	"context"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestGroupOnOneOfTwoBrokersKeepsItsSettings puts rmqproxy in front of
// two masters, one of which has a consumer group (made on it alone, as
// `mqadmin updateSubGroup -b` does, or before the other broker joined
// the cluster): orderly, 3 delivery attempts. `rmqproxy group describe`
// showed it so, but a consumer was given the defaults (17 attempts, not
// FIFO) when the master rmqproxy asked first lacked the group: asked, a
// broker with autoCreateSubscriptionGroup (its default) makes the group
// with its defaults and answers them, and after that describe showed the
// defaults too. One group on each broker, so that whichever master is
// asked first, one group is only on the other.
func TestGroupOnOneOfTwoBrokersKeepsItsSettings(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokers(t, 2)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	p := testenv.Start(t, cfg)
	ac := p.Admin.(*admin.Client)
	topic := testenv.Name(t, "one-broker-group-orders")
	createOnBroker(t, brokers[0].Addr, brokers[0].Name, topic, 2)
	createOnBroker(t, brokers[1].Addr, brokers[1].Name, topic, 2)

	rc := client.New(client.Config{})
	defer rc.Close()
	for i, b := range brokers {
		group := testenv.Name(t, "one-broker-group-"+string(rune('a'+i)))
		testenv.Claim(t, "group", group)
		sg := remoting.NewSubscriptionGroupConfig(group)
		sg.RetryMaxTimes, sg.ConsumeMessageOrderly = 2, true
		body, err := remoting.EncodeJSONBody(sg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		resp, err := rc.Invoke(ctx, b.Addr, remoting.NewRequest(remoting.RequestUpdateAndCreateSubscriptiongroup,
			remoting.EncodeHeader(&remoting.RPCHeader{RPC: remoting.RPC{BrokerName: b.Name}}), body))
		cancel()
		if err != nil || resp.Code != 0 {
			t.Fatalf("creating %s on %s: %v %v", group, b.Name, resp, err)
		}

		g, err := ac.Group(t.Context(), group)
		if err != nil || g.MaxDeliveryAttempts != 3 || !g.Orderly {
			t.Fatalf("describe %s (on %s only): %+v %v, want 3 attempts, orderly", group, b.Name, g, err)
		}
		raw := testenv.NewRawClient(t, p)
		stream, err := raw.Telemetry(raw.Ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		ct := v2.ClientType_PUSH_CONSUMER
		if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
			ClientType: &ct, RequestTimeout: durationpb.New(3 * time.Second),
			PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: &v2.Resource{Name: group},
				Subscriptions: []*v2.SubscriptionEntry{{Topic: &v2.Resource{Name: topic}, Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}}}},
		}}}); err != nil {
			t.Fatal(err)
		}
		reply, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		s := reply.GetSettings()
		if s.GetBackoffPolicy().GetMaxAttempts() != 3 || !s.GetSubscription().GetFifo() {
			t.Errorf("settings for %s (on %s only, describe: 3 attempts, orderly): max attempts %d, fifo %v", group, b.Name,
				s.GetBackoffPolicy().GetMaxAttempts(), s.GetSubscription().GetFifo())
		}
		// Asked about the group, a master that lacked it made it with its
		// defaults (autoCreateSubscriptionGroup); describe still shows
		// the group as the operator made it.
		if g, err := ac.Group(t.Context(), group); err != nil || g.MaxDeliveryAttempts != 3 || !g.Orderly {
			t.Errorf("describe %s after a consumer came: %+v %v, want 3 attempts, orderly", group, g, err)
		}
	}
}
