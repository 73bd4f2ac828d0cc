package localbroker

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// BenchmarkAutoCreateTopic measures auto-creating topics (a Route of an
// unknown topic, as QueryRoute does) with 6,000 topics existing, while one
// producer sends durable 1 KiB messages to another topic; it reports that
// producer's send latency (p50, p99) during the creations.
func BenchmarkAutoCreateTopic(b *testing.B) {
	e := benchEngine(b)
	e.cfg.AutoCreateMaxTopics = 1 << 30
	e.cfg.AutoCreateRate = 1e9
	ctx := context.Background()
	for i := range 6000 {
		if _, err := e.Route(ctx, fmt.Sprintf("pre-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	q := domain.QueueRef{Topic: "steady", BrokerName: e.cfg.BrokerName}
	body := make([]byte, 1024)
	stop := make(chan struct{})
	var lat []time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if _, err := e.Send(ctx, q, []domain.Message{{Topic: "steady", ID: fmt.Sprint(i), Body: body}}); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(start))
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := e.Route(ctx, fmt.Sprintf("new-%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	if len(lat) > 0 {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "send-p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "send-p99-µs")
	}
}
