package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

const rootSecret = "root-secret-0123456789"

type allowAll struct{}

func (allowAll) Decide(string, domain.AccessRequest) domain.AccessDecision {
	return domain.AccessDecision{Allowed: true, Reason: "test"}
}

type allowCompiler struct{}

func (allowCompiler) Compile([]domain.ACLEntry) (ports.Policy, error) { return allowAll{}, nil }

type staticSource struct{ snap domain.PolicySnapshot }

func (s staticSource) Load(context.Context) (domain.PolicySnapshot, error) { return s.snap, nil }
func (s staticSource) Watch(ctx context.Context, _ int64, _ func(domain.PolicySnapshot) error) {
	<-ctx.Done()
}
func (s staticSource) Health() error { return nil }

// auditLog records audit events.
type auditLog struct {
	mu   sync.Mutex
	evs  []domain.AuditEvent
	full atomic.Bool // RecordWithin finds no room
}

func (a *auditLog) Record(e domain.AuditEvent) { a.mu.Lock(); a.evs = append(a.evs, e); a.mu.Unlock() }
func (a *auditLog) RecordWithin(_ context.Context, e domain.AuditEvent, _ time.Duration) bool {
	if a.full.Load() {
		return false
	}
	a.Record(e)
	return true
}
func (a *auditLog) Dropped() uint64         { return 0 }
func (a *auditLog) Stats() ports.AuditStats { return ports.AuditStats{} }

// count returns how many events were recorded.
func (a *auditLog) count() int { a.mu.Lock(); defer a.mu.Unlock(); return len(a.evs) }

// last returns the last event recorded.
func (a *auditLog) last(t *testing.T) domain.AuditEvent {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.evs) == 0 {
		t.Fatal("nothing audited")
	}
	return a.evs[len(a.evs)-1]
}

// startSecureServer runs the server with authentication on: root is a
// Super user, alice a Normal one.
func startSecureServer(t *testing.T) (*fixture, *auditLog) {
	t.Helper()
	cfg := application.DefaultSecurityConfig()
	cfg.Enabled = true
	audit := &auditLog{}
	sec, err := application.NewSecurity(application.SecurityParams{Config: cfg, Compiler: allowCompiler{}, Audit: audit,
		Source: staticSource{domain.PolicySnapshot{Revision: 1, Users: []domain.UserRecord{
			{User: domain.User{Name: "root", Type: domain.UserSuper}, Secrets: []domain.Secret{domain.Secret(rootSecret)}},
			{User: domain.User{Name: "alice"}, Secrets: []domain.Secret{domain.Secret("alice-secret-0123")}},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := startServerWith(t, func(s *admin.Server) { s.UseSecurity(sec) })
	f.client = f.client.WithCredentials("root", []byte(rootSecret))
	return f, audit
}

// signed returns a request signed as root (not sent).
func (f *fixture) signed(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	return f.signedAs(t, "root", rootSecret, method, path, body)
}

func (f *fixture) signedAs(t *testing.T, user, secret, method, path, body string) *http.Request {
	t.Helper()
	req := f.request(t, method, path, body)
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	admin.SignRequest(req, user, []byte(secret), b, time.Now())
	return req
}

func (f *fixture) request(t *testing.T, method, path, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" || method == http.MethodPost || method == http.MethodPut {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// send sends req and returns the status and the error body's message.
func (f *fixture) send(t *testing.T, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// withHeadersOf returns a request of method, path and body carrying the
// signature headers of signed.
func (f *fixture) withHeadersOf(t *testing.T, signed *http.Request, method, path, body string) *http.Request {
	t.Helper()
	req := f.request(t, method, path, body)
	for _, h := range []string{admin.HeaderAuthorization, admin.HeaderDateTime, admin.HeaderContentSHA256, admin.HeaderNonce} {
		req.Header.Set(h, signed.Header.Get(h))
	}
	return req
}

// TestSignedCallsAccepted: the client's calls, with and without a body,
// on escaped paths, are accepted and audited as allowed.
func TestSignedCallsAccepted(t *testing.T) {
	f, audit := startSecureServer(t)
	ctx := t.Context()
	if _, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: "orders%eu"}); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := f.client.Topic(ctx, "orders%eu"); err != nil {
		t.Fatalf("describe: %v", err)
	}
	if _, err := f.client.UpdateTopic(ctx, application.TopicSpec{Name: "orders%eu", Description: ptr("d")}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if ts, err := f.client.Topics(ctx); err != nil || len(ts) != 1 {
		t.Fatalf("list: %v %v", ts, err)
	}
	if err := f.client.DeleteTopic(ctx, "orders%eu"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if e := audit.last(t); e.Decision != domain.AuditAllow || e.Principal != "root" || e.Operation != "admin DELETE /v1/topics/orders%eu" {
		t.Fatalf("audited %+v", e)
	}
	// A query is part of the signed target.
	if code, body, _ := f.send(t, f.signed(t, http.MethodGet, "/v1/topics?x=1", "")); code != http.StatusOK {
		t.Fatalf("GET with a query: %d %s", code, body)
	}
}

// TestAdminCallRefusedWithoutRoomForItsEvent: an allowed admin call whose
// audit event the sink cannot take (its buffer full: the audit store down)
// is refused, retryable, and not performed; once there is room it works.
func TestAdminCallRefusedWithoutRoomForItsEvent(t *testing.T) {
	f, audit := startSecureServer(t)
	ctx := t.Context()
	audit.full.Store(true)
	_, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: "unaudited"})
	de := wantReason(t, err, domain.ReasonUnavailable)
	if !strings.Contains(de.Error(), "auth.adminAuditWait") || !strings.Contains(de.Error(), "retry") {
		t.Fatalf("the refusal does not say why and what to do: %v", de)
	}
	audit.full.Store(false)
	if _, err := f.client.Topic(ctx, "unaudited"); err == nil {
		t.Fatal("the refused call was performed: the topic exists")
	} else {
		wantReason(t, err, domain.ReasonTopicNotFound)
	}
	if _, err := f.client.CreateTopic(ctx, application.TopicSpec{Name: "unaudited"}); err != nil {
		t.Fatalf("create with room in the audit buffer: %v", err)
	}
	if e := audit.last(t); e.Decision != domain.AuditAllow || e.Operation != "admin POST /v1/topics" {
		t.Fatalf("audited %+v", e)
	}
}

// TestReplayedCallRefused: a call sent again as it was captured (same
// signature, date-time and nonce) is refused and audited as a replay,
// and does not act again.
func TestReplayedCallRefused(t *testing.T) {
	f, audit := startSecureServer(t)
	body := `{"name":"t1"}`
	create := f.signed(t, http.MethodPost, "/v1/topics", body)
	replay := f.withHeadersOf(t, create, http.MethodPost, "/v1/topics", body)
	if code, msg, _ := f.send(t, create); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, msg)
	}
	if err := f.client.DeleteTopic(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	code, msg, _ := f.send(t, replay)
	if code != http.StatusUnauthorized || !strings.Contains(msg, "already made") {
		t.Fatalf("replay: %d %s", code, msg)
	}
	if e := audit.last(t); e.Reason != application.ReasonReplayedNonce || e.Category != domain.AuditAuthn || e.Decision != domain.AuditDeny || e.Principal != "root" {
		t.Fatalf("replay audited %+v", e)
	}
	if _, ok := f.store.topics["t1"]; ok {
		t.Fatal("the replay created the topic again")
	}
}

// TestSignatureBindsTheCall: the headers of a signed GET /v1/topics,
// never sent, do not authorize another method, path, query or body; the
// call they were made for is then accepted (the refusals spent nothing).
func TestSignatureBindsTheCall(t *testing.T) {
	f, audit := startSecureServer(t)
	f.store.topics["x"] = domain.Topic{Name: "x", Type: domain.MessageTypeNormal, QueueCount: 8, Permission: domain.PermReadWrite}
	list := f.signed(t, http.MethodGet, "/v1/topics", "")
	body := `{"name":"t2"}`
	for _, c := range []struct {
		name, method, path, body, reason string
		rehash                           bool // send the digest of the new body
	}{
		{"another method and path", http.MethodDelete, "/v1/topics/x", "", application.ReasonBadSignature, false},
		{"another path", http.MethodGet, "/v1/topics/x", "", application.ReasonBadSignature, false},
		{"another query", http.MethodGet, "/v1/topics?y=1", "", application.ReasonBadSignature, false},
		{"another method", http.MethodPost, "/v1/topics", "", application.ReasonBadSignature, false},
		{"a body, old digest", http.MethodGet, "/v1/topics", body, application.ReasonContentMismatch, false},
		{"a body, its digest", http.MethodPost, "/v1/topics", body, application.ReasonBadSignature, true},
		{"an escaped path", http.MethodGet, "/v1/%74opics", "", application.ReasonBadSignature, false},
	} {
		req := f.withHeadersOf(t, list, c.method, c.path, c.body)
		if c.rehash {
			req.Header.Set(admin.HeaderContentSHA256, sha256Hex(c.body))
		}
		if code, msg, _ := f.send(t, req); code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", c.name, code, msg)
			continue
		}
		if e := audit.last(t); e.Reason != c.reason || e.Category != domain.AuditAuthn {
			t.Errorf("%s: audited %+v", c.name, e)
		}
	}
	if _, ok := f.store.topics["x"]; !ok {
		t.Fatal("topic x was deleted")
	}
	if _, ok := f.store.topics["t2"]; ok {
		t.Fatal("topic t2 was created")
	}
	if code, msg, _ := f.send(t, list); code != http.StatusOK {
		t.Fatalf("the signed call itself: %d %s", code, msg)
	}
}

// TestOldSignatureRefused: a call signed as before (the date-time only,
// as an older CLI does) is refused with a message saying what to do, and
// audited as incomplete_signature; so is one that leaves a header out.
func TestOldSignatureRefused(t *testing.T) {
	f, audit := startSecureServer(t)
	req := f.request(t, http.MethodGet, "/v1/topics", "")
	auth, dt := application.SignRequest("root", []byte(rootSecret), time.Now())
	req.Header.Set(admin.HeaderAuthorization, auth)
	req.Header.Set(admin.HeaderDateTime, dt)
	code, msg, _ := f.send(t, req)
	if code != http.StatusUnauthorized || !strings.Contains(msg, "CLI") || !strings.Contains(msg, application.AdminSignedHeaders) {
		t.Fatalf("old signature: %d %s", code, msg)
	}
	if e := audit.last(t); e.Reason != application.ReasonIncompleteSignature || e.Principal != "root" {
		t.Fatalf("audited %+v", e)
	}
	// SignedHeaders naming less than the whole call.
	req = f.signed(t, http.MethodGet, "/v1/topics", "")
	req.Header.Set(admin.HeaderAuthorization, strings.Replace(req.Header.Get(admin.HeaderAuthorization), ";x-mq-nonce", "", 1))
	if code, msg, _ := f.send(t, req); code != http.StatusUnauthorized {
		t.Fatalf("SignedHeaders without the nonce: %d %s", code, msg)
	}
	if e := audit.last(t); e.Reason != application.ReasonIncompleteSignature {
		t.Fatalf("audited %+v", e)
	}
	// A missing or malformed nonce or digest.
	for _, h := range []struct{ name, value string }{
		{admin.HeaderNonce, ""}, {admin.HeaderNonce, "short"}, {admin.HeaderNonce, strings.Repeat("n", 65)}, {admin.HeaderNonce, "0123456789abcdef/"},
		{admin.HeaderContentSHA256, ""}, {admin.HeaderContentSHA256, strings.ToUpper(sha256Hex(""))},
	} {
		req = f.signed(t, http.MethodGet, "/v1/topics", "")
		if h.value == "" {
			req.Header.Del(h.name)
		} else {
			req.Header.Set(h.name, h.value)
		}
		if code, msg, _ := f.send(t, req); code != http.StatusUnauthorized {
			t.Errorf("%s %q: %d %s", h.name, h.value, code, msg)
		}
		if e := audit.last(t); e.Reason != application.ReasonMalformed {
			t.Errorf("%s %q: audited %+v", h.name, h.value, e)
		}
	}
}

// TestNonceMemoryFullRefusesCalls: when the memory holds as many nonces
// as it may, a new call is refused (429 with Retry-After, audited) rather
// than a remembered nonce forgotten: a replay of the first call is still
// refused.
func TestNonceMemoryFullRefusesCalls(t *testing.T) {
	f, audit := startSecureServer(t)
	admin.SetNonceLimit(f.server, 2)
	first := f.signed(t, http.MethodGet, "/v1/topics", "")
	replay := f.withHeadersOf(t, first, http.MethodGet, "/v1/topics", "")
	for i, req := range []*http.Request{first, f.signed(t, http.MethodGet, "/v1/groups", "")} {
		if code, msg, _ := f.send(t, req); code != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, code, msg)
		}
	}
	_, err := f.client.Topics(t.Context())
	if de := wantReason(t, err, domain.ReasonTooManyRequests); !strings.Contains(de.Msg, "retry in") {
		t.Fatalf("message %q", de.Msg)
	}
	if e := audit.last(t); e.Reason != application.ReasonNonceMemoryFull || e.Principal != "root" {
		t.Fatalf("audited %+v", e)
	}
	code, _, h := f.send(t, f.signed(t, http.MethodGet, "/v1/topics", ""))
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("full: %d, Retry-After %q", code, h.Get("Retry-After"))
	}
	if code, msg, _ := f.send(t, replay); code != http.StatusUnauthorized {
		t.Fatalf("replay while full: %d %s", code, msg)
	}
	if e := audit.last(t); e.Reason != application.ReasonReplayedNonce {
		t.Fatalf("replay while full audited %+v", e)
	}
}

// TestNormalUsersTakeNoNonceRoom: a Normal user's calls, refused 403,
// leave the nonce memory to Super users: they cannot fill it.
func TestNormalUsersTakeNoNonceRoom(t *testing.T) {
	f, _ := startSecureServer(t)
	admin.SetNonceLimit(f.server, 1)
	for range 3 {
		if code, msg, _ := f.send(t, f.signedAs(t, "alice", "alice-secret-0123", http.MethodGet, "/v1/topics", "")); code != http.StatusForbidden {
			t.Fatalf("alice: %d %s", code, msg)
		}
	}
	if code, msg, _ := f.send(t, f.signed(t, http.MethodGet, "/v1/topics", "")); code != http.StatusOK {
		t.Fatalf("root after alice's calls: %d %s", code, msg)
	}
}

// TestOversizedSignedBody: a body over the limit is answered 413 (as the
// handler would) and audited, without being hashed whole.
func TestOversizedSignedBody(t *testing.T) {
	f, audit := startSecureServer(t)
	big := `{"name":"t","description":"` + strings.Repeat("d", admin.MaxRequestBody) + `"}`
	req := f.signed(t, http.MethodPost, "/v1/topics", big)
	if code, msg, _ := f.send(t, req); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d %s", code, msg)
	}
	if e := audit.last(t); e.Decision != domain.AuditDeny || e.Category != domain.AuditAuthn {
		t.Fatalf("audited %+v", e)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAdminCallsOutsideTheClockWindowRefused: a signed call is accepted
// within 5 minutes of the proxy's clock either way, and refused (401,
// audited clock_skew) beyond, whichever user signed it.
func TestAdminCallsOutsideTheClockWindowRefused(t *testing.T) {
	f, audit := startSecureServer(t)
	for _, c := range []struct {
		skew time.Duration
		want int
	}{
		{-4 * time.Minute, http.StatusOK}, {4 * time.Minute, http.StatusOK},
		{-6 * time.Minute, http.StatusUnauthorized}, {6 * time.Minute, http.StatusUnauthorized},
		{-24 * time.Hour, http.StatusUnauthorized},
	} {
		req := f.request(t, http.MethodGet, "/v1/topics", "")
		admin.SignRequest(req, "root", []byte(rootSecret), nil, time.Now().Add(c.skew))
		if code, msg, _ := f.send(t, req); code != c.want {
			t.Errorf("signed %v from now: %d %s, want %d", c.skew, code, msg, c.want)
			continue
		}
		if c.want == http.StatusUnauthorized {
			if e := audit.last(t); e.Reason != application.ReasonClockSkew || e.Category != domain.AuditAuthn || e.Principal != "root" {
				t.Errorf("signed %v from now: audited %+v", c.skew, e)
			}
		}
	}
}

// TestNormalUserRefusedOnEveryEndpoint: every route of the API, and an
// unknown one, answers a Normal user's valid signature 403 before it
// runs, audited under that user as admin_requires_super_user.
func TestNormalUserRefusedOnEveryEndpoint(t *testing.T) {
	f, audit := startSecureServer(t)
	f.store.topics["x"] = domain.Topic{Name: "x", Type: domain.MessageTypeNormal, QueueCount: 8, Permission: domain.PermReadWrite}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/topics", ""}, {http.MethodPost, "/v1/topics", `{"name":"t2"}`},
		{http.MethodGet, "/v1/topics/x", ""}, {http.MethodPut, "/v1/topics/x", `{"queueCount":16}`}, {http.MethodDelete, "/v1/topics/x", ""},
		{http.MethodGet, "/v1/groups", ""}, {http.MethodPost, "/v1/groups", `{"name":"g2"}`},
		{http.MethodGet, "/v1/groups/g", ""}, {http.MethodPut, "/v1/groups/g", `{"maxDeliveryAttempts":3}`}, {http.MethodDelete, "/v1/groups/g", ""},
		{http.MethodGet, "/v1/groups/g/stats", ""}, {http.MethodGet, "/v1/clients", ""},
		{http.MethodPost, "/v1/clients/c/stack", `{}`}, {http.MethodPost, "/v1/clients/c/verify", `{"topic":"x","messageId":"m"}`},
		{http.MethodGet, "/v1/nothing", ""},
	} {
		req := f.signedAs(t, "alice", "alice-secret-0123", c.method, c.path, c.body)
		if code, msg, _ := f.send(t, req); code != http.StatusForbidden {
			t.Errorf("alice %s %s: %d %s, want 403", c.method, c.path, code, msg)
			continue
		}
		if e := audit.last(t); e.Principal != "alice" || e.Reason != "admin_requires_super_user" || e.Decision != domain.AuditDeny {
			t.Errorf("alice %s %s: audited %+v", c.method, c.path, e)
		}
	}
	if _, ok := f.store.topics["x"]; !ok {
		t.Fatal("topic x was deleted")
	}
	if _, ok := f.store.topics["t2"]; ok {
		t.Fatal("topic t2 was created")
	}
}

// TestAdminCallOutcomeIsAudited: an admin call was audited only by its
// authorization (ALLOW, before the handler ran), so a topic create that
// failed because the topic existed, or a delete of a topic that did not,
// read in the log as a create or delete made by that user: an auditor
// could not tell what happened. A call that changes something (any method
// but GET and HEAD) now also has an event of its outcome (category admin,
// ALLOW for a success, ERROR for a failure, reason http_<status>) with
// the call's request id, recorded before the answer is sent.
func TestAdminCallOutcomeIsAudited(t *testing.T) {
	f, audit := startSecureServer(t)
	outcome := func(t *testing.T, req *http.Request, wantDecision string, wantStatus int) {
		t.Helper()
		code, body, h := f.send(t, req)
		if code != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", req.Method, req.URL.Path, code, body, wantStatus)
		}
		e := audit.last(t)
		if e.Category != domain.AuditAdmin || e.Decision != wantDecision || e.Reason != fmt.Sprintf("http_%d", wantStatus) ||
			e.Principal != "root" || e.Operation != "admin "+req.Method+" "+req.URL.Path || e.RequestID != h.Get("X-Request-Id") || e.RequestID == "" {
			t.Errorf("%s %s answered %d (request id %q): last event %+v, want its outcome (admin, %s, http_%d)",
				req.Method, req.URL.Path, code, h.Get("X-Request-Id"), e, wantDecision, wantStatus)
		}
	}
	outcome(t, f.signed(t, http.MethodPost, "/v1/topics", `{"name":"dup"}`), domain.AuditAllow, http.StatusCreated)
	outcome(t, f.signed(t, http.MethodPost, "/v1/topics", `{"name":"dup"}`), domain.AuditError, http.StatusConflict)
	outcome(t, f.signed(t, http.MethodDelete, "/v1/topics/absent", ""), domain.AuditError, http.StatusNotFound)
	outcome(t, f.signed(t, http.MethodDelete, "/v1/topics/dup", ""), domain.AuditAllow, http.StatusNoContent)
	// A read is audited by its authorization alone.
	n := audit.count()
	if code, body, _ := f.send(t, f.signed(t, http.MethodGet, "/v1/topics", "")); code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	if e, added := audit.last(t), audit.count()-n; added != 1 || e.Category != domain.AuditAuthz {
		t.Errorf("a list added %d events, the last %+v; want its authorization only", added, e)
	}
}
