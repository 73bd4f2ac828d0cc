package e2e_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

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
