package postgres_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/casbin"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
)

// TestAuditFloodKeepsOtherTenantsEvents: one tenant with valid
// credentials floods the proxy with refused requests (the same one again
// and again, and one per made-up topic) while the audit buffer cannot
// drain (the writer has not started: PostgreSQL slower than the flood);
// another tenant's denial and a brute force of that tenant's AccessKey
// from another address are recorded all the same, with their details, and
// the flood is recorded as counted events that add up to every refusal.
// Each refusal used to be an event of its own: the flood filled the
// buffer, and the other tenant's denial and the authentication failures
// were dropped (counted only in audit.dropped).
func TestAuditFloodKeepsOtherTenantsEvents(t *testing.T) {
	s, db, dsn := newStore(t)
	ctx := t.Context()
	for _, u := range []string{"tenant-a", "tenant-b"} {
		if err := s.CreateUser(ctx, actor, domain.User{Name: u}, testSecret); err != nil {
			t.Fatal(err)
		}
	}
	cfg := postgres.DefaultConfig()
	cfg.Audit.BufferSize = 256
	writer := postgres.NewAuditWriter(db, postgres.ProxyID(), cfg.Audit, discard())
	coalescer := application.NewAuditCoalescer(writer, ports.SystemClock{}, application.DefaultAuditCoalesceConfig(), discard())
	secCfg := application.DefaultSecurityConfig()
	secCfg.Enabled = true
	sec, err := application.NewSecurity(application.SecurityParams{Config: secCfg, Source: postgres.NewSource(s, dsn, cfg, discard()),
		Compiler: casbin.NewCompiler(domain.DenyOverrides, 1000), Audit: coalescer, Log: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Load(ctx); err != nil {
		t.Fatal(err)
	}
	from := func(addr string) context.Context {
		return ports.WithRequestInfo(ctx, ports.RequestInfo{RemoteAddr: netip.AddrPortFrom(netip.MustParseAddr(addr), 40000), Protocol: "grpc"})
	}
	pub := func(topic string) []domain.AccessRequest {
		return []domain.AccessRequest{{Resource: domain.Resource{Type: domain.ResourceTopic, Name: topic}, Actions: domain.ActionPub}}
	}
	tenantA := application.Principal{User: domain.User{Name: "tenant-a"}}
	const same, distinct = 20000, 2000
	for i := range same + distinct {
		topic := "forbidden"
		if i >= same {
			topic = fmt.Sprintf("made-up-%d", i)
		}
		if err := sec.Authorize(from("10.0.0.1"), tenantA, "SendMessage", pub(topic)); !domain.HasReason(err, domain.ReasonForbidden) {
			t.Fatalf("tenant-a's send: %v, want FORBIDDEN", err)
		}
	}
	if err := sec.Authorize(from("10.0.0.2"), application.Principal{User: domain.User{Name: "tenant-b"}}, "SendMessage", pub("payments")); err == nil {
		t.Fatal("tenant-b's send was allowed")
	}
	const guesses = 50
	for i := range guesses {
		_, err := sec.Authenticate(from("10.9.9.9"), "QueryRoute", application.Credentials{AccessKey: "tenant-b",
			Content: []byte(fmt.Sprint(i)), Signature: application.Sign([]byte("guess"), []byte(fmt.Sprint(i)))})
		if err == nil {
			t.Fatal("a wrong signature was accepted")
		}
	}

	if err := writer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// As the proxy stops: the coalescer first, then the writer.
	if err := coalescer.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if err := writer.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	if d := writer.Dropped(); d != 0 {
		t.Errorf("%d audit events dropped", d)
	}

	count := func(where string, args ...any) (rows, refusals int64) {
		t.Helper()
		if err := db.QueryRow(ctx, `SELECT count(*), coalesce(sum(occurrences), 0) FROM rmqproxy.audit_events WHERE `+where, args...).Scan(&rows, &refusals); err != nil {
			t.Fatal(err)
		}
		return rows, refusals
	}
	if rows, n := count(`category = 'authz' AND principal = 'tenant-b' AND resource = 'Topic:payments' AND source_ip = '10.0.0.2'`); rows != 1 || n != 1 {
		t.Errorf("tenant-b's denial: %d rows for %d refusals, want 1", rows, n)
	}
	if rows, n := count(`category = 'authn' AND principal = 'tenant-b' AND reason = 'bad_signature' AND source_ip = '10.9.9.9'`); rows < 1 || n != guesses {
		t.Errorf("the brute force of tenant-b: %d rows for %d failures, want %d failures", rows, n, guesses)
	}
	if rows, n := count(`principal = 'tenant-a' AND decision = 'DENY' AND resource = 'Topic:forbidden'`); rows != 2 || n != same {
		t.Errorf("tenant-a's repeated denial: %d rows for %d refusals, want 2 (the first, then the count) for %d", rows, n, same)
	}
	if rows, n := count(`principal = 'tenant-a' AND decision = 'DENY'`); rows > 250 || n != same+distinct {
		t.Errorf("tenant-a's flood: %d rows for %d refusals, want every refusal counted in a bounded number of rows", rows, n)
	}
	if rows, _ := count(`operation = 'audit.dropped'`); rows != 0 {
		t.Errorf("%d audit.dropped events, want none", rows)
	}

	// The CLI's query reads the counts, and a coalesced event counts in a
	// time range it overlaps.
	evs, err := s.QueryAudit(ctx, domain.AuditQuery{Principal: "tenant-b", Category: domain.AuditAuthn, Since: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range evs {
		n += e.Count()
		if e.Count() > 1 && (e.LastTime.Before(e.Time) || e.LastTime.IsZero()) {
			t.Errorf("coalesced event %+v has no last time", e)
		}
	}
	if n != guesses {
		t.Errorf("audit query found %d authentication failures of tenant-b, want %d", n, guesses)
	}
	var last time.Time
	if err := db.QueryRow(ctx, `SELECT max(coalesce(last_occurred_at, occurred_at)) FROM rmqproxy.audit_events WHERE principal = 'tenant-a'`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	evs, err = s.QueryAudit(ctx, domain.AuditQuery{Principal: "tenant-a", Since: last})
	if err != nil || len(evs) == 0 {
		t.Errorf("audit query since tenant-a's last refusal found %d events (%v), want the ones that last until then", len(evs), err)
	}
}

// TestMigrateAuditOccurrences: rows written before version 5 read as one
// event each after the upgrade, and versions 5 to 7 (columns, their
// validated constraints, their index) go down and up again with coalesced
// rows in the table.
func TestMigrateAuditOccurrences(t *testing.T) {
	dsn := pgenv.Database(t)
	ctx := t.Context()
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateDown, 3); err != nil {
		t.Fatalf("down to version 4: %v", err)
	}
	db := pool(t, dsn)
	if _, err := db.Exec(ctx, `INSERT INTO rmqproxy.audit_events (event_id, occurred_at, proxy_id, seq, category, principal, decision, reason)
  VALUES (gen_random_uuid(), now(), 'old-proxy', 1, 'authz', 'old-tenant', 'DENY', 'no_match_default_deny')`); err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatalf("up: %v", err)
	}
	s := postgres.NewStore(db, keyring(t, "k1:"+newKey(), ""), "test-proxy")
	evs, err := s.QueryAudit(ctx, domain.AuditQuery{Principal: "old-tenant", Since: time.Now().Add(-time.Hour)})
	if err != nil || len(evs) != 1 || evs[0].Count() != 1 || evs[0].Occurrences != 1 || !evs[0].LastTime.IsZero() {
		t.Fatalf("a version 4 row after the upgrade: %+v (%v), want one event of 1 occurrence", evs, err)
	}
	w := postgres.NewAuditWriter(db, postgres.ProxyID(), postgres.DefaultConfig().Audit, discard())
	now := time.Now()
	w.Record(domain.AuditEvent{Time: now.Add(-time.Second), LastTime: now, Occurrences: 42, Category: domain.AuditAuthz, Principal: "new-tenant",
		Operation: "SendMessage", Decision: domain.AuditDeny, Details: `{"coalesced":"repeats"}`})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err = s.QueryAudit(ctx, domain.AuditQuery{Principal: "new-tenant"})
	if err != nil || len(evs) != 1 || evs[0].Occurrences != 42 || !evs[0].LastTime.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("a coalesced event: %+v (%v), want 42 occurrences until %v", evs, err, now)
	}
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateDown, 3); err != nil {
		t.Fatalf("down to version 4 with a coalesced row: %v", err)
	}
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
