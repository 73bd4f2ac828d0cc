package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

var testSecret = domain.Secret("0123456789abcdef0123456789abcdef")

// waitLockWaiters waits until n backends of the test's database wait for a
// lock.
func waitLockWaiters(t *testing.T, p *pgxpool.Pool, n int) {
	t.Helper()
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		var got int
		if err := p.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
  WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got); err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%d backends wait for a lock, want %d", got, n)
		}
		return nil
	})
}

// TestGrantRacingUserDeleteLeavesNoEntry: an entry granted while its user
// is being deleted must not survive the user, whichever of the two takes
// the user first; otherwise a later, unrelated user of the same name
// inherits the grant. A transaction holding the policy revision row parks
// the first operation inside its transaction (every change bumps that
// row), so that the second one starts while the first is uncommitted.
func TestGrantRacingUserDeleteLeavesNoEntry(t *testing.T) {
	for _, first := range []string{"grant", "delete"} {
		t.Run(first+" first", func(t *testing.T) {
			s, p, _ := newStore(t)
			ctx := t.Context()
			if err := s.CreateUser(ctx, actor, domain.User{Name: "root", Type: domain.UserSuper}, testSecret); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, actor, domain.User{Name: "bob"}, testSecret); err != nil {
				t.Fatal(err)
			}
			blocker, err := p.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = blocker.Rollback(ctx) }() // on a failure before the rollback below
			if _, err := blocker.Exec(ctx, `SELECT revision FROM rmqproxy.policy_revision FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			grant, del := make(chan error, 1), make(chan error, 1)
			ops := map[string]func(){
				"grant": func() {
					grant <- s.PutEntries(ctx, actor, []domain.ACLEntry{mustEntry(t, "User:bob", "Topic:payments", "Pub,Sub", "Allow")})
				},
				"delete": func() { del <- s.DeleteUser(ctx, actor, "bob") },
			}
			second := map[string]string{"grant": "delete", "delete": "grant"}[first]
			go ops[first]()
			waitLockWaiters(t, p, 1)
			go ops[second]()
			waitLockWaiters(t, p, 2)
			if err := blocker.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-del; err != nil {
				t.Fatalf("delete bob: %v", err)
			}
			// Before the fix both succeeded whatever the order.
			if err := <-grant; first == "grant" && err != nil || first == "delete" && !domain.HasReason(err, domain.ReasonNotFound) {
				t.Errorf("grant to bob, %s first: %v", first, err)
			}
			var left int
			if err := p.QueryRow(ctx, `SELECT count(*) FROM rmqproxy.acl_entries WHERE subject = 'User:bob'`).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Errorf("%d entries of the deleted user bob survive", left)
			}
			if err := s.CreateUser(ctx, actor, domain.User{Name: "bob"}, testSecret); err != nil {
				t.Fatal(err)
			}
			if es, err := s.ListEntries(ctx, ports.EntryFilter{Subject: "User:bob"}); err != nil || len(es) != 0 {
				t.Fatalf("a new user bob inherits %v (%v)", es, err)
			}
		})
	}
}
