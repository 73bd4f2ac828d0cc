package application_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// refPolicy decides with domain.EvaluateACL (the casbin adapter is tested
// against the same reference).
type refPolicy struct {
	entries []domain.ACLEntry
	mode    domain.ConflictMode
}

func (p refPolicy) Decide(subject string, req domain.AccessRequest) domain.AccessDecision {
	var mine []domain.ACLEntry
	for _, e := range p.entries {
		if e.Subject == subject {
			mine = append(mine, e)
		}
	}
	return domain.EvaluateACL(mine, req, p.mode)
}

type refCompiler struct{}

func (refCompiler) Compile(entries []domain.ACLEntry) (ports.Policy, error) {
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return nil, err
		}
	}
	return refPolicy{entries: entries}, nil
}

type staticSource struct{ snap domain.PolicySnapshot }

func (s staticSource) Load(context.Context) (domain.PolicySnapshot, error) { return s.snap, nil }
func (s staticSource) Watch(ctx context.Context, _ int64, _ func(domain.PolicySnapshot) error) {
	<-ctx.Done()
}
func (s staticSource) Health() error { return nil }

type recorder struct {
	mu     sync.Mutex
	evs    []domain.AuditEvent
	full   bool          // RecordWithin finds no room
	waited time.Duration // the last wait RecordWithin was given
}

func (r *recorder) Record(e domain.AuditEvent) { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }
func (r *recorder) RecordWithin(_ context.Context, e domain.AuditEvent, wait time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waited = wait
	if r.full {
		return false
	}
	r.evs = append(r.evs, e)
	return true
}
func (r *recorder) Dropped() uint64         { return 0 }
func (r *recorder) Stats() ports.AuditStats { return ports.AuditStats{} }
func (r *recorder) last() domain.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.evs[len(r.evs)-1]
}

func newSecurity(t *testing.T, cfg application.SecurityConfig) (*application.Security, *recorder) {
	t.Helper()
	topic, _ := domain.ParseResource("Topic:t*")
	snap := domain.PolicySnapshot{Revision: 7, Users: []domain.UserRecord{
		{User: domain.User{Name: "root", Type: domain.UserSuper}, Secrets: []domain.Secret{domain.Secret("root-secret")}},
		{User: domain.User{Name: "alice"}, Secrets: []domain.Secret{domain.Secret("old-secret"), domain.Secret("alice-secret")}},
		{User: domain.User{Name: "bob", Status: domain.UserDisabled}, Secrets: []domain.Secret{domain.Secret("bob-secret")}},
	}, Entries: []domain.ACLEntry{{ID: 1, Subject: "User:alice", Resource: topic, Actions: domain.ActionPub, Decision: domain.Allow}}}
	rec := &recorder{}
	sec, err := application.NewSecurity(application.SecurityParams{Config: cfg, Source: staticSource{snap}, Compiler: refCompiler{}, Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return sec, rec
}

// TestAdminDecisionNeedsItsAuditEvent: an allowed admin decision whose
// event the sink cannot take within auth.adminAuditWait is refused as
// UNAVAILABLE (the action must not happen unaudited); an allowed data-plane
// request never waits for the audit buffer.
func TestAdminDecisionNeedsItsAuditEvent(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled, cfg.AuditAllowed = true, true
	cfg.AdminAuditWait = 250 * time.Millisecond
	sec, rec := newSecurity(t, cfg)
	ctx := t.Context()
	root := application.Principal{User: domain.User{Name: "root", Type: domain.UserSuper}}
	topic, _ := domain.ParseResource("Topic:t1")
	reqs := []domain.AccessRequest{{Resource: topic, Actions: domain.ActionCreate}}
	rec.full = true
	err := sec.AuthorizeAudited(ctx, root, "admin POST /v1/topics", reqs)
	if !domain.HasReason(err, domain.ReasonUnavailable) || !strings.Contains(domain.MessageOf(err), "auth.adminAuditWait") {
		t.Fatalf("admin call without room for its event: %v", err)
	}
	if rec.waited != cfg.AdminAuditWait {
		t.Fatalf("waited %v for room, want auth.adminAuditWait %v", rec.waited, cfg.AdminAuditWait)
	}
	if err := sec.Authorize(ctx, root, "SendMessage", reqs); err != nil {
		t.Fatalf("a data-plane request waited on the audit buffer: %v", err)
	}
	rec.full = false
	if err := sec.AuthorizeAudited(ctx, root, "admin POST /v1/topics", reqs); err != nil {
		t.Fatalf("admin call with room: %v", err)
	}
	if e := rec.last(); e.Decision != domain.AuditAllow || e.Operation != "admin POST /v1/topics" || e.Resource != "Topic:t1" {
		t.Fatalf("audited %+v", e)
	}
}

func creds(ak, secret, content string) application.Credentials {
	return application.Credentials{AccessKey: ak, Content: []byte(content), Signature: application.Sign([]byte(secret), []byte(content))}
}

func TestAuthenticate(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	sec, rec := newSecurity(t, cfg)
	ctx := ports.WithRequestInfo(t.Context(), ports.RequestInfo{Protocol: "grpc", RemoteAddr: netip.MustParseAddrPort("10.1.2.3:5000"), RequestID: "r1"})
	p, err := sec.Authenticate(ctx, "SendMessage", creds("alice", "alice-secret", "20250101T000000Z"))
	if err != nil || p.User.Name != "alice" || p.Revision != 7 {
		t.Fatalf("second secret slot: %+v %v", p, err)
	}
	if _, err := sec.Authenticate(ctx, "SendMessage", creds("alice", "old-secret", "x")); err != nil {
		t.Fatalf("first secret slot: %v", err)
	}
	for _, c := range []struct {
		creds  application.Credentials
		reason string
	}{
		{creds("alice", "wrong", "x"), application.ReasonBadSignature},
		{creds("mallory", "x", "x"), domain.ReasonUnknownUser},
		{creds("bob", "bob-secret", "x"), domain.ReasonUserDisabled},
		{creds("bob", "wrong", "x"), application.ReasonBadSignature}, // a disabled user's status is not revealed without its secret
		{application.Credentials{Fault: application.ReasonMissingCredentials}, application.ReasonMissingCredentials},
		{application.Credentials{AccessKey: "alice", Content: []byte("x"), Signature: []byte{1, 2}}, application.ReasonBadSignature},
	} {
		_, err := sec.Authenticate(ctx, "SendMessage", c.creds)
		if !domain.HasReason(err, domain.ReasonUnauthorized) {
			t.Errorf("%s: %v", c.reason, err)
			continue
		}
		if e := rec.last(); e.Reason != c.reason || e.Category != domain.AuditAuthn || e.Decision != domain.AuditDeny || e.SourceIP.String() != "10.1.2.3" || e.RequestID != "r1" {
			t.Errorf("%s: audited %+v", c.reason, e)
		}
		if domain.MessageOf(err) != domain.MessageOf(errOf(t, sec, ctx)) {
			t.Errorf("%s: the message differs from other failures: %q", c.reason, domain.MessageOf(err))
		}
	}
}

func errOf(t *testing.T, sec *application.Security, ctx context.Context) error {
	_, err := sec.Authenticate(ctx, "x", creds("mallory", "x", "x"))
	return err
}

// TestAllowedDecisionNamesEveryResource: with auditAllowed, an allowed
// request that needs several accesses (a receive: the group and the
// topic; a batch: each topic) is audited with each resource it was
// allowed, not only the first: an auditor reading the log must see which
// topic was read or written.
func TestAllowedDecisionNamesEveryResource(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	cfg.AuditAllowed = true
	sec, rec := newSecurity(t, cfg)
	reqs := []domain.AccessRequest{
		{Resource: domain.TopicResource("t1"), Actions: domain.ActionPub},
		{Resource: domain.TopicResource("t2"), Actions: domain.ActionPub},
	}
	for _, p := range []application.Principal{{User: domain.User{Name: "alice"}}, {User: domain.User{Name: "root"}}} {
		rec.mu.Lock()
		rec.evs = nil
		rec.mu.Unlock()
		if err := sec.Authorize(t.Context(), p, "SendMessage", reqs); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		var got []string
		for _, e := range rec.evs {
			if e.Decision == domain.AuditAllow {
				got = append(got, e.Resource+" "+e.Actions)
			}
		}
		rec.mu.Unlock()
		if want := []string{"Topic:t1 Pub", "Topic:t2 Pub"}; !slices.Equal(got, want) {
			t.Errorf("%s: allowed events %q, want %q", p.User.Name, got, want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	cfg.AuditAllowed = true
	sec, rec := newSecurity(t, cfg)
	ctx := t.Context()
	alice := application.Principal{User: domain.User{Name: "alice"}}
	pub := func(topic string) []domain.AccessRequest {
		return []domain.AccessRequest{{Resource: domain.TopicResource(topic), Actions: domain.ActionPub}}
	}
	if err := sec.Authorize(ctx, alice, "SendMessage", pub("t1")); err != nil {
		t.Fatal(err)
	}
	if e := rec.last(); e.Decision != domain.AuditAllow || e.Reason != "entry:1" {
		t.Fatalf("allowed and audited: %+v", e)
	}
	err := sec.Authorize(ctx, alice, "SendMessage", append(pub("t1"), pub("x")...))
	if !domain.HasReason(err, domain.ReasonForbidden) || rec.last().Resource != "Topic:x" {
		t.Fatalf("one denied access of two: %v %+v", err, rec.last())
	}
	if err := sec.Authorize(ctx, alice, "Heartbeat", nil); err != nil {
		t.Fatalf("no access needed: %v", err)
	}
	if err := sec.Authorize(ctx, application.Principal{User: domain.User{Name: "root"}}, "SendMessage", pub("x")); err != nil {
		t.Fatalf("super user: %v", err)
	}
	if err := sec.Authorize(ctx, application.Principal{User: domain.User{Name: "gone"}}, "SendMessage", pub("t1")); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Fatalf("user deleted since authentication: %v", err)
	}
	if err := sec.Refuse(ctx, application.Principal{User: domain.User{Name: "root"}}, "unmapped", "unmapped_request"); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Fatalf("unmapped: %v", err)
	}
	cfg.SuperUserBypass = false
	strict, _ := newSecurity(t, cfg)
	if err := strict.Authorize(ctx, application.Principal{User: domain.User{Name: "root"}}, "SendMessage", pub("x")); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Fatalf("super user without bypass: %v", err)
	}
	off, _ := newSecurity(t, application.DefaultSecurityConfig())
	if err := off.Authorize(ctx, application.Principal{}, "SendMessage", pub("x")); err != nil {
		t.Fatalf("auth disabled: %v", err)
	}
}

// TestAuditedResourceIsBounded: a denial is always audited with the
// resource the request named, which is as long as its client likes; the
// event waits in the audit sink's buffer (65 536 events while PostgreSQL
// is down), so each must be small. It used to carry the whole name.
func TestAuditedResourceIsBounded(t *testing.T) {
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	sec, rec := newSecurity(t, cfg)
	ctx := ports.WithRequestInfo(t.Context(), ports.RequestInfo{Protocol: "grpc", RemoteAddr: netip.MustParseAddrPort("10.1.2.3:5000")})
	p, err := sec.Authenticate(ctx, "QueryRoute", creds("alice", "alice-secret", "x"))
	if err != nil {
		t.Fatal(err)
	}
	name := "secret-" + strings.Repeat("é", 1<<19) // 1 MiB, multi-byte runes
	err = sec.Authorize(ctx, p, "QueryRoute", []domain.AccessRequest{{Resource: domain.TopicResource(name), Actions: domain.ActionPub | domain.ActionSub}})
	if !domain.HasReason(err, domain.ReasonForbidden) {
		t.Fatalf("denial: %v", err)
	}
	e := rec.last()
	if e.Decision != domain.AuditDeny || !strings.HasPrefix(e.Resource, "Topic:secret-é") || len(e.Resource) > 1200 || !utf8.ValidString(e.Resource) {
		t.Fatalf("audited resource of %d bytes (valid UTF-8 %v), starting %.40q", len(e.Resource), utf8.ValidString(e.Resource), e.Resource)
	}
}
