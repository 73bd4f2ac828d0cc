package localbroker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// restartScale is the size of the data directory BenchmarkRestartAtScale
// builds; RMQPROXY_TEST_BENCH_SCALE multiplies it (default 1).
type restartScale struct {
	topics, msgsPerTopic int // small topics, each with its own group
	big                  int // messages in the 4 queues of topic "big"
	inflight             int // of them popped by group "gin" and not acked
	acked                int // acked by group "gack" behind one held message
	timers, txns         int // pending delay messages, pending half messages
	tail                 int // messages sent after the last snapshot (crash case)
}

func benchRestartScale() restartScale {
	k := 1.0
	if v, err := strconv.ParseFloat(os.Getenv("RMQPROXY_TEST_BENCH_SCALE"), 64); err == nil && v > 0 {
		k = v
	}
	n := func(x int) int { return max(100, int(float64(x)*k)/100*100) }
	return restartScale{topics: n(2000), msgsPerTopic: 200, big: n(400_000), inflight: n(200_000), acked: n(300_000),
		timers: n(300_000), txns: n(100_000), tail: n(200_000)}
}

// buildRestartState fills an engine with sc's state; the clock stays put, so
// that nothing expires or fires while it is built.
func buildRestartState(b *testing.B, e *Engine, sc restartScale) {
	ctx := context.Background()
	body := make([]byte, 32)
	send := func(topic string, qid int32, ms []domain.Message) {
		if _, err := e.Send(ctx, domain.QueueRef{Topic: topic, BrokerName: e.cfg.BrokerName, QueueID: qid}, ms); err != nil {
			b.Fatal(err)
		}
	}
	topic := func(name string, typ domain.MessageType, queues int32) {
		if _, err := e.CreateTopic(ctx, domain.Topic{Name: name, Type: typ, QueueCount: queues, Permission: domain.PermRead | domain.PermWrite}); err != nil {
			b.Fatal(err)
		}
	}
	group := func(name string) {
		if _, err := e.CreateGroup(ctx, domain.NewConsumerGroup(name)); err != nil {
			b.Fatal(err)
		}
	}
	pop := func(g, t string, qid int32, n int32, inv time.Duration) []domain.StoredMessage {
		ms, err := e.Pop(ctx, ports.PopRequest{Group: g, Topic: t, QueueID: qid, MaxMessages: n, InvisibleTime: inv})
		if err != nil {
			b.Fatal(err)
		}
		return ms
	}
	for i := range sc.topics {
		name := fmt.Sprintf("t%05d", i)
		topic(name, domain.MessageTypeNormal, 4)
		group("g" + name[1:])
		for q := range int32(4) {
			ms := make([]domain.Message, sc.msgsPerTopic/4)
			for j := range ms {
				ms[j] = domain.Message{Topic: name, ID: fmt.Sprint(name, "-", q, "-", j), Body: body}
			}
			send(name, q, ms)
		}
		// Each group consumes half of its topic's first queue.
		for _, m := range pop("g"+name[1:], name, 0, int32(sc.msgsPerTopic/8), time.Minute) {
			if err := e.Ack(ctx, ackReq("g"+name[1:], m)); err != nil {
				b.Fatal(err)
			}
		}
	}
	topic("big", domain.MessageTypeNormal, 4)
	group("gin")
	group("gack")
	for i := 0; i < sc.big; i += 1000 {
		ms := make([]domain.Message, min(1000, sc.big-i))
		for j := range ms {
			ms[j] = domain.Message{Topic: "big", ID: fmt.Sprint("big-", i+j), Body: body}
		}
		send("big", int32(i/1000%4), ms)
	}
	// In flight: popped with invisible times from 30 to 90 minutes (as
	// clients with different settings and renewals leave them).
	for q := range int32(4) {
		for got, i := 0, 0; got < sc.inflight/4; i++ {
			ms := pop("gin", "big", q, 32, 30*time.Minute+time.Duration(i*7919%3600)*time.Second)
			if len(ms) == 0 {
				b.Fatalf("gin: nothing to pop after %d", got)
			}
			got += len(ms)
		}
	}
	// One held message, the rest acked behind it.
	topic("acks", domain.MessageTypeNormal, 1)
	for i := 0; i < sc.acked; i += 1000 {
		ms := make([]domain.Message, min(1000, sc.acked-i))
		for j := range ms {
			ms[j] = domain.Message{Topic: "acks", ID: fmt.Sprint("a-", i+j), Body: body}
		}
		send("acks", 0, ms)
	}
	held := false
	for done := 0; done < sc.acked; {
		ms := pop("gack", "acks", 0, 100, time.Hour)
		if len(ms) == 0 {
			b.Fatalf("gack: nothing to pop after %d", done)
		}
		reqs := make([]ports.AckRequest, 0, len(ms))
		for _, m := range ms {
			if !held {
				held = true
				continue
			}
			reqs = append(reqs, ackReq("gack", m))
		}
		for _, err := range e.AckBatch(ctx, reqs) {
			if err != nil {
				b.Fatal(err)
			}
		}
		done += len(ms)
	}
	topic("delay", domain.MessageTypeDelay, 4)
	now := e.clock.Now()
	for i := 0; i < sc.timers; i += 500 {
		ms := make([]domain.Message, min(500, sc.timers-i))
		for j := range ms {
			n := i + j
			ms[j] = domain.Message{Topic: "delay", ID: fmt.Sprint("d", n), Body: body,
				DeliverAt: now.Add(3*time.Hour + time.Duration(n)*10*time.Hour/time.Duration(sc.timers))}
		}
		send("delay", int32(i/500%4), ms)
	}
	topic("txn", domain.MessageTypeTransaction, 4)
	for i := 0; i < sc.txns; i += 100 {
		ms := make([]domain.Message, min(100, sc.txns-i))
		for j := range ms {
			ms[j] = domain.Message{Topic: "txn", ID: fmt.Sprint("x", i+j), Body: body, Transactional: true,
				TransactionRecovery: 2 * time.Hour}
		}
		send("txn", int32(i/100%4), ms)
	}
}

// sendTail sends n more messages to "big" (after the last snapshot).
func sendTail(b *testing.B, e *Engine, n int) {
	body := make([]byte, 32)
	for i := 0; i < n; i += 1000 {
		ms := make([]domain.Message, min(1000, n-i))
		for j := range ms {
			ms[j] = domain.Message{Topic: "big", ID: fmt.Sprint("tail-", i+j), Body: body}
		}
		if _, err := e.Send(context.Background(), domain.QueueRef{Topic: "big", BrokerName: e.cfg.BrokerName, QueueID: int32(i / 1000 % 4)}, ms); err != nil {
			b.Fatal(err)
		}
	}
}

// peakSampler samples the Go heap (live objects) every few milliseconds.
type peakSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

func startPeakSampler() *peakSampler {
	p := &peakSampler{stop: make(chan struct{})}
	// The kernel's peak RSS of the process starts again from the current RSS.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			p.peak = max(p.peak, s[0].Value.Uint64())
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) end() (heapMiB, hwmMiB float64) {
	close(p.stop)
	p.done.Wait()
	b, _ := os.ReadFile("/proc/self/status")
	var kb float64
	for _, line := range splitLines(string(b)) {
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kb); err == nil {
			break
		}
	}
	return float64(p.peak) / (1 << 20), kb / 1024
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

// profileOpen writes, when RMQPROXY_TEST_BENCH_PROFILE names a directory,
// a CPU profile of what runs until the returned function is called and heap
// profiles before and after (compare with pprof -diff_base).
func profileOpen(b *testing.B, name string) func() {
	dir := os.Getenv("RMQPROXY_TEST_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	heap := func(suffix string) {
		f, err := os.Create(filepath.Join(dir, name+"."+suffix+".heap"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	heap("before")
	f, err := os.Create(filepath.Join(dir, name+".cpu"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
		heap("after")
	}
}

// BenchmarkRestartAtScale measures starts of a large data directory
// (benchRestartScale: thousands of topics and groups, hundreds of thousands
// of messages in flight, a long acked range behind a held message, pending
// delay and half messages): after a clean stop, after kill -9 with the
// tail of the log after the last snapshot to replay, after the deadlines
// of every delivery in flight passed during the downtime, and with the
// derived files (consume queues, timer buckets) removed. It reports the
// wall and CPU time of Open, the peak of the Go heap during it, the
// process's peak RSS from just before it, and the heap in use after it
// and once the consume-queue entries it added were written, and how long
// a snapshot's capture of the state holds the engine lock at a time (its
// start, the longest of its batches) and takes in all.
func BenchmarkRestartAtScale(b *testing.B) {
	sc := benchRestartScale()
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.Flush = "async"
	cfg.SegmentSize = 256 << 20
	cfg.SnapshotInterval = time.Hour
	clock := newFakeClock()
	ctx := context.Background()
	open := func() *Engine {
		e, err := Open(ctx, cfg, nil, clock)
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	e := open()
	start := time.Now()
	buildRestartState(b, e, sc)
	b.Logf("built %+v in %v; log %d MiB", sc, time.Since(start), e.clog.NextOffset()>>20)
	if err := e.Close(ctx); err != nil {
		b.Fatal(err)
	}
	measure := func(b *testing.B, name string, prepare func() func(*Engine)) {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				after := prepare()
				runtime.GC()
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				p := startPeakSampler()
				cpu := processCPU()
				t0 := time.Now()
				prof := profileOpen(b, name)
				b.StartTimer()
				e := open()
				b.StopTimer()
				prof()
				took := time.Since(t0)
				cpu = processCPU() - cpu
				heap, hwm := p.end()
				runtime.ReadMemStats(&m1)
				b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/(1<<20), "alloc-MiB")
				b.ReportMetric(took.Seconds(), "wall-s/op")
				b.ReportMetric(cpu.Seconds(), "cpu-s/op")
				b.ReportMetric(heap, "peak-heap-MiB")
				b.ReportMetric(hwm, "peak-rss-MiB")
				b.ReportMetric(heapInUseMB(), "heap-after-MiB")
				// What stays once the maintenance loop wrote the entries
				// recovery added (it does every second).
				e.flushQueues()
				b.ReportMetric(heapInUseMB(), "heap-flushed-MiB")
				// The longest a snapshot's capture of this state holds
				// the engine lock at a time (sends wait meanwhile): its
				// start, or one batch of consumer states.
				e.mu.Lock()
				t1 := time.Now()
				sc := e.beginCaptureLocked(e.clog.NextOffset())
				hold := time.Since(t1)
				e.mu.Unlock()
				t2 := time.Now()
				_, batch := sc.finish(e)
				b.ReportMetric(float64(max(hold, batch).Microseconds())/1000, "capture-ms")
				b.ReportMetric(float64(hold.Microseconds())/1000, "capture-start-ms")
				b.ReportMetric(float64(batch.Microseconds())/1000, "capture-batch-ms")
				b.ReportMetric(float64(time.Since(t2).Microseconds())/1000, "capture-batches-ms")
				if after != nil {
					after(e)
				}
				if err := e.Close(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	measure(b, "clean", func() func(*Engine) { return nil })
	measure(b, "kill9-tail", func() func(*Engine) {
		e := open()
		sendTail(b, e, sc.tail)
		if err := e.clog.Sync(ctx, e.clog.NextOffset()); err != nil {
			b.Fatal(err)
		}
		e.crash()
		return nil
	})
	measure(b, "deadlines-passed", func() func(*Engine) {
		clock.Advance(2 * time.Hour)
		return nil
	})
	measure(b, "derived-files-removed", func() func(*Engine) {
		for _, d := range []string{"consumequeue", "timer"} {
			if err := os.RemoveAll(filepath.Join(cfg.DataDir, d)); err != nil {
				b.Fatal(err)
			}
		}
		return nil
	})
}
