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
// groups with a push consumer of an orderly group. With one group only one
// message is in flight at a time, so the rate is bounded by one round trip
// plus one durable ack per message; with 100 groups they proceed in
// parallel.
func BenchmarkFIFOConsume(b *testing.B) {
	for _, groups := range []int{1, 100} {
		b.Run("groups="+strconv.Itoa(groups), func(b *testing.B) {
			p := testenv.Start(b, testenv.Config(b))
			p.CreateTopic(b, "fifo", domain.MessageTypeFIFO, 8)
			orderly := true
			p.CreateGroup(b, application.GroupSpec{Name: "g-fifo", Orderly: &orderly})
			pr := testenv.NewProducer(b, p, "fifo")
			preload(b, pr, "fifo", b.N, func(i int) string { return "group-" + strconv.Itoa(i%groups) })
			b.ResetTimer()
			b.ReportMetric(consumeAll(b, p, "g-fifo", "fifo", b.N), "msgs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
