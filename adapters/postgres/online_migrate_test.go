package postgres_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/migrations"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
)

// lockBound is how long an audit insert may wait for a lock while the
// schema is upgraded. The online migrations take a lock that blocks
// inserts only for their ALTER TABLE statements (versions 3 and 5), which
// change the catalog and read no rows: milliseconds. A migration that
// builds an index or checks a new constraint under a lock that blocks
// inserts (SHARE, ACCESS EXCLUSIVE) holds them for the whole read of the
// table, which at auditRows rows takes longer: the calibration checks
// that it does on the machine the test runs on, so that passing means
// something. PostgreSQL measures the wait (lock_timeout).
const lockBound = 200 * time.Millisecond

// latencyBound is how long any insert may take during the upgrade: the
// lock bound plus room for a loaded machine (the index builds and the
// validation compete with the inserts for 2 shared cores; that slows
// inserts without blocking them).
const latencyBound = time.Second

// auditRows is how many rows the audit log has when it is upgraded:
// RMQPROXY_TEST_AUDIT_ROWS (say 10000000 for an enterprise-sized table),
// 500000 by default.
func auditRows(t *testing.T) int {
	if s := os.Getenv("RMQPROXY_TEST_AUDIT_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("RMQPROXY_TEST_AUDIT_ROWS=%q is not a positive number", s)
		}
		return n
	}
	return 500000
}

// atVersion2 returns a database at schema version 2 (the oldest that has
// shipped with an audit log the later versions change) whose audit log
// holds rows rows.
func atVersion2(t *testing.T, rows int) string {
	t.Helper()
	dsn := pgenv.NewDatabase(t, pgenv.ServerDSN(t))
	ctx := t.Context()
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateDown, migrations.Applied(migrations.Latest())-2); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `INSERT INTO rmqproxy.audit_events (occurred_at, proxy_id, seq, category, principal, operation, resource, decision, reason)
  SELECT now() - g * interval '1 second', 'old-proxy', g, 'authz', 'tenant-' || (g % 1000), 'SendMessage', 'Topic:t' || (g % 100),
    CASE WHEN g % 3 = 0 THEN 'DENY' ELSE 'ALLOW' END, 'r'
  FROM generate_series(1, $1) g`, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE rmqproxy.audit_events`); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// upgradeWhileInserting runs upgrade while another connection inserts
// audit rows (the columns version 2 has: what a proxy of that release
// writes) one after another, and returns the longest an insert took
// during the upgrade, how many waited for a lock longer than lockBound
// (and failed: lock_timeout), how many inserts there were, and the modes
// of the locks that block inserts that other sessions held on the audit
// log meanwhile (sampled by a third connection, as often as it can).
func upgradeWhileInserting(t *testing.T, dsn string, upgrade func() error) (longest time.Duration, lockTimeouts, inserts int, blocking map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ins, watch := connect(t, dsn), connect(t, dsn)
	var insPID uint32
	if err := ins.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&insPID); err != nil {
		t.Fatal(err)
	}
	// PostgreSQL itself fails an insert that waits for a lock longer than
	// lockBound (counted in lockTimeouts); the inserter goes on.
	if _, err := ins.Exec(ctx, `SET lock_timeout = `+strconv.Itoa(int(lockBound.Milliseconds()))); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var wg sync.WaitGroup
	var insErr error
	type span struct{ from, to time.Time }
	var spans []span // the inserts, owned by the inserter until wg.Wait
	wg.Go(func() {
		for seq := 0; ctx.Err() == nil; seq++ {
			t0 := time.Now()
			// Not ctx: an insert the upgrade held ends when the upgrade
			// does, and must be measured, not cancelled.
			_, err := ins.Exec(t.Context(), `INSERT INTO rmqproxy.audit_events (occurred_at, proxy_id, seq, category, decision)
  VALUES (now(), 'writer', $1, 'authz', 'DENY')`, seq)
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
				lockTimeouts++
				err = nil
			}
			if err != nil {
				insErr = err
				return
			}
			if seq == 0 {
				close(started)
			}
			spans = append(spans, span{t0, time.Now()})
		}
	})
	blocking = map[string]bool{}
	wg.Go(func() {
		<-started
		for ctx.Err() == nil {
			// Locks on the audit log in a mode that conflicts with the
			// inserts' ROW EXCLUSIVE, held by anyone but the inserter and
			// this watcher (sampled: a short one may be missed).
			rows, err := watch.Query(ctx, `SELECT DISTINCT mode FROM pg_locks
  WHERE relation = 'rmqproxy.audit_events'::regclass AND granted AND pid NOT IN (pg_backend_pid(), $1)
    AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')`, insPID)
			if err != nil {
				return
			}
			modes, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return
			}
			for _, m := range modes {
				blocking[m] = true
			}
		}
	})
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		cancel()
		wg.Wait()
		t.Fatalf("no audit insert before the upgrade: %v", insErr)
	}
	from := time.Now()
	err := upgrade()
	to := time.Now()
	cancel()
	wg.Wait()
	for _, sp := range spans {
		if sp.to.After(from) && sp.from.Before(to) {
			longest = max(longest, sp.to.Sub(sp.from))
			inserts++
		}
	}
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if insErr != nil {
		t.Fatalf("an audit insert failed during the upgrade: %v", insErr)
	}
	return longest, lockTimeouts, inserts, blocking
}

// The migrations of versions 3 and 4 as released before (version 3 built
// its index in its transaction; version 4, which became 5 to 7, added
// its CHECKs validated and built its index in the same transaction).
const blockingUpgradeSQL = `BEGIN;
ALTER TABLE rmqproxy.audit_events ADD COLUMN event_id uuid;
CREATE UNIQUE INDEX audit_events_event_id ON rmqproxy.audit_events (event_id);
COMMIT;
BEGIN;
ALTER TABLE rmqproxy.audit_events
  ADD COLUMN occurrences bigint NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
  ADD COLUMN last_occurred_at timestamptz CHECK (last_occurred_at >= occurred_at);
CREATE INDEX audit_events_last_occurred ON rmqproxy.audit_events ((coalesce(last_occurred_at, occurred_at)));
COMMIT;`

// TestUpgradeDoesNotBlockAuditInserts: proxies are upgraded one at a time
// while the others keep writing audit events, into audit logs of tens of
// millions of rows. Upgrading the schema from version 2 (an audit log of
// auditRows rows) must never make an insert wait for a lock longer than
// lockBound, nor take longer than latencyBound. The migrations used to
// build their indexes, and check their new constraints, under locks that
// block inserts (SHARE, ACCESS EXCLUSIVE) for the whole read of the
// table; the calibration runs those statements on the same data and must
// see them hold an insert longer than lockBound.
func TestUpgradeDoesNotBlockAuditInserts(t *testing.T) {
	rows := auditRows(t)
	t.Run("calibration", func(t *testing.T) {
		dsn := atVersion2(t, rows)
		conn := connect(t, dsn)
		t0 := time.Now()
		longest, timeouts, n, blocking := upgradeWhileInserting(t, dsn, func() error {
			_, err := conn.Exec(t.Context(), blockingUpgradeSQL)
			return err
		})
		t.Logf("the blocking upgrade of %d rows took %v; %d inserts meanwhile, the longest %v, %d waited for a lock longer than %v; blocking locks seen: %v",
			rows, time.Since(t0), n, longest, timeouts, lockBound, blocking)
		if timeouts == 0 {
			t.Fatalf("the blocking upgrade held no insert longer than %v (longest %v): the table is too small for the bound to mean anything", lockBound, longest)
		}
	})
	t.Run("online", func(t *testing.T) {
		dsn := atVersion2(t, rows)
		t0 := time.Now()
		longest, timeouts, n, blocking := upgradeWhileInserting(t, dsn, func() error {
			st, err := postgres.Migrate(t.Context(), dsn, postgres.MigrateUp, 0)
			if err == nil && st.Version != migrations.Latest() {
				t.Errorf("version %d after up", st.Version)
			}
			return err
		})
		t.Logf("the upgrade of %d rows took %v; %d inserts meanwhile, the longest %v, %d waited for a lock longer than %v; blocking locks seen: %v",
			rows, time.Since(t0), n, longest, timeouts, lockBound, blocking)
		if timeouts > 0 {
			t.Errorf("%d audit inserts waited for a lock longer than %v during the upgrade", timeouts, lockBound)
		}
		if longest > latencyBound {
			t.Errorf("an audit insert took %v during the upgrade, more than %v", longest, latencyBound)
		}
		if blocking["ShareLock"] {
			t.Errorf("the upgrade built an index under SHARE (not CONCURRENTLY): inserts wait for the whole build")
		}
		assertSchema(t, dsn)
	})
}

// assertSchema checks what the online migrations must leave: valid
// indexes and validated constraints.
func assertSchema(t *testing.T, dsn string) {
	t.Helper()
	conn := connect(t, dsn)
	ctx := t.Context()
	for _, idx := range []string{"audit_events_event_id", "audit_events_last_occurred"} {
		var valid, unique bool
		if err := conn.QueryRow(ctx, `SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = ('rmqproxy.' || $1)::regclass`, idx).Scan(&valid, &unique); err != nil || !valid {
			t.Errorf("index %s: valid %v, %v", idx, valid, err)
		}
		if unique != (idx == "audit_events_event_id") {
			t.Errorf("index %s: unique %v", idx, unique)
		}
	}
	for _, c := range []string{"audit_events_occurrences_check", "audit_events_last_occurred_at_check"} {
		var validated bool
		if err := conn.QueryRow(ctx, `SELECT convalidated FROM pg_constraint WHERE conname = $1 AND conrelid = 'rmqproxy.audit_events'::regclass`, c).Scan(&validated); err != nil || !validated {
			t.Errorf("constraint %s: validated %v, %v", c, validated, err)
		}
	}
}

// TestMigrateUpRerunsInterruptedIndexBuild: a CREATE INDEX CONCURRENTLY
// that fails or is interrupted (a deadlock, a cancelled statement, a
// killed connection) leaves an INVALID index behind and the version
// dirty. rmqproxy migrate up must drop the invalid index and build it
// again, not refuse the dirty version nor keep the invalid index (which
// IF NOT EXISTS would find).
func TestMigrateUpRerunsInterruptedIndexBuild(t *testing.T) {
	dsn := pgenv.NewDatabase(t, pgenv.ServerDSN(t))
	ctx := t.Context()
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateDown, 1); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	// A build that fails half-way: a unique one over equal values.
	if _, err := conn.Exec(ctx, `INSERT INTO rmqproxy.audit_events (occurred_at, proxy_id, seq, category, decision)
  VALUES ('2026-01-01Z', 'p', 1, 'authz', 'DENY'), ('2026-01-01Z', 'p', 2, 'authz', 'DENY')`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY audit_events_last_occurred ON rmqproxy.audit_events ((coalesce(last_occurred_at, occurred_at)))`); err == nil {
		t.Fatal("the failing build succeeded")
	}
	if _, err := conn.Exec(ctx, `UPDATE rmqproxy.schema_migrations SET version = $1, dirty = true`, migrations.Latest()); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.CheckSchema(ctx, conn); err == nil {
		t.Fatal("a proxy would start on the dirty schema")
	}
	st, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0)
	if err != nil || st.Dirty || st.Version != migrations.Latest() {
		t.Fatalf("up over the interrupted build: %+v, %v", st, err)
	}
	assertSchema(t, dsn)
	if _, err := postgres.CheckSchema(ctx, conn); err != nil {
		t.Fatalf("after up: %v", err)
	}
}

// TestMigrateUpRerunDropsOnlyItsOwnInvalidIndex: rerunning an
// interrupted index build drops the invalid index that build left, and
// no other invalid index of the schema, not even one whose name is part
// of the migration's (audit_events_last, in "audit_events_last_occurred")
// or appears in its comments (occurred_at): it may be another session's
// build in progress, or an operator's to look at.
func TestMigrateUpRerunDropsOnlyItsOwnInvalidIndex(t *testing.T) {
	dsn := pgenv.NewDatabase(t, pgenv.ServerDSN(t))
	ctx := t.Context()
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateDown, 1); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, dsn)
	if _, err := conn.Exec(ctx, `INSERT INTO rmqproxy.audit_events (occurred_at, proxy_id, seq, category, decision)
  VALUES ('2026-01-01Z', 'p', 1, 'authz', 'DENY'), ('2026-01-01Z', 'p', 2, 'authz', 'DENY')`); err != nil {
		t.Fatal(err)
	}
	// Builds that fail half-way (unique over equal values) leave INVALID
	// indexes: version 7's own, and two others.
	for _, name := range []string{"audit_events_last_occurred", "audit_events_last", "occurred_at"} {
		if _, err := conn.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY `+name+` ON rmqproxy.audit_events (occurred_at)`); err == nil {
			t.Fatalf("the failing build of %s succeeded", name)
		}
	}
	if _, err := conn.Exec(ctx, `UPDATE rmqproxy.schema_migrations SET version = $1, dirty = true`, migrations.Latest()); err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0)
	if err != nil || st.Dirty || st.Version != migrations.Latest() {
		t.Fatalf("up over the interrupted build: %+v, %v", st, err)
	}
	rows, err := conn.Query(ctx, `SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'rmqproxy' AND c.relname IN ('audit_events_last_occurred', 'audit_events_last', 'occurred_at')`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for rows.Next() {
		var name string
		var valid bool
		if err := rows.Scan(&name, &valid); err != nil {
			t.Fatal(err)
		}
		got[name] = valid
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"audit_events_last_occurred": true, "audit_events_last": false, "occurred_at": false}
	if !maps.Equal(got, want) {
		t.Fatalf("indexes (name: valid) %v, want %v: the rebuilt one valid, the others left alone", got, want)
	}
}

// TestUpgradeFromReleasedVersion3: databases that earlier releases took to
// version 3 built the event_id index there (released migrations are never
// rerun); version 4 must find it and go on, and the schema end the same
// as from version 2.
func TestUpgradeFromReleasedVersion3(t *testing.T) {
	dsn := atVersion2(t, 10)
	conn := connect(t, dsn)
	ctx := t.Context()
	if _, err := conn.Exec(ctx, `BEGIN;
ALTER TABLE rmqproxy.audit_events ADD COLUMN event_id uuid;
CREATE UNIQUE INDEX audit_events_event_id ON rmqproxy.audit_events (event_id);
COMMIT;
UPDATE rmqproxy.schema_migrations SET version = 3`); err != nil {
		t.Fatal(err)
	}
	if st, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil || st.Version != migrations.Latest() {
		t.Fatalf("up from the released version 3: %+v, %v", st, err)
	}
	assertSchema(t, dsn)
	var indexes int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'rmqproxy' AND tablename = 'audit_events' AND indexdef LIKE '%(event_id)%'`).Scan(&indexes); err != nil || indexes != 1 {
		t.Fatalf("%d indexes on event_id (%v), want 1", indexes, err)
	}
	if st, err := postgres.Migrate(ctx, dsn, postgres.MigrateDown, 0); err != nil || st.Version != 0 {
		t.Fatalf("down: %+v, %v", st, err)
	}
}
