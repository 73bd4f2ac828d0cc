package postgres_test

import (
	"context"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/migrations"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
)

// Proxies are upgraded one at a time while the others keep writing audit
// events, into audit logs of tens of millions of rows. An insert waits
// only for a lock that conflicts with its ROW EXCLUSIVE (SHARE, SHARE ROW
// EXCLUSIVE, EXCLUSIVE, ACCESS EXCLUSIVE), and as long as the transaction
// holding it runs on. A migration may take such a lock (ALTER TABLE does)
// only for work that does not grow with the table: it must neither read
// nor rewrite the audit log before it commits, and it must give up
// waiting for the lock (lock_timeout) rather than queue every insert
// behind itself. That is a property of the migrations, not of the
// machine, so the tests check it with a probe in the database
// (lockProbeSQL) instead of timing inserts, which a loaded machine slows
// whatever the migrations do.

// insertBlockingModes are the lock modes that conflict with an insert's
// ROW EXCLUSIVE.
var insertBlockingModes = []string{"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}

// readBound is how many blocks of the audit log's heap a transaction
// holding a lock that blocks inserts may read: a few, whatever the size of
// the table (a metadata-only ALTER TABLE reads none). The audit log of the
// tests has at least minAuditPages pages, so a read of the table (a
// constraint checked, an index built, a rewrite) is far above it.
const (
	readBound     = 8
	minAuditPages = 100 * readBound
)

// lockProbeSQL records, for every transaction that runs a DDL statement,
// what it held on the audit log when it committed: the modes of its locks
// on rmqproxy.audit_events, the heap blocks of that table it read from the
// start of its first DDL statement to its commit, and its lock_timeout.
// Event triggers see the DDL statements; a deferred constraint trigger
// runs at the commit, while the transaction still holds its locks (they
// are held to the end of the transaction). The blocks are this backend's
// counts not yet flushed to the statistics, which PostgreSQL flushes only
// between transactions. Blind spots, which migrations/README.md rules out
// anyway: a read made before a transaction's first DDL statement (LOCK
// TABLE, then SELECT), and statements that run in several transactions of
// their own (CREATE INDEX CONCURRENTLY: it holds no lock that blocks
// inserts).
const lockProbeSQL = `CREATE SCHEMA rmqproxy_probe;
CREATE TABLE rmqproxy_probe.statements (xid xid8 NOT NULL, tag text NOT NULL);
CREATE TABLE rmqproxy_probe.commits (xid xid8 PRIMARY KEY, tags text[] NOT NULL, modes text[] NOT NULL, blocks bigint NOT NULL, lock_timeout text NOT NULL);
CREATE FUNCTION rmqproxy_probe.audit_blocks() RETURNS bigint LANGUAGE sql
  AS $$ SELECT coalesce(pg_stat_get_xact_blocks_fetched(to_regclass('rmqproxy.audit_events')), 0) $$;
CREATE FUNCTION rmqproxy_probe.statement_start() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('rmqproxy_probe.blocks', true), '') = '' THEN
    PERFORM set_config('rmqproxy_probe.blocks', rmqproxy_probe.audit_blocks()::text, true);
  END IF;
END $$;
CREATE FUNCTION rmqproxy_probe.statement_end() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO rmqproxy_probe.statements VALUES (pg_current_xact_id(), tg_tag);
END $$;
CREATE FUNCTION rmqproxy_probe.at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO rmqproxy_probe.commits
  SELECT NEW.xid,
    (SELECT array_agg(tag) FROM rmqproxy_probe.statements WHERE xid = NEW.xid),
    coalesce((SELECT array_agg(DISTINCT mode ORDER BY mode) FROM pg_locks
      WHERE pid = pg_backend_pid() AND granted AND relation = to_regclass('rmqproxy.audit_events')), '{}'),
    rmqproxy_probe.audit_blocks() - coalesce(nullif(current_setting('rmqproxy_probe.blocks', true), '')::bigint, 0),
    current_setting('lock_timeout')
  ON CONFLICT (xid) DO NOTHING;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT ON rmqproxy_probe.statements
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION rmqproxy_probe.at_commit();
CREATE EVENT TRIGGER rmqproxy_probe_start ON ddl_command_start EXECUTE FUNCTION rmqproxy_probe.statement_start();
CREATE EVENT TRIGGER rmqproxy_probe_end ON ddl_command_end EXECUTE FUNCTION rmqproxy_probe.statement_end();`

// ddlCommit is what the probe recorded of one transaction.
type ddlCommit struct {
	Tags        []string
	Modes       []string
	Blocks      int64
	LockTimeout string
}

// blocksInserts reports whether the transaction held a lock that blocks
// inserts into the audit log when it committed.
func (c ddlCommit) blocksInserts() bool {
	for _, m := range c.Modes {
		if slices.Contains(insertBlockingModes, m) {
			return true
		}
	}
	return false
}

// probed installs the probe in dsn's database, runs upgrade, and returns
// what the probe recorded, in commit order.
func probed(t *testing.T, dsn string, upgrade func() error) []ddlCommit {
	t.Helper()
	conn := connect(t, dsn)
	if _, err := conn.Exec(t.Context(), lockProbeSQL); err != nil {
		t.Fatalf("installing the lock probe (event triggers need a superuser): %v", err)
	}
	if err := upgrade(); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if _, err := conn.Exec(t.Context(), `DROP EVENT TRIGGER rmqproxy_probe_start; DROP EVENT TRIGGER rmqproxy_probe_end`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(t.Context(), `SELECT tags, modes, blocks, lock_timeout FROM rmqproxy_probe.commits ORDER BY xid`)
	if err != nil {
		t.Fatal(err)
	}
	commits, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ddlCommit])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commits {
		t.Logf("committed %v: locks on the audit log %v, %d heap blocks of it read, lock_timeout %s", c.Tags, c.Modes, c.Blocks, c.LockTimeout)
	}
	return commits
}

// auditRows is how many rows the audit log has when it is upgraded:
// RMQPROXY_TEST_AUDIT_ROWS (say 10000000 for an enterprise-sized table),
// 100000 by default.
func auditRows(t *testing.T) int {
	if s := os.Getenv("RMQPROXY_TEST_AUDIT_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("RMQPROXY_TEST_AUDIT_ROWS=%q is not a positive number", s)
		}
		return n
	}
	return 100000
}

// atVersion2 returns a database at schema version 2 (the oldest that has
// shipped with an audit log the later versions change) whose audit log
// holds rows rows, and the number of pages of the audit log.
func atVersion2(t *testing.T, rows int) (dsn string, pages int) {
	t.Helper()
	dsn = pgenv.NewDatabase(t, pgenv.ServerDSN(t))
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
	if err := conn.QueryRow(ctx, `SELECT relpages FROM pg_class WHERE oid = 'rmqproxy.audit_events'::regclass`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	return dsn, pages
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

// whileInserting runs upgrade while another connection inserts audit rows
// (the columns version 2 has: what a proxy of that release writes) one
// after another, and checks that every insert succeeded and is stored.
func whileInserting(t *testing.T, dsn string, upgrade func() error) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ins := connect(t, dsn)
	started := make(chan struct{})
	var wg sync.WaitGroup
	var inserted int
	var insErr error
	wg.Go(func() {
		for ; ctx.Err() == nil; inserted++ {
			// Not ctx: an insert in progress when the upgrade ends must
			// end too, not be cancelled.
			if _, err := ins.Exec(t.Context(), `INSERT INTO rmqproxy.audit_events (occurred_at, proxy_id, seq, category, decision)
  VALUES (now(), 'writer', $1, 'authz', 'DENY')`, inserted); err != nil {
				insErr = err
				return
			}
			if inserted == 0 {
				close(started)
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
	err := upgrade()
	cancel()
	wg.Wait()
	if insErr != nil {
		t.Fatalf("an audit insert failed during the upgrade: %v", insErr)
	}
	var stored int
	if err := ins.QueryRow(t.Context(), `SELECT count(*) FROM rmqproxy.audit_events WHERE proxy_id = 'writer'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != inserted {
		t.Errorf("%d audit inserts succeeded during the upgrade, %d stored", inserted, stored)
	}
	t.Logf("%d audit inserts during the upgrade", inserted)
	return err
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

// TestUpgradeDoesNotBlockAuditInserts: upgrading the schema from version 2
// (an audit log of auditRows rows) while a proxy of that version inserts
// audit events must never hold a lock that blocks inserts while it reads
// the audit log (the ALTER TABLE statements that take ACCESS EXCLUSIVE
// change the catalog only; the index builds and the validation of the
// constraints run under locks that let inserts go on), must set
// lock_timeout wherever it takes such a lock, and must not fail an insert.
// The migrations used to build their indexes, and check their new
// constraints, under locks that block inserts, for the whole read of the
// table; the calibration runs those statements and must see the probe
// report both transactions.
func TestUpgradeDoesNotBlockAuditInserts(t *testing.T) {
	rows := auditRows(t)
	t.Run("calibration", func(t *testing.T) {
		dsn, pages := atVersion2(t, rows)
		if pages < minAuditPages {
			t.Fatalf("the audit log has %d pages, fewer than %d: too small to tell a read from none", pages, minAuditPages)
		}
		conn := connect(t, dsn)
		commits := probed(t, dsn, func() error {
			_, err := conn.Exec(t.Context(), blockingUpgradeSQL)
			return err
		})
		var blocking int
		for _, c := range commits {
			if c.blocksInserts() && c.Blocks > readBound {
				blocking++
			}
		}
		if blocking != 2 {
			t.Fatalf("the probe saw %d of the blocking upgrade's 2 transactions read the audit log (%d pages) under a lock that blocks inserts", blocking, pages)
		}
	})
	t.Run("online", func(t *testing.T) {
		dsn, pages := atVersion2(t, rows)
		if pages < minAuditPages {
			t.Fatalf("the audit log has %d pages, fewer than %d: too small to tell a read from none", pages, minAuditPages)
		}
		commits := probed(t, dsn, func() error {
			return whileInserting(t, dsn, func() error {
				st, err := postgres.Migrate(t.Context(), dsn, postgres.MigrateUp, 0)
				if err == nil && st.Version != migrations.Latest() {
					t.Errorf("version %d after up", st.Version)
				}
				return err
			})
		})
		var exclusive, reads int
		for _, c := range commits {
			if slices.Contains(c.Modes, "AccessExclusiveLock") {
				exclusive++
			}
			if c.Blocks > int64(pages)/2 {
				reads++ // the validation and the index builds
			}
			if !c.blocksInserts() {
				continue
			}
			if c.Blocks > readBound {
				t.Errorf("%v read %d heap blocks of the audit log (%d pages) holding %v, which block inserts for the whole read", c.Tags, c.Blocks, pages, c.Modes)
			}
			if c.LockTimeout == "0" {
				t.Errorf("%v took %v without lock_timeout: waiting for the lock behind a long query queues every insert behind it", c.Tags, c.Modes)
			}
		}
		// The probe saw what it must see for its silence to mean
		// anything: the two ALTER TABLE statements that take ACCESS
		// EXCLUSIVE (versions 3 and 5), and the reads of the table
		// that run beside inserts (versions 4, 6 and 7).
		if exclusive != 2 || reads < 3 {
			t.Errorf("the probe saw %d transactions holding ACCESS EXCLUSIVE (want 2) and %d reading the audit log (want at least 3)", exclusive, reads)
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

// belowLatestWithEqualEvents migrates a new database up and then one
// version down, and stores two audit events with the same time, which a
// unique index over it cannot hold; it returns the database and a
// connection to it.
func belowLatestWithEqualEvents(t *testing.T) (dsn string, conn *pgx.Conn) {
	t.Helper()
	dsn = pgenv.NewDatabase(t, pgenv.ServerDSN(t))
	if _, err := postgres.Migrate(t.Context(), dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(t.Context(), dsn, postgres.MigrateDown, 1); err != nil {
		t.Fatal(err)
	}
	conn = connect(t, dsn)
	if _, err := conn.Exec(t.Context(), `INSERT INTO rmqproxy.audit_events (occurred_at, proxy_id, seq, category, decision)
  VALUES ('2026-01-01Z', 'p', 1, 'authz', 'DENY'), ('2026-01-01Z', 'p', 2, 'authz', 'DENY')`); err != nil {
		t.Fatal(err)
	}
	return dsn, conn
}

// TestMigrateUpRerunsInterruptedIndexBuild: a CREATE INDEX CONCURRENTLY
// that fails or is interrupted (a deadlock, a cancelled statement, a
// killed connection) leaves an INVALID index behind and the version
// dirty. rmqproxy migrate up must drop the invalid index and build it
// again, not refuse the dirty version nor keep the invalid index (which
// IF NOT EXISTS would find).
func TestMigrateUpRerunsInterruptedIndexBuild(t *testing.T) {
	dsn, conn := belowLatestWithEqualEvents(t)
	ctx := t.Context()
	// A build that fails half-way: a unique one over equal values.
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
	dsn, conn := belowLatestWithEqualEvents(t)
	ctx := t.Context()
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
	dsn, _ := atVersion2(t, 10)
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

// TestMigrateUpThatTimesOutOnItsLockSaysWhy: a migration that cannot take
// its ACCESS EXCLUSIVE lock within its lock_timeout (another session holds
// a lock on the audit log: a long export, an open transaction) fails, and
// the operator must learn that and what to do, then run it again. The
// failure used to be reported as "current transaction is aborted" (the
// version read after the failed file, on the same connection).
func TestMigrateUpThatTimesOutOnItsLockSaysWhy(t *testing.T) {
	dsn, _ := atVersion2(t, 10)
	ctx := t.Context()
	holder := connect(t, dsn)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM rmqproxy.audit_events`); err != nil { // ACCESS SHARE, held to the end of tx
		t.Fatal(err)
	}
	st, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0)
	if err == nil {
		t.Fatalf("up succeeded while another transaction held a lock on the audit log: %+v", st)
	}
	t.Logf("up: %+v, %v", st, err)
	for _, want := range []string{"lock timeout", "run rmqproxy migrate up again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "current transaction is aborted") {
		t.Errorf("the error hides the cause: %v", err)
	}
	if !st.Dirty || st.Version != 3 {
		t.Errorf("state %+v after the failure, want version 3, dirty", st)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil || st.Dirty || st.Version != migrations.Latest() {
		t.Fatalf("up again once the lock is free: %+v, %v", st, err)
	}
	assertSchema(t, dsn)
}
