package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/adapters/internal/chansend"
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
//
// Each event gets its identity when it is recorded: a unique id (UUID
// version 7) and the next number of this writer's sequence (seq, from 1,
// under the writer's proxy id, which names one process). A write that
// fails is retried with the same ids, and the insert skips ids stored
// already, so a batch that committed although the writer saw an error
// (a timeout after the commit) is stored once. An event dropped from the
// full buffer has used its number: the gap in seq shows where events were
// lost.
//
// Refusals (authentication failures and authorization denials, which any
// client can cause at will; coalesced before they get here) may fill at
// most three quarters of the buffer: the last quarter stays for the
// events that are not refusals (allowed decisions, admin calls,
// revocations), which a flood of refusals cannot then push out.
type AuditWriter struct {
	pool    *pgxpool.Pool
	proxyID string
	cfg     AuditConfig
	log     *slog.Logger

	ch          chan auditRow
	refusals    atomic.Int64 // refusals in ch, at most maxRefusals
	maxRefusals int64
	seq         atomic.Int64 // last number given to an event
	dropped     atomic.Uint64
	written     atomic.Uint64
	lastErr     atomic.Pointer[error]
	reported    uint64 // drops already reported in an audit.dropped event; run goroutine only
	// report is the audit.dropped event not yet written (retried as it is,
	// with its id), and reporting the drops it counts; run goroutine only.
	report    *auditRow
	reporting uint64
	// unwritten is the batch the run goroutine held when it stopped, for
	// Stop to write first. (It used to go back into the buffer, where
	// events recorded meanwhile left it no room: they were dropped.)
	unwritten []auditRow

	stop context.CancelFunc
	done sync.WaitGroup
}

var _ ports.AuditSink = (*AuditWriter)(nil)

// NewAuditWriter returns a writer; Start starts its goroutine.
func NewAuditWriter(pool *pgxpool.Pool, proxyID string, cfg AuditConfig, log *slog.Logger) *AuditWriter {
	return &AuditWriter{pool: pool, proxyID: proxyID, cfg: cfg, log: log, ch: make(chan auditRow, cfg.BufferSize),
		maxRefusals: int64(cfg.BufferSize - cfg.BufferSize/4)}
}

// Record implements ports.AuditSink.
func (w *AuditWriter) Record(e domain.AuditEvent) {
	r := w.row(e)
	if r.refusal && w.refusals.Add(1) > w.maxRefusals {
		w.refusals.Add(-1)
		w.dropped.Add(1)
		return
	}
	select {
	case w.ch <- r:
	default:
		w.took(r)
		w.dropped.Add(1)
	}
}

// RecordWithin implements ports.AuditSink. The event is not a refusal
// (those are never waited for), so it may take the buffer's last quarter.
func (w *AuditWriter) RecordWithin(ctx context.Context, e domain.AuditEvent, wait time.Duration) bool {
	if e.Refusal() {
		w.Record(e)
		return true
	}
	if chansend.Within(ctx, w.ch, w.row(e), wait) {
		return true
	}
	// Its number is used: counted as dropped, the seq gap is explained.
	w.dropped.Add(1)
	return false
}

// took notes that r left the buffer (or never entered it).
func (w *AuditWriter) took(r auditRow) {
	if r.refusal {
		w.refusals.Add(-1)
	}
}

// Dropped implements ports.AuditSink.
func (w *AuditWriter) Dropped() uint64 { return w.dropped.Load() }

// Written returns how many events were written. An event counts once, when
// the write the writer saw succeed stored it or found it stored: a retry
// skips (ON CONFLICT) only events of an earlier attempt that committed but
// failed as far as the writer knows, which that attempt did not count.
func (w *AuditWriter) Written() uint64 { return w.written.Load() }

// Stats implements ports.AuditSink.
func (w *AuditWriter) Stats() ports.AuditStats {
	return ports.AuditStats{Written: w.written.Load(), Dropped: w.dropped.Load(), Buffered: len(w.ch), Capacity: cap(w.ch)}
}

// row gives e its identity.
func (w *AuditWriter) row(e domain.AuditEvent) auditRow {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	return newAuditRow(newEventID(e.Time), w.proxyID, w.seq.Add(1), e)
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

// Stop writes what is buffered, then the audit.dropped event for drops not
// reported yet (those while PostgreSQL was down, and any at shutdown), until
// ctx ends; events still unwritten then are counted as dropped and logged.
func (w *AuditWriter) Stop(ctx context.Context) error {
	if w.stop == nil {
		return nil
	}
	w.stop()
	w.done.Wait()
	batch := w.drain(w.unwritten, len(w.unwritten)+cap(w.ch))
	w.unwritten = nil
	for len(batch) > 0 {
		n := min(len(batch), w.cfg.BatchSize)
		if err := w.write(ctx, batch[:n]); err != nil {
			w.dropped.Add(uint64(len(batch)))
			w.log.LogAttrs(ctx, slog.LevelError, "audit events lost at shutdown: PostgreSQL did not take them in time",
				slog.Int("events", len(batch)), slog.Any("error", redact(err)))
			break
		}
		batch = batch[n:]
	}
	if err := w.reportDrops(ctx); err != nil {
		w.log.LogAttrs(ctx, slog.LevelError, "audit events were dropped, and the audit.dropped event reporting them could not be written at shutdown",
			slog.Uint64("dropped_total", w.dropped.Load()), slog.Uint64("unreported", w.dropped.Load()-w.reported), slog.Any("error", redact(err)))
	}
	return nil
}

func (w *AuditWriter) drain(batch []auditRow, max int) []auditRow {
	for len(batch) < max {
		select {
		case e := <-w.ch:
			w.took(e)
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
	batch := make([]auditRow, 0, w.cfg.BatchSize)
	for {
		select {
		case <-ctx.Done():
			// Stop writes what is left, with its own deadline.
			w.unwritten = batch
			return
		case e := <-w.ch:
			w.took(e)
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
			w.unwritten = batch
			return
		}
		batch = batch[:0]
	}
}

// flush writes batch, retrying with backoff until it succeeds (true) or
// ctx ends (false), then reports drops.
func (w *AuditWriter) flush(ctx context.Context, batch []auditRow) bool {
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
	_ = w.reportDrops(ctx) // retried after the next write
	return true
}

// reportDrops writes the audit.dropped event for the drops not reported
// yet, if any. An event that failed to be written is kept and retried as
// it is (with its id), so a report that committed unseen is stored once.
// Only the run goroutine, or Stop once it has exited, calls it.
func (w *AuditWriter) reportDrops(ctx context.Context) error {
	if d := w.dropped.Load(); d > w.reported && w.report == nil {
		e := w.row(domain.AuditEvent{Time: time.Now(), Category: domain.AuditSystem, Operation: "audit.dropped", Decision: domain.AuditError,
			Reason:  fmt.Sprintf("%d audit events dropped: the buffer (postgres.audit.bufferSize %d) was full", d-w.reported, w.cfg.BufferSize),
			Details: fmt.Sprintf(`{"dropped":%d,"dropped_total":%d}`, d-w.reported, d)})
		w.report, w.reporting = &e, d
	}
	if w.report == nil {
		return nil
	}
	if err := w.write(ctx, []auditRow{*w.report}); err != nil {
		return err
	}
	w.log.LogAttrs(ctx, slog.LevelWarn, "audit events were dropped", slog.Uint64("dropped", w.reporting-w.reported), slog.Uint64("dropped_total", w.reporting))
	w.reported, w.report = w.reporting, nil
	return nil
}

func (w *AuditWriter) write(ctx context.Context, batch []auditRow) error {
	if len(batch) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w.pool.Exec(wctx, insertAuditBatchSQL, auditBatchArgs(batch)...); err != nil {
		return err
	}
	w.written.Add(uint64(len(batch)))
	return nil
}

// insertAuditBatchSQL inserts a batch of events given column by column,
// skipping those whose id is stored already (written by an attempt whose
// success the writer did not learn). It needs only INSERT on the table:
// ON CONFLICT with a conflict target would also need SELECT on event_id,
// and event_id is the only unique column a write can collide on (id is
// generated).
const insertAuditBatchSQL = `INSERT INTO rmqproxy.audit_events (event_id, occurred_at, proxy_id, seq, category, principal,
  source_ip, protocol, operation, resource, actions, decision, reason, policy_revision, request_id, client_id, details,
  occurrences, last_occurred_at)
  SELECT id, t, p, s, c, pr, ip, pt, op, r, a, d, rs, rv, rq, cl, dt::jsonb, n, l
  FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::inet[], $8::text[],
    $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[],
    $18::bigint[], $19::timestamptz[])
    AS b(id, t, p, s, c, pr, ip, pt, op, r, a, d, rs, rv, rq, cl, dt, n, l)
  ON CONFLICT DO NOTHING`

// auditBatchArgs returns the columns of batch, for insertAuditBatchSQL.
func auditBatchArgs(batch []auditRow) []any {
	n := len(batch)
	var (
		ids                                = make([]pgtype.UUID, n)
		times                              = make([]time.Time, n)
		proxies, cats, principals, protos  = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		ops, resources, actions, decisions = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		reasons, requests, clients         = make([]string, n), make([]string, n), make([]string, n)
		seqs, revisions, counts            = make([]int64, n), make([]int64, n), make([]int64, n)
		ips                                = make([]*netip.Addr, n)
		details                            = make([]*string, n)
		lasts                              = make([]*time.Time, n)
	)
	for i, r := range batch {
		ids[i], times[i], proxies[i], seqs[i], cats[i], principals[i] = r.id, r.time, r.proxyID, r.seq, r.category, r.principal
		ips[i], protos[i], ops[i], resources[i], actions[i], decisions[i] = r.ip, r.protocol, r.operation, r.resource, r.actions, r.decision
		reasons[i], revisions[i], requests[i], clients[i], details[i] = r.reason, r.revision, r.requestID, r.clientID, r.details
		counts[i], lasts[i] = r.occurrences, r.last
	}
	return []any{ids, times, proxies, seqs, cats, principals, ips, protos, ops, resources, actions, decisions, reasons,
		revisions, requests, clients, details, counts, lasts}
}
