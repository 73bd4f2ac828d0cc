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
	read, write, _ = brokerTopicConfig(t, addr, topic)
	return read, write
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
	// A topic read-only on one broker (`mqadmin updateTopicPerm -b`, to stop
	// its writes there) stays so after an update, each way round.
	for i, topic := range []string{testenv.Name(t, "perm-split-a"), testenv.Name(t, "perm-split-b")} {
		ro := brokers[i]
		for _, b := range brokers {
			createOnBroker(t, b.Addr, b.Name, topic, 4)
		}
		setOnBroker(t, ro, topic, 4, 4, remoting.PermRead)
		desc := "changed"
		if _, err := ac.UpdateTopic(t.Context(), application.TopicSpec{Name: topic, Description: &desc}); err != nil {
			t.Fatalf("update %s: %v", topic, err)
		}
		for _, b := range brokers {
			want := remoting.PermRead | remoting.PermWrite
			if b == ro {
				want = remoting.PermRead
			}
			if _, _, perm := brokerTopicConfig(t, b.Addr, topic); perm != want {
				t.Errorf("%s on broker %s after a description update: perm %d, want %d as the operator left it", topic, b.Name, perm, want)
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

// TestTopicUpdateKeepsABrokersDrain: an operator drains a topic's upper
// queues on a broker (`mqadmin updateTopic -w 4 -r 8`: no new messages in
// queues 4..7, which stay readable) and makes another topic read-only on
// it (`mqadmin updateTopicPerm -p 4`); `rmqproxy topic update` of the
// description must keep both, not open the drained queues and the
// read-only topic to producers again.
func TestTopicUpdateKeepsABrokersDrain(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, b := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	ac := p.Admin.(*admin.Client)
	drained, readOnly := testenv.Name(t, "drained-queues"), testenv.Name(t, "read-only-topic")
	for _, topic := range []string{drained, readOnly} {
		testenv.Claim(t, "topic", topic)
		if _, err := ac.CreateTopic(t.Context(), application.TopicSpec{Name: topic, QueueCount: 8}); err != nil {
			t.Fatal(err)
		}
	}
	setOnBroker(t, b, drained, 8, 4, remoting.PermRead|remoting.PermWrite)
	setOnBroker(t, b, readOnly, 8, 8, remoting.PermRead)
	desc := "changed"
	for _, topic := range []string{drained, readOnly} {
		if _, err := ac.UpdateTopic(t.Context(), application.TopicSpec{Name: topic, Description: &desc}); err != nil {
			t.Fatalf("update %s: %v", topic, err)
		}
	}
	if r, w, perm := brokerTopicConfig(t, b.Addr, drained); r != 8 || w != 4 || perm != remoting.PermRead|remoting.PermWrite {
		t.Errorf("%s after a description update: %d read and %d write queues, perm %d; want 8, 4, 6 as the operator left them", drained, r, w, perm)
	}
	if r, w, perm := brokerTopicConfig(t, b.Addr, readOnly); r != 8 || w != 8 || perm != remoting.PermRead {
		t.Errorf("%s after a description update: %d read and %d write queues, perm %d; want 8, 8, 4 (read-only) as the operator left them", readOnly, r, w, perm)
	}
}

// setOnBroker changes a topic's queue counts and permission on a broker,
// as `mqadmin updateTopic -b` does.
func setOnBroker(t *testing.T, b *testenv.ClusterBroker, topic string, read, write, perm int32) {
	t.Helper()
	rc := client.New(client.Config{})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := rc.Invoke(ctx, b.Addr, remoting.NewRequest(remoting.RequestUpdateAndCreateTopic, remoting.EncodeHeader(&remoting.CreateTopicRequestHeader{
		RPC: remoting.RPC{BrokerName: b.Name}, Topic: topic, DefaultTopic: "TBW102", ReadQueueNums: read, WriteQueueNums: write,
		Perm: perm, TopicFilterType: "SINGLE_TAG"}), nil))
	if err != nil || resp.Code != 0 {
		t.Fatalf("changing %s on %s: %v %v", topic, b.Name, resp, err)
	}
}

// brokerTopicConfig returns a broker's read and write queue counts and
// permission of a topic, asked straight.
func brokerTopicConfig(t *testing.T, addr, topic string) (read, write, perm int32) {
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
	return tc.ReadQueueNums, tc.WriteQueueNums, tc.Perm
}
