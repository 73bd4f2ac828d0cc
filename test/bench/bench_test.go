package bench_test

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

var body1KiB = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

// BenchmarkProduceDurable sends 1 KiB messages through the Go producer;
// each send returns after the proxy fsynced it (flush: sync).
func BenchmarkProduceDurable(b *testing.B) {
	for _, senders := range []int{1, 16, 64} {
		b.Run("senders="+strconv.Itoa(senders), func(b *testing.B) {
			p := testenv.Start(b, testenv.Config(b))
			p.CreateTopic(b, "bench", domain.MessageTypeNormal, 8)
			pr := testenv.NewProducer(b, p, "bench")
			b.SetBytes(int64(len(body1KiB)))
			b.ReportAllocs()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := pr.Send(b.Context(), &rmq.Message{Topic: "bench", Body: body1KiB}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEndToEndLatency sends 1 KiB messages one after another and
// measures the time from the start of each send until a push consumer's
// listener holds the message (fsync, long-poll wake-up and delivery
// included). It reports the 50th and 99th percentiles.
func BenchmarkEndToEndLatency(b *testing.B) {
	p := testenv.Start(b, testenv.Config(b))
	p.CreateTopic(b, "latency", domain.MessageTypeNormal, 8)
	pr := testenv.NewProducer(b, p, "latency")
	var mu sync.Mutex
	var latencies []time.Duration
	done := make(chan struct{}, 1)
	pc, err := rmq.NewPushConsumer(p.ClientConfig("g-latency"),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{"latency": rmq.SUB_ALL}),
		rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: func(m *rmq.MessageView) rmq.ConsumerResult {
			sent, err := strconv.ParseInt(m.GetProperties()["sent-ns"], 10, 64)
			if err == nil {
				mu.Lock()
				latencies = append(latencies, time.Since(time.Unix(0, sent)))
				mu.Unlock()
			}
			select {
			case done <- struct{}{}:
			default:
			}
			return rmq.SUCCESS
		}}))
	if err != nil {
		b.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pc.GracefulStop() })
	// Warm up: the consumer's first receive is under way once one message
	// makes the round trip.
	send := func() {
		m := &rmq.Message{Topic: "latency", Body: body1KiB}
		m.AddProperty("sent-ns", strconv.FormatInt(time.Now().UnixNano(), 10))
		if _, err := pr.Send(b.Context(), m); err != nil {
			b.Fatal(err)
		}
	}
	send()
	<-done
	mu.Lock()
	latencies = latencies[:0]
	mu.Unlock()
	b.SetBytes(int64(len(body1KiB)))
	b.ResetTimer()
	for range b.N {
		send()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			b.Fatal("message not consumed within 30s")
		}
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	if len(latencies) == 0 {
		b.Fatal("no latency measured")
	}
	slices.Sort(latencies)
	pct := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // the percentiles say it better than a mean
}
