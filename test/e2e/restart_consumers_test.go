package e2e_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
)

// TestConsumersResumeAfterKill9 kills rmqproxy under a simple consumer and a
// push consumer of the official Go client, restarts it on the same port and
// data directory, and checks that the same consumer objects receive again.
// The Go client re-sends its settings only on its five-minute sync, so the
// proxy must serve their receives before it has their settings. The resume
// times are logged, not asserted.
func TestConsumersResumeAfterKill9(t *testing.T) {
	waitsInParallel(t)
	dir := t.TempDir()
	c1 := testenv.StartChild(t, dir, append(fastConsumer, "--grpc.address="+freeport.Addr(t))...)
	topic := testenv.Name(t, "resume")
	createTopicVia(t, c1, topic, 2)
	p1 := c1.Proxy(t)
	pr := testenv.NewProducer(t, p1, topic)
	sc := testenv.NewSimpleConsumer(t, p1, testenv.Name(t, "g-resume-simple"), 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})

	var mu sync.Mutex
	pushed := map[string]time.Time{} // phase → first push delivery
	pc := testenv.StartPushConsumer(t, p1, testenv.Name(t, "g-resume-push"), topic, func(m *rmq.MessageView) rmq.ConsumerResult {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := pushed[m.GetProperties()["phase"]]; !ok {
			pushed[m.GetProperties()["phase"]] = time.Now()
		}
		return rmq.SUCCESS
	})
	t.Cleanup(func() { _ = pc.GracefulStop() })

	send := func(phase string) {
		t.Helper()
		testenv.WaitFor(t, 60*time.Second, func() error {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			m := &rmq.Message{Topic: topic, Body: []byte(phase)}
			m.AddProperty("phase", phase)
			_, err := pr.Send(ctx, m)
			return err
		})
	}
	// receivedBoth waits until both consumers got a message of phase and
	// returns when each got its first one.
	receivedBoth := func(phase string) (simple, push time.Time) {
		t.Helper()
		var lastErr error
		testenv.WaitFor(t, 90*time.Second, func() error {
			if simple.IsZero() {
				ms, err := sc.Receive(t.Context(), 16, 20*time.Second)
				if err != nil && !testenv.IsNoMessage(err) {
					lastErr = err
				}
				for _, m := range ms {
					_ = sc.Ack(t.Context(), m)
					if m.GetProperties()["phase"] == phase && simple.IsZero() {
						simple = time.Now()
					}
				}
			}
			mu.Lock()
			push = pushed[phase]
			mu.Unlock()
			if simple.IsZero() || push.IsZero() {
				return fmt.Errorf("phase %s: simple consumer received at %v, push consumer at %v; last receive error: %v", phase, simple, push, lastErr)
			}
			return nil
		})
		return simple, push
	}

	send("before")
	receivedBoth("before")

	c1.Kill(t)
	c2 := testenv.StartChild(t, dir, append(fastConsumer, "--grpc.address="+c1.GRPCAddr)...)
	serving := time.Now()
	if c2.GRPCAddr != c1.GRPCAddr {
		t.Fatalf("restarted on %s, not %s", c2.GRPCAddr, c1.GRPCAddr)
	}
	send("after")
	sent := time.Now()
	simple, push := receivedBoth("after")
	t.Logf("after the restart (serving at 0): message sent at %v, simple consumer received it at %v, push consumer at %v",
		sent.Sub(serving).Round(time.Millisecond), simple.Sub(serving).Round(time.Millisecond), push.Sub(serving).Round(time.Millisecond))
}
