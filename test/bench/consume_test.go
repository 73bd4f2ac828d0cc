package bench_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// preload sends n 1 KiB messages with 64 concurrent senders; group(i)
// returns the message group of message i ("" for none).
func preload(b *testing.B, pr rmq.Producer, topic string, n int, group func(int) string) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				m := &rmq.Message{Topic: topic, Body: body1KiB}
				if g := group(int(i)); g != "" {
					m.SetMessageGroup(g)
				}
				if _, err := pr.Send(b.Context(), m); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// consumeAll runs a push consumer until it has processed n messages and
// returns the messages per second it achieved.
func consumeAll(b *testing.B, p *testenv.Proxy, group, topic string, n int) float64 {
	b.Helper()
	var done atomic.Int64
	finished := make(chan struct{})
	start := time.Now()
	pc, err := rmq.NewPushConsumer(p.ClientConfig(group),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}),
		rmq.WithPushConsumptionThreadCount(32),
		rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: func(*rmq.MessageView) rmq.ConsumerResult {
			if done.Add(1) == int64(n) {
				close(finished)
			}
			return rmq.SUCCESS
		}}))
	if err != nil {
		b.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		b.Fatal(err)
	}
	defer pc.GracefulStop()
	select {
	case <-finished:
	case <-time.After(10 * time.Minute):
		b.Fatalf("consumed %d of %d in 10 minutes", done.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkConsumePushAck measures how fast a push consumer drains a
// backlog of 1 KiB messages: pop, delivery, and one durable ack per message.
// The consumer's start-up (about a second) is included.
func BenchmarkConsumePushAck(b *testing.B) {
	p := testenv.Start(b, testenv.Config(b))
	p.CreateTopic(b, "drain", domain.MessageTypeNormal, 8)
	pr := testenv.NewProducer(b, p, "drain")
	preload(b, pr, "drain", b.N, func(int) string { return "" })
	b.ResetTimer()
	b.ReportMetric(consumeAll(b, p, "g-drain", "drain", b.N), "msgs/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFIFOConsume drains a FIFO backlog spread over 1 or 100 message
// groups with a consumer of an orderly group. A push consumer gets one
// message per group per receive (docs/compatibility.md), so with one group
// its rate is bounded by one round trip plus one durable ack per message. A
// simple consumer receiving 32 at a time gets runs of a group (up to 32
// consecutive messages) and acks them concurrently.
func BenchmarkFIFOConsume(b *testing.B) {
	for _, consumer := range []string{"push", "simple"} {
		for _, groups := range []int{1, 100} {
			b.Run(consumer+"/groups="+strconv.Itoa(groups), func(b *testing.B) {
				p := testenv.Start(b, testenv.Config(b))
				p.CreateTopic(b, "fifo", domain.MessageTypeFIFO, 8)
				orderly := true
				p.CreateGroup(b, application.GroupSpec{Name: "g-fifo", Orderly: &orderly})
				pr := testenv.NewProducer(b, p, "fifo")
				preload(b, pr, "fifo", b.N, func(i int) string { return "group-" + strconv.Itoa(i%groups) })
				b.ResetTimer()
				if consumer == "push" {
					b.ReportMetric(consumeAll(b, p, "g-fifo", "fifo", b.N), "msgs/s")
				} else {
					b.ReportMetric(consumeSimple(b, p, "g-fifo", "fifo", b.N), "msgs/s")
				}
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// consumeSimple runs a simple consumer (receiveAck: receives of up to 32,
// the acks of each receive concurrent) until it has acked n messages and
// returns the messages per second it achieved.
func consumeSimple(b *testing.B, p *testenv.Proxy, group, topic string, n int) float64 {
	b.Helper()
	start := time.Now()
	c := testenv.NewSimpleConsumer(b, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	receiveAck(b, c, n)
	return float64(n) / time.Since(start).Seconds()
}

// receiveAck receives up to 32 messages at a time with c and acks each
// message of a receive concurrently until n messages were acked.
func receiveAck(b *testing.B, c rmq.SimpleConsumer, n int) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for done := 0; done < n; {
		if time.Now().After(deadline) {
			b.Fatalf("consumed %d of %d in 10 minutes", done, n)
		}
		ms, err := c.Receive(b.Context(), int32(min(32, n-done)), time.Minute)
		if err != nil && !testenv.IsNoMessage(err) {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Go(func() {
				if err := c.Ack(b.Context(), m); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		done += len(ms)
	}
}
