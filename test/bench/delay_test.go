package bench_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// BenchmarkDelayLatenessUnderLoad measures how late delay messages reach a
// simple consumer that is already waiting for them (a long poll), while 16
// producers and a push consumer keep the proxy busy on another topic:
//   - past-due: the delivery time lies 20 s in the past (stored as due);
//     lateness is the time from the start of the send to the receive (a
//     durable send and a long-poll wake-up included);
//   - wheel: the delivery time is 300 ms ahead (the timing wheel fires it);
//     lateness is the time from the delivery time to the receive.
//
// It reports the 50th and 99th percentiles and the maximum.
func BenchmarkDelayLatenessUnderLoad(b *testing.B) {
	b.Run("past-due", func(b *testing.B) { delayLateness(b, -20*time.Second) })
	b.Run("wheel", func(b *testing.B) { delayLateness(b, 300*time.Millisecond) })
}

func delayLateness(b *testing.B, ahead time.Duration) {
	p := testenv.Start(b, testenv.Config(b))
	p.CreateTopic(b, "load", domain.MessageTypeNormal, 8)
	p.CreateTopic(b, "due", domain.MessageTypeDelay, 4)

	// The load: 16 producers sending as fast as they can, and a push
	// consumer draining them.
	ctx, cancel := context.WithCancel(b.Context())
	var load sync.WaitGroup
	defer func() {
		cancel()
		load.Wait()
	}()
	lp := testenv.NewProducer(b, p, "load")
	var loadSent atomic.Int64
	for range 16 {
		load.Go(func() {
			for ctx.Err() == nil {
				if _, err := lp.Send(ctx, &rmq.Message{Topic: "load", Body: body1KiB}); err == nil {
					loadSent.Add(1)
				}
			}
		})
	}
	pc, err := rmq.NewPushConsumer(p.ClientConfig("g-load"),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{"load": rmq.SUB_ALL}),
		rmq.WithPushConsumptionThreadCount(16),
		rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: func(*rmq.MessageView) rmq.ConsumerResult { return rmq.SUCCESS }}))
	if err != nil {
		b.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		b.Fatal(err)
	}
	defer pc.GracefulStop()

	// The waiting consumer.
	sc := testenv.NewSimpleConsumer(b, p, "g-due", 10*time.Second, map[string]*rmq.FilterExpression{"due": rmq.SUB_ALL})
	var mu sync.Mutex
	arrived := map[string]chan time.Time{}
	arrival := func(id string) chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		ch := arrived[id]
		if ch == nil {
			ch = make(chan time.Time, 1)
			arrived[id] = ch
		}
		return ch
	}
	load.Go(func() {
		for ctx.Err() == nil {
			ms, err := sc.Receive(ctx, 16, 30*time.Second)
			now := time.Now()
			if err != nil {
				continue
			}
			for _, m := range ms {
				arrival(m.GetMessageId()) <- now
				_ = sc.Ack(ctx, m)
			}
		}
	})
	dp := testenv.NewProducer(b, p, "due")
	// send returns the message id and the time lateness counts from.
	send := func() (string, time.Time) {
		start := time.Now()
		m := &rmq.Message{Topic: "due", Body: []byte("delay")}
		at := start.Add(ahead)
		m.SetDelayTimestamp(at)
		r, err := dp.Send(b.Context(), m)
		if err != nil {
			b.Fatal(err)
		}
		if ahead > 0 {
			return r[0].MessageID, at
		}
		return r[0].MessageID, start
	}
	// Warm up until the waiting consumer gets messages.
	id, _ := send()
	select {
	case <-arrival(id):
	case <-time.After(60 * time.Second):
		b.Fatal("the first delay message did not arrive within 60 s")
	}
	var late []time.Duration
	b.ResetTimer()
	for range b.N {
		// Pace the sends so that the consumer is back in its long poll.
		time.Sleep(200 * time.Millisecond)
		id, sent := send()
		select {
		case at := <-arrival(id):
			late = append(late, at.Sub(sent))
		case <-time.After(60 * time.Second):
			b.Fatalf("delay message %s did not arrive within 60 s", id)
		}
	}
	b.StopTimer()
	slices.Sort(late)
	pct := func(q float64) float64 { return float64(late[int(q*float64(len(late)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(loadSent.Load())/b.Elapsed().Seconds(), "load-msgs/s")
	b.ReportMetric(0, "ns/op")
	b.Log(fmt.Sprintf("lateness of %d delay messages: p50 %.1f ms, p99 %.1f ms, max %.1f ms", len(late), pct(0.5), pct(0.99), float64(late[len(late)-1].Microseconds())/1000))
}
