package localbroker

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func benchEngine(b *testing.B) *Engine {
	b.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.SegmentSize = 256 << 20
	cfg.MaxRecordSize = 4 << 20
	e, err := Open(context.Background(), cfg, nil, ports.SystemClock{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// BenchmarkSend measures durable sends of one 1 KiB message (flush: sync)
// through the whole engine with 1 and 64 concurrent producers.
func BenchmarkSend(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			e := benchEngine(b)
			body := make([]byte, 1024)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			before := e.clog.Stats()
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := range writers {
				n := b.N / writers
				if w < b.N%writers {
					n++
				}
				wg.Go(func() {
					q := domain.QueueRef{Topic: "bench", BrokerName: e.cfg.BrokerName, QueueID: int32(w % 8)}
					for i := range n {
						m := domain.Message{Topic: "bench", ID: fmt.Sprintf("%d-%d", w, i), Body: body}
						if _, err := e.Send(context.Background(), q, []domain.Message{m}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			st := e.clog.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(st.Fsyncs-before.Fsyncs)/float64(b.N), "fsyncs/op")
		})
	}
}

// BenchmarkPopAck measures popping (batches of 32) and acking (each ack
// durable) of 1 KiB messages that are already stored.
func BenchmarkPopAck(b *testing.B) {
	e := benchEngine(b)
	ctx := context.Background()
	body := make([]byte, 1024)
	batch := make([]domain.Message, 0, 64)
	for i := 0; i < b.N; i += len(batch) {
		batch = batch[:0]
		for j := 0; j < 64 && i+j < b.N; j++ {
			batch = append(batch, domain.Message{Topic: "bench", ID: fmt.Sprint(i + j), Body: body})
		}
		if _, err := e.Send(ctx, domain.QueueRef{Topic: "bench", BrokerName: e.cfg.BrokerName, QueueID: int32(i/64) % 8}, batch); err != nil {
			b.Fatal(err)
		}
	}
	before := e.clog.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for done < b.N {
		ms, err := e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "bench", QueueID: -1, MaxMessages: 32, InvisibleTime: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		if len(ms) == 0 {
			b.Fatalf("ran dry after %d of %d", done, b.N)
		}
		for _, m := range ms {
			h, _ := domain.ParseReceiptHandle(m.ReceiptHandle)
			if err := e.Ack(ctx, ports.AckRequest{Group: "g", Topic: "bench", Handle: h}); err != nil {
				b.Fatal(err)
			}
		}
		done += len(ms)
	}
	b.StopTimer()
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(e.clog.Stats().Fsyncs-before.Fsyncs)/float64(done), "fsyncs/op")
}

// BenchmarkFIFOPopAck measures FIFO pop (batches of up to 32) and ack of
// 1 KiB messages of one queue, with 1 and with 100 message groups, with
// runs (simple consumers: up to 32 consecutive messages of a group per pop)
// and without (push consumers: one message per group per pop). The acks of
// one pop run concurrently (as a consumer handling several groups at once
// would) and share fsyncs.
func BenchmarkFIFOPopAck(b *testing.B) {
	for _, bc := range []struct {
		groups int
		runs   bool
	}{{1, false}, {1, true}, {100, false}, {100, true}} {
		groups := bc.groups
		b.Run(fmt.Sprintf("groups=%d/runs=%v", groups, bc.runs), func(b *testing.B) {
			e := benchEngine(b)
			ctx := context.Background()
			body := make([]byte, 1024)
			batch := make([]domain.Message, 0, 64)
			for i := 0; i < b.N; i += len(batch) {
				batch = batch[:0]
				for j := 0; j < 64 && i+j < b.N; j++ {
					batch = append(batch, domain.Message{Topic: "fifo", ID: fmt.Sprint(i + j), Group: fmt.Sprint("g", (i+j)%groups), Body: body})
				}
				if _, err := e.Send(ctx, domain.QueueRef{Topic: "fifo", BrokerName: e.cfg.BrokerName, QueueID: 0}, batch); err != nil {
					b.Fatal(err)
				}
			}
			before := e.clog.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			done, pops := 0, 0
			for done < b.N {
				ms, err := e.Pop(ctx, ports.PopRequest{Group: "c", Topic: "fifo", QueueID: 0, MaxMessages: 32, InvisibleTime: time.Minute, FIFO: true, FIFORuns: bc.runs})
				if err != nil {
					b.Fatal(err)
				}
				if len(ms) == 0 {
					b.Fatalf("ran dry after %d of %d", done, b.N)
				}
				pops++
				var wg sync.WaitGroup
				for _, m := range ms {
					wg.Go(func() {
						h, _ := domain.ParseReceiptHandle(m.ReceiptHandle)
						if err := e.Ack(ctx, ports.AckRequest{Group: "c", Topic: "fifo", Handle: h}); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				done += len(ms)
			}
			b.StopTimer()
			b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(done)/float64(pops), "msgs/pop")
			b.ReportMetric(float64(e.clog.Stats().Fsyncs-before.Fsyncs)/float64(done), "fsyncs/op")
		})
	}
}

// BenchmarkAckBatch measures acking the 32 messages of a pop one by one
// (each waiting for its fsync, as AckMessage did with several entries) and
// as one batch (one wait for all): fsyncs per acked message.
func BenchmarkAckBatch(b *testing.B) {
	for _, batched := range []bool{false, true} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			e := benchEngine(b)
			ctx := context.Background()
			batch := make([]domain.Message, 0, 64)
			for i := 0; i < b.N; i += len(batch) {
				batch = batch[:0]
				for j := 0; j < 64 && i+j < b.N; j++ {
					batch = append(batch, domain.Message{Topic: "t", ID: fmt.Sprint(i + j), Body: []byte("x")})
				}
				if _, err := e.Send(ctx, domain.QueueRef{Topic: "t", BrokerName: e.cfg.BrokerName, QueueID: 0}, batch); err != nil {
					b.Fatal(err)
				}
			}
			before := e.clog.Stats()
			b.ResetTimer()
			for done := 0; done < b.N; {
				ms, err := e.Pop(ctx, ports.PopRequest{Group: "c", Topic: "t", QueueID: 0, MaxMessages: 32, InvisibleTime: time.Minute})
				if err != nil || len(ms) == 0 {
					b.Fatalf("pop: %v (%d of %d done)", err, done, b.N)
				}
				reqs := make([]ports.AckRequest, len(ms))
				for i, m := range ms {
					h, _ := domain.ParseReceiptHandle(m.ReceiptHandle)
					reqs[i] = ports.AckRequest{Group: "c", Topic: "t", Handle: h}
				}
				if batched {
					for _, err := range e.AckBatch(ctx, reqs) {
						if err != nil {
							b.Fatal(err)
						}
					}
				} else {
					for _, r := range reqs {
						if err := e.Ack(ctx, r); err != nil {
							b.Fatal(err)
						}
					}
				}
				done += len(ms)
			}
			b.StopTimer()
			st := e.clog.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(st.Fsyncs-before.Fsyncs)/float64(b.N), "fsyncs/op")
		})
	}
}

// BenchmarkPendingTimers adds 1,000,000 delay messages due over the next
// day (about 1,440 timing-wheel buckets), measures how long that takes and
// the memory and CPU the engine uses while idle with them pending, then
// sends 100,000 more due within the same two seconds and measures how late
// they become visible to consumers while the million stay pending. One run
// takes about a minute: use -benchtime=1x.
func BenchmarkPendingTimers(b *testing.B) {
	const (
		pending   = 1_000_000
		firing    = 100_000
		batchSize = 100
		producers = 8
	)
	for range b.N {
		cfg := DefaultConfig()
		cfg.DataDir = b.TempDir()
		cfg.SegmentSize = 256 << 20
		cfg.MaxRecordSize = 4 << 20
		e, err := Open(context.Background(), cfg, nil, ports.SystemClock{})
		if err != nil {
			b.Fatal(err)
		}
		body := make([]byte, 100)
		sendTimers := func(topic string, n int, at func(i int) time.Time) {
			var wg sync.WaitGroup
			for p := range producers {
				wg.Go(func() {
					batch := make([]domain.Message, 0, batchSize)
					for i := p * batchSize; i < n; i += producers * batchSize {
						batch = batch[:0]
						for j := i; j < min(i+batchSize, n); j++ {
							batch = append(batch, domain.Message{Topic: topic, ID: fmt.Sprint(j), Body: body, DeliverAt: at(j)})
						}
						q := domain.QueueRef{Topic: topic, BrokerName: cfg.BrokerName, QueueID: int32(i/batchSize) % 8}
						if _, err := e.Send(context.Background(), q, batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}
		// 1. A million timers, due between one hour and one day from now.
		start := time.Now()
		base := start.Add(time.Hour)
		sendTimers("pending", pending, func(i int) time.Time {
			return base.Add(time.Duration(uint64(i)*2654435761%uint64(pending)) * (23 * time.Hour / pending))
		})
		addTime := time.Since(start)
		b.ReportMetric(addTime.Seconds(), "add-s")
		b.ReportMetric(pending/addTime.Seconds(), "adds/s")
		// A checkpoint writes and fsyncs every bucket touched.
		snapStart := time.Now()
		if err := e.Snapshot(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(snapStart).Seconds(), "snapshot-s")
		// 2. Idle with them pending.
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "idle-heap-MB")
		b.ReportMetric(vmRSSMB(), "idle-rss-MB")
		cpu0 := processCPU()
		idle := 5 * time.Second
		<-time.After(idle) // the measurement itself: CPU used while idle
		b.ReportMetric(float64((processCPU()-cpu0).Milliseconds())/idle.Seconds(), "idle-cpu-ms/s")
		debug.FreeOSMemory()
		b.ReportMetric(vmRSSMB(), "idle-rss-after-free-MB")
		st := e.Stats()
		b.ReportMetric(float64(st.TimerBuckets), "buckets")
		b.ReportMetric(float64(st.TimersLoaded), "timers-in-memory")
		// 3. 100,000 due within two seconds; observe when each becomes
		// visible.
		due := time.Now().Add(8 * time.Second)
		sendTimers("fire", firing, func(i int) time.Time { return due.Add(time.Duration(i) * (2 * time.Second / firing)) })
		late, dispatchLate := observeTimers(b, e, "fire", firing, 60*time.Second)
		slices.Sort(late)
		slices.Sort(dispatchLate)
		pct := func(s []time.Duration, p float64) float64 {
			if len(s) == 0 {
				return -1
			}
			return float64(s[min(int(p*float64(len(s))), len(s)-1)].Microseconds()) / 1000
		}
		b.ReportMetric(pct(late, 0.50), "late-p50-ms")
		b.ReportMetric(pct(late, 0.99), "late-p99-ms")
		b.ReportMetric(pct(late, 1), "late-max-ms")
		b.ReportMetric(pct(dispatchLate, 0.99), "dispatch-late-p99-ms")
		b.ReportMetric(float64(len(late)), "fired")
		if err := e.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// observeTimers polls the queues of topic every millisecond and returns,
// for each message that became visible, how long after its delivery time
// that was seen, and how long after its delivery time it was dispatched
// (its index entry's store time).
func observeTimers(b *testing.B, e *Engine, topic string, want int, limit time.Duration) (late, dispatchLate []time.Duration) {
	seen := map[int32]int64{}
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for len(late) < want && time.Now().Before(deadline) {
		<-tick.C
		type span struct {
			q        *consumequeue.Queue
			qid      int32
			from, to int64
		}
		var spans []span
		e.mu.Lock()
		e.promoteLocked()
		for k, qi := range e.queues {
			if k.topic == topic && qi.visible > seen[k.qid] {
				spans = append(spans, span{qi.cq, k.qid, seen[k.qid], qi.visible})
				seen[k.qid] = qi.visible
			}
		}
		e.mu.Unlock()
		now := time.Now()
		for _, s := range spans {
			for off := s.from; off < s.to; off++ {
				ent, err := s.q.Get(off)
				if err != nil {
					b.Fatal(err)
				}
				raw, err := e.clog.ReadAt(ent.CommitLogOffset, int(ent.Size))
				if err != nil {
					b.Fatal(err)
				}
				m, err := record.DecodeMessage(raw, topic)
				if err != nil {
					b.Fatal(err)
				}
				late = append(late, now.Sub(m.DeliverAt))
				dispatchLate = append(dispatchLate, time.UnixMilli(ent.StoredAtMs).Sub(m.DeliverAt))
			}
		}
	}
	return late, dispatchLate
}

// BenchmarkIdleConsumers measures what a message costs the engine when
// many consumers of its group wait for it: one producer sends 1 KiB
// messages one at a time, each once the previous one is consumed, and
// 1, 16 or 64 consumers long-poll for them (batches of 32, each acked).
// It reports the process's CPU time per message (with every poller woken
// per message, it grew with the consumers: 64 cost about 180 µs more than
// one) and the time from a send's return to the ack of its message.
func BenchmarkIdleConsumers(b *testing.B) {
	for _, consumers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("consumers=%d", consumers), func(b *testing.B) {
			e := benchEngine(b)
			ctx, cancel := context.WithCancel(context.Background())
			acked := make(chan struct{}, 64)
			var wg sync.WaitGroup
			for range consumers {
				wg.Go(func() {
					for ctx.Err() == nil {
						ms, err := e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "bench", QueueID: -1, MaxMessages: 32, InvisibleTime: time.Minute, PollTimeout: time.Minute})
						if err != nil {
							return
						}
						for _, m := range ms {
							h, _ := domain.ParseReceiptHandle(m.ReceiptHandle)
							if err := e.Ack(ctx, ports.AckRequest{Group: "g", Topic: "bench", Handle: h}); err != nil {
								return
							}
							acked <- struct{}{}
						}
					}
				})
			}
			defer func() { cancel(); wg.Wait() }()
			body := make([]byte, 1024)
			lat := make([]time.Duration, 0, b.N)
			cpu0 := processCPU()
			b.ResetTimer()
			for i := range b.N {
				m := domain.Message{Topic: "bench", ID: fmt.Sprint(i), Body: body}
				if _, err := e.Send(ctx, domain.QueueRef{Topic: "bench", BrokerName: e.cfg.BrokerName, QueueID: int32(i % 8)}, []domain.Message{m}); err != nil {
					b.Fatal(err)
				}
				sent := time.Now()
				<-acked
				lat = append(lat, time.Since(sent))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/msg")
			b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
		})
	}
}
