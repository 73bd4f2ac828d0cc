package cluster_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/cluster"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/bench/servercost"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// The cluster benchmarks put three paths to the same broker side by side,
// in one run, on one box, with 1 KiB messages: rmqproxy in cluster mode
// and the Apache proxy (rocketmq-proxy, cluster mode), both through the
// official Go client, and a Remoting client straight to the broker (the
// floor any proxy adds to). Run with
//
//	go test -run '^$' -bench Cluster -benchtime 5000x ./test/cluster
//
// Everything (broker, proxies, clients) shares the machine, so compare the
// paths with each other, not with a dedicated deployment. The broker and
// the Apache proxy are JVMs of the benchmark's own with their production
// JIT (C2) and collector; the tests' quick-start flags (C1 only, serial
// GC) made both several times slower per message. rmqproxy runs as
// a child process (the built binary, like the Apache proxy runs in a JVM of
// its own), so that each process's CPU time can be told apart: every row
// reports the CPU milliseconds per message of the proxy, the broker JVM
// and this test process (the Go client, or the direct Remoting client),
// and the part of the broker's that its JIT compiler threads used
// (broker-jit-cpu-ms/msg): compare the brokers' cost per message without
// it (see jitCPU). CLUSTER_BENCH_JFR=DIR records the broker with JFR over
// each measured row (see recordBroker).
//
// CLUSTER_BENCH_CPUPROFILE=FILE writes a CPU profile of rmqproxy taken
// during its produce and consume rows (FILE.produce, FILE.consume), over
// CLUSTER_BENCH_PROFILE_SECONDS (10) from the start of the row, and its
// allocation profiles at the start and the end of that window
// (FILE.produce.allocs0, .allocs1: compare them with pprof -base); give the
// row enough messages to last that long. Every row but the push
// consumer's first sends or receives CLUSTER_BENCH_WARMUP (3000) messages
// untimed, after a warm-up pass over all rows (see benchPasses). After the rows the
// CPU the processes use while idle is printed (the 5.5.0 broker's timer
// wheel flush alone spins ~0.35 CPU-s/s here); CLUSTER_BENCH_THREADS=1
// adds the broker's busiest threads, idle and in each row. CLUSTER_BENCH_SENDERS changes the
// produce rows' concurrent senders (16). CLUSTER_BENCH_COALESCE_SENDS=false
// and CLUSTER_BENCH_BATCH_ACK=false turn rmqproxy's coalescing of sends and
// acks off; CLUSTER_BENCH_CONNECTIONS sets cluster.connectionsPerBroker; CLUSTER_BENCH_APACHE=false leaves the Apache proxy out. CLUSTER_BENCH_DIRECT_SENDERS changes
// the direct produce row's alone, e.g. to compare the broker's cost
// per message at the rate the proxies reach. CLUSTER_BENCH_DIRECT_PROPS=1
// adds a direct produce row whose messages carry the properties rmqproxy
// stores for a Go client's message (see directRows).

var benchBody = func() []byte {
	b := make([]byte, 1024)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}()

// benchPaths starts both proxies in front of the pass's broker once per
// benchmark and returns them with a topic of benchmark's own.
type benchPaths struct {
	ours, theirs *testenv.Proxy
	apache       *rocketmqenv.ApacheProxy
	broker       *testenv.ClusterBroker
	topic        string
}

var benchSeq atomic.Int32

func startPaths(b *testing.B) *benchPaths {
	b.Helper()
	cfg, broker := testenv.AddBenchmarkBroker(b)
	cfg.Messaging = application.DefaultConfig()
	// The production route TTL, not the tests' 2 s: an expired route is
	// read again in the send path (NameServer + broker round trips).
	cfg.Cluster.RouteTTL = cluster.DefaultConfig().RouteTTL
	cfg.Log.Level = "warn"
	cfg.Health.Pprof = true
	if v := os.Getenv("CLUSTER_BENCH_BATCH_ACK"); v != "" {
		cfg.Cluster.BatchAck = v != "false"
	}
	if v := os.Getenv("CLUSTER_BENCH_COALESCE_SENDS"); v != "" {
		cfg.Cluster.CoalesceSends = v != "false"
	}
	if n, err := strconv.Atoi(os.Getenv("CLUSTER_BENCH_CONNECTIONS")); err == nil {
		cfg.Cluster.ConnectionsPerBroker = n
	}
	ours := testenv.Start(b, cfg) // a child process: see TestMain
	topic := fmt.Sprintf("bench-%d", benchSeq.Add(1))
	ours.CreateTopic(b, topic, domain.MessageTypeNormal, 8)
	paths := &benchPaths{ours: ours, broker: broker, topic: topic}
	if os.Getenv("CLUSTER_BENCH_APACHE") == "false" {
		return paths
	}
	paths.apache = testenv.NameServer().StartApacheProxyJIT(b, broker.Cluster, true)
	paths.theirs = &testenv.Proxy{Addr: paths.apache.GRPC}
	testenv.WaitForRoute(b, paths.theirs, topic)
	return paths
}

// idleCPU prints the CPU the broker and the proxies use per second while
// nothing is sent (after the rows, warm): the broker's background services (flush, reput,
// revive, timers, ...) spin whatever the load, so its CPU per message in
// a slow row holds more of them than in a fast one.
func (p *benchPaths) idleCPU(b *testing.B) {
	b.Helper()
	pids := map[string]int{"broker": p.broker.PID(), "rmqproxy": p.ours.PID()}
	if p.apache != nil {
		pids["apache-proxy"] = p.apache.PID()
	}
	before := map[string]float64{}
	for name, pid := range pids {
		s, err := servercost.CPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		before[name] = s
	}
	threads := threadCPU(p.broker.PID())
	const window = 3 * time.Second
	time.Sleep(window) // measuring idle time: nothing to wait for
	for name, pid := range pids {
		s, err := servercost.CPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Printf("idle: %s uses %.0f CPU-ms/s\n", name, (s-before[name])*1000/window.Seconds())
	}
	if os.Getenv("CLUSTER_BENCH_THREADS") == "" {
		return
	}
	for _, u := range busiestThreads(threads, threadCPU(p.broker.PID()), window.Seconds()) {
		fmt.Printf("idle: broker thread %-16s %.0f CPU-ms/s\n", u.name, u.ms)
	}
}

// threadShare is the CPU milliseconds a thread used per unit (a second, a
// message).
type threadShare struct {
	name string
	ms   float64
}

// busiestThreads returns the 15 threads that used the most CPU between
// two threadCPU readings, in milliseconds per unit (units between them).
func busiestThreads(before, after map[string]threadUse, units float64) []threadShare {
	var top []threadShare
	for tid, a := range after {
		if t0, ok := before[tid]; ok && a.cpu > t0.cpu {
			top = append(top, threadShare{a.name, (a.cpu - t0.cpu) * 1000 / units})
		}
	}
	slices.SortFunc(top, func(a, b threadShare) int { return cmp.Compare(b.ms, a.ms) })
	return top[:min(len(top), 15)]
}

type threadUse struct {
	name string
	cpu  float64
}

// jitCPU returns the CPU seconds the JVM's JIT compiler threads (C1, C2)
// used between two threadCPU readings, threads started between them
// included. Each benchmark starts a broker of its own, whose C2 compiler
// still works through the broker's code for minutes, while it is busy,
// after the warm pass: CPU that follows the time a row lasts, not its
// messages, so that a slower row's broker-cpu-ms/msg holds more of it
// (broker-jit-cpu-ms/msg is that part).
func jitCPU(before, after map[string]threadUse) float64 {
	var s float64
	for tid, a := range after {
		if strings.HasPrefix(a.name, "C1 Compiler") || strings.HasPrefix(a.name, "C2 Compiler") {
			s += a.cpu - before[tid].cpu
		}
	}
	return s
}

// recordBroker records the broker JVM with JFR (its "profile" settings)
// over a measured row when CLUSTER_BENCH_JFR names a directory, into
// DIR/<workload>-<row>.jfr (read it with `jfr print --events
// jdk.ExecutionSample` or `jfr summary`); the returned function stops it.
// Starting a recording makes the JVM discard compiled code ("Jvmti state
// change invalidated dependencies") and compile it again, so the CPU
// figures of rows recorded so are not comparable with others.
func (p *benchPaths) recordBroker(b *testing.B, row, workload string) func() {
	dir := os.Getenv("CLUSTER_BENCH_JFR")
	if dir == "" || b.N < 100 || strings.Contains(b.Name(), "/warm-") {
		return func() {}
	}
	pid := strconv.Itoa(p.broker.PID())
	name := workload + "-" + row
	out, err := exec.Command("jcmd", pid, "JFR.start", "name="+name, "settings=profile", "filename="+filepath.Join(dir, name+".jfr")).CombinedOutput()
	if err != nil {
		b.Fatalf("jcmd JFR.start: %v: %s", err, out)
	}
	return func() {
		if out, err := exec.Command("jcmd", pid, "JFR.stop", "name="+name).CombinedOutput(); err != nil {
			b.Errorf("jcmd JFR.stop: %v: %s", err, out)
		}
	}
}

// threadCPU reads the CPU seconds of each thread of pid (by thread id).
func threadCPU(pid int) map[string]threadUse {
	out := map[string]threadUse{}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		raw, err := os.ReadFile(dir + "/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		f := strings.Fields(s[end+1:])
		if open < 0 || len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[e.Name()] = threadUse{s[open+1 : end], (ut + st) / servercost.UserHZ}
	}
	return out
}

// proxyPID is the process id of the proxy of a row (0 for none).
func (p *benchPaths) proxyPID(name string) int {
	switch name {
	case "rmqproxy":
		return p.ours.PID()
	case "apache-proxy":
		return p.apache.PID()
	}
	return 0
}

// cpuMeter reports the CPU time processes spend during a row, per
// message, as proxy-, broker- and client-cpu-ms/msg (client = this test
// process), the proxy's read and write system calls per message, and
// rmqproxy's heap allocations (objects and bytes) per message.
type cpuMeter struct {
	names    []string
	pids     []int
	start    []float64
	proxy    int             // the proxy's pid, 0 for none
	syscalls int64           // the proxy's reads and writes so far
	pprof    string          // rmqproxy's pprof base URL, "" for other rows
	heap     servercost.Heap // rmqproxy's heap counters at the start
}

// syscallsOf returns the read and write system calls process pid has made
// (/proc/<pid>/io syscr + syscw), 0 when it cannot be read.
func syscallsOf(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	var n int64
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		if k == "syscr" || k == "syscw" {
			c, _ := strconv.ParseInt(v, 10, 64)
			n += c
		}
	}
	return n
}

func meterCPU(b *testing.B, proxy, broker int, pprof string) *cpuMeter {
	b.Helper()
	m := &cpuMeter{proxy: proxy, pprof: pprof}
	if proxy != 0 {
		m.syscalls = syscallsOf(proxy)
	}
	if pprof != "" {
		h, err := servercost.ReadHeap(pprof)
		if err != nil {
			b.Fatal(err)
		}
		m.heap = h
	}
	for _, p := range []struct {
		name string
		pid  int
	}{{"proxy", proxy}, {"broker", broker}, {"client", os.Getpid()}} {
		if p.pid == 0 {
			continue
		}
		s, err := servercost.CPU(p.pid)
		if err != nil {
			b.Fatal(err)
		}
		m.names, m.pids, m.start = append(m.names, p.name), append(m.pids, p.pid), append(m.start, s)
	}
	return m
}

func (m *cpuMeter) report(b *testing.B, msgs int64) {
	b.Helper()
	if msgs == 0 {
		return
	}
	for i, pid := range m.pids {
		s, err := servercost.CPU(pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric((s-m.start[i])*1000/float64(msgs), m.names[i]+"-cpu-ms/msg")
	}
	if m.proxy != 0 {
		b.ReportMetric(float64(syscallsOf(m.proxy)-m.syscalls)/float64(msgs), "proxy-rw-calls/msg")
	}
	if m.pprof != "" {
		h, err := servercost.ReadHeap(m.pprof)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(h.Mallocs-m.heap.Mallocs)/float64(msgs), "proxy-allocs/msg")
		b.ReportMetric(float64(h.TotalAlloc-m.heap.TotalAlloc)/float64(msgs), "proxy-B/msg")
	}
}

// profileProxy takes a CPU profile of rmqproxy over the start of a row when
// CLUSTER_BENCH_CPUPROFILE is set; the returned function waits for it.
func profileProxy(b *testing.B, p *testenv.Proxy, suffix string) func() {
	file := os.Getenv("CLUSTER_BENCH_CPUPROFILE")
	if file == "" || b.N < 100 {
		return func() {}
	}
	secs := cmp.Or(os.Getenv("CLUSTER_BENCH_PROFILE_SECONDS"), "10")
	allocs := func(name string) {
		resp, err := http.Get("http://" + p.HealthAddr() + "/debug/pprof/allocs")
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(file+"."+suffix+"."+name, data, 0o644)
		}
		if err != nil {
			b.Error(err)
		}
	}
	allocs("allocs0")
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer allocs("allocs1")
		resp, err := http.Get("http://" + p.HealthAddr() + "/debug/pprof/profile?seconds=" + secs)
		if err != nil {
			b.Error(err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(file+"."+suffix, data, 0o644)
		}
		if err != nil {
			b.Error(err)
		}
	}()
	return func() { <-done }
}

// percentiles reports p50 and p99 of ds as metrics.
func percentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
}

// warmup is how many messages a row sends or receives, untimed, before it
// measures (CLUSTER_BENCH_WARMUP, 3000): its own connections and the
// proxy's hot paths; the JVMs' compilers are warmed by a whole pass first
// (see benchPasses).
func warmup(b *testing.B) int64 {
	if b.N < 100 {
		return 0 // the N=1 probe run
	}
	if n, err := strconv.Atoi(os.Getenv("CLUSTER_BENCH_WARMUP")); err == nil {
		return int64(n)
	}
	return 3000
}

// startRow starts measuring a row: CPU per process and, for rmqproxy, a
// profile when asked for. The returned function reports them for msgs.
func (p *benchPaths) startRow(b *testing.B, name, workload string) func(msgs int64) {
	pprof := ""
	if name == "rmqproxy" {
		pprof = "http://" + p.ours.HealthAddr() + "/debug/pprof"
	}
	stopJFR := p.recordBroker(b, name, workload)
	m := meterCPU(b, p.proxyPID(name), p.broker.PID(), pprof)
	wait := func() {}
	if name == "rmqproxy" && !strings.Contains(b.Name(), "/warm-") { // the measured pass's row only
		wait = profileProxy(b, p.ours, workload)
	}
	threads := os.Getenv("CLUSTER_BENCH_THREADS") != ""
	before := threadCPU(p.broker.PID())
	return func(msgs int64) {
		m.report(b, msgs)
		after := threadCPU(p.broker.PID())
		stopJFR()
		if msgs > 0 {
			b.ReportMetric(jitCPU(before, after)*1000/float64(msgs), "broker-jit-cpu-ms/msg")
		}
		wait()
		if threads && msgs > 0 {
			for _, u := range busiestThreads(before, after, float64(msgs)) {
				b.Logf("broker thread %-16s %.4f CPU-ms/msg", u.name, u.ms)
			}
		}
	}
}

// runSenders runs send from senders goroutines warmup(b) times untimed,
// then b.N times, and reports throughput and send latency of the latter.
// begin is called between the two and returns what ends the measurement.
func runSenders(b *testing.B, senders int, begin func() func(int64), send func(ctx context.Context) error) {
	b.SetBytes(int64(len(benchBody)))
	drive := func(n int64, lat *[]time.Duration) {
		var next atomic.Int64
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]time.Duration, 0, n/int64(senders)+1)
				for next.Add(1) <= n {
					t0 := time.Now()
					if err := send(b.Context()); err != nil {
						b.Error(err)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				*lat = append(*lat, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	var ignored []time.Duration
	drive(warmup(b), &ignored)
	end := begin()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	b.StartTimer()
	start := time.Now()
	drive(int64(b.N), &lat)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	end(int64(b.N))
	percentiles(b, lat)
}

// BenchmarkClusterProduce: 16 concurrent senders of 1 KiB messages.
func BenchmarkClusterProduce(b *testing.B) {
	paths := startPaths(b)
	defer paths.idleCPU(b)
	senders := 16
	if n, err := strconv.Atoi(os.Getenv("CLUSTER_BENCH_SENDERS")); err == nil && n > 0 {
		senders = n
	}
	for _, pass := range benchPasses() {
		for _, via := range paths.proxies() {
			b.Run(pass+via.name, func(b *testing.B) {
				pr := testenv.NewProducer(b, via.p, paths.topic)
				begin := func() func(int64) { return paths.startRow(b, via.name, "produce") }
				runSenders(b, senders, begin, func(ctx context.Context) error {
					_, err := pr.Send(ctx, &rmq.Message{Topic: paths.topic, Body: benchBody})
					return err
				})
			})
		}
		directSenders := senders
		if n, err := strconv.Atoi(os.Getenv("CLUSTER_BENCH_DIRECT_SENDERS")); err == nil {
			directSenders = n
		}
		for _, row := range directRows() {
			b.Run(pass+row, func(b *testing.B) {
				directProduce(b, paths, row, directSenders)
			})
		}
	}
}

// directRows names the direct produce rows: "direct-remoting", whose
// messages carry one property (UNIQ_KEY), and with
// CLUSTER_BENCH_DIRECT_PROPS=1 also "direct-remoting-client-props", whose
// messages carry the properties rmqproxy writes for a message of the Go
// client without tag or keys (UNIQ_KEY, RECONSUME_TIME, PGROUP, BORN_HOST,
// BORN_TIMESTAMP), to tell the broker's cost of those properties from the
// other differences between the proxy rows and the direct one.
func directRows() []string {
	if os.Getenv("CLUSTER_BENCH_DIRECT_PROPS") == "1" {
		return []string{"direct-remoting", "direct-remoting-client-props"}
	}
	return []string{"direct-remoting"}
}

// directProduce is a direct produce row: senders SEND_MESSAGE_V2 calls at
// once, straight to the broker.
func directProduce(b *testing.B, paths *benchPaths, row string, senders int) {
	rc := client.New(client.Config{})
	defer rc.Close()
	var seq atomic.Int64
	begin := func() func(int64) { return paths.startRow(b, row, "produce") }
	clientProps := row == "direct-remoting-client-props"
	runSenders(b, senders, begin, func(ctx context.Context) error {
		n := seq.Add(1)
		fields := remoting.Properties{{Key: remoting.PropertyUniqKey, Value: fmt.Sprintf("BENCH%028X", n)}}
		if clientProps {
			fields = append(fields, remoting.Field{Key: "RECONSUME_TIME", Value: "0"}, remoting.Field{Key: "PGROUP", Value: paths.topic},
				remoting.Field{Key: remoting.PropertyBornHost, Value: "127.0.0.1:54321"},
				remoting.Field{Key: remoting.PropertyBornTimestamp, Value: strconv.FormatInt(time.Now().UnixMilli(), 10)})
		}
		props, _ := remoting.FormatProperties(fields)
		h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: paths.broker.Name}, ProducerGroup: paths.topic,
			Topic: paths.topic, DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: int32(n % 8),
			BornTimestamp: time.Now().UnixMilli(), Properties: props}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		// Up to 3 attempts on a busy broker, as the Java producer
		// (retryTimesWhenSendFailed 2) and the Go client both do.
		var err error
		for range 3 {
			req := remoting.NewRequest(remoting.RequestSendMessageV2, h.AppendFieldsV2(nil), benchBody)
			var resp *remoting.Command
			if resp, err = rc.Invoke(cctx, paths.broker.Addr, req); err != nil {
				return err
			}
			var re *remoting.ResponseError
			if err = remoting.Expect(resp); !errors.As(err, &re) || !re.Retryable() {
				return err
			}
		}
		return err
	})
}

// benchPasses names the passes of the produce and consume benchmarks over
// their rows: first a pass whose rows ("warm-…") warm the JVMs for all
// rows alike, then the measured one. Measured in one pass, the first row
// paid for the broker's JIT compiling what every row runs (its C2 thread
// took 0.41 CPU-ms per message in rmqproxy's consume row, 0.003 in the
// direct row that came last). CLUSTER_BENCH_PASSES=1 skips the warm pass.
func benchPasses() []string {
	if os.Getenv("CLUSTER_BENCH_PASSES") == "1" {
		return []string{""}
	}
	return []string{"warm-", ""}
}

// proxyPath is one of the two proxies a benchmark compares.
type proxyPath struct {
	name string
	p    *testenv.Proxy
}

// proxies returns rmqproxy and the Apache proxy, in that order (rmqproxy
// alone with CLUSTER_BENCH_APACHE=false).
func (p *benchPaths) proxies() []proxyPath {
	if p.theirs == nil {
		return []proxyPath{{"rmqproxy", p.ours}}
	}
	return []proxyPath{{"rmqproxy", p.ours}, {"apache-proxy", p.theirs}}
}

// preload sends total messages to the benchmark's topic through pr, from
// 16 senders.
func (p *benchPaths) preload(b *testing.B, pr rmq.Producer, total int64) {
	b.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= total {
				if _, err := pr.Send(b.Context(), &rmq.Message{Topic: p.topic, Body: benchBody}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// pushCache is the push consumer's cache (messages received and not yet
// acked) for a row of total messages: all of them, at least the client's
// default (1024). With the default the row measured the Go client's
// flow control, not the proxies: each proxy hands a push consumer one
// queue per broker (id -1), so the client receives 32 at a time into one
// cache of 1024, and whenever receiving outruns its 20 consumption threads
// and the cache is full, it waits a whole second before it receives again
// (RECEIVING_BACKOFF_DELAY_WHEN_CACHE_IS_FULL); the threads drain the cache
// in about 0.2 s and then idle. A 6000-message row lasts one to three
// seconds, so it held zero, one or two such pauses: rmqproxy's row
// measured ~4,200-4,600, ~2,900 or ~2,100 msgs/s from run to run with
// nothing else changed.
func pushCache(total int64) int32 {
	return int32(max(total, 1024))
}

// BenchmarkClusterConsumePush: b.N messages preloaded, then consumed by one
// official Go push consumer (its defaults, 20 consumption threads each
// acking the message it consumed, but for its cache: see pushCache)
// through each proxy. The row runs from the first message the listener
// sees to b.N more (no warm-up messages of its own: see the comment on
// warm below); a warm-up pass over both rows comes first (see
// benchPasses).
// CLUSTER_BENCH_BATCH_ACK=false turns rmqproxy's cluster.batchAck off
// (acks then go one ACK_MESSAGE each, as through the Apache proxy).
func BenchmarkClusterConsumePush(b *testing.B) {
	paths := startPaths(b)
	defer paths.idleCPU(b)
	pr := testenv.NewProducer(b, paths.ours, paths.topic)
	for _, pass := range benchPasses() {
		for i, via := range paths.proxies() {
			b.Run(pass+via.name, func(b *testing.B) {
				b.StopTimer()
				b.SetBytes(int64(len(benchBody)))
				// The row starts at the first message consumed (after the
				// consumer's start-up), not after a warm-up of its own:
				// the consumer would have received (popped) messages of
				// the row during one (see pushCache). The warm pass
				// warms the processes.
				warm := min(warmup(b), 1)
				paths.preload(b, pr, int64(b.N)+warm)
				group := "g-bench-push-" + pass + via.name + "-" + strconv.Itoa(b.N) + "-" + strconv.Itoa(i)
				var seen atomic.Int64
				warmed, done := make(chan struct{}), make(chan struct{})
				pc, err := rmq.NewPushConsumer(&rmq.Config{Endpoint: via.p.Addr, ConsumerGroup: group},
					rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{paths.topic: rmq.SUB_ALL}),
					// Room for every message of the row: see pushCache.
					rmq.WithPushMaxCacheMessageCount(pushCache(warm+int64(b.N))),
					rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: func(*rmq.MessageView) rmq.ConsumerResult {
						switch seen.Add(1) {
						case warm:
							close(warmed)
						case warm + int64(b.N):
							close(done)
						}
						return rmq.SUCCESS
					}}))
				if err != nil {
					b.Fatal(err)
				}
				if warm == 0 {
					close(warmed)
				}
				if err := pc.Start(); err != nil {
					b.Fatal(err)
				}
				defer pc.GracefulStop()
				await := func(c chan struct{}, what string) {
					select {
					case <-c:
					case <-time.After(10 * time.Minute):
						b.Fatalf("%s: %d of %d messages consumed", what, seen.Load(), warm+int64(b.N))
					}
				}
				await(warmed, "warm-up")
				end := paths.startRow(b, via.name, "consume-push")
				b.ResetTimer()
				b.StartTimer()
				start := time.Now()
				await(done, "run")
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
				b.StopTimer()
				end(int64(b.N))
			})
		}
	}
}

// BenchmarkClusterConsume: b.N messages preloaded, then received and acked
// by 4 simple consumers (batches of 32) through each proxy, and by 4 pop
// loops (POP_MESSAGE + ACK_MESSAGE) straight to the broker.
func BenchmarkClusterConsume(b *testing.B) {
	paths := startPaths(b)
	defer paths.idleCPU(b)
	pr := testenv.NewProducer(b, paths.ours, paths.topic)
	// Each row consumes its warm-up, then b.N; a consumer may go past
	// the warm-up by a batch.
	preload := func(b *testing.B) { paths.preload(b, pr, int64(b.N)+warmup(b)+4*32) }
	consumeWith := func(b *testing.B, name string, receive func(ctx context.Context) (int, error)) {
		b.SetBytes(int64(len(benchBody)))
		// Warm-up: each consumer stops after a receive once the count
		// is reached, with nothing left unacknowledged.
		var warm atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for warm.Load() < warmup(b) {
					n, err := receive(b.Context())
					if err != nil && !testenv.IsNoMessage(err) {
						b.Error(err)
						return
					}
					warm.Add(int64(n))
				}
			})
		}
		wg.Wait()
		var got atomic.Int64
		end := paths.startRow(b, name, "consume")
		b.ResetTimer()
		b.StartTimer()
		start := time.Now()
		// The last message ends the other consumers' long polls.
		ctx, done := context.WithCancel(b.Context())
		defer done()
		for range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					n, err := receive(ctx)
					if err != nil && ctx.Err() == nil && !testenv.IsNoMessage(err) {
						b.Error(err)
						return
					}
					if got.Add(int64(n)) >= int64(b.N) {
						done()
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(got.Load())/time.Since(start).Seconds(), "msgs/s")
		b.StopTimer()
		end(got.Load())
	}
	for _, pass := range benchPasses() {
		for i, via := range paths.proxies() {
			b.Run(pass+via.name, func(b *testing.B) {
				b.StopTimer()
				preload(b)
				group := "g-bench-" + pass + via.name + "-" + strconv.Itoa(b.N) + "-" + strconv.Itoa(i)
				// 5 s: both proxies refuse a shorter long poll (minimum 5 s).
				c := testenv.NewSimpleConsumer(b, via.p, group, 5*time.Second, map[string]*rmq.FilterExpression{paths.topic: rmq.SUB_ALL})
				consumeWith(b, via.name, func(ctx context.Context) (int, error) {
					ms, err := c.Receive(ctx, 32, 30*time.Second)
					for _, m := range ms {
						if err := c.Ack(ctx, m); err != nil {
							return 0, err
						}
					}
					return len(ms), err
				})
			})
		}
		b.Run(pass+"direct-remoting", func(b *testing.B) {
			b.StopTimer()
			preload(b)
			group := "g-bench-" + pass + "direct-" + strconv.Itoa(b.N)
			rc := client.New(client.Config{})
			defer rc.Close()
			rpc := remoting.RPC{BrokerName: paths.broker.Name}
			consumeWith(b, "direct-remoting", func(ctx context.Context) (int, error) {
				pop := remoting.PopMessageRequestHeader{RPC: rpc, ConsumerGroup: group, Topic: paths.topic, QueueID: -1, MaxMsgNums: 32,
					InvisibleTime: 30000, PollTime: 1000, BornTime: time.Now().UnixMilli(), InitMode: remoting.InitModeMin,
					ExpType: remoting.ExpressionTag, Exp: "*"}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				resp, err := rc.Invoke(cctx, paths.broker.Addr, remoting.NewRequest(remoting.RequestPopMessage, remoting.EncodeHeader(&pop), nil))
				if err != nil {
					return 0, err
				}
				if resp.Code != int32(remoting.ResponseSuccess) {
					return 0, nil // polled, nothing there
				}
				var ph remoting.PopMessageResponseHeader
				if err := ph.DecodeFields(resp.Fields); err != nil {
					return 0, err
				}
				msgs, err := remoting.DecodeMessages(resp.Body)
				if err != nil {
					return 0, err
				}
				if err := remoting.PopCheckpoints(paths.topic, &ph, paths.broker.Name, false, msgs); err != nil {
					return 0, err
				}
				for _, m := range msgs {
					ck, err := remoting.ParseExtraInfo(m.Properties.Value(remoting.PropertyPopCK))
					if err != nil {
						return 0, err
					}
					ack := remoting.AckMessageRequestHeader{RPC: rpc, ConsumerGroup: group, Topic: ck.RealTopic(paths.topic, group),
						QueueID: ck.QueueID, ExtraInfo: ck.String(), Offset: ck.QueueOffset}
					r, err := rc.Invoke(cctx, paths.broker.Addr, remoting.NewRequest(remoting.RequestAckMessage, remoting.EncodeHeader(&ack), nil))
					if err != nil {
						return 0, err
					}
					if err := remoting.Expect(r); err != nil {
						return 0, err
					}
				}
				return len(msgs), nil
			})
		})
	}
}
