package cluster_test

import (
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestSQL92WithoutThePropertyFilterOfTheBroker runs rmqproxy in front of
// a broker with enablePropertyFilter=false (a RocketMQ broker's default).
// Such a broker still evaluates SQL92 filters in a pop, so a consumer's
// SQL92 subscription is served: it receives the matching message only. A
// pull with a SQL92 filter it refuses (SYSTEM_ERROR "The broker does not
// support consumer to filter message by SQL92"), which reached the client
// as INTERNAL_SERVER_ERROR, a fault of the server that clients retry; it
// is NOT_IMPLEMENTED naming the broker setting that serves it.
func TestSQL92WithoutThePropertyFilterOfTheBroker(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokersWith(t, 1, "enablePropertyFilter=false")
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "no-property-filter"), testenv.Name(t, "g-no-property-filter")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pr := testenv.NewProducer(t, p, topic)
	var want string
	for _, region := range []string{"us", "eu"} {
		m := &rmq.Message{Topic: topic, Body: []byte(region)}
		m.AddProperty("region", region)
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		want = r[0].MessageID
	}
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{
		topic: rmq.NewFilterExpressionWithType("region = 'eu'", rmq.SQL92)})
	got := testenv.ReceiveFirst(t, c, 30*time.Second, 20*time.Second)
	if got.GetMessageId() != want {
		t.Fatalf("received %s (properties %v), which the filter does not match", got.GetMessageId(), got.GetProperties())
	}
	if err := c.Ack(t.Context(), got); err != nil {
		t.Fatal(err)
	}

	raw := testenv.NewRawClient(t, p)
	route, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
	if err != nil || len(route.GetMessageQueues()) == 0 {
		t.Fatalf("route: %v %v", route, err)
	}
	mq := &v2.MessageQueue{Topic: &v2.Resource{Name: topic}, Id: 0, Broker: &v2.Broker{Name: route.GetMessageQueues()[0].GetBroker().GetName()}}
	stream, err := raw.PullMessage(raw.Ctx(t), &v2.PullMessageRequest{Group: &v2.Resource{Name: group}, MessageQueue: mq, Offset: 0, BatchSize: 8,
		FilterExpression: &v2.FilterExpression{Type: v2.FilterType_SQL, Expression: "region = 'eu'"}, LongPollingTimeout: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	st, pulled, _ := testenv.ReadPull(stream)
	if st.GetCode() != v2.Code_NOT_IMPLEMENTED || !strings.Contains(st.GetMessage(), "enablePropertyFilter") || len(pulled) != 0 {
		t.Fatalf("SQL92 pull from a broker without enablePropertyFilter: %v, %d messages; want NOT_IMPLEMENTED naming enablePropertyFilter", st, len(pulled))
	}
}
