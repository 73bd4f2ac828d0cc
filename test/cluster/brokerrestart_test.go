package cluster_test

import (
	"context"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestReceiveOutlivesARealBrokerRestart: a long-polling receive whose
// broker is killed (its connection closes unanswered) and restarted
// within the receive's polling time was answered TOO_MANY_REQUESTS at the
// kill, and every receive after it too, at once, until the broker was back:
// the push consumers receive again within 20 ms after such an answer, an
// error line each time. The receive now waits for the broker and gets the
// message sent once the broker is back, without an error.
func TestReceiveOutlivesARealBrokerRestart(t *testing.T) {
	brokers := testenv.AddClusterBrokers(t, 1)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	cfg.Messaging.Consumer.MaxLongPolling = 3 * time.Minute
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "restart-orders"), testenv.Name(t, "restart-group")
	createTopicAndGroup(t, p, topic, group)
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	raw.ReceiveAnswered(t, testenv.ReceiveRequest(group, topic, 1, time.Minute)) // the proxy has read the topic's route

	type answer struct {
		st   *v2.Status
		msgs []*v2.Message
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(raw.WithHeaders(t.Context()), 3*time.Minute+5*time.Second)
		defer cancel()
		req := testenv.ReceiveRequest(group, topic, 1, time.Minute)
		req.LongPollingTimeout = durationpb.New(3 * time.Minute)
		st, msgs, err := raw.ReceiveWith(ctx, req)
		done <- answer{st, msgs, err}
	}()
	if err := brokers[0].Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done: // before the fix: TOO_MANY_REQUESTS at the kill
		t.Fatalf("the receive ended while its broker was down: %v, %d messages, %v", a.st, len(a.msgs), a.err)
	default:
	}
	if err := brokers[0].Restart(); err != nil {
		t.Fatal(err)
	}
	raw.SendN(t, topic, 1)
	a := <-done
	if a.err != nil || a.st.GetCode() != v2.Code_OK || len(a.msgs) != 1 {
		t.Fatalf("a receive across a broker restart: %v, %d messages, %v; want the message sent after the restart", a.st, len(a.msgs), a.err)
	}
}
