package postgres_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// hungServer accepts TCP connections and never answers: PostgreSQL that
// hangs (a stalled host, a network black hole after the handshake). It
// reports each accepted connection on accepted.
func hungServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 64)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// TestSourceHealthAnswersWhilePostgresHangs: the readiness check
// (Source.Health) must answer at once while a reload waits on a PostgreSQL
// that does not answer; it used to wait for the reload's lock, up to the
// reload's 30 s timeout, so /readyz timed out and the proxy was taken out
// of service exactly when it should report "degraded" and keep serving.
func TestSourceHealthAnswersWhilePostgresHangs(t *testing.T) {
	addr, accepted := hungServer(t)
	dsn := "postgres://rmqproxy@" + addr + "/rmqproxy?sslmode=disable&connect_timeout=60"
	store := postgres.NewStore(pool(t, dsn), nil, "test-proxy")
	cfg := postgres.DefaultConfig()
	cfg.ReloadInterval = 20 * time.Millisecond
	cfg.ReconnectDelay = time.Hour
	src := postgres.NewSource(store, dsn, cfg, discard())

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Watch(ctx, 1, func(domain.PolicySnapshot) error { return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })

	// The LISTEN connection and the pool's connection of a reload are both
	// accepted and hang.
	for range 2 {
		select {
		case <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("the source did not connect")
		}
	}
	answered := make(chan struct{})
	go func() { _ = src.Health(); close(answered) }()
	select {
	case <-answered:
	case <-time.After(time.Second):
		t.Error("Source.Health did not answer within 1s while a reload waits on PostgreSQL")
		cancel()
		<-answered
	}
}

// TestSourceFollowsRevisionThatWentBack: after PostgreSQL is restored from
// a backup, fails over to a standby that missed the last commits, or is
// migrated down and up, its policy revision is lower than the one a
// running proxy enforces. The database is the truth: a change made there
// must still reach the proxy. The source used to load only revisions
// greater than its own, so it ignored every change (a user disabled or
// deleted included) until the revision passed the old one again.
func TestSourceFollowsRevisionThatWentBack(t *testing.T) {
	s, p, _, snap, view := watchAliceAndBob(t)
	ctx := t.Context()

	// The database as a restore leaves it: an older revision.
	if _, err := p.Exec(ctx, `UPDATE rmqproxy.policy_revision SET revision = 1`); err != nil {
		t.Fatal(err)
	}
	disabled := domain.UserDisabled
	if _, err := s.UpdateUser(ctx, actor, "bob", ports.UserUpdate{Status: &disabled}); err != nil {
		t.Fatal(err)
	}
	waitBobDisabled(t, view, fmt.Sprintf("revision went from %d back to 1, then up", snap.Revision))
}

// TestSourceFollowsAChangeThatReusesTheRevision: a database that went back
// (a restore, a failover to a standby that missed the last commits) and
// then took as many changes as it lost is at the revision a proxy
// enforces, with another policy. The revision alone said "nothing new":
// the NOTIFY was skipped as the revision in force and so was every
// backstop check, and a user disabled there kept its access for as long
// as nothing else changed. The revision's change time tells the two
// apart.
func TestSourceFollowsAChangeThatReusesTheRevision(t *testing.T) {
	_, p, src, snap, view := watchAliceAndBob(t)
	ctx := t.Context()
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, src.Health)

	// One transaction: the database one change behind the proxy's
	// revision, then one change (bob disabled) that brings it back to it.
	tx, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `UPDATE rmqproxy.policy_revision SET revision = $1`, snap.Revision-1); err != nil {
		t.Fatal(err)
	}
	var rev int64
	if _, err := tx.Exec(ctx, `UPDATE rmqproxy.users SET status = 'disable' WHERE username = 'bob'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, `SELECT revision FROM rmqproxy.policy_revision`).Scan(&rev); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if rev != snap.Revision {
		t.Fatalf("set-up: the database is at revision %d, not the proxy's %d", rev, snap.Revision)
	}
	waitBobDisabled(t, view, fmt.Sprintf("committed at revision %d, the one in force, after the database went back", rev))
}

// watchAliceAndBob creates the users alice and bob in a new store and
// follows its policy with a source checking every 50 ms, applied to view.
func watchAliceAndBob(t *testing.T) (s *postgres.Store, p *pgxpool.Pool, src *postgres.Source, snap domain.PolicySnapshot, view *applied) {
	t.Helper()
	s, p, dsn := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, actor, domain.User{Name: name}, domain.Secret(name+"-secret-0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	cfg := postgres.DefaultConfig()
	cfg.ReloadInterval = 50 * time.Millisecond
	src = postgres.NewSource(s, dsn, cfg, discard())
	snap, err := src.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	view = &applied{}
	_ = view.apply(snap)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); src.Watch(wctx, snap.Revision, view.apply) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, p, src, snap, view
}

// waitBobDisabled waits for view to hold bob disabled; what says which
// change disabled him.
func waitBobDisabled(t *testing.T, view *applied, what string) {
	t.Helper()
	waitfor.Condition(t, 5*time.Second, 10*time.Millisecond, func() error {
		view.mu.Lock()
		defer view.mu.Unlock()
		for _, u := range view.last.Users {
			if u.Name == "bob" && u.Status == domain.UserDisabled {
				return nil
			}
		}
		return fmt.Errorf("bob's disabling (%s) not loaded; revisions applied: %v", what, view.revs)
	})
}
