// Command loadgen drives a RocketMQ 5 gRPC endpoint (rmqproxy or the Apache
// proxy) with the official Go client v5.1.4, in a process of its own, and
// measures what test/scripts/bench-compare.sh puts side by side:
//
//   - produce: durable sends of one body size with N sends in flight (N
//     goroutines, each sending one message after the other), for a fixed
//     time after a warm-up: throughput, p50 and p99 send latency, and the
//     CPU time the server process spent per 1,000 sends (utime+stime from
//     /proc/<pid>/stat before and after, so background work during the
//     window counts too);
//   - drain: a backlog of messages sent first, then received and acked by
//     simple consumers (each receives a batch of up to 32 and acks the batch
//     concurrently before it receives again) until all are acked.
//
// Every measurement is one JSON line on stdout. `loadgen table FILE...`
// reads such lines and prints the Markdown table of docs/benchmarks.md
// (median of the rounds, with the range; round 0 is a warm-up and left
// out).
//
// Usage:
//
//	loadgen run -label rmqproxy -endpoint 127.0.0.1:8081 -pid 1234 \
//	    -topic bench -drain-topic drain -group g-drain
//	loadgen run ... -inflight "" -rounds 1 -first-round 2   (one drain, as round 2)
//	loadgen wait -endpoint 127.0.0.1:8081 -topic bench -timeout 60s
//	loadgen table results.jsonl
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/bench/servercost"
	"github.com/rmqproxy/rmqproxy/test/goclient"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen run|wait|table ... (see the package comment)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "wait":
		err = wait(ctx, os.Args[2:])
	case "table":
		err = table(os.Stdout, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want run, wait or table", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// Result is one measurement, one JSON line.
type Result struct {
	Label    string  `json:"label"`
	Kind     string  `json:"kind"` // produce or drain
	Round    int     `json:"round"`
	InFlight int     `json:"inFlight,omitempty"`
	Messages int64   `json:"messages"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"perSec"`
	P50ms    float64 `json:"p50ms,omitempty"`
	P99ms    float64 `json:"p99ms,omitempty"`
	// ServerCPUPer1k is the server process's CPU seconds per 1,000
	// messages; ClientCPUPer1k the same for this process.
	ServerCPUPer1k float64 `json:"serverCpuPer1k"`
	ClientCPUPer1k float64 `json:"clientCpuPer1k"`
	ServerRSSMiB   float64 `json:"serverRssMiB,omitempty"`
	// ServerAllocsPerMsg and ServerBytesPerMsg are the heap allocations
	// (objects, bytes) of a Go server per message, from the Mallocs and
	// TotalAlloc counters of its /debug/pprof/heap?debug=1 page (-pprof).
	ServerAllocsPerMsg float64 `json:"serverAllocsPerMsg,omitempty"`
	ServerBytesPerMsg  float64 `json:"serverBytesPerMsg,omitempty"`
	Load1              float64 `json:"load1"` // 1-minute load average at the end
}

type runFlags struct {
	label, endpoint, topic, drainTopic, group string
	pprof                                     string
	pid, body, rounds, firstRound             int
	drain, consumers                          int
	inFlight                                  []int
	duration, warmup, firstWarmup, await      time.Duration
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var f runFlags
	var inFlight string
	fs.StringVar(&f.label, "label", "server", "name of the server in the results")
	fs.StringVar(&f.endpoint, "endpoint", "127.0.0.1:8081", "gRPC endpoint")
	fs.StringVar(&f.pprof, "pprof", "", "base URL of the server's pprof pages (http://host:port/debug/pprof), for its allocation counts (empty: not measured)")
	fs.IntVar(&f.pid, "pid", 0, "server process id, for its CPU time (0: not measured)")
	fs.StringVar(&f.topic, "topic", "bench", "NORMAL topic the produce workloads send to")
	fs.StringVar(&f.drainTopic, "drain-topic", "drain", "NORMAL topic of the drain workload")
	fs.StringVar(&f.group, "group", "g-drain", "consumer group of the drain workload")
	fs.IntVar(&f.body, "body", 1024, "message body size in bytes")
	fs.StringVar(&inFlight, "inflight", "1,8,64", "sends in flight of the produce points")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time of one produce point")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured sending before each produce point")
	fs.DurationVar(&f.firstWarmup, "first-warmup", 20*time.Second, "unmeasured sending with 64 in flight before the first point (JIT compilation, page cache, connection set-up)")
	fs.IntVar(&f.rounds, "rounds", 3, "times each point is measured")
	fs.IntVar(&f.firstRound, "first-round", 1, "number of the first round in the results (when a script interleaves servers round by round)")
	fs.IntVar(&f.drain, "drain", 20000, "messages of the drain workload (0: no drain)")
	fs.IntVar(&f.consumers, "consumers", 2, "simple consumers of the drain workload")
	fs.DurationVar(&f.await, "await", 5*time.Second, "long-polling time of the simple consumers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, s := range strings.FieldsFunc(inFlight, func(r rune) bool { return r == ',' }) { // "": no produce points
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-inflight: %q is not a positive number", s)
		}
		f.inFlight = append(f.inFlight, n)
	}
	removeLogs, err := clientLogs()
	if err != nil {
		return err
	}
	defer removeLogs()
	body := make([]byte, f.body)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	pr, err := startProducer(f.endpoint, f.topic, f.drainTopic)
	if err != nil {
		return err
	}
	defer pr.GracefulStop()
	if f.firstWarmup > 0 {
		if _, err := produce(ctx, pr, f.topic, body, 64, f.firstWarmup, nil); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(os.Stdout)
	for round := f.firstRound; round < f.firstRound+f.rounds; round++ {
		for _, n := range f.inFlight {
			if _, err := produce(ctx, pr, f.topic, body, n, f.warmup, nil); err != nil {
				return err
			}
			var r Result
			m, err := measure(&f, &r, func() (int64, error) {
				return produce(ctx, pr, f.topic, body, n, f.duration, &r)
			})
			if err != nil {
				return err
			}
			r.Label, r.Kind, r.Round, r.InFlight, r.Messages = f.label, "produce", round, n, m
			finish(&f, &r)
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	}
	if f.drain == 0 {
		return nil
	}
	for round := f.firstRound; round < f.firstRound+f.rounds; round++ {
		r, err := drain(ctx, &f, pr, body)
		if err != nil {
			return err
		}
		r.Round = round
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// clientLogs points the Go client's log files (see goclient.LogTo) to
// rocketmq.client.logRoot when the caller set it, else to a temporary
// directory, which the returned function removes.
func clientLogs() (func(), error) {
	if dir := os.Getenv("rocketmq.client.logRoot"); dir != "" {
		goclient.LogTo(dir)
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "loadgen-client-logs")
	if err != nil {
		return nil, err
	}
	goclient.LogTo(dir)
	return func() { _ = os.RemoveAll(dir) }, nil
}

// produce sends from n goroutines for d. With r set it records the
// latency percentiles and error count there; it returns the number of
// successful sends.
func produce(ctx context.Context, pr rmq.Producer, topic string, body []byte, n int, d time.Duration, r *Result) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lat := make([][]time.Duration, n)
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				start := time.Now()
				// The send itself gets a context of its own: the window's end
				// must not cut sends short (they would count as errors).
				sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := pr.Send(sctx, &rmq.Message{Topic: topic, Body: body})
				scancel()
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				l = append(l, time.Since(start))
				sent.Add(1)
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	if r != nil {
		all := slices.Concat(lat...)
		slices.Sort(all)
		r.P50ms, r.P99ms = percentile(all, 0.50), percentile(all, 0.99)
		r.Errors = failed.Load()
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %d sends failed, the first with: %s\n", failed.Load(), e)
	}
	if sent.Load() == 0 {
		return 0, fmt.Errorf("no send succeeded in %v", d)
	}
	return sent.Load(), nil
}

func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
}

// measure runs work and fills the time and CPU figures of r; work returns
// the number of messages it handled.
func measure(f *runFlags, r *Result, work func() (int64, error)) (int64, error) {
	srv0, err := serverCPU(f.pid)
	if err != nil {
		return 0, err
	}
	cli0 := selfCPU()
	mem0, err := serverHeap(f.pprof)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	n, err := work()
	if err != nil {
		return 0, err
	}
	r.Seconds = time.Since(start).Seconds()
	srv1, err := serverCPU(f.pid)
	if err != nil {
		return 0, err
	}
	cli1 := selfCPU()
	mem1, err := serverHeap(f.pprof)
	if err != nil {
		return 0, err
	}
	if n > 0 {
		r.PerSec = float64(n) / r.Seconds
		if f.pprof != "" {
			r.ServerAllocsPerMsg = float64(mem1.Mallocs-mem0.Mallocs) / float64(n)
			r.ServerBytesPerMsg = float64(mem1.TotalAlloc-mem0.TotalAlloc) / float64(n)
		}
		r.ServerCPUPer1k = (srv1 - srv0) / float64(n) * 1000
		r.ClientCPUPer1k = (cli1 - cli0) / float64(n) * 1000
	}
	return n, nil
}

func serverCPU(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	return servercost.CPU(pid)
}

func serverHeap(base string) (servercost.Heap, error) {
	if base == "" {
		return servercost.Heap{}, nil
	}
	return servercost.ReadHeap(base)
}

func finish(f *runFlags, r *Result) {
	if f.pid != 0 {
		r.ServerRSSMiB = servercost.RSSMiB(f.pid)
	}
	r.Load1 = load1()
}

// drain sends f.drain messages to the drain topic (64 in flight, not
// measured), then measures how long f.consumers simple consumers take to
// receive and ack all of them.
func drain(ctx context.Context, f *runFlags, pr rmq.Producer, body []byte) (Result, error) {
	r := Result{Label: f.label, Kind: "drain", InFlight: f.consumers}
	if err := fill(ctx, pr, f.drainTopic, body, f.drain); err != nil {
		return r, err
	}
	consumers := make([]rmq.SimpleConsumer, f.consumers)
	for i := range consumers {
		c, err := rmq.NewSimpleConsumer(&rmq.Config{Endpoint: f.endpoint, ConsumerGroup: f.group},
			rmq.WithSimpleAwaitDuration(f.await),
			rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{f.drainTopic: rmq.SUB_ALL}))
		if err != nil {
			return r, err
		}
		if err := c.Start(); err != nil {
			return r, fmt.Errorf("simple consumer start: %w", err)
		}
		defer c.GracefulStop()
		consumers[i] = c
	}
	// A message counts once it was acked, or once an ack of it failed: an
	// ack the client gave up on (its request timeout, on a busy machine)
	// may still have been applied, and then the message never comes back.
	// Failures are reported as errors.
	var mu sync.Mutex
	settled := make(map[string]bool, f.drain)
	var done, failed atomic.Int64
	var firstErr atomic.Value
	want := int64(f.drain)
	settle := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		if !settled[id] {
			settled[id] = true
			done.Add(1)
		}
	}
	n, err := measure(f, &r, func() (int64, error) {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		for _, c := range consumers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer cancel() // the first consumer to finish (or fail) ends the drain
				for done.Load() < want && dctx.Err() == nil {
					msgs, err := c.Receive(dctx, 32, 60*time.Second)
					if err != nil {
						if !isNoMessage(err) && dctx.Err() == nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
						}
						continue
					}
					var aw sync.WaitGroup
					for _, m := range msgs {
						aw.Add(1)
						go func() {
							defer aw.Done()
							if err := c.Ack(context.Background(), m); err != nil {
								failed.Add(1)
								firstErr.CompareAndSwap(nil, err.Error())
							}
							settle(m.GetMessageId())
						}()
					}
					aw.Wait()
				}
			}()
		}
		wg.Wait()
		if done.Load() < want {
			return 0, fmt.Errorf("drain: %d of %d acked (%d errors, first: %v)", done.Load(), want, failed.Load(), firstErr.Load())
		}
		if e := firstErr.Load(); e != nil {
			fmt.Fprintf(os.Stderr, "loadgen: drain: %d receives or acks failed, the first with: %s\n", failed.Load(), e)
		}
		return done.Load(), nil
	})
	if err != nil {
		return r, err
	}
	r.Messages, r.Errors = n, failed.Load()
	finish(f, &r)
	return r, nil
}

// fill sends exactly n messages with 64 in flight.
func fill(ctx context.Context, pr rmq.Producer, topic string, body []byte, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := pr.Send(ctx, &rmq.Message{Topic: topic, Body: body}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func isNoMessage(err error) bool {
	var st *rmq.ErrRpcStatus
	return errors.As(err, &st) && st.GetCode() == int32(v2.Code_MESSAGE_NOT_FOUND)
}

// wait starts a producer for the topic until one starts (the endpoint
// answers QueryRoute for it) or the timeout passes.
func wait(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("wait", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "127.0.0.1:8081", "gRPC endpoint")
	topic := fs.String("topic", "bench", "topic whose route must be served")
	timeout := fs.Duration("timeout", 60*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return err
	}
	removeLogs, err := clientLogs()
	if err != nil {
		return err
	}
	defer removeLogs()
	deadline := time.Now().Add(*timeout)
	for {
		pr, err := rmq.NewProducer(&rmq.Config{Endpoint: *endpoint}, rmq.WithTopics(*topic))
		if err == nil {
			if err = pr.Start(); err == nil {
				_, err = pr.Send(ctx, &rmq.Message{Topic: *topic, Body: []byte("ready?")})
				pr.GracefulStop()
				if err == nil {
					return nil
				}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s does not serve topic %s after %v: %v", *endpoint, *topic, *timeout, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return v
}

// table prints the Markdown comparison of the results in files (JSON
// lines); "-" reads stdin.
func table(w io.Writer, files []string) error {
	var results []Result
	for _, name := range files {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		dec := json.NewDecoder(r)
		for {
			var res Result
			if err := dec.Decode(&res); err == io.EOF {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			results = append(results, res)
		}
	}
	type key struct {
		label, kind string
		inFlight    int
	}
	var keys []key
	groups := map[key][]Result{}
	for _, r := range results {
		if r.Round < 1 {
			continue // a warm-up round
		}
		k := key{r.Label, r.Kind, r.InFlight}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	// Servers in the order they first appear; per server, the produce
	// points by sends in flight, then the drain.
	labelOrder := map[string]int{}
	for _, k := range keys {
		if _, ok := labelOrder[k.label]; !ok {
			labelOrder[k.label] = len(labelOrder)
		}
	}
	slices.SortStableFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(labelOrder[a.label], labelOrder[b.label]),
			cmp.Compare(a.kind, b.kind)*-1, cmp.Compare(a.inFlight, b.inFlight)) // "produce" before "drain"
	})
	med := func(rs []Result, get func(Result) float64) (m, lo, hi float64) {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[len(v)/2], v[0], v[len(v)-1]
	}
	fmt.Fprintln(w, "| server | workload | rounds | msgs/s (median, range) | p50 ms | p99 ms | server CPU s / 1k msgs | server allocs / msg | client CPU s / 1k msgs | errors | server RSS MiB |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, k := range keys {
		rs := groups[k]
		rate, lo, hi := med(rs, func(r Result) float64 { return r.PerSec })
		p50, _, _ := med(rs, func(r Result) float64 { return r.P50ms })
		p99, _, _ := med(rs, func(r Result) float64 { return r.P99ms })
		scpu, _, _ := med(rs, func(r Result) float64 { return r.ServerCPUPer1k })
		ccpu, _, _ := med(rs, func(r Result) float64 { return r.ClientCPUPer1k })
		rss, _, _ := med(rs, func(r Result) float64 { return r.ServerRSSMiB })
		allocs, _, _ := med(rs, func(r Result) float64 { return r.ServerAllocsPerMsg })
		allocStr := ""
		if allocs > 0 {
			allocStr = fmt.Sprintf("%.0f", allocs)
		}
		var errs int64
		for _, r := range rs {
			errs += r.Errors
		}
		work := fmt.Sprintf("produce, %d in flight", k.inFlight)
		lat := func(v float64) string { return fmt.Sprintf("%.2f", v) }
		p50s, p99s := lat(p50), lat(p99)
		if k.kind == "drain" {
			work = fmt.Sprintf("drain %d msgs, %d simple consumers", rs[0].Messages, k.inFlight)
			p50s, p99s = "", ""
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.0f (%.0f–%.0f) | %s | %s | %.3f | %s | %.3f | %d | %.0f |\n",
			k.label, work, len(rs), rate, lo, hi, p50s, p99s, scpu, allocStr, ccpu, errs, rss)
	}
	// Each other server against the first Apache one, point by point.
	var ref string
	for _, k := range keys {
		if strings.HasPrefix(k.label, "apache") {
			ref = k.label
			break
		}
	}
	if ref == "" {
		return nil
	}
	fmt.Fprintf(w, "\n| server | workload | throughput vs %s (median / median) | p99 ms (vs %s) |\n| --- | --- | --- | --- |\n", ref, ref)
	for _, k := range keys {
		base, ok := groups[key{ref, k.kind, k.inFlight}]
		if k.label == ref || !ok {
			continue
		}
		rs := groups[k]
		rate, _, _ := med(rs, func(r Result) float64 { return r.PerSec })
		baseRate, _, _ := med(base, func(r Result) float64 { return r.PerSec })
		work := fmt.Sprintf("produce, %d in flight", k.inFlight)
		p99 := ""
		if k.kind == "drain" {
			work = fmt.Sprintf("drain, %d simple consumers", k.inFlight)
		} else {
			mine, _, _ := med(rs, func(r Result) float64 { return r.P99ms })
			theirs, _, _ := med(base, func(r Result) float64 { return r.P99ms })
			p99 = fmt.Sprintf("%.2f (%.2f)", mine, theirs)
		}
		fmt.Fprintf(w, "| %s | %s | %.2f× | %s |\n", k.label, work, rate/baseRate, p99)
	}
	return nil
}

// startProducer starts a producer of topics, trying three times: the Go
// client v5.1.4 can fail its own start-up with "grpc: error while
// marshaling: ... size mismatch" (it marshals its settings, whose retry
// policy it shares with the code applying the server's settings answer on
// another goroutine: producerSettings.toProtobuf and applySettingsCommand),
// whatever the server.
func startProducer(endpoint string, topics ...string) (rmq.Producer, error) {
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		var pr rmq.Producer
		pr, err = rmq.NewProducer(&rmq.Config{Endpoint: endpoint}, rmq.WithTopics(topics...))
		if err != nil {
			return nil, err
		}
		if err = pr.Start(); err == nil {
			return pr, nil
		}
		// Start stopped the client already.
		fmt.Fprintf(os.Stderr, "loadgen: producer start, attempt %d of 3: %v\n", attempt, err)
	}
	return nil, fmt.Errorf("producer start: %w", err)
}
