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
// producer with 16 sends in flight, sends 1 KiB messages to topic quiet
// in alternating slices: one slice alone, the next while client A floods
// topic noisy with 16 sends in flight, and so on, b.N messages in each
// phase. Interleaving makes a change of the machine's speed during the run
// (other work, a slower disk) hit both phases alike. Client A is:
//   - neighbour=none: idle, the control: its ratio shows what is left of
//     the drift between the phases;
//   - neighbour=go: the official Go producer, which retries a refused send
//     with its backoff and then fails it (a misbehaving application);
//   - neighbour=raw: raw SendMessage calls in a tight loop with no backoff
//     (the worst neighbour a proxy can have), whose refusals the proxy
//     answers after grpc.throttledSendHold (20 ms);
//   - neighbour=raw/hold=0: the same with refusals answered at once.
//
// It reports B's msgs/s alone and with the neighbour, their ratio, A's
// accepted and refused sends per second, and the CPU (in cores) the proxy
// and this process (both clients) used during each phase: A runs in this
// process, on the same cores as B and the proxy, so on a small machine it
// takes CPU from B's client too.
//
//	go test -run '^$' -bench NoisyNeighbour -benchtime 20000x ./test/bench
func BenchmarkNoisyNeighbour(b *testing.B) {
	for _, kind := range []string{"none", "go", "raw"} {
		b.Run("neighbour="+kind, func(b *testing.B) { noisyNeighbour(b, kind) })
	}
	// The same flood with refusals answered at once, to show what
	// grpc.throttledSendHold saves.
	b.Run("neighbour=raw/hold=0", func(b *testing.B) { noisyNeighbour(b, "raw", "--grpc.throttledSendHold=0s") })
}

func noisyNeighbour(b *testing.B, kind string, flags ...string) {
	rules := filepath.Join(b.TempDir(), "traffic.yaml")
	if err := os.WriteFile(rules, []byte("topics:\n  noisy: {send: {messagesPerSecond: 100}}\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	child := testenv.StartChild(b, b.TempDir(), append([]string{"--traffic.rulesFile=" + rules}, flags...)...)
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
	// phase sums B's sends, wall time and the CPU seconds the proxy and
	// this process (both clients) used over the slices of one phase.
	type phase struct{ msgs, seconds, proxyCPU, clientCPU float64 }
	// send has B send n messages with 16 in flight into ph.
	send := func(n int, ph *phase) {
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
		ph.msgs += float64(n)
		ph.seconds += time.Since(start).Seconds()
		ph.proxyCPU += cpu(child.PID()) - p0
		ph.clientCPU += cpu(os.Getpid()) - c0
	}
	send(1000, &phase{}) // warm up: connections, routes, settings

	// Client A floods while its gate is open.
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
	gate := newFloodGate()
	var flood sync.WaitGroup
	if sendA != nil {
		for range 16 {
			flood.Go(func() {
				for gate.wait(ctx) {
					sendA(ctx)
				}
			})
		}
	}
	const slices = 8
	var alone, neighboured phase
	var acceptedDuring, refusedDuring float64
	b.SetBytes(int64(len(body1KiB)))
	b.ResetTimer()
	for i := range slices {
		n := b.N / slices
		if i == slices-1 {
			n = b.N - n*(slices-1)
		}
		send(n, &alone)
		if sendA != nil {
			gate.open()
			// Measure once the flood is past the burst its bucket saved
			// while paused and is being refused.
			r := refused.Load()
			testenv.WaitFor(b, 30*time.Second, func() error {
				if refused.Load() < r+50 {
					return errors.New("the flood has not been refused 50 more times yet")
				}
				return nil
			})
		}
		a0, r0 := accepted.Load(), refused.Load()
		send(n, &neighboured)
		acceptedDuring += float64(accepted.Load() - a0)
		refusedDuring += float64(refused.Load() - r0)
		gate.close()
	}
	stop()
	flood.Wait()
	b.StopTimer()
	// Sends cut by the stop end otherwise; more would be a finding.
	b.Logf("flood: %d accepted, %d refused, %d other answers (including those cut by the stop)", accepted.Load(), refused.Load(), other.Load())
	aloneRate, neighbouredRate := alone.msgs/alone.seconds, neighboured.msgs/neighboured.seconds
	b.ReportMetric(aloneRate, "alone-msgs/s")
	b.ReportMetric(neighbouredRate, "neighboured-msgs/s")
	b.ReportMetric(neighbouredRate/aloneRate, "ratio")
	b.ReportMetric(acceptedDuring/neighboured.seconds, "flood-accepted/s")
	b.ReportMetric(refusedDuring/neighboured.seconds, "flood-refused/s")
	b.ReportMetric(alone.proxyCPU/alone.seconds, "proxy-cores-alone")
	b.ReportMetric(neighboured.proxyCPU/neighboured.seconds, "proxy-cores-neighboured")
	b.ReportMetric(alone.clientCPU/alone.seconds, "client-cores-alone")
	b.ReportMetric(neighboured.clientCPU/neighboured.seconds, "client-cores-neighboured")
}

// floodGate pauses and resumes the flooding client between slices.
type floodGate struct {
	mu     sync.Mutex
	opened chan struct{} // closed while the gate is open
}

func newFloodGate() *floodGate { return &floodGate{opened: make(chan struct{})} }

func (g *floodGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.opened:
	default:
		close(g.opened)
	}
}

func (g *floodGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.opened:
		g.opened = make(chan struct{})
	default:
	}
}

// wait blocks until the gate is open and reports false once ctx ends.
func (g *floodGate) wait(ctx context.Context) bool {
	g.mu.Lock()
	opened := g.opened
	g.mu.Unlock()
	select {
	case <-opened:
		return true
	case <-ctx.Done():
		return false
	}
}
