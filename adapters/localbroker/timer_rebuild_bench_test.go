package localbroker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// BenchmarkTimerRebuild measures starts of a data directory holding
// 100,000 pending delay messages (100-byte bodies, due 10 to 70 minutes
// ahead: 61 one-minute buckets) and nothing else: "intact" checks every
// bucket entry as every start does; "all-buckets-deleted" deletes every
// bucket file first, so the start rebuilds the whole timer index from the
// commit log. It reports the CPU time of the start (the box is shared: wall
// time varies with its load) and the heap in use after it (after a GC):
// what the index costs once open. RMQPROXY_TEST_BENCH_TIMERS sets another
// number of timers.
func BenchmarkTimerRebuild(b *testing.B) {
	timers, batch := 100_000, 500
	if n, err := strconv.Atoi(os.Getenv("RMQPROXY_TEST_BENCH_TIMERS")); err == nil && n >= batch {
		timers = n / batch * batch
	}
	cfg := DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.SegmentSize = 64 << 20
	cfg.MaxRecordSize = 4 << 20
	cfg.Flush = "async"
	ctx := context.Background()
	e, err := Open(ctx, cfg, nil, ports.SystemClock{})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	body := make([]byte, 100)
	for i := 0; i < timers; i += batch {
		ms := make([]domain.Message, batch)
		for j := range ms {
			n := i + j
			ms[j] = domain.Message{Topic: "delay", ID: fmt.Sprint("m", n), Body: body,
				DeliverAt: now.Add(10*time.Minute + time.Duration(n)*time.Hour/time.Duration(timers))}
		}
		if _, err := e.Send(ctx, domain.QueueRef{Topic: "delay", BrokerName: cfg.BrokerName, QueueID: int32(i / batch % 4)}, ms); err != nil {
			b.Fatal(err)
		}
	}
	// The records' extent, not the files' sizes: the last segment ends in
	// zeros written ahead of its records (local.preallocate).
	logBytes := e.clog.NextOffset()
	if err := e.Close(ctx); err != nil {
		b.Fatal(err)
	}
	buckets, _ := filepath.Glob(filepath.Join(cfg.DataDir, "timer", "0*"))
	b.Logf("%d timers, %d buckets, commit log %d bytes", timers, len(buckets), logBytes)
	for _, damage := range []bool{false, true} {
		name := "intact"
		if damage {
			name = "all-buckets-deleted"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				if damage {
					for _, p := range buckets {
						if err := os.Remove(p); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StartTimer()
				cpu := processCPU()
				e, err := Open(ctx, cfg, nil, ports.SystemClock{})
				if err != nil {
					b.Fatal(err)
				}
				cpu = processCPU() - cpu
				b.StopTimer()
				b.ReportMetric(cpu.Seconds(), "cpu-s/op")
				var pending int64
				for _, bk := range e.timers.Buckets() {
					pending += bk.Pending()
				}
				if got := e.Stats().TimerBuckets; got != len(buckets) || pending != int64(timers) {
					b.Fatalf("%d buckets, %d pending timers after the start, want %d, %d", got, pending, len(buckets), timers)
				}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
				if err := e.Close(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
