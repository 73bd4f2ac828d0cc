package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestTwoProxiesShareHandlesAndTransactions puts two rmqproxy instances in
// front of the same broker: a message received through one is acked
// through the other, an invisible-time change through one is followed by
// an ack through the other with the new handle, and a transaction sent
// through one is committed through the other. Nothing is delivered twice.
func TestTwoProxiesShareHandlesAndTransactions(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	a := testenv.Start(t, cfg)
	b := testenv.Start(t, cfg)
	topic, txTopic := testenv.Name(t, "shared"), testenv.Name(t, "shared-tx")
	group, txGroup := testenv.Name(t, "g-shared"), testenv.Name(t, "g-shared-tx")
	a.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	a.CreateTopic(t, txTopic, domain.MessageTypeTransaction, 1)
	rawA, rawB := testenv.NewRawClient(t, a), testenv.NewRawClient(t, b)

	sent := map[string]bool{}
	for i := range 4 {
		resp, err := rawA.SendMessage(rawA.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte(fmt.Sprint("m", i)), "")}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send: %v %v", resp, err)
		}
		sent[resp.GetEntries()[0].GetMessageId()] = true
	}
	rawA.Subscribe(t, group, topic)
	rawB.Subscribe(t, group, topic)
	var got []*v2.Message
	testenv.WaitFor(t, 30*time.Second, func() error {
		st, msgs := rawA.Receive(t, testenv.ReceiveRequest(group, topic, 16, 30*time.Second))
		got = append(got, msgs...)
		if len(got) < 4 {
			return fmt.Errorf("received %d of 4 through A (%v)", len(got), st)
		}
		return nil
	})
	for _, m := range got {
		if !sent[m.GetSystemProperties().GetMessageId()] {
			t.Fatalf("unexpected message %s", m.GetSystemProperties().GetMessageId())
		}
	}
	// Message 0: its invisible time changed through B, then acked through A
	// with the handle B returned.
	first := got[0]
	ch, err := rawB.ChangeInvisibleDuration(rawB.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
		Topic: &v2.Resource{Name: topic}, ReceiptHandle: first.GetSystemProperties().GetReceiptHandle(),
		InvisibleDuration: durationpb.New(40 * time.Second), MessageId: first.GetSystemProperties().GetMessageId()})
	if err != nil || ch.GetStatus().GetCode() != v2.Code_OK || ch.GetReceiptHandle() == first.GetSystemProperties().GetReceiptHandle() {
		t.Fatalf("change invisible through B: %v %v", ch, err)
	}
	first.SystemProperties.ReceiptHandle = &ch.ReceiptHandle
	if ack, err := rawA.AckMessage(rawA.Ctx(t), testenv.AckRequest(group, topic, got[:1])); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack through A with B's handle: %v %v", ack, err)
	}
	// The others: received through A, acked through B.
	if ack, err := rawB.AckMessage(rawB.Ctx(t), testenv.AckRequest(group, topic, got[1:])); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack through B: %v %v", ack, err)
	}
	// The invisible times were 30 s and 40 s: nothing acked comes back
	// within them, through either proxy.
	for _, raw := range []*testenv.RawClient{rawA, rawB} {
		if msgs := raw.ReceiveAnswered(t, testenv.ReceiveRequest(group, topic, 16, 30*time.Second)); len(msgs) != 0 {
			t.Fatalf("an acked message was delivered again: %s", msgs[0].GetSystemProperties().GetMessageId())
		}
	}

	// A transaction sent through A is committed through B.
	pr, err := rmq.NewProducer(a.ClientConfig(""), rmq.WithTopics(txTopic),
		rmq.WithTransactionChecker(&rmq.TransactionChecker{Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.UNKNOWN }}))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	defer pr.GracefulStop()
	tx := pr.BeginTransaction()
	r, err := pr.SendWithTransaction(t.Context(), &rmq.Message{Topic: txTopic, Body: []byte("tx")}, tx)
	if err != nil {
		t.Fatal(err)
	}
	end, err := rawB.EndTransaction(rawB.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: txTopic},
		MessageId: r[0].MessageID, TransactionId: r[0].TransactionId, Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT})
	if err != nil || end.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("commit through B: %v %v", end, err)
	}
	c := testenv.NewSimpleConsumer(t, b, txGroup, time.Second, map[string]*rmq.FilterExpression{txTopic: rmq.SUB_ALL})
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 16, 20*time.Second)
		for _, m := range ms {
			if m.GetMessageId() == r[0].MessageID {
				return nil
			}
		}
		return fmt.Errorf("the transaction committed through B is not delivered yet (%v)", err)
	})
	// A transaction id rmqproxy did not issue is refused precisely.
	bad, err := rawB.EndTransaction(rawB.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: txTopic},
		MessageId: r[0].MessageID, TransactionId: r[0].MessageID, Resolution: v2.TransactionResolution_COMMIT})
	if err != nil || bad.GetStatus().GetCode() != v2.Code_INVALID_TRANSACTION_ID {
		t.Fatalf("foreign transaction id: %v %v", bad, err)
	}
}

// TestStartFailsClearlyWithoutNameServer: with no NameServer answering,
// rmqproxy in cluster mode exits at start with a message naming the
// addresses and the setting.
func TestStartFailsClearlyWithoutNameServer(t *testing.T) {
	t.Parallel() // see TestMain
	if testenv.NameServer() == nil {
		testenv.ClusterConfig(t) // skips, or fails when services are required
	}
	c := testenv.StartChildNoWait(t, t.TempDir(), "--mode=cluster", "--cluster.nameServers=127.0.0.1:1", "--cluster.startTimeout=1s")
	code, logs := c.ExitedWith(t)
	if code == 0 || !strings.Contains(logs, "no NameServer of cluster.nameServers [127.0.0.1:1] answered within 1s") {
		t.Fatalf("exit %d, logs:\n%s", code, logs)
	}
}

// TestReadinessFollowsTheCluster: rmqproxy starts once a NameServer answers
// but is not ready while its cluster has no master broker; it becomes
// ready when one registers. Admin commands then create topics on it with
// their message type.
func TestReadinessFollowsTheCluster(t *testing.T) {
	t.Parallel() // see TestMain
	if testenv.NameServer() == nil {
		testenv.ClusterConfig(t)
	}
	ns := testenv.NameServer()
	clusterName, brokerName := testenv.Name(t, "ready-cluster"), testenv.Name(t, "ready-broker")
	topic, group := testenv.Name(t, "typed"), testenv.Name(t, "g-orderly")
	c := testenv.StartChild(t, t.TempDir(), "--mode=cluster", "--cluster.nameServers="+ns.NameServer, "--cluster.clusterName="+clusterName)
	code, body := readyz(t, c.HealthAddr)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"cluster"`) || !strings.Contains(body, clusterName) {
		t.Fatalf("/readyz without a broker: %d %s", code, body)
	}
	broker := ns.AddBroker(t, rocketmqenv.Options{BrokerName: brokerName, ClusterName: clusterName})
	testenv.WaitFor(t, 30*time.Second, func() error {
		if code, body := readyz(t, c.HealthAddr); code != http.StatusOK {
			return fmt.Errorf("/readyz with a broker: %d %s", code, body)
		}
		return nil
	})

	// topic create through the CLI lands on the broker with message.type.
	if code, out := testenv.CLI(t, "topic", "create", topic, "--type", "FIFO", "--queues", "3", "--admin.address="+c.AdminAddr); code != 0 {
		t.Fatalf("topic create: %d %s", code, out)
	}
	rc := client.New(client.Config{})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := rc.Invoke(ctx, broker.Addr, remoting.NewRequest(remoting.RequestGetTopicConfig,
		remoting.EncodeHeader(&remoting.TopicRequestHeader{Topic: topic}), nil))
	if err != nil || remoting.Expect(resp) != nil {
		t.Fatalf("GET_TOPIC_CONFIG: %v %+v", err, resp)
	}
	var tc remoting.TopicConfig
	if err := remoting.DecodeJSONBody(resp.Body, &tc); err != nil {
		t.Fatal(err)
	}
	if tc.Attributes[remoting.TopicAttributeMessageType] != "FIFO" || tc.WriteQueueNums != 3 || !tc.Order {
		t.Fatalf("topic config on the broker: %+v", tc)
	}
	if code, out := testenv.CLI(t, "topic", "create", topic, "--admin.address="+c.AdminAddr); code == 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("creating it again: %d %s", code, out)
	}
	if code, out := testenv.CLI(t, "group", "create", group, "--orderly", "--maxDeliveryAttempts", "4", "--admin.address="+c.AdminAddr); code != 0 {
		t.Fatalf("group create: %d %s", code, out)
	}
	resp, err = rc.Invoke(ctx, broker.Addr, remoting.NewRequest(remoting.RequestGetSubscriptiongroupConfig,
		remoting.EncodeHeader(&remoting.GetSubscriptionGroupConfigRequestHeader{Group: group}), nil))
	if err != nil || remoting.Expect(resp) != nil {
		t.Fatalf("GET_SUBSCRIPTIONGROUP_CONFIG: %v %+v", err, resp)
	}
	var sg remoting.SubscriptionGroupConfig
	if err := remoting.DecodeJSONBody(resp.Body, &sg); err != nil {
		t.Fatal(err)
	}
	if !sg.ConsumeMessageOrderly || sg.RetryMaxTimes != 3 {
		t.Fatalf("group config on the broker: %+v", sg)
	}
	if code, out := testenv.CLI(t, "group", "describe", group, "--json", "--admin.address="+c.AdminAddr); code != 0 || !strings.Contains(out, `"orderly": true`) {
		t.Fatalf("group describe: %d %s", code, out)
	}
	if code, out := testenv.CLI(t, "topic", "delete", topic, "--admin.address="+c.AdminAddr); code != 0 {
		t.Fatalf("topic delete: %d %s", code, out)
	}
	if code, out := testenv.CLI(t, "topic", "describe", topic, "--admin.address="+c.AdminAddr); code == 0 || !strings.Contains(out, "does not exist") {
		t.Fatalf("describe after delete: %d %s", code, out)
	}
}

func readyz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var rep struct{ Status string }
	_ = json.Unmarshal(b, &rep)
	return resp.StatusCode, string(b)
}
