package application_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestWatchRevocation: a policy that deletes or disables a user, or drops
// the secret a principal signed with, revokes that principal's watches
// (once each, audited, with UNAUTHORIZED); other principals, and a
// principal whose other secret slot changed, are untouched.
func TestWatchRevocation(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	sec, rec := newSecurity(t, cfg)
	auth := func(ak, secret string) application.Principal {
		t.Helper()
		p, err := sec.Authenticate(t.Context(), "Telemetry", creds(ak, secret, "20250101T000000Z"))
		if err != nil {
			t.Fatalf("%s: %v", ak, err)
		}
		return p
	}
	type fired struct {
		n   int
		err error
	}
	watch := func(p application.Principal) (*fired, func()) {
		f := &fired{}
		stop := sec.WatchRevocation(p, func(err error) { f.n++; f.err = err })
		return f, stop
	}
	root, aliceNew, aliceOld := auth("root", "root-secret"), auth("alice", "alice-secret"), auth("alice", "old-secret")
	fRoot, _ := watch(root)
	fNew, _ := watch(aliceNew)
	fOld, _ := watch(aliceOld)
	fStopped, stop := watch(aliceOld)
	stop()

	users := func(alice domain.UserRecord) []domain.UserRecord {
		return []domain.UserRecord{
			{User: domain.User{Name: "root", Type: domain.UserSuper}, Secrets: []domain.Secret{domain.Secret("root-secret")}},
			alice,
		}
	}
	apply := func(rev int64, us []domain.UserRecord) {
		t.Helper()
		if err := sec.Apply(domain.PolicySnapshot{Revision: rev, Users: us}); err != nil {
			t.Fatal(err)
		}
	}
	// The old slot replaced: only the principal that signed with it goes.
	apply(8, users(domain.UserRecord{User: domain.User{Name: "alice"}, Secrets: []domain.Secret{domain.Secret("new-secret"), domain.Secret("alice-secret")}}))
	if fOld.n != 1 || !domain.HasReason(fOld.err, domain.ReasonUnauthorized) || fNew.n != 0 || fRoot.n != 0 || fStopped.n != 0 {
		t.Fatalf("secret slot changed: old %+v new %+v root %+v stopped %+v", fOld, fNew, fRoot, fStopped)
	}
	if e := rec.last(); e.Principal != "alice" || e.Reason != application.ReasonSecretChanged || e.Operation != "revoke" || e.Decision != domain.AuditDeny || e.Revision != 8 {
		t.Fatalf("audited %+v", e)
	}
	// Disabled.
	apply(9, users(domain.UserRecord{User: domain.User{Name: "alice", Status: domain.UserDisabled}, Secrets: []domain.Secret{domain.Secret("alice-secret")}}))
	if fNew.n != 1 || fOld.n != 1 || fRoot.n != 0 {
		t.Fatalf("disabled: new %+v old %+v root %+v", fNew, fOld, fRoot)
	}
	if e := rec.last(); e.Reason != domain.ReasonUserDisabled {
		t.Fatalf("audited %+v", e)
	}
	// Deleted, and a watch started after the change (the policy moved
	// between authentication and the watch): revoked at once.
	p := auth("root", "root-secret")
	apply(10, nil)
	fLate, _ := watch(p)
	if fRoot.n != 1 || fLate.n != 1 || fNew.n != 1 {
		t.Fatalf("deleted: root %+v late %+v new %+v", fRoot, fLate, fNew)
	}
	if e := rec.last(); e.Reason != domain.ReasonUnknownUser {
		t.Fatalf("audited %+v", e)
	}
	// With authentication off nothing is watched.
	off, _ := newSecurity(t, application.DefaultSecurityConfig())
	if stop := off.WatchRevocation(p, func(error) { t.Fatal("revoked with authentication off") }); stop == nil {
		t.Fatal("nil stop")
	}
}

// countHandler counts log records.
type countHandler struct{ n *atomic.Int64 }

func (h countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countHandler) Handle(context.Context, slog.Record) error { h.n.Add(1); return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countHandler) WithGroup(string) slog.Handler             { return h }

// TestAuthenticationFailureLogIsBounded: a client that invents a new
// AccessKey for every request gets every failure audited, but the
// rate-limited failure log remembers (and logs) at most 10000 keys per
// minute, so neither the map nor the log grows with the requests.
func TestAuthenticationFailureLogIsBounded(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	var logged atomic.Int64
	rec := &recorder{}
	sec, err := application.NewSecurity(application.SecurityParams{Config: cfg, Source: staticSource{domain.PolicySnapshot{Revision: 1}},
		Compiler: refCompiler{}, Audit: rec, Log: slog.New(countHandler{&logged})})
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	const n = 25000
	for i := range n {
		if _, err := sec.Authenticate(t.Context(), "SendMessage", creds(fmt.Sprintf("ak-%d", i), "x", "x")); err == nil {
			t.Fatal("authenticated")
		}
	}
	if got := logged.Load(); got != 10000 {
		t.Errorf("%d failures logged, want 10000 (the bound)", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.evs) != n {
		t.Errorf("%d failures audited, want %d", len(rec.evs), n)
	}
}

// TestRevocationAuditNamesTheStream: the audit event of a revocation says
// which stream or long poll ended: the source address, protocol, client
// id and request id of the request that opened it, and its operation. It
// had the user and the reason only, so an auditor could not tell which
// of a user's clients was cut off, or from where it was connected.
func TestRevocationAuditNamesTheStream(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	sec, rec := newSecurity(t, cfg)
	ctx := ports.WithRequestInfo(t.Context(), ports.RequestInfo{Protocol: "grpc", RemoteAddr: netip.MustParseAddrPort("10.1.2.3:5000"),
		RequestID: "r1", ClientID: "client-1"})
	p, err := sec.Authenticate(ctx, "Telemetry", creds("alice", "alice-secret", "20250101T000000Z"))
	if err != nil {
		t.Fatal(err)
	}
	defer sec.WatchRevocation(p, func(error) {})()
	if err := sec.Apply(domain.PolicySnapshot{Revision: 8}); err != nil {
		t.Fatal(err)
	}
	e := rec.last()
	if e.Operation != "revoke" || e.Principal != "alice" || e.SourceIP != netip.MustParseAddr("10.1.2.3") || e.Protocol != "grpc" ||
		e.ClientID != "client-1" || e.RequestID != "r1" || e.Details != `{"ended":"Telemetry"}` {
		t.Errorf("revocation audited as %+v, want alice's Telemetry stream of client-1 from 10.1.2.3 over grpc, opened by request r1", e)
	}
}
