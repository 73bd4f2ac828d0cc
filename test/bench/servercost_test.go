package bench_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/bench/servercost"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// BenchmarkSendServerCost runs the rmqproxy binary as a child process
// (flush: sync) and sends 1 KiB messages through the Go producer in this
// process, then reports what the server alone spent per send: heap
// allocations (server-allocs/op, server-B/op, from its pprof counters) and
// CPU time (server-cpu-µs/op, from /proc; 10 ms resolution, so run at
// least 10000x). The allocs/op and B/op go test prints are this process's,
// the client's.
//
//	go test -run '^$' -bench SendServerCost -benchtime 20000x ./test/bench
func BenchmarkSendServerCost(b *testing.B) {
	for _, inFlight := range []int{1, 64} {
		b.Run("inflight="+strconv.Itoa(inFlight), func(b *testing.B) {
			c := testenv.StartChild(b, b.TempDir(), "--local.flush=sync", "--health.pprof=true", "--log.level=info")
			if c.GRPCAddr == "" || c.HealthAddr == "" {
				b.Fatalf("rmqproxy is not serving; logs:\n%s", c.Output())
			}
			ac, err := admin.NewClient(c.AdminAddr, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ac.CreateTopic(b.Context(), application.TopicSpec{Name: "cost", Type: domain.MessageTypeNormal, QueueCount: 8}); err != nil {
				b.Fatal(err)
			}
			pr := testenv.NewProducer(b, &testenv.Proxy{Addr: c.GRPCAddr}, "cost")
			send := func(n int) {
				var next atomic.Int64
				var wg sync.WaitGroup
				for range inFlight {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for next.Add(1) <= int64(n) {
							if _, err := pr.Send(b.Context(), &rmq.Message{Topic: "cost", Body: body1KiB}); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			send(2000) // warm-up: connections, buffers, worker stacks
			pprof := "http://" + c.HealthAddr + "/debug/pprof"
			heap0, err := servercost.ReadHeap(pprof)
			if err != nil {
				b.Fatal(err)
			}
			cpu0, err := servercost.CPU(c.PID())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body1KiB)))
			b.ReportAllocs()
			b.ResetTimer()
			send(b.N)
			b.StopTimer()
			cpu1, err := servercost.CPU(c.PID())
			if err != nil {
				b.Fatal(err)
			}
			heap1, err := servercost.ReadHeap(pprof)
			if err != nil {
				b.Fatal(err)
			}
			n := float64(b.N)
			b.ReportMetric(float64(heap1.Mallocs-heap0.Mallocs)/n, "server-allocs/op")
			b.ReportMetric(float64(heap1.TotalAlloc-heap0.TotalAlloc)/n, "server-B/op")
			b.ReportMetric((cpu1-cpu0)/n*1e6, "server-cpu-µs/op")
		})
	}
}
