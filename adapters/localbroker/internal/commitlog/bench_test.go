package commitlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppendDurable measures durable 1 KiB appends (FlushSync: each
// returns after its group's fdatasync) with 1 and 64 concurrent writers,
// with segments that grow by appending and with zeros written ahead
// (Preallocate, the engine's default).
func BenchmarkAppendDurable(b *testing.B) {
	for _, writers := range []int{1, 64} {
		for _, prealloc := range []int64{0, 4 << 20} {
			b.Run(fmt.Sprintf("writers=%d/preallocate=%d", writers, prealloc), func(b *testing.B) {
				benchmarkAppendDurable(b, writers, prealloc)
			})
		}
	}
}

func benchmarkAppendDurable(b *testing.B, writers int, prealloc int64) {
	opts := Options{Dir: b.TempDir(), SegmentSize: 256 << 20, MaxRecordSize: 1 << 20, Flush: FlushSync, FlushInterval: time.Second, Preallocate: prealloc}
	l, err := Open(opts, 0, func(int64, byte, []byte) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	payload := make([]byte, 1024)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	before := l.Stats()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N / writers
	extra := b.N % writers
	for w := range writers {
		n := per
		if w < extra {
			n++
		}
		wg.Go(func() {
			for range n {
				_, end, err := l.Append(1, payload, true)
				if err == nil {
					err = l.Wait(context.Background(), end)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	st := l.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(st.Fsyncs-before.Fsyncs)/float64(b.N), "fsyncs/op")
}
