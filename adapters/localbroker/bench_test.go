package localbroker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

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
	for _, writers := range []int{1, 64} {
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
// 1 KiB messages of one queue, with 1 and with 100 message groups. Within a
// group only one message is in flight, so with one group every pop returns
// one message; the acks of one pop run concurrently (as a consumer handling
// several groups at once would) and share fsyncs.
func BenchmarkFIFOPopAck(b *testing.B) {
	for _, groups := range []int{1, 100} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
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
				ms, err := e.Pop(ctx, ports.PopRequest{Group: "c", Topic: "fifo", QueueID: 0, MaxMessages: 32, InvisibleTime: time.Minute, FIFO: true})
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
