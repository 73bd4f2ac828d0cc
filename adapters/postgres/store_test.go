package postgres_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
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

// TestImportAsSingleOperations: an import changes users as user create and
// user update do: it keeps the last enabled super user (for the import as a
// whole, in any order), keeps what the file leaves out, and writes the
// same audit events, one per created or changed user and per entry. It
// used to overwrite type and status without the rule (omitted: Normal,
// enable) and audit only a count.
func TestImportAsSingleOperations(t *testing.T) {
	type event struct {
		op, resource string
		details      map[string]any
	}
	cases := []struct {
		name    string
		file    string
		refused bool              // BadRequest, nothing changed
		users   map[string]string // name: "type status" after the import
		events  []event           // admin audit events of the import, oldest first
	}{{
		name:  "omitted type and status keep a super user",
		file:  `{"users":[{"username":"root","password":"rotated-secret-0123456789"},{"username":"app"}]}`,
		users: map[string]string{"root": "Super enable", "app": "Normal disable"},
		events: []event{
			{"user.update", "User:root", map[string]any{"secret": "changed"}},
			{"import", "", map[string]any{"users_created": 0.0, "users_updated": 1.0, "entries": 0.0}},
		},
	}, {
		name:    "the last enabled super user is not disabled",
		file:    `{"users":[{"username":"root","userStatus":"disable"}]}`,
		refused: true,
	}, {
		name:    "the last enabled super user is not demoted",
		file:    `users: [{username: root, userType: Normal}, {username: carol, password: carol-secret-0123456789}]`,
		refused: true,
	}, {
		name:  "a super user hands over to another in the same import",
		file:  `{"users":[{"username":"root","userStatus":"disable"},{"username":"app","userType":"Super","userStatus":"enable"}]}`,
		users: map[string]string{"root": "Super disable", "app": "Super enable"},
		events: []event{
			{"user.update", "User:root", map[string]any{"status": "disable"}},
			{"user.update", "User:app", map[string]any{"type": "Super", "status": "enable"}},
			{"import", "", map[string]any{"users_created": 0.0, "users_updated": 2.0, "entries": 0.0}},
		},
	}, {
		name: "new users and entries are audited one by one",
		file: `{"users":[{"username":"carol","password":"carol-secret-0123456789"}],
  "acls":[{"subject":"User:carol","policies":[{"policyType":"Custom","entries":[{"resource":"Topic:t","actions":["Pub"],"decision":"Allow"}]}]}]}`,
		users: map[string]string{"root": "Super enable", "app": "Normal disable", "carol": "Normal enable"},
		events: []event{
			{"user.create", "User:carol", map[string]any{"type": "Normal", "status": "enable"}},
			{"acl.put", "Topic:t", map[string]any{"subject": "User:carol", "policy_type": "Custom", "decision": "Allow", "source_ips": []any{}}},
			{"import", "", map[string]any{"users_created": 1.0, "users_updated": 0.0, "entries": 1.0}},
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, _ := newStore(t)
			ctx := t.Context()
			if err := s.CreateUser(ctx, actor, domain.User{Name: "root", Type: domain.UserSuper}, testSecret); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, actor, domain.User{Name: "app", Status: domain.UserDisabled}, testSecret); err != nil {
				t.Fatal(err)
			}
			before, err := s.QueryAudit(ctx, domain.AuditQuery{Category: domain.AuditAdmin})
			if err != nil {
				t.Fatal(err)
			}
			users, entries, err := policyfile.DecodeImport([]byte(c.file))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Import(ctx, actor, users, entries)
			if c.refused {
				if !domain.HasReason(err, domain.ReasonBadRequest) {
					t.Fatalf("import: %v, want refused", err)
				}
				c.users = map[string]string{"root": "Super enable", "app": "Normal disable"}
			} else if err != nil {
				t.Fatalf("import: %v", err)
			}
			all, err := s.ListUsers(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, u := range all {
				got[u.Name] = u.Type.String() + " " + u.Status.String()
			}
			if !reflect.DeepEqual(got, c.users) {
				t.Errorf("users after the import: %v, want %v", got, c.users)
			}
			evs, err := s.QueryAudit(ctx, domain.AuditQuery{Category: domain.AuditAdmin})
			if err != nil {
				t.Fatal(err)
			}
			var written []event
			for i := len(evs) - len(before) - 1; i >= 0; i-- {
				e := event{op: evs[i].Operation, resource: evs[i].Resource}
				if err := json.Unmarshal([]byte(evs[i].Details), &e.details); err != nil {
					t.Fatalf("details of %s: %v", e.op, err)
				}
				written = append(written, e)
			}
			if !reflect.DeepEqual(written, c.events) {
				t.Errorf("audit events of the import:\n%v\nwant\n%v", written, c.events)
			}
		})
	}
}

// TestPlainACLImportKeepsDescriptions: plain_acl.yml has no descriptions;
// importing it describes the users it creates and leaves an existing
// user's description as it was.
func TestPlainACLImportKeepsDescriptions(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, actor, domain.User{Name: "root", Type: domain.UserSuper, Description: "payments on-call"}, testSecret); err != nil {
		t.Fatal(err)
	}
	users, entries, _, err := policyfile.DecodePlainACL([]byte("accounts:\n" +
		"  - {accessKey: root, secretKey: root-secret-0123456789, admin: true}\n" +
		"  - {accessKey: fresh, secretKey: fresh-secret-0123456789}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, actor, users, entries); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListUsers(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, u := range all {
		got[u.Name] = u.Description
	}
	want := map[string]string{"root": "payments on-call", "fresh": "imported from plain_acl.yml"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("descriptions after the import: %v, want %v", got, want)
	}
}
