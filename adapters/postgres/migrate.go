package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for golang-migrate

	"github.com/rmqproxy/rmqproxy/migrations"
)

// Schema is the PostgreSQL schema rmqproxy's tables live in; golang-migrate
// keeps its version table (schema_migrations) there too.
const Schema = "rmqproxy"

// MigrateOp is what [Migrate] does.
type MigrateOp int

// Migration operations.
const (
	MigrateVersion MigrateOp = iota // report only
	MigrateUp                       // apply every pending migration
	MigrateDown                     // revert Steps migrations (all when Steps is 0)
)

// SchemaState is a database's schema version.
type SchemaState struct {
	Version uint // 0: no migration applied
	Dirty   bool // a migration failed half-way; fix it by hand, then force
	Latest  uint // the latest version this build knows
	// From and FromDirty are the version before the run (read under the
	// migrations lock, so no other run moved it in between); for
	// MigrateVersion they equal Version and Dirty.
	From      uint
	FromDirty bool
}

// Migrate runs op on the database dsn names, with the migrations embedded
// in the binary, under an advisory lock (concurrent runs wait for each
// other; see lockMigrations). A migration that failed half-way and may run
// again (migrations.Rerun) is run again by MigrateUp. It creates the schema rmqproxy when missing (the
// DSN's role needs CREATE on the database for that, and owns the tables).
func Migrate(ctx context.Context, dsn string, op MigrateOp, steps int) (SchemaState, error) {
	state := SchemaState{Latest: migrations.Latest()}
	if _, err := pgx.ParseConfig(dsn); err != nil {
		return state, errors.New("postgres.dsn is not a PostgreSQL connection string")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return state, fmt.Errorf("open PostgreSQL: %w", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return state, fmt.Errorf("connect to PostgreSQL: %w", redact(err))
	}
	if op != MigrateVersion {
		if err := createSchema(ctx, db); err != nil {
			return state, fmt.Errorf("create schema %s: %w", Schema, redact(err))
		}
	} else {
		var exists bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, Schema).Scan(&exists); err != nil {
			return state, err
		}
		if !exists {
			return state, nil
		}
	}
	if op != MigrateVersion {
		unlock, err := lockMigrations(ctx, db)
		if err != nil {
			return state, fmt.Errorf("wait for other migrations: %w", redact(err))
		}
		defer unlock()
	}
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{SchemaName: Schema, MigrationsTable: "schema_migrations"})
	if err != nil {
		return state, fmt.Errorf("prepare migrations: %w", err)
	}
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return state, err
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", rollbackOnFailure{drv})
	if err != nil {
		return state, err
	}
	defer m.Close()
	// Stop a long migration when ctx ends (between statements).
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()
	if v, dirty, err := m.Version(); err == nil {
		state.From, state.FromDirty = v, dirty
	}
	if state.From > state.Latest {
		state.Version, state.Dirty = state.From, state.FromDirty
		return state, fmt.Errorf("the database's schema version %d is newer than this rmqproxy knows (%d): use the rmqproxy release that migrated it", state.From, state.Latest)
	}
	if op == MigrateDown && steps > 0 {
		// golang-migrate reverts what it can before reporting a short
		// limit; refuse before touching anything instead.
		v, _, err := m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			v, err = 0, nil
		}
		if err != nil {
			return state, err
		}
		if applied := migrations.Applied(v); steps > applied {
			state.Version = v
			return state, fmt.Errorf("cannot revert %d migrations: only %d applied", steps, applied)
		}
	}
	switch op {
	case MigrateUp:
		err = rerunDirty(ctx, db, m)
		if err == nil {
			err = m.Up()
		}
	case MigrateDown:
		if steps > 0 {
			err = m.Steps(-steps)
		} else {
			err = m.Down()
		}
	}
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	v, dirty, verr := m.Version()
	if err != nil {
		// The migration's error first: a file that failed inside its
		// transaction block leaves the connection in an aborted
		// transaction, so reading the version fails too (with "current
		// transaction is aborted", which says nothing of the cause).
		if verr == nil {
			state.Version, state.Dirty = v, dirty
		}
		return state, migrationError(err, state.Version)
	}
	if verr != nil && !errors.Is(verr, migrate.ErrNilVersion) {
		return state, verr
	}
	state.Version, state.Dirty = v, dirty
	return state, nil
}

// rollbackOnFailure is golang-migrate's PostgreSQL driver with one
// addition. A migration file that fails inside its own BEGIN ... COMMIT
// leaves the driver's connection in an aborted transaction, where all
// that golang-migrate runs next on it (releasing its lock, reading the
// version) fails too; so after a failed file it rolls that transaction
// back, on the same connection (a ROLLBACK outside a transaction only
// warns).
type rollbackOnFailure struct{ database.Driver }

func (d rollbackOnFailure) Run(migration io.Reader) error {
	err := d.Driver.Run(migration)
	if err != nil {
		_ = d.Driver.Run(strings.NewReader("ROLLBACK"))
	}
	return err
}

// migrationError reports a failed migration without golang-migrate's
// copy of the whole file (its comments included): the version, the line
// and PostgreSQL's error; and for a migration that could not take its
// lock in time (lock_timeout), what held it and that running it again is
// the way on.
func migrationError(err error, version uint) error {
	var dbErr database.Error
	var pgErr *pgconn.PgError
	if !errors.As(err, &dbErr) || !errors.As(dbErr.OrigErr, &pgErr) {
		return fmt.Errorf("migrate: %w", err)
	}
	var detail string
	if pgErr.Detail != "" {
		detail = " (" + pgErr.Detail + ")"
	}
	if pgErr.Code == "55P03" { // lock_not_available
		detail += "; another session holds a lock on a table this migration changes (a long query or an open transaction: see pg_locks and pg_stat_activity); run rmqproxy migrate up again once it has ended"
	}
	var at string
	if pgErr.Position > 0 {
		at = fmt.Sprintf(" at line %d of its file", dbErr.Line)
	}
	return fmt.Errorf("migrate: version %d failed%s: %w%s", version, at, pgErr, detail)
}

// migrationsLockKey is the advisory lock rmqproxy migrate up and down
// hold for their whole run ("rmqpmigr").
const migrationsLockKey = 0x726d71706d696772

// lockRetry is how often a migration waiting for another one tries the
// lock again.
const lockRetry = 250 * time.Millisecond

// lockMigrations takes the migrations lock on a connection of its own and
// returns its release. It waits by trying again, not with
// pg_advisory_lock: a session blocked in that statement holds a snapshot,
// and CREATE INDEX CONCURRENTLY in the run it waits for waits for every
// older snapshot to end, a deadlock that PostgreSQL resolves by failing
// one of them (golang-migrate's own lock, taken afterwards, is then never
// contended between rmqproxy runs). Between tries the connection is idle.
func lockMigrations(ctx context.Context, db *sql.DB) (func(), error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	t := time.NewTicker(lockRetry)
	defer t.Stop()
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, int64(migrationsLockKey)).Scan(&ok); err != nil {
			_ = conn.Close()
			return nil, err
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			_ = conn.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return func() {
		// Closing the session releases the lock too; unlock first so that
		// a pooled connection does not keep it.
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrationsLockKey))
		_ = conn.Close()
	}, nil
}

// rerunDirty prepares a dirty schema for migrate up when the migration
// that failed half-way may run again (migrations.Rerun): it drops the
// INVALID indexes an interrupted CREATE INDEX CONCURRENTLY of that
// migration leaves in the schema (concurrently: inserts go on; an index
// the migration does not name, perhaps being built by someone else, is
// left alone) and sets the version back to the
// one before, so that Up runs the migration again. Other dirty versions
// are left for an operator (Up refuses them).
func rerunDirty(ctx context.Context, db *sql.DB, m *migrate.Migrate) error {
	v, dirty, err := m.Version()
	if err != nil || !dirty {
		return nil
	}
	ok, up, previous := migrations.Rerun(v)
	if !ok {
		return nil
	}
	rows, err := db.QueryContext(ctx, `SELECT c.relname FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND NOT i.indisvalid`, Schema)
	if err != nil {
		return err
	}
	builds := indexesBuilt(up)
	var invalid []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return err
		}
		if builds[name] { // only what this migration builds
			invalid = append(invalid, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, name := range invalid {
		if _, err := db.ExecContext(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+pgx.Identifier{Schema, name}.Sanitize()); err != nil {
			return fmt.Errorf("drop the invalid index %s left by version %d: %w", name, v, err)
		}
	}
	if previous == 0 {
		return m.Force(-1)
	}
	return m.Force(int(previous))
}

// createIndex matches the name in a CREATE INDEX statement: an
// identifier, unquoted or quoted, maybe qualified by the schema's.
var createIndex = regexp.MustCompile(`(?i)\bcreate\s+(?:unique\s+)?index\s+(?:concurrently\s+)?(?:if\s+not\s+exists\s+)?` +
	`(?:(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s*\.\s*)?("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)\s+on\b`)

var blockComment = regexp.MustCompile(`(?s)/\*.*?\*/`)

// indexesBuilt returns the names of the indexes that the statements of
// the migration sql create, as pg_class spells them (unquoted names
// folded to lower case). Comments are left out: an index they mention
// is not built. Only these, matched whole, are dropped when INVALID
// (rerunDirty): another invalid index of the schema, whose name may well
// be part of one of these or appear in a comment, may be another
// session's build in progress.
func indexesBuilt(sql string) map[string]bool {
	var code strings.Builder
	for _, line := range strings.Split(blockComment.ReplaceAllString(sql, " "), "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		code.WriteString(line)
		code.WriteByte('\n')
	}
	out := map[string]bool{}
	for _, m := range createIndex.FindAllStringSubmatch(code.String(), -1) {
		name := m[1]
		if strings.HasPrefix(name, `"`) {
			name = strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
		} else {
			name = strings.ToLower(name)
		}
		out[name] = true
	}
	return out
}

// schemaLockKey is the advisory lock that serializes creating the schema
// (any constant: advisory locks are per database).
const schemaLockKey = 0x726d7170726f7879 // "rmqproxy"

// createSchema creates the schema rmqproxy unless it exists. CREATE SCHEMA
// IF NOT EXISTS is not safe against itself: of two runs at once, one fails
// on pg_namespace's unique index. Under an advisory lock held until commit
// the second waits and finds the schema; golang-migrate's own lock is
// taken only afterwards, inside the schema.
func createSchema(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLockKey)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+Schema); err != nil {
		return err
	}
	return tx.Commit()
}

// CheckSchema reads the schema version of the database pool q talks to and
// refuses what this build cannot run on: no schema, an older one, a dirty
// one, or a newer one.
func CheckSchema(ctx context.Context, q Querier) (SchemaState, error) {
	st := SchemaState{Latest: migrations.Latest()}
	var v int64
	err := q.QueryRow(ctx, `SELECT version, dirty FROM rmqproxy.schema_migrations LIMIT 1`).Scan(&v, &st.Dirty)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000"): // undefined table / schema
		return st, fmt.Errorf("the database has no rmqproxy schema: run rmqproxy migrate up (with the owner's postgres.dsn) first")
	case errors.Is(err, pgx.ErrNoRows):
		return st, fmt.Errorf("the database's rmqproxy schema has no migration applied: run rmqproxy migrate up first")
	case err != nil:
		return st, fmt.Errorf("read the schema version: %w", redact(err))
	}
	st.Version = uint(v)
	switch {
	case st.Version > st.Latest:
		return st, fmt.Errorf("the database's schema version %d is newer than this rmqproxy knows (%d): upgrade rmqproxy, or run \"rmqproxy migrate down\" with the release that migrated it", st.Version, st.Latest)
	case st.Dirty:
		return st, fmt.Errorf("the database's schema version %d is dirty (a migration failed half-way): repair it by hand, then run rmqproxy migrate up", st.Version)
	case st.Version < st.Latest:
		return st, fmt.Errorf("the database's schema version %d is older than this rmqproxy needs (%d): run rmqproxy migrate up", st.Version, st.Latest)
	}
	return st, nil
}

// Querier is what CheckSchema needs (a pool, a connection or a transaction).
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}
