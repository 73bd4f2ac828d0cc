package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/application"
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
					grant <- s.PutEntries(ctx, actor, []domain.ACLEntry{mustEntry(t, "User:bob", "Topic:payments", "Pub,Sub", "Allow")}, ports.PutUpsert)
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
			{"acl.put", "Topic:t", map[string]any{"subject": "User:carol", "policy_type": "Custom", "decision": "Allow", "source_ips": []any{}, "change": "created"}},
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
				delete(e.details, "dbUser") // TestAdminChangesNameTheDatabaseRole
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

// parkPolicyChanges holds the policy revision row until the returned
// release is called: every change bumps that row (a trigger), so a change
// started meanwhile waits inside its transaction, uncommitted, after its
// own writes.
func parkPolicyChanges(t *testing.T, p *pgxpool.Pool) (release func()) {
	t.Helper()
	ctx := t.Context()
	blocker, err := p.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = blocker.Rollback(context.Background()) })
	if _, err := blocker.Exec(ctx, `SELECT revision FROM rmqproxy.policy_revision FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := blocker.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// adminEvents returns the admin audit events with operation op, oldest
// first.
func adminEvents(t *testing.T, s *postgres.Store, op string) []domain.AuditEvent {
	t.Helper()
	evs, err := s.QueryAudit(t.Context(), domain.AuditQuery{Category: domain.AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.AuditEvent
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Operation == op {
			out = append(out, evs[i])
		}
	}
	return out
}

// TestACLPutSaysCreatedOrReplaced: an acl.put audit event says whether the
// entry was created or replaced, and what it replaced, for acl create and
// update and for an import (an upsert); it said neither, so an auditor
// could not tell a new grant from a changed one, nor what was there
// before.
func TestACLPutSaysCreatedOrReplaced(t *testing.T) {
	s, _, _ := newStore(t)
	if err := s.CreateUser(t.Context(), actor, domain.User{Name: "bob"}, testSecret); err != nil {
		t.Fatal(err)
	}
	admin := application.NewSecurityAdmin(s)
	steps := []struct {
		name                    string
		entry                   domain.ACLEntry
		mustExist, mustNotExist bool
		change                  string
		previous                map[string]any
	}{
		{"create", mustEntry(t, "User:bob", "Topic:a", "Pub", "Allow"), false, true, "created", nil},
		{"update", mustEntry(t, "User:bob", "Topic:a", "All", "Deny"), true, false, "replaced",
			map[string]any{"actions": "Pub", "decision": "Allow", "source_ips": []any{}, "description": ""}},
		{"upsert of a new entry", mustEntry(t, "User:bob", "Topic:b", "Sub", "Allow"), false, false, "created", nil},
		{"upsert of an existing entry", mustEntry(t, "User:bob", "Topic:a", "Sub", "Allow"), false, false, "replaced",
			map[string]any{"actions": "All", "decision": "Deny", "source_ips": []any{}, "description": ""}},
	}
	for i, st := range steps {
		if err := admin.PutEntries(t.Context(), actor, []domain.ACLEntry{st.entry}, st.mustExist, st.mustNotExist); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		evs := adminEvents(t, s, "acl.put")
		if len(evs) != i+1 {
			t.Fatalf("%s: %d acl.put events, want %d", st.name, len(evs), i+1)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(evs[i].Details), &d); err != nil {
			t.Fatalf("%s: details %q: %v", st.name, evs[i].Details, err)
		}
		if d["change"] != st.change {
			t.Errorf("%s: change %v, want %s (details %s)", st.name, d["change"], st.change, evs[i].Details)
		}
		if prev, _ := d["previous"].(map[string]any); !reflect.DeepEqual(prev, st.previous) && (prev != nil || st.previous != nil) {
			t.Errorf("%s: previous %v, want %v", st.name, d["previous"], st.previous)
		}
	}
}

// TestACLCreateAndUpdateCheckInTheirTransaction: acl create must fail with
// "already exists" when the entry exists, and acl update with "not found"
// when it does not, whatever runs at the same time. The check used to be a
// read before the write's transaction: of two concurrent creates of one
// entry both passed (the second silently replaced the first, and the audit
// log showed two creations), and an update racing a delete re-created the
// deleted entry. Here the first change is parked inside its transaction
// while the second one starts.
func TestACLCreateAndUpdateCheckInTheirTransaction(t *testing.T) {
	alice, mallory := actor, actor
	alice.Principal, mallory.Principal = "cli:alice", "cli:mallory"
	setup := func(t *testing.T) (*postgres.Store, *pgxpool.Pool, *application.SecurityAdmin) {
		s, p, _ := newStore(t)
		if err := s.CreateUser(t.Context(), actor, domain.User{Name: "bob"}, testSecret); err != nil {
			t.Fatal(err)
		}
		return s, p, application.NewSecurityAdmin(s)
	}
	t.Run("create racing create", func(t *testing.T) {
		s, p, admin := setup(t)
		allow := mustEntry(t, "User:bob", "Topic:payments", "Pub", "Allow")
		deny := mustEntry(t, "User:bob", "Topic:payments", "All", "Deny")
		release := parkPolicyChanges(t, p)
		first, second := make(chan error, 1), make(chan error, 1)
		go func() { first <- admin.PutEntries(t.Context(), alice, []domain.ACLEntry{deny}, false, true) }()
		waitLockWaiters(t, p, 1)
		go func() { second <- admin.PutEntries(t.Context(), mallory, []domain.ACLEntry{allow}, false, true) }()
		waitLockWaiters(t, p, 2)
		release()
		if err := <-first; err != nil {
			t.Fatalf("first create: %v", err)
		}
		err := <-second
		if !domain.HasReason(err, domain.ReasonAlreadyExists) || !strings.Contains(err.Error(), "already has a Custom entry for Topic:payments") {
			t.Errorf("second create of the same entry: %v, want already exists", err)
		}
		es, err := s.ListEntries(t.Context(), ports.EntryFilter{Subject: "User:bob"})
		if err != nil || len(es) != 1 || es[0].Decision != domain.Deny {
			t.Errorf("entries of bob: %+v (%v), want the first create's Deny", es, err)
		}
		if evs := adminEvents(t, s, "acl.put"); len(evs) != 1 || evs[0].Principal != "cli:alice" {
			t.Errorf("acl.put events %+v, want one by cli:alice", evs)
		}
	})
	t.Run("update racing delete", func(t *testing.T) {
		s, p, admin := setup(t)
		e := mustEntry(t, "User:bob", "Topic:payments", "Pub", "Allow")
		if err := admin.PutEntries(t.Context(), alice, []domain.ACLEntry{e}, false, true); err != nil {
			t.Fatal(err)
		}
		release := parkPolicyChanges(t, p)
		del, upd := make(chan error, 1), make(chan error, 1)
		go func() {
			_, err := admin.DeleteEntries(t.Context(), alice, ports.EntryFilter{Subject: "User:bob", Resource: "Topic:payments"})
			del <- err
		}()
		waitLockWaiters(t, p, 1)
		e.Actions = domain.ActionPub | domain.ActionSub
		go func() { upd <- admin.PutEntries(t.Context(), mallory, []domain.ACLEntry{e}, true, false) }()
		waitLockWaiters(t, p, 2)
		release()
		if err := <-del; err != nil {
			t.Fatalf("delete: %v", err)
		}
		if err := <-upd; !domain.HasReason(err, domain.ReasonNotFound) {
			t.Errorf("update of an entry deleted meanwhile: %v, want not found", err)
		}
		if es, err := s.ListEntries(t.Context(), ports.EntryFilter{Subject: "User:bob"}); err != nil || len(es) != 0 {
			t.Errorf("the deleted entry came back: %+v (%v)", es, err)
		}
	})
	t.Run("sequential", func(t *testing.T) {
		_, _, admin := setup(t)
		e := mustEntry(t, "User:bob", "Topic:t", "Pub", "Allow")
		if err := admin.PutEntries(t.Context(), alice, []domain.ACLEntry{e}, true, false); !domain.HasReason(err, domain.ReasonNotFound) {
			t.Errorf("update of a missing entry: %v", err)
		}
		if err := admin.PutEntries(t.Context(), alice, []domain.ACLEntry{e}, false, true); err != nil {
			t.Fatal(err)
		}
		if err := admin.PutEntries(t.Context(), alice, []domain.ACLEntry{e}, false, true); !domain.HasReason(err, domain.ReasonAlreadyExists) {
			t.Errorf("create of an existing entry: %v", err)
		}
		if err := admin.PutEntries(t.Context(), alice, []domain.ACLEntry{e}, true, false); err != nil {
			t.Errorf("update of an existing entry: %v", err)
		}
		// A change of several entries is one transaction: nothing of it
		// stays when one of them fails.
		two := []domain.ACLEntry{mustEntry(t, "User:bob", "Topic:u", "Pub", "Allow"), e}
		if err := admin.PutEntries(t.Context(), alice, two, false, true); !domain.HasReason(err, domain.ReasonAlreadyExists) {
			t.Errorf("create of a new and an existing entry: %v", err)
		}
		if es, err := admin.ListEntries(t.Context(), ports.EntryFilter{Resource: "Topic:u"}); err != nil || len(es) != 0 {
			t.Errorf("a failed create left %+v (%v)", es, err)
		}
	})
}

// TestUserCreateRacingCreate: of two concurrent creates of one user exactly
// one succeeds; the other fails with "already exists" and neither its
// secret nor its audit event is written.
func TestUserCreateRacingCreate(t *testing.T) {
	s, p, _ := newStore(t)
	admin := application.NewSecurityAdmin(s)
	alice, mallory := actor, actor
	alice.Principal, mallory.Principal = "cli:alice", "cli:mallory"
	release := parkPolicyChanges(t, p)
	first, second := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := admin.CreateUser(t.Context(), alice, domain.User{Name: "bob"}, domain.Secret("alice-chose-this-secret-0123"))
		first <- err
	}()
	waitLockWaiters(t, p, 1)
	go func() {
		_, err := admin.CreateUser(t.Context(), mallory, domain.User{Name: "bob", Type: domain.UserSuper}, domain.Secret("mallory-chose-this-secret-01"))
		second <- err
	}()
	waitLockWaiters(t, p, 2)
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; !domain.HasReason(err, domain.ReasonAlreadyExists) || !strings.Contains(err.Error(), `user "bob" already exists`) {
		t.Errorf("second create: %v, want already exists", err)
	}
	snap, err := s.LoadSnapshot(t.Context())
	if err != nil || len(snap.Users) != 1 || snap.Users[0].Type != domain.UserNormal || string(snap.Users[0].Secrets[0]) != "alice-chose-this-secret-0123" {
		t.Errorf("users %+v (%v), want alice's Normal bob with her secret", snap.Users, err)
	}
	if evs := adminEvents(t, s, "user.create"); len(evs) != 1 || evs[0].Principal != "cli:alice" {
		t.Errorf("user.create events %+v, want one by cli:alice", evs)
	}
}

// TestSnapshotCarriesSecretExpiry: a secret's expires_at reaches the
// snapshot, so that the proxies can stop accepting it at that time (the
// snapshot stays in force past it); a secret expired already is loaded
// with its expiry, so that a request signed with it is audited as
// secret_expired (it used to be left out, and such a request was audited as
// bad_signature, which docs/security.md does not say); replacing a secret
// clears its expiry.
func TestSnapshotCarriesSecretExpiry(t *testing.T) {
	s, p, _ := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"alice", "bob", "carol"} {
		if err := s.CreateUser(ctx, actor, domain.User{Name: name}, testSecret); err != nil {
			t.Fatal(err)
		}
	}
	expires := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	if _, err := p.Exec(ctx, `UPDATE rmqproxy.user_secrets SET expires_at = $1 WHERE username = 'alice'`, expires); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, `UPDATE rmqproxy.user_secrets SET expires_at = now() - interval '1 second' WHERE username = 'bob'`); err != nil {
		t.Fatal(err)
	}
	snap, err := s.LoadSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]domain.UserRecord{}
	for _, u := range snap.Users {
		users[u.Name] = u
	}
	if a := users["alice"]; len(a.Secrets) != 1 || len(a.SecretExpiry) != 1 || !a.SecretExpiry[0].Equal(expires) ||
		a.SecretExpired(0, expires.Add(-time.Microsecond)) || !a.SecretExpired(0, expires) {
		t.Errorf("alice: %d secrets, expiry %v, want %v", len(a.Secrets), a.SecretExpiry, expires)
	}
	if b := users["bob"]; len(b.Secrets) != 1 || !b.SecretExpired(0, time.Now()) {
		t.Errorf("bob's expired secret: %d secrets, expiry %v, want one, expired", len(b.Secrets), b.SecretExpiry)
	}
	if c := users["carol"]; len(c.Secrets) != 1 || c.SecretExpired(0, time.Now().Add(1000*time.Hour)) {
		t.Errorf("carol: %+v", c.SecretExpiry)
	}
	if _, err := s.UpdateUser(ctx, actor, "alice", ports.UserUpdate{Secret: domain.Secret("a-new-secret-for-alice-01234")}); err != nil {
		t.Fatal(err)
	}
	if snap, err = s.LoadSnapshot(ctx); err != nil || snap.Users[0].Name != "alice" || snap.Users[0].SecretExpired(0, time.Now().Add(1000*time.Hour)) {
		t.Errorf("a replaced secret kept its expiry: %+v %v", snap.Users[0].SecretExpiry, err)
	}
}

// TestACLDeleteSaysWhatItDeleted: each entry acl delete removes, and each
// entry of a deleted user, is audited as an acl.delete event naming its
// resource and actions, with its decision and source addresses in the
// details, as acl.put records what it replaced. The log had one event per
// command with the command's --resource (none when it deleted every entry
// of the subject) and a count: an auditor could not tell which grants or
// denials went, a Deny among them.
func TestACLDeleteSaysWhatItDeleted(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	for _, name := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx, actor, domain.User{Name: name}, testSecret); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutEntries(ctx, actor, []domain.ACLEntry{
		mustEntry(t, "User:alice", "Topic:orders-*", "Pub,Sub", "Allow"),
		mustEntry(t, "User:alice", "Topic:orders-secret", "All", "Deny", "10.0.0.0/8"),
		mustEntry(t, "User:bob", "Group:g", "Sub", "Allow"),
	}, ports.PutUpsert); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteEntries(ctx, actor, ports.EntryFilter{Subject: "User:alice"}); err != nil || n != 2 {
		t.Fatalf("delete alice's entries: %d, %v", n, err)
	}
	if err := s.DeleteUser(ctx, actor, "bob"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range adminEvents(t, s, "acl.delete") {
		var d struct {
			Subject   string   `json:"subject"`
			Decision  string   `json:"decision"`
			SourceIPs []string `json:"source_ips"`
		}
		if err := json.Unmarshal([]byte(e.Details), &d); err != nil {
			t.Fatalf("details %q: %v", e.Details, err)
		}
		got[e.Resource] = fmt.Sprintf("%s %s %s %v", d.Subject, e.Actions, d.Decision, d.SourceIPs)
	}
	want := map[string]string{
		"Topic:orders-*":      "User:alice Pub,Sub Allow []",
		"Topic:orders-secret": "User:alice All Deny [10.0.0.0/8]",
		"Group:g":             "User:bob Sub Allow []",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("acl.delete events (resource: subject actions decision source addresses):\n got %v\nwant %v", got, want)
	}
}
