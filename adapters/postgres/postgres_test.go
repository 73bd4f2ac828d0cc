package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/migrations"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

func newKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func keyring(t *testing.T, spec, active string) *postgres.Keyring {
	t.Helper()
	k, err := postgres.ParseKeyring(spec, active)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

var actor = ports.Actor{Principal: "cli:tester", Protocol: "cli", SourceIP: netip.MustParseAddr("127.0.0.1")}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestMigrateUpDownVersion is "must be shown" 1: migrations up and down on
// a fresh database, and the version they leave.
func TestMigrateUpDownVersion(t *testing.T) {
	dsn := pgenv.NewDatabase(t, pgenv.ServerDSN(t))
	ctx := t.Context()
	st, err := postgres.Migrate(ctx, dsn, postgres.MigrateVersion, 0)
	if err != nil || st.Version != 0 {
		t.Fatalf("version of an empty database: %+v, %v", st, err)
	}
	st, err = postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0)
	if err != nil || st.Version != migrations.Latest() || st.Dirty {
		t.Fatalf("up: %+v, %v", st, err)
	}
	if st, err = postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil || st.Version != migrations.Latest() {
		t.Fatalf("up again (no change): %+v, %v", st, err)
	}
	p := pool(t, dsn)
	if _, err := postgres.CheckSchema(ctx, p); err != nil {
		t.Fatalf("check after up: %v", err)
	}
	if st, err = postgres.Migrate(ctx, dsn, postgres.MigrateDown, 0); err != nil || st.Version != 0 {
		t.Fatalf("down: %+v, %v", st, err)
	}
	var tables int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'rmqproxy' AND table_name <> 'schema_migrations'`).Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("tables left after down: %d, %v", tables, err)
	}
	if _, err := postgres.CheckSchema(ctx, p); err == nil || !strings.Contains(err.Error(), "migrate up") {
		t.Fatalf("check after down: %v", err)
	}
	if st, err = postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil || st.Version != migrations.Latest() {
		t.Fatalf("up after down: %+v, %v", st, err)
	}
	if _, err = postgres.Migrate(ctx, dsn, postgres.MigrateDown, int(migrations.Latest())+1); err == nil {
		t.Fatal("down more steps than migrations applied succeeded")
	}
	if st, err := postgres.Migrate(ctx, dsn, postgres.MigrateVersion, 0); err != nil || st.Version != migrations.Latest() {
		t.Fatalf("a refused down changed the schema: %+v %v", st, err)
	}
}

// TestRefusesNewerSchema: a proxy must not run on a schema from a newer
// release.
func TestRefusesNewerSchema(t *testing.T) {
	dsn := pgenv.Database(t)
	p := pool(t, dsn)
	if _, err := p.Exec(t.Context(), `UPDATE rmqproxy.schema_migrations SET version = 999`); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.CheckSchema(t.Context(), p)
	if err == nil || !strings.Contains(err.Error(), "schema version 999 is newer than this rmqproxy knows") {
		t.Fatalf("got %v", err)
	}
	if _, err := postgres.Migrate(t.Context(), dsn, postgres.MigrateUp, 0); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("migrate up over a newer schema: %v", err)
	}
	if _, err := p.Exec(t.Context(), `UPDATE rmqproxy.schema_migrations SET version = $1, dirty = true`, migrations.Latest()); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.CheckSchema(t.Context(), p); err == nil || !strings.Contains(err.Error(), "dirty") {
		t.Fatalf("dirty: %v", err)
	}
}

// TestMigrateEntriesReferenceUsers: migration 2 deletes (and audits)
// entries whose user is gone, which version 1 could leave behind, and from
// then on the database itself refuses such entries and deletes a user's
// entries with it.
func TestMigrateEntriesReferenceUsers(t *testing.T) {
	dsn := pgenv.Database(t)
	ctx := t.Context()
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateDown, int(migrations.Latest())-1); err != nil {
		t.Fatalf("down to version 1: %v", err)
	}
	p := pool(t, dsn)
	s := postgres.NewStore(p, keyring(t, "k1:"+newKey(), ""), "test-proxy")
	// The store writes the latest schema; at version 1 the user is made
	// with SQL.
	if _, err := p.Exec(ctx, `INSERT INTO rmqproxy.users (username, user_type, status, created_by, updated_by)
  VALUES ('alice', 'Normal', 'enable', 'x', 'x')`); err != nil {
		t.Fatal(err)
	}
	const insert = `INSERT INTO rmqproxy.acl_entries (subject, policy_type, resource_type, resource_pattern, resource_name,
  actions, decision, created_by, updated_by) VALUES ($1, 'Custom', 'Topic', 'PREFIXED', 'pay', '{Pub,Sub}', 'Allow', 'x', 'x')`
	for _, subject := range []string{"User:alice", "User:gone"} {
		if _, err := p.Exec(ctx, insert, subject); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatalf("up: %v", err)
	}
	var subjects []string
	if err := p.QueryRow(ctx, `SELECT array_agg(subject ORDER BY subject) FROM rmqproxy.acl_entries`).Scan(&subjects); err != nil {
		t.Fatal(err)
	}
	if strings.Join(subjects, " ") != "User:alice" {
		t.Fatalf("entries after migrating: %v", subjects)
	}
	evs, err := s.QueryAudit(ctx, domain.AuditQuery{Category: domain.AuditSystem})
	if err != nil || len(evs) != 1 || evs[0].Operation != "acl.delete" || evs[0].Resource != "Topic:pay*" || evs[0].Reason != "orphan_entry" ||
		!strings.Contains(evs[0].Details, `"subject": "User:gone"`) {
		t.Fatalf("audit of the deleted orphan: %+v %v", evs, err)
	}
	if _, err := p.Exec(ctx, insert, "User:gone"); err == nil || !strings.Contains(err.Error(), "acl_entries_user_fk") {
		t.Fatalf("an entry of an unknown user: %v", err)
	}
	if _, err := p.Exec(ctx, `DELETE FROM rmqproxy.users WHERE username = 'alice'`); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM rmqproxy.acl_entries`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("entries left after their user: %d %v", left, err)
	}
}

func TestKeyring(t *testing.T) {
	k1, k2 := newKey(), newKey()
	old := keyring(t, "k1:"+k1, "")
	id, nonce, ct, err := old.Seal("alice", 1, []byte("s3cret-value-0123"))
	if err != nil || id != "k1" {
		t.Fatal(id, err)
	}
	rotated := keyring(t, "k1:"+k1+", k2:"+k2, "k2")
	if got, err := rotated.Open("alice", 1, id, nonce, ct); err != nil || string(got) != "s3cret-value-0123" {
		t.Fatalf("open with the rotated ring: %q %v", got, err)
	}
	if _, err := rotated.Open("bob", 1, id, nonce, ct); err == nil {
		t.Fatal("a ciphertext moved to another user decrypted")
	}
	if _, err := rotated.Open("alice", 2, id, nonce, ct); err == nil {
		t.Fatal("a ciphertext moved to another slot decrypted")
	}
	if _, err := keyring(t, "k2:"+k2, "").Open("alice", 1, id, nonce, ct); err == nil || !strings.Contains(err.Error(), "does not list") {
		t.Fatalf("unknown key: %v", err)
	}
	if id, _, _, _ := rotated.Seal("alice", 1, []byte("x")); id != "k2" {
		t.Fatalf("new secrets use %s", id)
	}
	for _, bad := range [][2]string{{"", ""}, {"k1", ""}, {"k1:short", ""}, {"k1:" + k1 + ",k2:" + k2, ""}, {"k1:" + k1, "k9"}, {"k 1:" + k1, ""}, {"k1:" + k1 + ",k1:" + k2, "k1"}} {
		if _, err := postgres.ParseKeyring(bad[0], bad[1]); err == nil {
			t.Errorf("ParseKeyring(%q, %q) accepted", bad[0], bad[1])
		} else if strings.Contains(err.Error(), k1) {
			t.Errorf("error quotes the key: %v", err)
		}
	}
}

func newStore(t *testing.T) (*postgres.Store, *pgxpool.Pool, string) {
	dsn := pgenv.Database(t)
	p := pool(t, dsn)
	return postgres.NewStore(p, keyring(t, "k1:"+newKey(), ""), "test-proxy"), p, dsn
}

func mustEntry(t *testing.T, subject, res, acts, decision string, ips ...string) domain.ACLEntry {
	t.Helper()
	e, err := domain.ParseACLEntry(subject, res, acts, decision, ips...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestStoreUsersEntriesSnapshot(t *testing.T) {
	s, p, _ := newStore(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, actor, domain.User{Name: "admin", Type: domain.UserSuper}, domain.Secret("admin-secret-0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, actor, domain.User{Name: "alice", Description: "orders team ünïcode ✓"}, domain.Secret("alice-secret-0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, actor, domain.User{Name: "alice"}, domain.Secret("another-secret-0123456789")); !domain.HasReason(err, domain.ReasonAlreadyExists) {
		t.Fatalf("duplicate user: %v", err)
	}
	var stored []byte
	if err := p.QueryRow(ctx, `SELECT ciphertext FROM rmqproxy.user_secrets WHERE username = 'alice'`).Scan(&stored); err != nil || strings.Contains(string(stored), "alice-secret") {
		t.Fatalf("secret stored in clear or missing: %v", err)
	}
	entries := []domain.ACLEntry{
		mustEntry(t, "User:alice", "Topic:orders-*", "Pub,Sub", "Allow", "10.0.0.0/8", "::1"),
		mustEntry(t, "User:alice", "Topic:orders-secret", "All", "Deny"),
	}
	if err := s.PutEntries(ctx, actor, entries, ports.PutUpsert); err != nil {
		t.Fatal(err)
	}
	// Upsert by (subject, policy type, resource).
	entries[0].Actions = domain.ActionPub
	if err := s.PutEntries(ctx, actor, entries[:1], ports.PutUpsert); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEntries(ctx, actor, []domain.ACLEntry{mustEntry(t, "User:nobody", "Topic:x", "Pub", "Allow")}, ports.PutUpsert); !domain.HasReason(err, domain.ReasonNotFound) {
		t.Fatalf("entry for an unknown user: %v", err)
	}
	snap, err := s.LoadSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != 2 || len(snap.Entries) != 2 || snap.Revision < 2 {
		t.Fatalf("snapshot: %d users, %d entries, revision %d", len(snap.Users), len(snap.Entries), snap.Revision)
	}
	alice := snap.Users[1]
	if alice.Name != "alice" || len(alice.Secrets) != 1 || string(alice.Secrets[0]) != "alice-secret-0123456789" || alice.Description != "orders team ünïcode ✓" {
		t.Fatalf("alice: %+v (secret %q)", alice.User, alice.Secrets)
	}
	got := snap.Entries[0]
	if got.Actions != domain.ActionPub || got.Resource.Key() != "Topic:orders-*" || len(got.SourceIPs) != 2 || got.SourceIPs[1].String() != "::1/128" {
		t.Fatalf("entry: %+v", got)
	}
	// The last enabled super user stays.
	disable := domain.UserDisabled
	if _, err := s.UpdateUser(ctx, actor, "admin", ports.UserUpdate{Status: &disable}); !domain.HasReason(err, domain.ReasonBadRequest) {
		t.Fatalf("disable the last super user: %v", err)
	}
	if err := s.DeleteUser(ctx, actor, "admin"); !domain.HasReason(err, domain.ReasonBadRequest) {
		t.Fatalf("delete the last super user: %v", err)
	}
	if _, err := s.UpdateUser(ctx, actor, "alice", ports.UserUpdate{Status: &disable, Secret: domain.Secret("rotated-secret-0123456789")}); err != nil {
		t.Fatal(err)
	}
	if u, err := s.GetUser(ctx, "alice"); err != nil || u.Status != domain.UserDisabled {
		t.Fatalf("get: %+v %v", u, err)
	}
	if err := s.DeleteUser(ctx, actor, "alice"); err != nil {
		t.Fatal(err)
	}
	if es, err := s.ListEntries(ctx, ports.EntryFilter{Subject: "User:alice"}); err != nil || len(es) != 0 {
		t.Fatalf("entries of a deleted user: %v %v", es, err)
	}
	evs, err := s.QueryAudit(ctx, domain.AuditQuery{Principal: "cli:tester", Category: domain.AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	ops := []string{}
	for _, e := range evs {
		ops = append(ops, e.Operation)
		if strings.Contains(e.Details, "secret-0123") {
			t.Fatalf("a secret reached the audit log: %+v", e)
		}
	}
	if want := "user.delete acl.delete acl.delete user.update acl.put acl.put acl.put user.create user.create"; strings.Join(ops, " ") != want {
		t.Fatalf("admin audit events, newest first: %v, want %s", ops, want)
	}
}

// TestHostileInput is "must be shown" 5 for the store: SQL metacharacters,
// huge values and unicode are refused by validation or stored literally,
// and the schema is unchanged.
func TestHostileInput(t *testing.T) {
	s, p, _ := newStore(t)
	ctx := t.Context()
	if err := s.CreateUser(ctx, actor, domain.User{Name: "u1", Description: "'; DROP TABLE rmqproxy.users; --"}, domain.Secret("x'); DELETE FROM users;--0123")); err != nil {
		t.Fatal(err)
	}
	hostile := []string{"'; DROP TABLE rmqproxy.acl_entries; --", "a%_\\", "名前-ü", "a\"b", "$1", strings.Repeat("é", 500)}
	for _, name := range hostile {
		e := mustEntry(t, "User:u1", "Topic:"+name, "Pub", "Allow")
		if err := s.PutEntries(ctx, actor, []domain.ACLEntry{e}, ports.PutUpsert); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
	}
	// Bypassing validation, the database's own checks still refuse.
	for _, bad := range []domain.ACLEntry{
		{Subject: "User:u1", Resource: domain.Resource{Type: domain.ResourceTopic, Name: "a*b"}, Actions: domain.ActionPub},
		{Subject: "User:u1", Resource: domain.Resource{Type: domain.ResourceTopic, Name: strings.Repeat("x", 2000)}, Actions: domain.ActionPub},
		{Subject: "User:u1", Resource: domain.Resource{Type: domain.ResourceTopic, Name: "nul\x00"}, Actions: domain.ActionPub},
	} {
		if err := s.PutEntries(ctx, actor, []domain.ACLEntry{bad}, ports.PutUpsert); err == nil {
			t.Errorf("stored %q", bad.Resource.Name)
		} else if domain.ReasonOf(err) == domain.ReasonInternal && !strings.Contains(err.Error(), "invalid byte sequence") {
			t.Errorf("%q: %v is not a client error", bad.Resource.Name[:min(10, len(bad.Resource.Name))], err)
		}
	}
	if err := s.CreateUser(ctx, actor, domain.User{Name: "x'; DROP TABLE rmqproxy.users;--"}, domain.Secret("0123456789abcdef")); !domain.HasReason(err, domain.ReasonBadRequest) {
		t.Fatalf("hostile user name: %v", err)
	}
	users, err := s.ListUsers(ctx, "%")
	if err != nil || len(users) != 0 {
		t.Fatalf("filter %% is literal: %v %v", users, err)
	}
	es, err := s.ListEntries(ctx, ports.EntryFilter{Subject: "User:u1"})
	if err != nil || len(es) != len(hostile) {
		t.Fatalf("entries: %d %v", len(es), err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Resource.Name] = true
	}
	for _, name := range hostile {
		if !seen[name] {
			t.Errorf("%q not stored literally", name)
		}
	}
	var tables int
	if err := p.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'rmqproxy'`).Scan(&tables); err != nil || tables != 6 {
		t.Fatalf("tables: %d %v", tables, err)
	}
}

func TestAuditAppendOnly(t *testing.T) {
	s, p, _ := newStore(t)
	ctx := t.Context()
	if err := s.RecordAdmin(ctx, domain.AuditEvent{Category: domain.AuditAdmin, Principal: "x", Decision: domain.AuditDeny, Reason: "forbidden"}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{`UPDATE rmqproxy.audit_events SET principal = 'y'`, `DELETE FROM rmqproxy.audit_events`, `TRUNCATE rmqproxy.audit_events`} {
		_, err := p.Exec(ctx, stmt)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v", stmt, err)
		}
	}
	evs, err := s.QueryAudit(ctx, domain.AuditQuery{Principal: "x"})
	if err != nil || len(evs) != 1 || evs[0].Reason != "forbidden" {
		t.Fatalf("%v %v", evs, err)
	}
}

type applied struct {
	mu   sync.Mutex
	revs []int64
	last domain.PolicySnapshot
}

func (a *applied) apply(s domain.PolicySnapshot) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revs = append(a.revs, s.Revision)
	a.last = s
	return nil
}

func (a *applied) entries() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.last.Entries)
}

// TestSourceFollowsChanges: a change committed by one store reaches two
// watching sources through NOTIFY, well before the backstop reload.
func TestSourceFollowsChanges(t *testing.T) {
	s, _, dsn := newStore(t)
	ctx := t.Context()
	cfg := postgres.DefaultConfig()
	cfg.ReloadInterval = time.Hour // only NOTIFY can deliver within the test
	var views [2]applied
	for i := range views {
		src := postgres.NewSource(s, dsn, cfg, discard())
		snap, err := src.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		views[i].apply(snap)
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); src.Watch(wctx, snap.Revision, views[i].apply) }()
		t.Cleanup(func() { cancel(); <-done })
		waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, src.Health)
	}
	if err := s.CreateUser(ctx, actor, domain.User{Name: "bob"}, domain.Secret("bob-secret-0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEntries(ctx, actor, []domain.ACLEntry{mustEntry(t, "User:bob", "Topic:t", "Pub", "Allow")}, ports.PutUpsert); err != nil {
		t.Fatal(err)
	}
	for i := range views {
		waitfor.Condition(t, 5*time.Second, 10*time.Millisecond, func() error {
			if views[i].entries() != 1 {
				return errors.New("entry not loaded")
			}
			return nil
		})
	}
}
