package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
)

// databaseCLI returns a runner of rmqproxy commands against a fresh
// database (and a new secret key) that fails the test unless the command
// exits with wantCode, and returns its stdout and stderr together.
func databaseCLI(t *testing.T) func(wantCode int, args ...string) string {
	dsn := pgenv.Database(t)
	var k [32]byte
	_, _ = rand.Read(k[:])
	pg := []string{"--postgres.dsn", dsn, "--postgres.secretKeys", "k1:" + base64.StdEncoding.EncodeToString(k[:])}
	return func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(append(args, pg...)...)
		if code != wantCode {
			t.Fatalf("rmqproxy %v: exit %d (want %d)\nstdout: %s\nstderr: %s", args, code, wantCode, out, errOut)
		}
		return out + errOut
	}
}

// TestSecurityCommands drives user, acl and audit against a fresh
// database, with hostile input (SQL metacharacters, huge values, unicode):
// each is refused with a usage or validation error, or stored literally.
func TestSecurityCommands(t *testing.T) {
	cli := databaseCLI(t)
	out := cli(0, "user", "create", "admin", "--type", "Super")
	if !strings.Contains(out, "secret (shown only now): ") {
		t.Fatalf("no generated secret: %s", out)
	}
	stdin = strings.NewReader("alice-secret-0123456789\n")
	t.Cleanup(func() { stdin = os.Stdin })
	cli(0, "user", "create", "alice", "--secret-stdin", "--description", "équipe commandes ✓; DROP TABLE users;--")
	if out := cli(0, "user", "get", "alice", "--json"); !strings.Contains(out, `"description": "équipe commandes ✓; DROP TABLE users;--"`) || strings.Contains(out, "alice-secret") {
		t.Fatalf("get: %s", out)
	}
	// Hostile names are refused before any SQL.
	for _, bad := range []string{"x'; DROP TABLE rmqproxy.users;--", "名前", strings.Repeat("a", 129), "a b", "%", ""} {
		out := cli(1, "user", "create", bad)
		if !strings.Contains(out, "user name") {
			t.Fatalf("user create %q: %s", bad, out)
		}
	}
	cli(1, "user", "create", "bob", "--description", strings.Repeat("d", 2000))
	stdin = strings.NewReader("short\n")
	cli(1, "user", "create", "bob", "--secret-stdin")
	// ACL entries: resource names with SQL and glob metacharacters are
	// stored literally.
	for _, res := range []string{"Topic:o'; DELETE FROM rmqproxy.acl_entries;--", "Topic:a%_b", "Topic:名前-*", "Group:g\\1"} {
		cli(0, "acl", "create", "User:alice", "--resource", res, "--actions", "Pub,Sub", "--source-ip", "10.0.0.0/8,::1")
	}
	cli(1, "acl", "create", "User:alice", "--resource", "Topic:a%_b", "--actions", "Pub") // exists
	cli(0, "acl", "update", "User:alice", "--resource", "Topic:a%_b", "--actions", "Pub", "--decision", "Deny")
	cli(1, "acl", "update", "User:alice", "--resource", "Topic:nope", "--actions", "Pub") // does not exist
	cli(1, "acl", "create", "User:alice", "--resource", "Topic:a*b", "--actions", "Pub")
	cli(1, "acl", "create", "User:alice", "--resource", "Topic:x", "--actions", "Any")
	cli(1, "acl", "create", "User:alice", "--resource", "Topic:x", "--actions", "Pub", "--source-ip", "10.1.*.*")
	cli(1, "acl", "create", "User:nobody", "--resource", "Topic:x", "--actions", "Pub")
	cli(2, "acl", "create", "User:alice", "--resource", "Topic:x")
	var acls []struct {
		Subject  string `json:"subject"`
		Policies []struct {
			Entries []struct {
				Resource  string   `json:"resource"`
				Decision  string   `json:"decision"`
				SourceIPs []string `json:"sourceIps"`
			} `json:"entries"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(cli(0, "acl", "get", "User:alice", "--json")), &acls); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range acls {
		for _, p := range a.Policies {
			for _, e := range p.Entries {
				got[e.Resource] = e.Decision + " " + strings.Join(e.SourceIPs, ",")
			}
		}
	}
	for res, want := range map[string]string{
		"Topic:o'; DELETE FROM rmqproxy.acl_entries;--": "Allow 10.0.0.0/8,::1/128",
		"Topic:a%_b": "Deny ", // update replaces the whole entry
		"Topic:名前-*": "Allow 10.0.0.0/8,::1/128",
		"Group:g\\1": "Allow 10.0.0.0/8,::1/128",
	} {
		if got[res] != want {
			t.Errorf("%s: %q, want %q (all: %v)", res, got[res], want, got)
		}
	}
	// Import: a plain_acl.yml.
	plain := filepath.Join(t.TempDir(), "plain_acl.yml")
	if err := os.WriteFile(plain, []byte("accounts:\n  - accessKey: legacy\n    secretKey: 12345678\n    whiteRemoteAddress: 192.168.1.*\n    topicPerms: [topicA=PUB|SUB, topicB=DENY]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cli(0, "acl", "import", plain, "--format", "plain", "--dry-run"); !strings.Contains(out, "would import 1 users (create 1, update 0) and 2 ACL entries") {
		t.Fatalf("dry run: %s", out)
	}
	if out := cli(0, "user", "list", "--json"); strings.Contains(out, "legacy") {
		t.Fatal("dry run imported")
	}
	if out := cli(0, "acl", "import", plain, "--format", "plain"); !strings.Contains(out, "secretKey has 8 characters") {
		t.Fatalf("import: %s", out)
	}
	if out := cli(0, "acl", "get", "User:legacy"); !strings.Contains(out, "192.168.1.0/24") || !strings.Contains(out, "Topic:topicB") {
		t.Fatalf("imported entries: %s", out)
	}
	cli(1, "user", "update", "admin", "--status", "disable") // the last Super user
	cli(0, "acl", "delete", "User:alice", "--resource", "Topic:a%_b")
	cli(0, "user", "delete", "alice")
	// Every change is in the audit log.
	out = cli(0, "audit", "query", "--category", "admin", "--since", "1h", "--json")
	for _, op := range []string{"user.create", "acl.put", "import", "acl.delete", "user.delete"} {
		if !strings.Contains(out, `"operation": "`+op+`"`) {
			t.Errorf("no %s in the audit log", op)
		}
	}
	if strings.Contains(out, "alice-secret") || strings.Contains(out, "12345678") {
		t.Fatal("a secret reached the audit log")
	}
	cli(2, "audit", "query", "--since", "yesterday")
	// An auditor finds the events naming one resource or operation.
	out = cli(0, "audit", "query", "--resource", "user:alice", "--operation", "user.delete", "--json")
	if !strings.Contains(out, `"operation": "user.delete"`) || strings.Contains(out, `"operation": "user.create"`) || strings.Contains(out, `"operation": "acl.put"`) {
		t.Errorf("audit query --resource User:alice --operation user.delete: %s", out)
	}
	if out := cli(0, "audit", "query", "--source", "192.0.2.0/24", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("audit query --source of an address nothing came from: %s", out)
	}
	cli(2, "audit", "query", "--source", "somewhere")
}

// TestSecurityCommandsWithAPolicyFile: with auth.source file and no
// database, the user, acl and audit commands say where that proxy keeps
// its users, entries and audit events, instead of only asking for a
// PostgreSQL connection string it does not use.
func TestSecurityCommandsWithAPolicyFile(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	cfg := filepath.Join(dir, "rmqproxy.yaml")
	if err := os.WriteFile(cfg, []byte("auth:\n  enabled: true\n  source: file\n  file: "+policy+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"user", "list"},
		{"acl", "list"},
		{"acl", "create", "User:a", "--resource", "Topic:t", "--actions", "Pub"},
		{"audit", "query"},
	} {
		code, _, errOut := runCLI(append(args, "--config", cfg)...)
		if code != 1 {
			t.Fatalf("rmqproxy %v: exit %d, want 1: %s", args, code, errOut)
		}
		for _, want := range []string{"auth.source file", "auth.file (" + policy + ")", "edit that file", "component=audit", "--postgres.dsn"} {
			if !strings.Contains(errOut, want) {
				t.Errorf("rmqproxy %v: %q lacks %q", args, errOut, want)
			}
		}
	}
	// Without the policy file setting, the advice stays the database's.
	if code, _, errOut := runCLI("user", "list"); code != 1 || strings.Contains(errOut, "auth.source file") || !strings.Contains(errOut, "no PostgreSQL: set --postgres.dsn") {
		t.Errorf("user list without configuration: exit %d: %s", code, errOut)
	}
}

// TestSecurityCommandsIgnoreServerOnlySettings: migrate, user, acl and
// audit read the PostgreSQL settings of a configuration they may share
// with the proxy, and the proxy's other requirements are not theirs: a
// file with HTTPS on the admin API without its certificate files, client
// certificates on the gRPC port without their CA, authentication in
// PostgreSQL without the encryption keys (which audit and the reading
// commands do not use) and a pool smaller than the proxy's minimum works
// for them.
func TestSecurityCommandsIgnoreServerOnlySettings(t *testing.T) {
	dsn := pgenv.Database(t)
	file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	yaml := "admin:\n  tls:\n    enabled: true\n" +
		"grpc:\n  tls:\n    clientAuth: require\n" +
		"auth:\n  enabled: true\n" +
		"postgres:\n  maxConns: 1\n" +
		"local:\n  dataDir: \" \"\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"RMQPROXY_CONFIG=" + file, "RMQPROXY_POSTGRES_DSN=" + dsn}
	for _, args := range [][]string{
		{"migrate", "version"},
		{"user", "list"},
		{"acl", "list"},
		{"audit", "query"},
	} {
		var o, e strings.Builder
		if code := run(args, config.Sources{Env: env}, &o, &e); code != 0 {
			t.Errorf("rmqproxy %v with a server's configuration: exit %d, stdout %q, stderr %q", args, code, o.String(), e.String())
		}
	}
	// audit never reads the encryption keys: a placeholder left there by
	// config print is no error for it.
	var o, e strings.Builder
	if code := run([]string{"audit", "query"}, config.Sources{Env: append(env, "RMQPROXY_POSTGRES_SECRET_KEYS=REDACTED")}, &o, &e); code != 0 {
		t.Errorf("audit query with postgres.secretKeys REDACTED: exit %d, stderr %q", code, e.String())
	}
}

// TestSecurityCommandsCheckWhatTheyUse: what migrate, user, acl and audit
// do read is still checked before they connect, each error naming its key.
func TestSecurityCommandsCheckWhatTheyUse(t *testing.T) {
	const remote = "postgres://u:hunter2@db.example:5432/rmq?sslmode=require"
	for _, tt := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"migrate", "version"}, []string{"RMQPROXY_POSTGRES_DSN=postgres://u:hunter2@127.0.0.1:1/x?connect_timeout=abc"}, "postgres.dsn is not a PostgreSQL connection string"},
		{[]string{"migrate", "version"}, []string{"RMQPROXY_PROFILE=production", "RMQPROXY_POSTGRES_DSN=" + remote}, "postgres.dsn must verify the server's certificate"},
		{[]string{"audit", "query"}, []string{"RMQPROXY_PROFILE=prod", "RMQPROXY_POSTGRES_DSN=" + remote}, `environment RMQPROXY_PROFILE: profile: invalid value "prod": must be development or production`},
		{[]string{"user", "list"}, []string{"RMQPROXY_POSTGRES_DSN=" + remote, "RMQPROXY_POSTGRES_SECRET_KEYS=k1:short"}, "postgres.secretKeys: key \"k1\""},
		{[]string{"acl", "list"}, []string{"RMQPROXY_POSTGRES_DSN=" + remote, "RMQPROXY_POSTGRES_SECRET_KEYS=REDACTED"}, "postgres.secretKeys"},
	} {
		var o, e strings.Builder
		code := run(tt.args, config.Sources{Env: tt.env}, &o, &e)
		if code != 1 || !strings.Contains(e.String(), "invalid configuration") || !strings.Contains(e.String(), tt.want) || strings.Contains(e.String(), "hunter2") {
			t.Errorf("rmqproxy %v with %q: exit %d, stderr %q; want exit 1 and %q", tt.args, tt.env, code, e.String(), tt.want)
		}
	}
}

// TestACLImportDryRun: acl import --dry-run compares the file with what
// PostgreSQL holds. A user that does not exist yet is shown as created,
// with the defaults a new user gets for what the file leaves out (it
// showed "(kept)", as for an existing user); an existing user as updated,
// with the stored values it keeps; a new user without a secret fails the
// dry run as it would fail the import. Nothing is written.
func TestACLImportDryRun(t *testing.T) {
	run := databaseCLI(t)
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		return strings.Join(strings.Fields(run(wantCode, args...)), " ") // columns as single spaces
	}
	cli(0, "user", "create", "ops", "--type", "Super", "--description", "operators")
	dir := t.TempDir()
	file := filepath.Join(dir, "acl.yaml")
	if err := os.WriteFile(file, []byte(`users:
  - username: ops
    userType: Super
  - username: fresh
    password: fresh-secret-0123456789
    userStatus: enable
  - username: plain
    password: plain-secret-0123456789
acls:
  - subject: User:fresh
    policies:
      - policyType: Custom
        entries:
          - {resource: "Topic:orders", actions: [Pub], decision: Allow}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out := cli(0, "acl", "import", file, "--dry-run")
	for _, want := range []string{
		"would import 3 users (create 2, update 1) and 1 ACL entries:",
		"ACTION NAME TYPE STATUS SECRET DESCRIPTION",
		"update ops Super enable (kept) (kept) operators (kept)",
		"create fresh Normal (default) enable (set)",
		"create plain Normal (default) enable (default) (set)",
		"User:fresh Custom Topic:orders Pub any Allow",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "fresh (kept)") || strings.Contains(out, "plain (kept)") {
		t.Errorf("a new user shown as kept:\n%s", out)
	}
	if out := cli(0, "user", "list"); strings.Contains(out, "fresh") || strings.Contains(out, "plain") {
		t.Fatalf("the dry run imported: %s", out)
	}
	// A new user without a secret: the import would be refused.
	ghost := filepath.Join(dir, "ghost.yaml")
	if err := os.WriteFile(ghost, []byte("users:\n  - username: ghost\n    userType: Super\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = cli(1, "acl", "import", ghost, "--dry-run")
	for _, want := range []string{"create ghost Super enable (default) (none)", `the import would be refused: new users need a secret (password) in the file, and "ghost" have none`} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run of a user without a secret lacks %q:\n%s", want, out)
		}
	}
	cli(1, "acl", "import", ghost) // as the import is
}

// TestACLSubjectAndResourceAsTyped: the acl commands accept the subject's
// and a resource's type in any case (User:, user:, USER:; Topic:,
// topic:), as the policy file and imports do. They used to pass them on
// as typed: acl create user:NAME failed with PostgreSQL's "violates check
// constraint acl_entries_subject_check", acl get and acl delete of
// user:NAME found none of its entries ("no ACL entry of user:NAME
// matches"), and an acl delete with --resource topic:T was audited with
// the resource as typed, not as every other event names it (Topic:T).
func TestACLSubjectAndResourceAsTyped(t *testing.T) {
	cli := databaseCLI(t)
	cli(0, "user", "create", "admin", "--type", "Super")
	cli(0, "user", "create", "alice")
	cli(0, "acl", "create", "user:alice", "--resource", "topic:orders", "--actions", "Pub")
	cli(0, "acl", "create", "User:alice", "--resource", "Group:g", "--actions", "Sub")
	if out := cli(0, "acl", "get", "USER:alice"); !strings.Contains(out, "Topic:orders") || !strings.Contains(out, "Group:g") {
		t.Fatalf("acl get USER:alice: %s", out)
	}
	if out := cli(0, "acl", "delete", "user:alice", "--resource", "topic:orders"); !strings.Contains(out, "deleted 1 ACL entries of User:alice") {
		t.Fatalf("acl delete user:alice: %s", out)
	}
	var events []struct {
		Operation string `json:"operation"`
		Resource  string `json:"resource"`
		Details   struct {
			Subject string `json:"subject"`
		} `json:"details"`
	}
	if err := json.Unmarshal([]byte(cli(0, "audit", "query", "--category", "admin", "--since", "1h", "--json")), &events); err != nil {
		t.Fatal(err)
	}
	var deletes int
	for _, e := range events {
		if e.Operation == "acl.delete" {
			deletes++
			if e.Resource != "Topic:orders" || e.Details.Subject != "User:alice" {
				t.Errorf("acl.delete audited with resource %q and subject %q, want Topic:orders and User:alice", e.Resource, e.Details.Subject)
			}
		}
	}
	if deletes != 1 {
		t.Errorf("%d acl.delete events, want 1", deletes)
	}
}
