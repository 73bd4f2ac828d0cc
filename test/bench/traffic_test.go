package bench_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/metadata"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/bench/servercost"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// BenchmarkNoisyNeighbour measures what a client flooding a rate-limited
// topic costs another client of the same proxy (issue 10: a client over
// its limit gets TOO_MANY_REQUESTS, a second client keeps its throughput).
// The rmqproxy binary runs as a child process with a traffic rules file
// that limits topic noisy to 100 messages/s. Client B, the official Go
// producer with 16 sends in flight, sends b.N 1 KiB messages to topic
// quiet alone, then b.N more while client A floods topic noisy with 16
// sends in flight:
//   - neighbour=none: A stays idle, the control: its ratio is the drift
//     between two runs of B alone (on a shared machine it is not 1);
//   - neighbour=go: the official Go producer, which retries a refused send
//     with its backoff and then fails it (a misbehaving application);
//   - neighbour=raw: raw SendMessage calls in a tight loop with no backoff
//     (the worst neighbour a proxy can have).
//
// It reports B's msgs/s alone and with the neighbour, their ratio, A's
// accepted and refused sends per second, and the CPU (in cores) the proxy
// and this process (both clients) used during each phase: A runs in this
// process, on the same cores as B and the proxy, so on a small machine it
// takes CPU from B's client too.
//
//	go test -run '^$' -bench NoisyNeighbour -benchtime 5000x ./test/bench
func BenchmarkNoisyNeighbour(b *testing.B) {
	for _, kind := range []string{"none", "go", "raw"} {
		b.Run("neighbour="+kind, func(b *testing.B) { noisyNeighbour(b, kind) })
	}
}

func noisyNeighbour(b *testing.B, kind string) {
	rules := filepath.Join(b.TempDir(), "traffic.yaml")
	if err := os.WriteFile(rules, []byte("topics:\n  noisy: {send: {messagesPerSecond: 100}}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	child := testenv.StartChild(b, b.TempDir(), "--traffic.rulesFile="+rules)
	if child.GRPCAddr == "" {
		b.Fatalf("rmqproxy is not serving; logs:\n%s", child.Output())
	}
	ac, err := admin.NewClient(child.AdminAddr, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, topic := range []string{"noisy", "quiet"} {
		if _, err := ac.CreateTopic(b.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal, QueueCount: 8}); err != nil {
			b.Fatal(err)
		}
	}
	p := &testenv.Proxy{Addr: child.GRPCAddr}
	quiet := testenv.NewProducer(b, p, "quiet")
	cpu := func(pid int) float64 {
		s, err := servercost.CPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	// send has B send n messages with 16 in flight and returns its rate
	// and the CPU (cores) the proxy and this process (both clients) used
	// meanwhile.
	send := func(n int) (rate, proxyCores, clientCores float64) {
		var next atomic.Int64
		var wg sync.WaitGroup
		p0, c0, start := cpu(child.PID()), cpu(os.Getpid()), time.Now()
		for range 16 {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if _, err := quiet.Send(b.Context(), &rmq.Message{Topic: "quiet", Body: body1KiB}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		d := time.Since(start).Seconds()
		return float64(n) / d, (cpu(child.PID()) - p0) / d, (cpu(os.Getpid()) - c0) / d
	}
	send(1000) // warm up: connections, routes, settings

	b.SetBytes(int64(len(body1KiB)))
	b.ResetTimer()
	alone, aloneProxy, aloneClients := send(b.N)

	// Client A floods until B is done.
	ctx, stop := context.WithCancel(b.Context())
	var accepted, refused, other atomic.Int64
	count := func(code v2.Code) {
		switch code {
		case v2.Code_OK:
			accepted.Add(1)
		case v2.Code_TOO_MANY_REQUESTS:
			refused.Add(1)
		default:
			other.Add(1)
		}
	}
	var sendA func(ctx context.Context)
	switch kind {
	case "go":
		noisy := testenv.NewProducer(b, p, "noisy")
		sendA = func(ctx context.Context) {
			_, err := noisy.Send(ctx, &rmq.Message{Topic: "noisy", Body: body1KiB})
			var st *rmq.ErrRpcStatus
			switch {
			case err == nil:
				count(v2.Code_OK)
			case errors.As(err, &st):
				count(v2.Code(st.GetCode()))
			default:
				other.Add(1)
			}
		}
	case "none":
	case "raw":
		raw := testenv.NewRawClient(b, p)
		md := metadata.Pairs("x-mq-client-id", raw.ID(), "x-mq-language", "GO", "x-mq-client-version", "5.1.4", "x-mq-protocol", "v2")
		sendA = func(ctx context.Context) {
			resp, err := raw.SendMessage(metadata.NewOutgoingContext(ctx, md),
				&v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage("noisy", body1KiB, "")}})
			if err != nil {
				other.Add(1)
				return
			}
			count(resp.GetStatus().GetCode())
		}
	}
	var flood sync.WaitGroup
	if sendA != nil {
		for range 16 {
			flood.Go(func() {
				for ctx.Err() == nil {
					sendA(ctx)
				}
			})
		}
		// Measure once the flood is past its burst and being refused.
		testenv.WaitFor(b, 30*time.Second, func() error {
			if refused.Load() < 100 {
				return errors.New("the flood has not been refused 100 times yet")
			}
			return nil
		})
	}
	a0, r0, t0 := accepted.Load(), refused.Load(), time.Now()
	neighboured, neighbouredProxy, neighbouredClients := send(b.N)
	elapsed := time.Since(t0).Seconds()
	a1, r1 := accepted.Load(), refused.Load()
	stop()
	flood.Wait()
	b.StopTimer()
	// Sends cut by the stop end otherwise; more would be a finding.
	b.Logf("flood: %d accepted, %d refused, %d other answers (including those cut by the stop)", accepted.Load(), refused.Load(), other.Load())
	b.ReportMetric(alone, "alone-msgs/s")
	b.ReportMetric(neighboured, "neighboured-msgs/s")
	b.ReportMetric(neighboured/alone, "ratio")
	b.ReportMetric(float64(a1-a0)/elapsed, "flood-accepted/s")
	b.ReportMetric(float64(r1-r0)/elapsed, "flood-refused/s")
	b.ReportMetric(aloneProxy, "proxy-cores-alone")
	b.ReportMetric(neighbouredProxy, "proxy-cores-neighboured")
	b.ReportMetric(aloneClients, "client-cores-alone")
	b.ReportMetric(neighbouredClients, "client-cores-neighboured")
}
