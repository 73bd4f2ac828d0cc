package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// AuditWriter is the ports.AuditSink that writes audit events to
// PostgreSQL in batches (COPY), off the hot path. Record puts an event in a
// bounded buffer and never blocks; when the buffer is full the event is
// dropped and counted. While PostgreSQL is unreachable the writer keeps its
// current batch and retries with backoff, so the buffer fills and later
// events are dropped; once a write succeeds again, it records one system
// event "audit.dropped" with the number lost. Dropped never decreases.
type AuditWriter struct {
	pool    *pgxpool.Pool
	proxyID string
	cfg     AuditConfig
	log     *slog.Logger

	ch       chan domain.AuditEvent
	dropped  atomic.Uint64
	written  atomic.Uint64
	lastErr  atomic.Pointer[error]
	reported uint64 // drops already reported in an audit.dropped event; run goroutine only
	seq      int64  // run goroutine only

	stop context.CancelFunc
	done sync.WaitGroup
}

var _ ports.AuditSink = (*AuditWriter)(nil)

// NewAuditWriter returns a writer; Start starts its goroutine.
func NewAuditWriter(pool *pgxpool.Pool, proxyID string, cfg AuditConfig, log *slog.Logger) *AuditWriter {
	return &AuditWriter{pool: pool, proxyID: proxyID, cfg: cfg, log: log, ch: make(chan domain.AuditEvent, cfg.BufferSize)}
}

// Record implements ports.AuditSink.
func (w *AuditWriter) Record(e domain.AuditEvent) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	select {
	case w.ch <- e:
	default:
		w.dropped.Add(1)
	}
}

// Dropped implements ports.AuditSink.
func (w *AuditWriter) Dropped() uint64 { return w.dropped.Load() }

// Written returns how many events were written.
func (w *AuditWriter) Written() uint64 { return w.written.Load() }

// Stats implements ports.AuditSink.
func (w *AuditWriter) Stats() ports.AuditStats {
	return ports.AuditStats{Written: w.written.Load(), Dropped: w.dropped.Load(), Buffered: len(w.ch), Capacity: cap(w.ch)}
}

// Pending returns how many events wait in the buffer.
func (w *AuditWriter) Pending() int { return len(w.ch) }

// Health returns nil, or why events are not being written.
func (w *AuditWriter) Health() error {
	if p := w.lastErr.Load(); p != nil && *p != nil {
		return fmt.Errorf("audit events are not being written (%d waiting, %d dropped so far): %v", w.Pending(), w.Dropped(), *p)
	}
	return nil
}

// Start starts the writing goroutine; Stop stops it.
func (w *AuditWriter) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	w.done.Go(func() { w.run(ctx) })
	return nil
}

// Stop writes what is buffered until ctx ends; events still unwritten then
// are counted as dropped and logged.
func (w *AuditWriter) Stop(ctx context.Context) error {
	if w.stop == nil {
		return nil
	}
	w.stop()
	w.done.Wait()
	batch := w.drain(nil, cap(w.ch))
	for len(batch) > 0 {
		n := min(len(batch), w.cfg.BatchSize)
		if err := w.write(ctx, batch[:n]); err != nil {
			w.dropped.Add(uint64(len(batch)))
			w.log.LogAttrs(ctx, slog.LevelError, "audit events lost at shutdown: PostgreSQL did not take them in time",
				slog.Int("events", len(batch)), slog.Any("error", redact(err)))
			return nil
		}
		batch = batch[n:]
	}
	return nil
}

func (w *AuditWriter) drain(batch []domain.AuditEvent, max int) []domain.AuditEvent {
	for len(batch) < max {
		select {
		case e := <-w.ch:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

func (w *AuditWriter) run(ctx context.Context) {
	tick := time.NewTicker(w.cfg.FlushInterval)
	defer tick.Stop()
	batch := make([]domain.AuditEvent, 0, w.cfg.BatchSize)
	for {
		select {
		case <-ctx.Done():
			// Stop writes what is left, with its own deadline.
			w.requeue(batch)
			return
		case e := <-w.ch:
			batch = append(batch, e)
			batch = w.drain(batch, w.cfg.BatchSize)
			if len(batch) < w.cfg.BatchSize {
				continue
			}
		case <-tick.C:
			if len(batch) == 0 && w.reported == w.dropped.Load() {
				continue
			}
		}
		if !w.flush(ctx, batch) {
			w.requeue(batch)
			return
		}
		batch = batch[:0]
	}
}

// requeue puts a batch back for Stop's final flush, counting what does not
// fit as dropped.
func (w *AuditWriter) requeue(batch []domain.AuditEvent) {
	for _, e := range batch {
		select {
		case w.ch <- e:
		default:
			w.dropped.Add(1)
		}
	}
}

// flush writes batch, retrying with backoff until it succeeds (true) or
// ctx ends (false), then reports drops.
func (w *AuditWriter) flush(ctx context.Context, batch []domain.AuditEvent) bool {
	backoff := 100 * time.Millisecond
	for {
		err := w.write(ctx, batch)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		if prev := w.lastErr.Swap(&err); prev == nil || *prev == nil {
			w.log.LogAttrs(ctx, slog.LevelWarn, "cannot write audit events; buffering them (and counting drops when the buffer is full)",
				slog.Int("buffer", w.cfg.BufferSize), slog.Any("error", redact(err)))
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	if prev := w.lastErr.Swap(nil); prev != nil && *prev != nil {
		w.log.LogAttrs(ctx, slog.LevelInfo, "writing audit events again", slog.Uint64("dropped_so_far", w.dropped.Load()))
	}
	if d := w.dropped.Load(); d > w.reported {
		e := domain.AuditEvent{Time: time.Now(), Category: domain.AuditSystem, Operation: "audit.dropped", Decision: domain.AuditError,
			Reason:  fmt.Sprintf("%d audit events dropped: the buffer (postgres.audit.bufferSize %d) was full", d-w.reported, w.cfg.BufferSize),
			Details: fmt.Sprintf(`{"dropped":%d,"dropped_total":%d}`, d-w.reported, d)}
		if w.write(ctx, []domain.AuditEvent{e}) == nil {
			w.log.LogAttrs(ctx, slog.LevelWarn, "audit events were dropped", slog.Uint64("dropped", d-w.reported), slog.Uint64("dropped_total", d))
			w.reported = d
		}
	}
	return true
}

func (w *AuditWriter) write(ctx context.Context, batch []domain.AuditEvent) error {
	if len(batch) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seq := w.seq
	rows := make([][]any, len(batch))
	for i, e := range batch {
		seq++
		rows[i] = auditArgs(w.proxyID, seq, e)
	}
	_, err := w.pool.CopyFrom(wctx, pgx.Identifier{Schema, "audit_events"}, auditColumns, pgx.CopyFromRows(rows))
	if err != nil {
		return err
	}
	w.seq = seq
	w.written.Add(uint64(len(batch)))
	return nil
}
