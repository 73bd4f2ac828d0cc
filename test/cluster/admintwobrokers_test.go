package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// brokerTopicQueues returns a broker's read and write queue counts of a
// topic (0, 0 when it has none), asked straight.
func brokerTopicQueues(t *testing.T, addr, topic string) (read, write int32) {
	t.Helper()
	rc := client.New(client.Config{})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := rc.Invoke(ctx, addr, remoting.NewRequest(remoting.RequestGetAllTopicConfig, nil, nil))
	if err != nil || resp.Code != 0 {
		t.Fatalf("the broker's topics: %v %v", resp, err)
	}
	var w remoting.TopicConfigWrapper
	if err := remoting.DecodeJSONBody(resp.Body, &w); err != nil {
		t.Fatal(err)
	}
	tc := w.TopicConfigTable[topic]
	return tc.ReadQueueNums, tc.WriteQueueNums
}

// createOnBroker creates a topic on one broker only, with its own queue
// count, as `mqadmin updateTopic -b` does.
func createOnBroker(t *testing.T, addr, brokerName, topic string, queues int32) {
	t.Helper()
	rc := client.New(client.Config{})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := rc.Invoke(ctx, addr, remoting.NewRequest(remoting.RequestUpdateAndCreateTopic, remoting.EncodeHeader(&remoting.CreateTopicRequestHeader{
		RPC: remoting.RPC{BrokerName: brokerName}, Topic: topic, DefaultTopic: "TBW102", ReadQueueNums: queues, WriteQueueNums: queues,
		Perm: remoting.PermRead | remoting.PermWrite, TopicFilterType: "SINGLE_TAG",
		Attributes: remoting.FormatAttributes(map[string]string{remoting.TopicAttributeMessageType: "NORMAL"})}), nil))
	if err != nil || resp.Code != 0 {
		t.Fatalf("creating %s on %s: %v %v", topic, brokerName, resp, err)
	}
}

// TestTopicOnTwoBrokersWithDifferentQueueCounts puts rmqproxy in front of
// two masters that have one topic with different queue counts (made with
// `mqadmin updateTopic -b` per broker). list and describe show the larger
// count (what the topic has: clients are routed to every queue), and an
// update that changes only the description, or asks for a count between
// the two, must not take queues away from the broker that has more: the
// messages in them would become unreachable, which is what "the queue
// count can only grow" guards against.
func TestTopicOnTwoBrokersWithDifferentQueueCounts(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokers(t, 2)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	p := testenv.Start(t, cfg)
	ac := p.Admin.(*admin.Client)

	// One topic each way round, so that whichever master the proxy asks
	// first, one of them has the larger count on the other.
	up, down := testenv.Name(t, "uneven-up"), testenv.Name(t, "uneven-down")
	createOnBroker(t, brokers[0].Addr, brokers[0].Name, up, 2)
	createOnBroker(t, brokers[1].Addr, brokers[1].Name, up, 6)
	createOnBroker(t, brokers[0].Addr, brokers[0].Name, down, 6)
	createOnBroker(t, brokers[1].Addr, brokers[1].Name, down, 2)
	for _, topic := range []string{up, down} {
		tp, err := ac.Topic(t.Context(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if tp.QueueCount != 6 {
			t.Errorf("describe %s: %d queues, want 6 (the larger broker's)", topic, tp.QueueCount)
		}
		desc := "changed"
		if _, err := ac.UpdateTopic(t.Context(), application.TopicSpec{Name: topic, Description: &desc}); err != nil {
			t.Fatalf("update %s: %v", topic, err)
		}
		for _, b := range brokers {
			r, w := brokerTopicQueues(t, b.Addr, topic)
			if r < 6 || w < 6 {
				t.Errorf("after a description update of %s, broker %s has %d read and %d write queues, want 6 (the topic's count; a broker that had 6 lost queues)", topic, b.Name, r, w)
			}
		}
	}
	// Asking for a count between the two is shrinking the larger.
	mid := testenv.Name(t, "uneven-mid")
	createOnBroker(t, brokers[0].Addr, brokers[0].Name, mid, 2)
	createOnBroker(t, brokers[1].Addr, brokers[1].Name, mid, 6)
	_, err := ac.UpdateTopic(t.Context(), application.TopicSpec{Name: mid, QueueCount: 4})
	r, w := brokerTopicQueues(t, brokers[1].Addr, mid)
	if r != 6 || w != 6 {
		t.Errorf("update %s to 4 queues (%v): broker %s had 6 queues, now %d read and %d write", mid, err, brokers[1].Name, r, w)
	}
	if err == nil {
		t.Errorf("update %s to 4 queues while a broker has 6: no error", mid)
	}
}
