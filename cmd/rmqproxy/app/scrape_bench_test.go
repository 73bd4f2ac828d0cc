package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker"
	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// BenchmarkScrapeManyGroups measures one scrape of /metrics in local mode
// with 500 and 5,000 consumer groups, each consuming (and subscribed to)
// one of 50 topics of 8 queues, with a message in flight on each of its
// queues. It reports the time the engine's lock was taken for by the
// longest of its holds a send waited behind, as the longest send
// latency during the scrapes (send-max-µs).
func BenchmarkScrapeManyGroups(b *testing.B) {
	for _, groups := range []int{500, 5000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			e, p := scrapeBenchEngine(b, groups, 50, 8)
			h := p.MetricsHandler()
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var worst time.Duration
			wg.Go(func() { // a producer beside the scrapes
				for i := 0; ctx.Err() == nil; i++ {
					start := time.Now()
					if _, err := e.Send(ctx, domain.QueueRef{Topic: "t0", BrokerName: "broker-a", QueueID: int32(i % 8)},
						[]domain.Message{{Topic: "t0", ID: fmt.Sprint("s", i), Body: []byte("x")}}); err != nil {
						return
					}
					worst = max(worst, time.Since(start))
				}
			})
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if rec.Code != 200 {
					b.Fatalf("scrape: %d %s", rec.Code, rec.Body)
				}
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			b.ReportMetric(float64(worst.Microseconds()), "send-max-µs")
		})
	}
}

// scrapeBenchEngine opens an engine (flush async) with the given groups,
// each receiving one message of every queue of one of the topics, and a
// metrics provider whose gauges report them; the groups' consumers
// subscribe to their topics.
func scrapeBenchEngine(b *testing.B, groups, topics int, queues int32) (*localbroker.Engine, *otel.Provider) {
	b.Helper()
	p, err := otel.New(otel.Options{Metrics: otel.DefaultMetricsConfig(), Info: otel.Info{Mode: ModeLocal}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	cfg := localbroker.DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.Flush = "async"
	cfg.BrokerName = "broker-a"
	log := slog.New(slog.DiscardHandler)
	e, err := localbroker.New(cfg, log, ports.SystemClock{})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close(context.Background()) })
	ctx := b.Context()
	topicOf := func(g int) string { return fmt.Sprint("t", g%topics) }
	for t := range topics {
		name := fmt.Sprint("t", t)
		if _, err := e.CreateTopic(ctx, domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: queues, Permission: domain.PermReadWrite}); err != nil {
			b.Fatal(err)
		}
		for q := range queues {
			if _, err := e.Send(ctx, domain.QueueRef{Topic: name, BrokerName: cfg.BrokerName, QueueID: q}, []domain.Message{{Topic: name, ID: "m", Body: []byte("x")}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	var subs []application.Subscription
	for g := range groups {
		name := fmt.Sprint("g", g)
		if _, err := e.CreateGroup(ctx, domain.NewConsumerGroup(name)); err != nil {
			b.Fatal(err)
		}
		for q := range queues {
			if ms, err := e.Pop(ctx, ports.PopRequest{Group: name, Topic: topicOf(g), QueueID: q, MaxMessages: 1, InvisibleTime: time.Hour}); err != nil || len(ms) != 1 {
				b.Fatalf("pop: %d messages, %v", len(ms), err)
			}
		}
		subs = append(subs, application.Subscription{Group: name, Topic: topicOf(g)})
	}
	if err := registerEngineGauges(p.Meter(), p.Telemetry().Metrics.Labels(), e, e, func() []application.Subscription { return subs }); err != nil {
		b.Fatal(err)
	}
	return e, p
}
