package postgres_test

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// steppedBack returns t as time.Now would read it after the wall clock
// was stepped back by d (NTP, a resumed virtual machine): its monotonic
// reading as t's, its wall clock d earlier. Go has no other way to make
// one; it relies on time.Time's layout (wall, then ext: with a monotonic
// reading, wall holds the seconds since 1885 above its 30 bits of
// nanoseconds).
func steppedBack(t time.Time, d time.Duration) time.Time {
	layout := (*struct {
		wall uint64
		ext  int64
	})(unsafe.Pointer(&t))
	if layout.wall&(1<<63) == 0 {
		panic("steppedBack needs a time with a monotonic reading")
	}
	layout.wall -= uint64(d/time.Second) << 30
	return t
}

// TestAuditSurvivesAClockSteppedBack: a coalesced refusal whose last
// repeat came after the wall clock was stepped back has a last time that
// is later by the monotonic clock (how Go compares times read from it)
// and earlier by the wall clock (what PostgreSQL stores and its CHECK
// last_occurred_at >= occurred_at compares). The writer sent it as it
// was: PostgreSQL refused the batch, and the writer retried it for ever,
// so no audit event was written again (the buffer filled, every later
// event was dropped, every admin API call refused) until the proxy
// restarted.
func TestAuditSurvivesAClockSteppedBack(t *testing.T) {
	db := pool(t, pgenv.Database(t))
	cfg := postgres.DefaultConfig().Audit
	cfg.FlushInterval = 10 * time.Millisecond
	w := postgres.NewAuditWriter(db, postgres.ProxyID(), cfg, discard())
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop(t.Context()) })
	first := time.Now()
	last := steppedBack(first.Add(time.Second), time.Hour)
	if !last.After(first) || !last.Round(0).Before(first.Round(0)) {
		t.Fatalf("set-up: last %v is not after first %v by the monotonic clock and before it by the wall clock", last, first)
	}
	w.Record(domain.AuditEvent{Time: first, LastTime: last, Occurrences: 3, Category: domain.AuditAuthz, Principal: "mallory",
		Operation: "SendMessage", Resource: "Topic:t", Decision: domain.AuditDeny, Reason: domain.ReasonNoMatch})
	w.Record(domain.AuditEvent{Category: domain.AuditAuthz, Principal: "alice", Operation: "SendMessage", Resource: "Topic:t",
		Decision: domain.AuditDeny, Reason: domain.ReasonNoMatch})
	waitfor.Condition(t, 5*time.Second, 20*time.Millisecond, func() error {
		var n, occurrences int64
		if err := db.QueryRow(t.Context(), `SELECT count(*), coalesce(sum(occurrences), 0) FROM rmqproxy.audit_events WHERE principal IN ('mallory', 'alice')`).
			Scan(&n, &occurrences); err != nil {
			return err
		}
		if n != 2 || occurrences != 4 {
			return fmt.Errorf("%d events for %d refusals stored, want 2 for 4 (writer: %v)", n, occurrences, w.Health())
		}
		return nil
	})
}
