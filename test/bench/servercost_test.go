package bench_test

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
			c := startServer(b, "cost", "--local.flush=sync", "--health.pprof=true", "--log.level=info")
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
			b.SetBytes(int64(len(body1KiB)))
			b.ReportAllocs()
			measureServer(b, c, func() { send(b.N) })
		})
	}
}

// BenchmarkConsumeServerCost runs the rmqproxy binary as a child process
// (flush: sync) with a backlog of 1 KiB messages and reports what the
// server alone spent per message consumed by an official Go consumer
// (server-allocs/op, server-B/op, server-cpu-µs/op as in
// BenchmarkSendServerCost):
//
//   - simple: a SimpleConsumer receiving 32 at a time and acking each
//     message of a receive concurrently, after a warm-up of 2000 messages;
//   - push: a PushConsumer (32 consumption threads) draining the backlog,
//     its start-up included (a few thousand allocations in all).
//
// With RMQPROXY_TEST_ALLOCS_PROFILE=<prefix> it also writes the server's
// allocation profiles before and after the measured part to
// <prefix>-<consumer>-before.pb.gz and -after.pb.gz:
//
//	go test -run '^$' -bench ConsumeServerCost -benchtime 20000x ./test/bench
//	go tool pprof -sample_index=alloc_objects -diff_base <before> <after>
func BenchmarkConsumeServerCost(b *testing.B) {
	for _, consumer := range []string{"simple", "push"} {
		b.Run("consumer="+consumer, func(b *testing.B) {
			c := startServer(b, "cost", "--local.flush=sync", "--health.pprof=true", "--log.level=info")
			p := &testenv.Proxy{Addr: c.GRPCAddr}
			pr := testenv.NewProducer(b, p, "cost")
			warm := 0
			if consumer == "simple" {
				warm = 2000
			}
			preload(b, pr, "cost", warm+b.N, func(int) string { return "" })
			var sc rmq.SimpleConsumer
			if consumer == "simple" {
				sc = testenv.NewSimpleConsumer(b, p, "g-cost", 5*time.Second, map[string]*rmq.FilterExpression{"cost": rmq.SUB_ALL})
				receiveAck(b, sc, warm)
			}
			profile := os.Getenv("RMQPROXY_TEST_ALLOCS_PROFILE")
			saveProfile := func(when string) {
				if profile == "" {
					return
				}
				if err := servercost.SaveAllocsProfile(pprofURL(c), profile+"-"+consumer+"-"+when+".pb.gz"); err != nil {
					b.Fatal(err)
				}
			}
			saveProfile("before")
			b.SetBytes(int64(len(body1KiB)))
			measureServer(b, c, func() {
				if consumer == "simple" {
					receiveAck(b, sc, b.N)
				} else {
					consumeAll(b, p, "g-cost", "cost", b.N)
				}
			})
			saveProfile("after")
		})
	}
}

// startServer runs the rmqproxy binary as a child process with args and
// creates topic, normal with 8 queues, through its admin API.
func startServer(b *testing.B, topic string, args ...string) *testenv.Child {
	b.Helper()
	c := testenv.StartChild(b, b.TempDir(), args...)
	if c.GRPCAddr == "" || c.HealthAddr == "" {
		b.Fatalf("rmqproxy is not serving; logs:\n%s", c.Output())
	}
	ac, err := admin.NewClient(c.AdminAddr, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ac.CreateTopic(b.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal, QueueCount: 8}); err != nil {
		b.Fatal(err)
	}
	return c
}

// pprofURL is the base of server c's net/http/pprof pages.
func pprofURL(c *testenv.Child) string { return "http://" + c.HealthAddr + "/debug/pprof" }

// measureServer runs run as the benchmark's timed part and reports what
// server c spent in it per b.N: server-allocs/op and server-B/op (from its
// pprof counters), server-cpu-µs/op (from /proc).
func measureServer(b *testing.B, c *testenv.Child, run func()) {
	b.Helper()
	heap0, err := servercost.ReadHeap(pprofURL(c))
	if err != nil {
		b.Fatal(err)
	}
	cpu0, err := servercost.CPU(c.PID())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	run()
	b.StopTimer()
	cpu1, err := servercost.CPU(c.PID())
	if err != nil {
		b.Fatal(err)
	}
	heap1, err := servercost.ReadHeap(pprofURL(c))
	if err != nil {
		b.Fatal(err)
	}
	n := float64(b.N)
	b.ReportMetric(float64(heap1.Mallocs-heap0.Mallocs)/n, "server-allocs/op")
	b.ReportMetric(float64(heap1.TotalAlloc-heap0.TotalAlloc)/n, "server-B/op")
	b.ReportMetric((cpu1-cpu0)/n*1e6, "server-cpu-µs/op")
}
