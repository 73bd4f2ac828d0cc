package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// lossyProxy forwards TCP connections to PostgreSQL; once armed, it throws
// away the server's answer to the next INSERT or COPY (which PostgreSQL
// sends after the commit) and closes that connection: the write committed,
// but the client sees a broken connection.
type lossyProxy struct {
	target string
	armed  atomic.Bool
	cuts   atomic.Int32
	wg     sync.WaitGroup
}

func startLossyProxy(t *testing.T, target string) (addr string, p *lossyProxy) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p = &lossyProxy{target: target}
	var mu sync.Mutex
	var conns []net.Conn
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			p.wg.Go(func() { p.serverToClient(c, s) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		p.wg.Wait()
	})
	return ln.Addr().String(), p
}

func (p *lossyProxy) serverToClient(c, s net.Conn) {
	defer c.Close()
	defer s.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if (bytes.Contains(chunk, []byte("INSERT 0 ")) || bytes.Contains(chunk, []byte("COPY "))) && p.armed.CompareAndSwap(true, false) {
				p.cuts.Add(1)
				return
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestAuditRetryAfterCommitStoresOnce: a batch that PostgreSQL committed
// while the writer saw an error (the connection broke before the answer)
// is retried, and must not be stored twice; each event is identified by
// its id, and by its proxy id and seq. The writer used to COPY the batch
// again: the audit log then showed every event of the batch twice, with
// the same seq.
func TestAuditRetryAfterCommitStoresOnce(t *testing.T) {
	dsn := pgenv.Database(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	addr, proxy := startLossyProxy(t, u.Host)
	u.Host = addr
	wp := pool(t, u.String())
	direct := pool(t, dsn)
	cfg := postgres.DefaultConfig().Audit
	cfg.FlushInterval = 10 * time.Millisecond
	w := postgres.NewAuditWriter(wp, postgres.ProxyID(), cfg, discard())
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	count := func(op string) (n int, seqs []int64) {
		rows, err := direct.Query(t.Context(), `SELECT seq FROM rmqproxy.audit_events WHERE operation = $1 ORDER BY seq`, op)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s int64
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, s)
		}
		return len(seqs), seqs
	}
	stored := func(op string, want int) func() error {
		return func() error {
			if n, _ := count(op); n < want {
				return errors.New(op + " not stored yet")
			}
			return nil
		}
	}
	w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "alice", Operation: "first", Decision: domain.AuditDeny})
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, stored("first", 1))

	proxy.armed.Store(true)
	for range 3 {
		w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "alice", Operation: "lost-answer", Decision: domain.AuditDeny})
	}
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, func() error {
		if proxy.cuts.Load() == 0 {
			return errors.New("the answer to the batch was not cut yet")
		}
		return nil
	})
	w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "alice", Operation: "after", Decision: domain.AuditDeny})
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, stored("after", 1))
	if n, seqs := count("lost-answer"); n != 3 {
		t.Errorf("%d rows of the 3 events whose batch was retried (seqs %v), want 3", n, seqs)
	}
	var events, ids, idents int
	if err := direct.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT event_id), count(DISTINCT (proxy_id, seq))
  FROM rmqproxy.audit_events`).Scan(&events, &ids, &idents); err != nil {
		t.Fatal(err)
	}
	if events != 5 || ids != 5 || idents != 5 {
		t.Errorf("%d events, %d distinct ids, %d distinct (proxy_id, seq), want 5 each", events, ids, idents)
	}
	if w.Dropped() != 0 {
		t.Errorf("dropped %d", w.Dropped())
	}
	// The retry stored none of the 3 (the first attempt had), but that
	// attempt failed as far as the writer knows: each event counts once.
	if n := w.Written(); n != 5 {
		t.Errorf("Written() = %d, want 5", n)
	}
}

// TestAuditStopReportsDrops: events dropped because the buffer was full
// (as while PostgreSQL was down) are reported by an audit.dropped event
// also when the writer stops before its goroutine wrote the report: Stop
// writes it after the buffered events.
func TestAuditStopReportsDrops(t *testing.T) {
	db := pool(t, pgenv.Database(t))
	cfg := postgres.DefaultConfig().Audit
	cfg.BufferSize = 2
	cfg.FlushInterval = time.Hour
	w := postgres.NewAuditWriter(db, postgres.ProxyID(), cfg, discard())
	for range 5 {
		w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "alice", Operation: "kept-or-dropped", Decision: domain.AuditDeny})
	}
	if d := w.Dropped(); d != 3 {
		t.Fatalf("dropped %d of 5 events with a buffer of 2, want 3", d)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var kept int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM rmqproxy.audit_events WHERE operation = 'kept-or-dropped'`).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if kept != 2 {
		t.Errorf("%d buffered events stored at Stop, want 2", kept)
	}
	var reports int
	var details string
	if err := db.QueryRow(t.Context(), `SELECT count(*), coalesce(max(details::text), '') FROM rmqproxy.audit_events WHERE operation = 'audit.dropped'`).
		Scan(&reports, &details); err != nil {
		t.Fatal(err)
	}
	if reports != 1 || !strings.Contains(details, `"dropped": 3`) {
		t.Errorf("%d audit.dropped events (details %s), want 1 reporting 3 dropped", reports, details)
	}
	if n := w.Written(); n != 3 {
		t.Errorf("Written() = %d, want 3 (2 events and the report)", n)
	}
}

// TestAuditBufferKeepsRoomForNonRefusals: refusals, which any client can
// cause at will, fill at most three quarters of the buffer; allowed
// decisions and admin calls still find room in a buffer that refusals
// filled while PostgreSQL was slow. They used to be dropped.
func TestAuditBufferKeepsRoomForNonRefusals(t *testing.T) {
	cfg := postgres.DefaultConfig().Audit
	cfg.BufferSize = 8
	w := postgres.NewAuditWriter(nil, postgres.ProxyID(), cfg, discard()) // not started: nothing drains
	for range 20 {
		w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "mallory", Operation: "SendMessage", Decision: domain.AuditDeny})
	}
	before := w.Stats()
	if before.Buffered != 6 || before.Dropped != 14 {
		t.Errorf("after 20 refusals: %+v, want 6 buffered and 14 dropped", before)
	}
	w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "alice", Operation: "SendMessage", Decision: domain.AuditAllow})
	w.Record(domain.AuditEvent{Category: domain.AuditAdmin, Principal: "root", Operation: "user.create", Decision: domain.AuditAllow})
	if st := w.Stats(); st.Dropped != before.Dropped {
		t.Fatalf("an allowed decision and an admin call after the refusals: %d of them dropped, want both buffered", st.Dropped-before.Dropped)
	}
	w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "alice", Operation: "SendMessage", Decision: domain.AuditAllow})
	if st := w.Stats(); st.Buffered != 8 || st.Dropped != before.Dropped+1 {
		t.Errorf("a full buffer took an event: %+v", st)
	}
}

// TestAuditRecordWithinWaitsForRoom: an event that must be recorded (an
// allowed admin call's) waits for room in a full buffer: it is refused
// after its wait while nothing drains (counted as dropped, so the seq gap
// is reported), and taken, then stored, once the writer makes room.
func TestAuditRecordWithinWaitsForRoom(t *testing.T) {
	db := pool(t, pgenv.Database(t))
	cfg := postgres.DefaultConfig().Audit
	cfg.BufferSize = 1
	cfg.FlushInterval = 10 * time.Millisecond
	w := postgres.NewAuditWriter(db, postgres.ProxyID(), cfg, discard())
	admin := func(op string) domain.AuditEvent {
		return domain.AuditEvent{Category: domain.AuditAuthz, Principal: "root", Protocol: "admin-http", Operation: op, Decision: domain.AuditAllow}
	}
	if !w.RecordWithin(t.Context(), admin("waited-first"), time.Second) {
		t.Fatal("an empty buffer refused the event")
	}
	if w.RecordWithin(t.Context(), admin("waited-refused"), 50*time.Millisecond) {
		t.Fatal("a full buffer that nothing drains took the event")
	}
	if d := w.Dropped(); d != 1 {
		t.Fatalf("dropped %d, want the refused event counted", d)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !w.RecordWithin(t.Context(), admin("waited-taken"), 10*time.Second) {
		t.Fatal("the event was refused although the writer drains the buffer")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(t.Context(), `SELECT operation FROM rmqproxy.audit_events WHERE operation LIKE 'waited-%' OR operation = 'audit.dropped' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ops, []string{"waited-first", "waited-taken", "audit.dropped"}) && !slices.Equal(ops, []string{"waited-first", "audit.dropped", "waited-taken"}) {
		t.Fatalf("stored %v, want the two events taken and the report of the refused one", ops)
	}
}

// TestAuditStopWritesTheBatchInHandAndTheBuffer: at Stop, the batch the
// writer had taken from the buffer (waiting for its flush interval) and the
// events buffered after it are all written. The batch used to go back into
// the buffer, where the newer events left it no room: it was dropped.
func TestAuditStopWritesTheBatchInHandAndTheBuffer(t *testing.T) {
	db := pool(t, pgenv.Database(t))
	cfg := postgres.DefaultConfig().Audit
	cfg.BufferSize = 2
	cfg.FlushInterval = time.Hour // the batch in hand waits for Stop
	w := postgres.NewAuditWriter(db, postgres.ProxyID(), cfg, discard())
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ev := domain.AuditEvent{Category: domain.AuditAuthz, Principal: "root", Operation: "in-hand-or-buffered", Decision: domain.AuditAllow}
	w.Record(ev)
	w.Record(ev)
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the writer takes the buffered events", func() bool { return w.Pending() == 0 })
	w.Record(ev)
	w.Record(ev)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var stored int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FROM rmqproxy.audit_events WHERE operation = 'in-hand-or-buffered'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 4 || w.Dropped() != 0 {
		t.Fatalf("stored %d of 4 events at Stop (%d dropped)", stored, w.Dropped())
	}
}
