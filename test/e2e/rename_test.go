package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
)

// TestAckAfterBrokerRename: a simple consumer of the official Go client
// receives a message, rmqproxy is killed and started again with
// local.brokerName renamed, and the consumer acks the message it holds. The
// ack was refused (INVALID_RECEIPT_HANDLE: the handle named the old broker)
// and the message, processed, came again after its invisible time; it is
// acked now, and a retry of that ack is answered OK too.
func TestAckAfterBrokerRename(t *testing.T) {
	waitsInParallel(t)
	dir := t.TempDir()
	addr := freeport.Addr(t)
	c1 := testenv.StartChild(t, dir, append(fastConsumer, "--grpc.address="+addr, "--local.brokerName=before")...)
	topic := testenv.Name(t, "rename")
	createTopicVia(t, c1, topic, 1)
	pr := testenv.NewProducer(t, c1.Proxy(t), topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	_ = pr.GracefulStop()
	sc := testenv.NewSimpleConsumer(t, c1.Proxy(t), testenv.Name(t, "g-rename"), time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	var held *rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := sc.Receive(t.Context(), 1, 10*time.Minute)
		if len(ms) == 1 {
			held = ms[0]
			return nil
		}
		return errors.Join(errors.New("no message yet"), err)
	})
	c1.Kill(t)
	testenv.StartChild(t, dir, append(fastConsumer, "--grpc.address="+addr, "--local.brokerName=after")...)
	testenv.WaitFor(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		err := sc.Ack(ctx, held)
		if err != nil && strings.Contains(err.Error(), "INVALID_RECEIPT_HANDLE") {
			t.Fatalf("ack after the rename: %v", err)
		}
		return err
	})
	// The consumer acks again (a retry after an answer it lost): answered
	// as a retried ack with a handle of the current name, OK, as a broker
	// answers; it was INVALID_RECEIPT_HANDLE "belongs to broker".
	if err := sc.Ack(t.Context(), held); err != nil {
		t.Fatalf("retried ack after the rename: %v", err)
	}
}

// TestPullAndOffsetsAfterBrokerRename: a pull consumer whose route is from
// before local.brokerName was renamed names the old broker until it reads
// the route again; its pulls and offset calls were BAD_REQUEST "query the
// route again". Local mode has one broker, and a name this data directory
// was started under is served as its own; a name it never had is still
// BAD_REQUEST, as in cluster mode (TestDifferentialAgainstApacheProxy's
// "pull/unknown broker" row).
func TestPullAndOffsetsAfterBrokerRename(t *testing.T) {
	testenv.LocalOnly(t, "it renames the embedded broker (local.brokerName)")
	waitsInParallel(t)
	dir := t.TempDir()
	addr := freeport.Addr(t)
	c1 := testenv.StartChild(t, dir, "--grpc.address="+addr, "--local.brokerName=before")
	topic, group := testenv.Name(t, "rename-pull"), testenv.Name(t, "g-rename-pull")
	createTopicVia(t, c1, topic, 1)
	raw := testenv.NewRawClient(t, c1.Proxy(t))
	for i := range 3 {
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte(fmt.Sprint("m", i)), "")}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatal(resp, err)
		}
	}
	c1.Kill(t)
	c2 := testenv.StartChild(t, dir, "--grpc.address="+addr, "--local.brokerName=after")
	raw = testenv.NewRawClient(t, c2.Proxy(t))
	res := &v2.Resource{Name: group}
	for _, b := range []struct {
		name string
		want v2.Code
	}{{"before", v2.Code_OK}, {"after", v2.Code_OK}, {"never-was", v2.Code_BAD_REQUEST}} {
		mq := &v2.MessageQueue{Topic: &v2.Resource{Name: topic}, Id: 0, Broker: &v2.Broker{Name: b.name}}
		stream, err := raw.PullMessage(raw.Ctx(t), &v2.PullMessageRequest{Group: res, MessageQueue: mq, Offset: 0, BatchSize: 8,
			FilterExpression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}})
		if err != nil {
			t.Fatal(err)
		}
		if st, msgs, _ := testenv.ReadPull(stream); st.GetCode() != b.want || (b.want == v2.Code_OK && len(msgs) != 3) {
			t.Errorf("pull naming broker %q: %v, %d messages; want %v", b.name, st, len(msgs), b.want)
		}
		up, err := raw.UpdateOffset(raw.Ctx(t), &v2.UpdateOffsetRequest{Group: res, MessageQueue: mq, Offset: 2})
		if err != nil || up.GetStatus().GetCode() != b.want {
			t.Errorf("offset commit naming broker %q: %v %v; want %v", b.name, up, err, b.want)
		}
		get, err := raw.GetOffset(raw.Ctx(t), &v2.GetOffsetRequest{Group: res, MessageQueue: mq})
		if err != nil || get.GetStatus().GetCode() != b.want || (b.want == v2.Code_OK && get.GetOffset() != 2) {
			t.Errorf("offset read naming broker %q: %v %v; want %v", b.name, get, err, b.want)
		}
		q, err := raw.QueryOffset(raw.Ctx(t), &v2.QueryOffsetRequest{MessageQueue: mq, QueryOffsetPolicy: v2.QueryOffsetPolicy_END})
		if err != nil || q.GetStatus().GetCode() != b.want || (b.want == v2.Code_OK && q.GetOffset() != 3) {
			t.Errorf("offset query naming broker %q: %v %v; want %v", b.name, q, err, b.want)
		}
	}
}
