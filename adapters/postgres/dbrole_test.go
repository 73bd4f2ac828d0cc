package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestAdminChangesNameTheDatabaseRole: two administrators, each with their
// own PostgreSQL login role (as docs/security.md's grants recommend), run
// the CLI on the same host as the same OS user: both changes were audited
// as principal "cli:root" with no source address, so an auditor could not
// tell who made which. Each admin event now names the database role that
// made the change (details dbUser, PostgreSQL's session_user, which the
// database authenticated) and the address PostgreSQL saw it come from.
func TestAdminChangesNameTheDatabaseRole(t *testing.T) {
	_, owner, dsn := newStore(t)
	ctx := t.Context()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	keys := keyring(t, "k1:"+newKey(), "")
	admin := ports.Actor{Principal: "cli:root", Protocol: "cli"} // what the CLI claims: its OS user
	stores := map[string]*postgres.Store{}
	for _, name := range []string{"alice", "bob"} {
		role := "rmqproxy_test_" + name + "_" + hex.EncodeToString(suffix[:])
		for _, stmt := range []string{
			`CREATE ROLE ` + role + ` LOGIN PASSWORD 'pw-` + role + `'`,
			`GRANT USAGE ON SCHEMA rmqproxy TO ` + role,
			`GRANT SELECT ON ALL TABLES IN SCHEMA rmqproxy TO ` + role,
			`GRANT INSERT, UPDATE, DELETE ON rmqproxy.users, rmqproxy.user_secrets, rmqproxy.acl_entries TO ` + role,
			`GRANT UPDATE ON rmqproxy.policy_revision TO ` + role,
			`GRANT INSERT ON rmqproxy.audit_events TO ` + role,
			`GRANT USAGE ON ALL SEQUENCES IN SCHEMA rmqproxy TO ` + role,
		} {
			if _, err := owner.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		t.Cleanup(func() {
			for _, stmt := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
				if _, err := owner.Exec(context.Background(), stmt); err != nil {
					t.Errorf("%s: %v", stmt, err)
				}
			}
		})
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(role, "pw-"+role)
		stores[role] = postgres.NewStore(pool(t, u.String()), keys, "cli")
		if err := stores[role].CreateUser(ctx, admin, domain.User{Name: "made-by-" + name}, domain.Secret("a-secret-0123456789-0123456789")); err != nil {
			t.Fatalf("create as %s: %v", role, err)
		}
	}
	evs, err := stores[firstKey(stores)].QueryAudit(ctx, domain.AuditQuery{Category: domain.AuditAdmin})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, e := range evs {
		var d struct {
			DBUser string `json:"dbUser"`
		}
		_ = json.Unmarshal([]byte(e.Details), &d)
		if e.Principal != "cli:root" {
			t.Errorf("principal %q, want the CLI's claim cli:root", e.Principal)
		}
		if !e.SourceIP.IsValid() || !e.SourceIP.IsLoopback() {
			t.Errorf("%s by %q: source address %v, want the loopback address PostgreSQL saw", e.Operation, d.DBUser, e.SourceIP)
		}
		seen[d.DBUser] = e.Resource
	}
	for role := range stores {
		if _, ok := seen[role]; !ok {
			t.Errorf("no admin event names database role %s: events by role %v (%d events)", role, seen, len(evs))
		}
	}
}

func firstKey[V any](m map[string]V) string {
	for k := range m {
		return k
	}
	return ""
}
