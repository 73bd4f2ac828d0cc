package cluster_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestConsumerRunningInfoThroughTheBroker asks the broker, as mqadmin
// consumerStatus does, for the running info of a group whose consumer (the
// official Go client) is connected through rmqproxy: the broker lists the
// proxy as the group's client (GET_CONSUMER_LIST_BY_GROUP) and relays
// GET_CONSUMER_RUNNING_INFO to it; the proxy answers with the group's
// subscription and client version and, with jstackEnable, the client's
// goroutine dump, which it asked for over the client's Telemetry stream.
func TestConsumerRunningInfoThroughTheBroker(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "running-info"), testenv.Name(t, "g-running-info")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{
		topic: rmq.NewFilterExpression("TagA||TagB")})

	bc := newBrokerClient(t, broker.Addr)
	proxyID := bc.groupClient(group) // the proxy alone
	for _, jstack := range []bool{false, true} {
		resp := bc.do(remoting.RequestGetConsumerRunningInfo, &remoting.GetConsumerRunningInfoRequestHeader{
			ConsumerGroup: group, ClientID: proxyID, JstackEnable: jstack})
		if resp.Code != int32(remoting.ResponseSuccess) {
			t.Fatalf("jstack %v: code %d %s", jstack, resp.Code, resp.Remark)
		}
		var info remoting.ConsumerRunningInfo
		if err := remoting.DecodeJSONBody(resp.Body, &info); err != nil {
			t.Fatalf("jstack %v: %v: %s", jstack, err, resp.Body)
		}
		if info.Properties[remoting.RunningInfoConsumeType] != "CONSUME_POP" || info.Properties[remoting.RunningInfoClientVersion] != "GO 5.1.4" ||
			len(info.SubscriptionSet) != 1 || info.SubscriptionSet[0].Topic != topic ||
			!slices.Equal(info.SubscriptionSet[0].TagsSet, []string{"TagA", "TagB"}) {
			t.Fatalf("jstack %v: running info %+v", jstack, info)
		}
		if got := strings.Contains(info.JStack, "goroutine "); got != jstack {
			t.Fatalf("jstack %v: stacks in the answer: %v\n%.1000s", jstack, got, info.JStack)
		}
	}
}
