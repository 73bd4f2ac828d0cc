package bench_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/test/bench/servercost"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// BenchmarkTracingSend measures what tracing costs a send: the rmqproxy
// binary as a child process (flush: sync) with tracing off, on at 1 %
// sampling and on at 100 %, exporting over OTLP/gRPC to a receiver in this
// process (so that exports succeed, as with a collector next to the
// proxy); 1 KiB messages sent by the official Go producer with 64 sends in
// flight. It reports throughput (msgs/s) and the server's CPU and
// allocations per send. Metrics are on (the default) in every case.
//
//	go test -run '^$' -bench TracingSend -benchtime 20000x ./test/bench
func BenchmarkTracingSend(b *testing.B) {
	for _, c := range []struct {
		name  string
		flags []string
	}{
		{"tracing=off", nil},
		{"tracing=1%", []string{"--tracing.enabled=true", "--tracing.sampleRatio=0.01"}},
		{"tracing=100%", []string{"--tracing.enabled=true", "--tracing.sampleRatio=1"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			col := testenv.StartOTLPCollector(b)
			args := append([]string{"--local.flush=sync", "--health.pprof=true", "--otlp.endpoint=" + col.Endpoint()}, c.flags...)
			child := startServer(b, "traced", args...)
			pr := testenv.NewProducer(b, &testenv.Proxy{Addr: child.GRPCAddr}, "traced")
			send := func(n int) {
				var next atomic.Int64
				var wg sync.WaitGroup
				for range 64 {
					wg.Go(func() {
						for next.Add(1) <= int64(n) {
							if _, err := pr.Send(b.Context(), &rmq.Message{Topic: "traced", Body: body1KiB}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			send(2000)
			pprof := "http://" + child.HealthAddr + "/debug/pprof"
			heap0, err := servercost.ReadHeap(pprof)
			if err != nil {
				b.Fatal(err)
			}
			cpu0, err := servercost.CPU(child.PID())
			if err != nil {
				b.Fatal(err)
			}
			spans0 := len(col.Spans())
			b.SetBytes(int64(len(body1KiB)))
			b.ResetTimer()
			start := time.Now()
			send(b.N)
			elapsed := time.Since(start)
			b.StopTimer()
			cpu1, err := servercost.CPU(child.PID())
			if err != nil {
				b.Fatal(err)
			}
			heap1, err := servercost.ReadHeap(pprof)
			if err != nil {
				b.Fatal(err)
			}
			n := float64(b.N)
			b.ReportMetric(n/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(heap1.Mallocs-heap0.Mallocs)/n, "server-allocs/op")
			b.ReportMetric((cpu1-cpu0)/n*1e6, "server-cpu-µs/op")
			// Spans exported so far (the last batch may still be queued).
			b.ReportMetric(float64(len(col.Spans())-spans0)/n, "spans/op")
		})
	}
}
