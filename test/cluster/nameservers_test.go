package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
)

// TestTopicDeleteReachesEveryNameServer runs a broker registered with two
// NameServers (each keeps its own route table, as in any cluster with more
// than one): a topic deleted through rmqproxy is routed by neither
// afterwards. A NameServer keeps a deleted topic's route until it is told
// (a broker's later registrations do not remove it), so deleting it from
// only the first NameServer that answers left clients of the other one
// routed to brokers that no longer have the topic.
func TestTopicDeleteReachesEveryNameServer(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	ns := testenv.NameServer()
	second := rocketmqenv.StartNameServer(t)
	clusterName, topic := testenv.Name(t, "twons-cluster"), testenv.Name(t, "twons-orders")
	ns.AddBroker(t, rocketmqenv.Options{BrokerName: testenv.Name(t, "broker-twons"), ClusterName: clusterName,
		Extra: []string{"namesrvAddr=" + ns.NameServer + ";" + second.NameServer}})
	cfg.Cluster.NameServers = []string{ns.NameServer, second.NameServer}
	cfg.Cluster.ClusterName = clusterName
	p := testenv.Start(t, cfg)

	rc := client.New(client.Config{})
	defer rc.Close()
	routed := func(addr, topic string) (bool, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		resp, err := rc.Invoke(ctx, addr, remoting.NewRequest(remoting.RequestGetRouteinfoByTopic,
			remoting.EncodeHeader(&remoting.GetRouteInfoRequestHeader{Topic: topic}), nil))
		if err != nil {
			return false, err
		}
		switch remoting.ResponseCode(resp.Code) {
		case remoting.ResponseSuccess:
			return true, nil
		case remoting.ResponseTopicNotExist:
			return false, nil
		}
		return false, remoting.Expect(resp)
	}

	testenv.Claim(t, "topic", topic)
	if _, err := p.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal}); err != nil {
		t.Fatal(err)
	}
	for _, addr := range cfg.Cluster.NameServers {
		testenv.WaitFor(t, 30*time.Second, func() error {
			if ok, err := routed(addr, topic); !ok {
				return fmt.Errorf("NameServer %s does not route the new topic (%v)", addr, err)
			}
			return nil
		})
	}
	if code, out := testenv.CLI(t, "topic", "delete", topic, "--admin.address="+p.AdminAddr()); code != 0 {
		t.Fatalf("topic delete: exit %d:\n%s", code, out)
	}
	for _, addr := range cfg.Cluster.NameServers {
		if ok, err := routed(addr, topic); ok || err != nil {
			t.Errorf("NameServer %s still routes the deleted topic (%v)", addr, err)
		}
	}
}

// TestNameServerWithoutTheBrokerIsPassedOver runs rmqproxy with two
// NameServers, the first listed knowing no broker (as one restarted less
// than the brokers' 30 s registration interval ago) and the second knowing
// the broker. rmqproxy asked only the first NameServer that answered, so
// readiness failed ("no master broker") and every route lookup answered
// TOPIC_NOT_FOUND, although the second NameServer routed the topic; it
// asks the next NameServer when an answer lacks the route or the master.
func TestNameServerWithoutTheBrokerIsPassedOver(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	ns := testenv.NameServer()
	empty := rocketmqenv.StartNameServer(t) // no broker registers with it
	clusterName, topic := testenv.Name(t, "nsfb-cluster"), testenv.Name(t, "nsfb-orders")
	ns.AddBroker(t, rocketmqenv.Options{BrokerName: testenv.Name(t, "broker-nsfb"), ClusterName: clusterName})
	cfg.Cluster.NameServers = []string{empty.NameServer, ns.NameServer}
	cfg.Cluster.ClusterName = clusterName
	p := testenv.Start(t, cfg)

	testenv.WaitFor(t, 30*time.Second, func() error {
		if code, body := readyz(t, p.HealthAddr()); code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %s", code, body)
		}
		return nil
	})
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2) // returns once a NameServer routes it
	producer := testenv.NewProducer(t, p, topic)
	msg := &rmq.Message{Topic: topic, Body: []byte("routed by the second NameServer")}
	if _, err := producer.Send(t.Context(), msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	if code, body := readyz(t, p.HealthAddr()); code != http.StatusOK {
		t.Errorf("/readyz after the send: %d %s", code, body)
	}
}
