package application

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Policy sources (auth.source).
const (
	SourcePostgres = "postgres"
	SourceFile     = "file"
)

// SecurityConfig is the auth slice of the configuration.
type SecurityConfig struct {
	Enabled            bool                `yaml:"enabled" help:"authenticate every client request (AccessKey and HMAC signature, as the official clients send them) and authorize it against the ACL policy; off by default"`
	Source             string              `yaml:"source" enum:"postgres,file" help:"where users and ACL policies come from: postgres (postgres.dsn; changes reach every proxy within a second) or file (auth.file, reloaded when it changes)"`
	File               string              `yaml:"file" help:"policy file (YAML: users with secrets, and ACL entries) for auth.source file; keep it readable by rmqproxy only"`
	Authorization      bool                `yaml:"authorization" help:"check the ACL policy after authentication (default deny); false: every authenticated user may do anything"`
	SuperUserBypass    bool                `yaml:"superUserBypass" help:"super users skip the ACL policy, as in Apache RocketMQ; false: super users need entries too"`
	ConflictResolution string              `yaml:"conflictResolution" enum:"deny_overrides,rocketmq" help:"how matching ACL entries of a user are ranked: deny_overrides (any matching Deny beats every Allow of its policy type) or rocketmq (the most specific entry wins, as Apache RocketMQ's ACL 2.0)"`
	AuditAllowed       bool                `yaml:"auditAllowed" help:"also audit allowed data-plane requests (one event per resource a request is allowed, a receive's group and topic: heavy); denials, authentication failures and admin changes are always audited"`
	CacheSize          int                 `yaml:"cacheSize" help:"authorization decisions cached per policy revision (a new revision starts a new cache)"`
	AdminAuditWait     time.Duration       `yaml:"adminAuditWait" help:"how long an allowed admin API call waits for room in the audit buffer (full while the audit store is down or slow); if there is none, the call is refused with 503 UNAVAILABLE and not performed, so that no admin action happens without its audit event"`
	AuditCoalesce      AuditCoalesceConfig `yaml:"auditCoalesce"`
}

// DefaultSecurityConfig returns the defaults: authentication off.
func DefaultSecurityConfig() SecurityConfig {
	return SecurityConfig{
		Source:             SourcePostgres,
		Authorization:      true,
		SuperUserBypass:    true,
		ConflictResolution: domain.DenyOverrides.String(),
		CacheSize:          100000,
		AdminAuditWait:     100 * time.Millisecond,
		AuditCoalesce:      DefaultAuditCoalesceConfig(),
	}
}

// Validate checks the settings.
func (c SecurityConfig) Validate() error {
	var errs []error
	if c.Source != SourcePostgres && c.Source != SourceFile {
		errs = append(errs, fmt.Errorf("source %q must be postgres or file", c.Source))
	}
	if c.Enabled && c.Source == SourceFile && c.File == "" {
		errs = append(errs, errors.New("file is required with source file (a YAML policy file; see docs/security.md)"))
	}
	if _, err := domain.ParseConflictMode(c.ConflictResolution); err != nil {
		errs = append(errs, fmt.Errorf("conflictResolution %q must be deny_overrides or rocketmq", c.ConflictResolution))
	}
	if c.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("cacheSize must not be negative (0: no cache), not %d", c.CacheSize))
	}
	if c.AdminAuditWait < 0 {
		errs = append(errs, fmt.Errorf("adminAuditWait must not be negative (0: refuse at once when the audit buffer is full), not %s", c.AdminAuditWait))
	}
	return errors.Join(errs...)
}

// Principal is an authenticated caller.
type Principal struct {
	User     domain.User
	Revision int64 // policy revision it was authenticated against
	// secret is the user's secret the signature verified with: a later
	// policy without it revokes the principal (WatchRevocation).
	// domain.Secret never prints its value.
	secret domain.Secret
	// op and origin are the operation and the request (its address,
	// protocol, client and request id) authenticated, which the audit
	// event of a revocation names.
	op     string
	origin ports.RequestInfo
}

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the authenticated principal of ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Credentials are what a request presents: the AccessKey, the bytes the
// client signed (built by the protocol adapter: the date-time for gRPC,
// the sorted ext-field values and body for Remoting) and the signature's
// 20 raw bytes. Fault, when set, is a malformed-credentials reason found
// by the adapter before any of that could be read.
type Credentials struct {
	AccessKey string
	Content   []byte
	Signature []byte
	Fault     string
}

// Authentication failure reasons, for the audit log.
const (
	ReasonMissingCredentials = "missing_credentials"
	ReasonMalformed          = "malformed_authorization"
	ReasonClockSkew          = "clock_skew"
	ReasonBadSignature       = "bad_signature"
	ReasonSecretChanged      = "secret_changed" // a revoked stream's secret is no longer the user's
	ReasonSecretExpired      = "secret_expired" // the secret signed with has passed its expiry time
	// Of the admin API's signature (docs/security.md).
	ReasonIncompleteSignature = "incomplete_signature"    // SignedHeaders is not AdminSignedHeaders: an old CLI
	ReasonContentMismatch     = "content_sha256_mismatch" // x-mq-content-sha256 is not the body's
	ReasonReplayedNonce       = "replayed_nonce"          // a signed call made again
	ReasonNonceMemoryFull     = "nonce_memory_full"       // too many calls in the window to remember
)

// securityState is one policy revision: users by name and the compiled ACL
// policy. It is replaced whole, never changed.
type securityState struct {
	revision int64
	users    map[string]domain.UserRecord
	policy   ports.Policy
	loadedAt time.Time
}

// Security authenticates and authorizes requests of every protocol against
// the policy in force, and audits the outcome. The policy is an immutable
// snapshot swapped atomically when the source announces a new revision;
// requests never wait for the policy store.
type Security struct {
	cfg      SecurityConfig
	mode     domain.ConflictMode
	source   ports.PolicySource   // nil when authentication is off
	compiler ports.PolicyCompiler // nil when authentication is off
	audit    ports.AuditSink      // may be nil
	log      *slog.Logger
	state    atomic.Pointer[securityState]

	failMu   sync.Mutex
	failLog  map[string]time.Time // rate limit of authentication failure logs per (source IP, AK)
	failSeen time.Time

	// watches are the principals of open streams and long polls (see
	// WatchRevocation); Apply checks them against each new policy.
	watchMu sync.Mutex
	watches map[*revocationWatch]struct{}

	// applied tells the expiry loop (Run) that a new policy is in force.
	applied chan struct{}
}

// revocationWatch is one open stream's or long poll's principal.
type revocationWatch struct {
	p      Principal
	revoke func(error)
}

// SecurityParams are the dependencies of [NewSecurity]; Source, Compiler
// and Audit may be nil when authentication is off.
type SecurityParams struct {
	Config   SecurityConfig
	Source   ports.PolicySource
	Compiler ports.PolicyCompiler
	Audit    ports.AuditSink
	Log      *slog.Logger
}

// NewSecurity returns the security use case. With authentication on, it
// needs a source and a compiler; Start loads the first snapshot.
func NewSecurity(p SecurityParams) (*Security, error) {
	mode, err := domain.ParseConflictMode(p.Config.ConflictResolution)
	if err != nil {
		return nil, err
	}
	if p.Config.Enabled && (p.Source == nil || p.Compiler == nil) {
		return nil, errors.New("auth.enabled needs a policy source and an authorizer")
	}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	return &Security{cfg: p.Config, mode: mode, source: p.Source, compiler: p.Compiler, audit: p.Audit, log: p.Log,
		failLog: map[string]time.Time{}, watches: map[*revocationWatch]struct{}{}, applied: make(chan struct{}, 1)}, nil
}

// Enabled reports whether requests are authenticated.
func (s *Security) Enabled() bool { return s.cfg.Enabled }

// Mode returns the conflict resolution in force.
func (s *Security) Mode() domain.ConflictMode { return s.mode }

// Load loads the first snapshot; a proxy with authentication on does not
// start without one.
func (s *Security) Load(ctx context.Context) error {
	if !s.cfg.Enabled {
		return nil
	}
	snap, err := s.source.Load(ctx)
	if err != nil {
		if s.cfg.Source == SourceFile {
			return fmt.Errorf("load the security policy (auth.source file, auth.file %q): %w", s.cfg.File, err)
		}
		return fmt.Errorf("load the security policy (auth.source %s): %w", s.cfg.Source, err)
	}
	return s.Apply(snap)
}

// Run follows the policy source, and revokes the streams and long polls
// whose secret expires, until ctx ends.
func (s *Security) Run(ctx context.Context) {
	if !s.cfg.Enabled {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.expireSecrets(ctx) })
	s.source.Watch(ctx, s.Revision(), s.Apply)
	wg.Wait()
}

// expireSecrets waits for the earliest future expiry of a secret in the
// policy in force and then revokes the principals that signed with a
// secret expired by then (Authenticate refuses new requests signed with
// it by itself). A secret's expiry is no policy change: nothing in the
// policy store announces it, so without this a stream opened before the
// expiry would outlive it until the next change of the policy.
func (s *Security) expireSecrets(ctx context.Context) {
	for {
		var fire <-chan time.Time
		var timer *time.Timer
		if next, ok := nextExpiry(s.state.Load(), time.Now()); ok {
			timer = time.NewTimer(time.Until(next))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-s.applied:
		case <-fire:
			s.revokeStale(s.state.Load())
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// nextExpiry returns the earliest expiry after now of a secret in st.
func nextExpiry(st *securityState, now time.Time) (next time.Time, ok bool) {
	if st == nil {
		return next, false
	}
	for _, u := range st.users {
		for _, t := range u.SecretExpiry {
			if !t.IsZero() && t.After(now) && (!ok || t.Before(next)) {
				next, ok = t, true
			}
		}
	}
	return next, ok
}

// Apply compiles a snapshot and puts it in force. A snapshot that does not
// compile is refused and the previous one stays.
func (s *Security) Apply(snap domain.PolicySnapshot) error {
	policy, err := s.compiler.Compile(snap.Entries)
	if err != nil {
		return err
	}
	users := make(map[string]domain.UserRecord, len(snap.Users))
	for _, u := range snap.Users {
		users[u.Name] = u
	}
	st := &securityState{revision: snap.Revision, users: users, policy: policy, loadedAt: time.Now()}
	s.state.Store(st)
	select {
	case s.applied <- struct{}{}:
	default:
	}
	s.revokeStale(st)
	return nil
}

// WatchRevocation calls revoke, at most once, when a policy applied later
// no longer accepts p: its user is deleted or disabled, or the secret it
// signed with is gone (changed), or when that secret expires (within
// moments of its expiry time, while Run runs). revoke runs in the goroutine that applies
// the policy, so it must only signal (cancel a context, close a channel);
// it gets the UNAUTHORIZED error to answer. A principal already revoked
// when the watch starts is revoked at once. stop ends the watch; call it
// when the stream or long poll ends. With authentication off it does
// nothing.
func (s *Security) WatchRevocation(p Principal, revoke func(error)) (stop func()) {
	if !s.cfg.Enabled || p.User.Name == "" {
		return func() {}
	}
	w := &revocationWatch{p: p, revoke: revoke}
	s.watchMu.Lock()
	s.watches[w] = struct{}{}
	s.watchMu.Unlock()
	// A policy applied (or a secret expired) between authentication and
	// now was not checked against w. (If Apply or the expiry loop checks
	// it too, only one of them fires.)
	if st := s.state.Load(); st != nil {
		if reason := rejects(st, p, time.Now()); reason != "" {
			s.watchMu.Lock()
			_, mine := s.watches[w]
			delete(s.watches, w)
			s.watchMu.Unlock()
			if mine {
				s.fire(st, w, reason)
			}
		}
	}
	return func() {
		s.watchMu.Lock()
		delete(s.watches, w)
		s.watchMu.Unlock()
	}
}

// revokeStale revokes the watched principals st does not accept, and
// audits each revocation.
func (s *Security) revokeStale(st *securityState) {
	type revoked struct {
		w      *revocationWatch
		reason string
	}
	var out []revoked
	now := time.Now()
	s.watchMu.Lock()
	for w := range s.watches {
		if reason := rejects(st, w.p, now); reason != "" {
			delete(s.watches, w)
			out = append(out, revoked{w, reason})
		}
	}
	s.watchMu.Unlock()
	for _, r := range out {
		s.fire(st, r.w, r.reason)
	}
}

// fire audits a revocation and signals it; w is already out of watches.
// The event names the stream or long poll that ends: the address,
// protocol, client id and request id of the request that opened it, and
// its operation (details "ended").
func (s *Security) fire(st *securityState, w *revocationWatch, reason string) {
	o := w.p.origin
	var details string
	if w.p.op != "" {
		b, _ := json.Marshal(struct {
			Ended string `json:"ended"`
		}{w.p.op})
		details = string(b)
	}
	s.record(domain.AuditEvent{Category: domain.AuditAuthn, Principal: w.p.User.Name, SourceIP: o.RemoteAddr.Addr(), Protocol: o.Protocol,
		Operation: "revoke", Decision: domain.AuditDeny, Reason: reason, Revision: st.revision, RequestID: o.RequestID, ClientID: o.ClientID,
		Details: details})
	w.revoke(errRevoked)
}

// errRevoked ends a stream or long poll whose principal was revoked; it
// says no more than a failed authentication does.
var errRevoked = domain.Errorf(domain.ReasonUnauthorized, "authentication failed: the credentials of this request are no longer valid; check the AccessKey and SecretKey the client is configured with")

// rejects returns why st no longer accepts p at now, or "".
func rejects(st *securityState, p Principal, now time.Time) string {
	u, ok := st.users[p.User.Name]
	switch {
	case !ok:
		return domain.ReasonUnknownUser
	case u.Status != domain.UserEnabled:
		return domain.ReasonUserDisabled
	}
	for i, secret := range u.Secrets {
		if bytes.Equal(secret, p.secret) {
			if u.SecretExpired(i, now) {
				return ReasonSecretExpired
			}
			return ""
		}
	}
	return ReasonSecretChanged
}

// Revision returns the policy revision in force (0 before the first load).
func (s *Security) Revision() int64 {
	if st := s.state.Load(); st != nil {
		return st.revision
	}
	return 0
}

// Health returns nil, or why the policy in force may be stale.
func (s *Security) Health() error {
	if !s.cfg.Enabled || s.source == nil {
		return nil
	}
	return s.source.Health()
}

// maxFailLog bounds the keys of the authentication failure log's rate
// limit.
const maxFailLog = 10000

var errUnauthorized = domain.Errorf(domain.ReasonUnauthorized, "authentication failed: check the AccessKey and SecretKey the client is configured with")

// Authenticate verifies credentials: the user must exist and be enabled,
// and HMAC-SHA1(secret, content) must equal the signature (constant-time,
// against each of the user's secrets) made with a secret whose expiry
// time, if it has one, has not come yet. Every failure answers the same
// UNAUTHORIZED message, so a client cannot learn whether a user exists;
// the audit event says why. op names the operation for the audit log.
func (s *Security) Authenticate(ctx context.Context, op string, c Credentials) (Principal, error) {
	st := s.state.Load()
	if st == nil {
		st = &securityState{}
	}
	reason := c.Fault
	var u domain.UserRecord
	var secret domain.Secret
	if reason == "" {
		var ok, expired bool
		u, ok = st.users[c.AccessKey]
		if ok {
			secret, expired = verify(u, time.Now(), c.Content, c.Signature)
		}
		switch {
		case !ok:
			reason = domain.ReasonUnknownUser
		case expired:
			reason = ReasonSecretExpired
		case secret == nil:
			reason = ReasonBadSignature
		case u.Status != domain.UserEnabled:
			reason = domain.ReasonUserDisabled
		}
	}
	if reason != "" {
		s.authnFailed(ctx, st, op, c.AccessKey, reason)
		return Principal{}, errUnauthorized
	}
	return Principal{User: u.User, Revision: st.revision, secret: secret, op: op, origin: ports.RequestInfoFrom(ctx)}, nil
}

// verify compares sig with HMAC-SHA1(secret, content) for every secret of
// u, always computing all of them, and returns the one that matches and
// has not expired at now (nil: none); expired reports that only a secret
// expired at now matches.
func verify(u domain.UserRecord, now time.Time, content, sig []byte) (match domain.Secret, expired bool) {
	for i, secret := range u.Secrets {
		m := hmac.New(sha1.New, secret)
		m.Write(content)
		if hmac.Equal(m.Sum(nil), sig) {
			if u.SecretExpired(i, now) {
				expired = true
			} else {
				match = secret
			}
		}
	}
	if len(sig) != sha1.Size {
		return nil, false
	}
	return match, expired && match == nil
}

// Sign returns HMAC-SHA1(secret, content), the signature clients compute.
func Sign(secret, content []byte) []byte {
	m := hmac.New(sha1.New, secret)
	m.Write(content)
	return m.Sum(nil)
}

// AuthenticationRefused audits, as an authentication failure of
// accessKey for reason, a request the protocol adapter refuses after
// [Security.Authenticate] accepted its signature (an admin call whose
// nonce was already used); the adapter answers it.
func (s *Security) AuthenticationRefused(ctx context.Context, op, accessKey, reason string) {
	st := s.state.Load()
	if st == nil {
		st = &securityState{}
	}
	s.authnFailed(ctx, st, op, accessKey, reason)
}

func (s *Security) authnFailed(ctx context.Context, st *securityState, op, ak, reason string) {
	info := ports.RequestInfoFrom(ctx)
	s.record(domain.AuditEvent{
		Category: domain.AuditAuthn, Principal: ak, SourceIP: info.RemoteAddr.Addr(), Protocol: info.Protocol,
		Operation: op, Decision: domain.AuditDeny, Reason: reason, Revision: st.revision,
		RequestID: info.RequestID, ClientID: info.ClientID,
	})
	// Log at most once per minute per (source address, AccessKey), and
	// remember at most maxFailLog keys: a client inventing a new AccessKey
	// per request cannot grow the map (or the log) without bound; the
	// audit log still gets every failure.
	key := info.RemoteAddr.Addr().String() + "\x00" + clipText(ak)
	now := time.Now()
	s.failMu.Lock()
	if now.Sub(s.failSeen) > time.Minute { // forget old keys so the map stays small
		for k, t := range s.failLog {
			if now.Sub(t) >= time.Minute {
				delete(s.failLog, k)
			}
		}
		s.failSeen = now
	}
	last, seen := s.failLog[key]
	logIt := (!seen && len(s.failLog) < maxFailLog) || (seen && now.Sub(last) >= time.Minute)
	if logIt {
		s.failLog[key] = now
	}
	s.failMu.Unlock()
	if logIt {
		s.log.LogAttrs(ctx, slog.LevelWarn, "authentication failed", slog.String("access_key", clipText(ak)),
			slog.String("reason", reason), slog.String("remote_addr", info.RemoteAddr.String()), slog.String("operation", op))
	}
}

func clipText(s string) string {
	return strings.ToValidUTF8(domain.Clip(s, 64), "?")
}

// Authorize checks that p may make every access in reqs (all must pass; the
// first denial decides). Denials answer FORBIDDEN naming the resource and
// the missing action; they are always audited, allowed requests only with
// auth.auditAllowed.
func (s *Security) Authorize(ctx context.Context, p Principal, op string, reqs []domain.AccessRequest) error {
	return s.authorize(ctx, p, op, reqs, s.cfg.AuditAllowed, false)
}

// AuthorizeAudited is Authorize for admin actions: the decision is audited
// whether it allows or denies, whatever auth.auditAllowed says, and an
// allowed action is refused (UNAVAILABLE, retryable) when its events cannot
// be buffered within auth.adminAuditWait: no admin action happens without
// its audit event.
func (s *Security) AuthorizeAudited(ctx context.Context, p Principal, op string, reqs []domain.AccessRequest) error {
	return s.authorize(ctx, p, op, reqs, true, true)
}

func (s *Security) authorize(ctx context.Context, p Principal, op string, reqs []domain.AccessRequest, auditAllowed, mustRecord bool) error {
	if !s.cfg.Enabled {
		return nil
	}
	st := s.state.Load()
	if st == nil {
		return domain.Errorf(domain.ReasonUnavailable, "the security policy is not loaded yet")
	}
	var d domain.AccessDecision
	var denied *domain.AccessRequest
	var each []domain.AccessDecision // the policy's decision of each request, for auditAllowed
	u, ok := st.users[p.User.Name]
	switch {
	case !ok:
		// Deleted since authentication (a policy swap in between).
		d, denied = domain.AccessDecision{Reason: domain.ReasonUnknownUser}, firstOr(reqs)
	case u.Status != domain.UserEnabled:
		d, denied = domain.AccessDecision{Reason: domain.ReasonUserDisabled}, firstOr(reqs)
	case u.Type == domain.UserSuper && s.cfg.SuperUserBypass:
		d = domain.AccessDecision{Allowed: true, Reason: domain.ReasonSuperUser}
	case !s.cfg.Authorization:
		d = domain.AccessDecision{Allowed: true, Reason: "authorization_disabled"}
	case len(reqs) == 0:
		// The request needs no access (a producer's heartbeat): being
		// authenticated is enough.
		d = domain.AccessDecision{Allowed: true, Reason: "no_access_needed"}
	default:
		subject := u.Subject()
		for i := range reqs {
			d = st.policy.Decide(subject, reqs[i])
			if !d.Allowed {
				denied = &reqs[i]
				break
			}
			if auditAllowed {
				each = append(each, d)
			}
		}
	}
	if denied == nil && d.Allowed {
		if auditAllowed {
			// One event per access, each with its own decision: the log
			// must name every topic and group a request was allowed (a
			// receive's topic, not only its group).
			recorded := true
			if len(reqs) == 0 {
				recorded = s.recordAllowed(ctx, s.decisionEvent(ctx, st, p, op, nil, d, domain.AuditAllow), mustRecord)
			}
			for i := range reqs {
				di := d
				if i < len(each) {
					di = each[i]
				}
				recorded = s.recordAllowed(ctx, s.decisionEvent(ctx, st, p, op, &reqs[i], di, domain.AuditAllow), mustRecord) && recorded
			}
			if !recorded {
				return domain.Errorf(domain.ReasonUnavailable, "%s was not performed: the audit log could not take its event within auth.adminAuditWait "+
					"(its buffer is full: the audit store is down or slow, see /readyz and rmqproxy_audit_dropped_total); retry later", op)
			}
		}
		return nil
	}
	s.recordDecision(ctx, st, p, op, denied, d, domain.AuditDeny)
	if denied == nil {
		return domain.Errorf(domain.ReasonForbidden, "%s has no permission for %s", p.User.Subject(), op)
	}
	return domain.Errorf(domain.ReasonForbidden, "%s has no permission to %s %s from %s",
		p.User.Subject(), denied.Actions.String(), denied.Resource.Key(), addrText(denied.SourceIP))
}

// AdminOutcome records what became of an admin call that was allowed (its
// authorization was audited before it ran): ok, or failed with reason
// (the protocol's answer, such as http_409). The event (category admin)
// names the call's principal, operation, resource and request id, so that
// an auditor can tell a change made from one attempted and refused by the
// handler (a create of a topic that exists, a delete of one that does
// not). It goes through the audit buffer, never blocking.
func (s *Security) AdminOutcome(ctx context.Context, p Principal, op string, reqs []domain.AccessRequest, ok bool, reason string) {
	if !s.cfg.Enabled {
		return
	}
	st := s.state.Load()
	if st == nil {
		st = &securityState{}
	}
	info := ports.RequestInfoFrom(ctx)
	e := domain.AuditEvent{Category: domain.AuditAdmin, Principal: p.User.Name, SourceIP: info.RemoteAddr.Addr(), Protocol: info.Protocol,
		Operation: op, Decision: domain.AuditAllow, Reason: reason, Revision: st.revision, RequestID: info.RequestID, ClientID: info.ClientID}
	if !ok {
		e.Decision = domain.AuditError
	}
	if len(reqs) > 0 {
		e.Resource, e.Actions = reqs[0].Resource.Key(), reqs[0].Actions.String()
	}
	s.record(e)
}

// Refuse denies a request that maps to no access at all (an operation the
// authorization table does not know): fail closed, for every user. The
// application also refuses with it what no policy decides (a request
// naming another user's client id): reqs, when given, are the accesses
// the request asked for, audited as one event each (as auditAllowed
// records an allowed request), so that the log names its group and topic.
func (s *Security) Refuse(ctx context.Context, p Principal, op, reason string, reqs ...domain.AccessRequest) error {
	if !s.cfg.Enabled {
		return nil
	}
	st := s.state.Load()
	if st == nil {
		st = &securityState{}
	}
	d := domain.AccessDecision{Reason: reason}
	if len(reqs) == 0 {
		s.recordDecision(ctx, st, p, op, nil, d, domain.AuditDeny)
	}
	for i := range reqs {
		s.recordDecision(ctx, st, p, op, &reqs[i], d, domain.AuditDeny)
	}
	return domain.Errorf(domain.ReasonForbidden, "%s is not permitted through this proxy", op)
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return "an unknown address"
	}
	return a.Unmap().String()
}

func firstOr(reqs []domain.AccessRequest) *domain.AccessRequest {
	if len(reqs) == 0 {
		return nil
	}
	return &reqs[0]
}

func (s *Security) recordDecision(ctx context.Context, st *securityState, p Principal, op string, req *domain.AccessRequest, d domain.AccessDecision, decision string) {
	s.record(s.decisionEvent(ctx, st, p, op, req, d, decision))
}

// recordAllowed records an allowed decision's event; when must, it waits
// up to auth.adminAuditWait for room, and reports whether it was taken.
func (s *Security) recordAllowed(ctx context.Context, e domain.AuditEvent, must bool) bool {
	if !must || s.audit == nil {
		s.record(e)
		return true
	}
	return s.audit.RecordWithin(ctx, s.clipped(e), s.cfg.AdminAuditWait)
}

func (s *Security) decisionEvent(ctx context.Context, st *securityState, p Principal, op string, req *domain.AccessRequest, d domain.AccessDecision, decision string) domain.AuditEvent {
	info := ports.RequestInfoFrom(ctx)
	e := domain.AuditEvent{
		Category: domain.AuditAuthz, Principal: p.User.Name, SourceIP: info.RemoteAddr.Addr(), Protocol: info.Protocol,
		Operation: op, Decision: decision, Reason: d.Reason, Revision: st.revision, RequestID: info.RequestID, ClientID: info.ClientID,
	}
	if req != nil {
		e.Resource, e.Actions = req.Resource.Key(), req.Actions.String()
	}
	return e
}

// maxAuditResource bounds an audit event's resource key: the longest key
// an entry can name (type, ":", a 1023-byte name, "*"), with room to spare.
// A request's resource is whatever its client wrote (denials of any
// length are audited), and the event waits in the sink's buffer, which
// bounds the number of events, not their size.
const maxAuditResource = 1100

func (s *Security) record(e domain.AuditEvent) {
	if s.audit == nil {
		return
	}
	s.audit.Record(s.clipped(e))
}

// clipped stamps e's time and bounds its resource key.
func (s *Security) clipped(e domain.AuditEvent) domain.AuditEvent {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if len(e.Resource) > maxAuditResource {
		e.Resource = strings.ToValidUTF8(e.Resource[:maxAuditResource], "") + "..."
	}
	return e
}

// AuditDropped returns how many audit events were dropped (0 without an
// audit sink).
func (s *Security) AuditDropped() uint64 {
	if s.audit == nil {
		return 0
	}
	return s.audit.Dropped()
}

// AuditStats returns the audit sink's counters, with the coalescing of
// refusals (zero without an audit sink).
func (s *Security) AuditStats() ports.AuditStats {
	if s.audit == nil {
		return ports.AuditStats{}
	}
	return s.audit.Stats()
}
