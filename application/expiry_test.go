package application_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestSecretExpiresAtItsTime: a secret with an expiry time stops
// authenticating at that time, although no policy change announces it (the
// policy in force was loaded before), and the streams signed with it are
// revoked then, audited as secret_expired; the user's other secret keeps
// working. The expiry used to be applied only when a snapshot loaded: the
// secret stayed valid until the next change of the policy.
func TestSecretExpiresAtItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		expires := time.Now().Add(time.Hour)
		snap := domain.PolicySnapshot{Revision: 3, Users: []domain.UserRecord{{
			User:         domain.User{Name: "alice"},
			Secrets:      []domain.Secret{domain.Secret("old-secret"), domain.Secret("new-secret")},
			SecretExpiry: []time.Time{expires},
		}}}
		cfg := application.DefaultSecurityConfig()
		cfg.Enabled = true
		rec := &recorder{}
		sec, err := application.NewSecurity(application.SecurityParams{Config: cfg, Source: staticSource{snap}, Compiler: refCompiler{}, Audit: rec})
		if err != nil {
			t.Fatal(err)
		}
		if err := sec.Load(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { sec.Run(ctx) })
		defer func() { cancel(); wg.Wait() }()
		last := func() domain.AuditEvent {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.evs) == 0 {
				return domain.AuditEvent{}
			}
			return rec.evs[len(rec.evs)-1]
		}

		p, err := sec.Authenticate(t.Context(), "Telemetry", creds("alice", "old-secret", "20250101T000000Z"))
		if err != nil {
			t.Fatalf("before the expiry: %v", err)
		}
		var revoked atomic.Int32
		stop := sec.WatchRevocation(p, func(error) { revoked.Add(1) })
		defer stop()

		time.Sleep(time.Hour - time.Millisecond)
		synctest.Wait()
		if _, err := sec.Authenticate(t.Context(), "SendMessage", creds("alice", "old-secret", "x")); err != nil || revoked.Load() != 0 {
			t.Fatalf("just before the expiry: %v, revoked %d", err, revoked.Load())
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if revoked.Load() != 1 {
			t.Errorf("the stream signed with the expired secret was revoked %d times, want 1", revoked.Load())
		}
		if e := last(); e.Operation != "revoke" || e.Reason != application.ReasonSecretExpired {
			t.Errorf("revocation audited as %+v", e)
		}
		_, err = sec.Authenticate(t.Context(), "SendMessage", creds("alice", "old-secret", "x"))
		if !domain.HasReason(err, domain.ReasonUnauthorized) {
			t.Fatalf("at the expiry: %v", err)
		}
		if e := last(); e.Reason != application.ReasonSecretExpired || e.Category != domain.AuditAuthn {
			t.Errorf("refusal audited as %+v", e)
		}
		if _, err := sec.Authenticate(t.Context(), "SendMessage", creds("alice", "new-secret", "x")); err != nil {
			t.Errorf("the secret without expiry: %v", err)
		}
		// A watch started with a principal whose secret expired meanwhile
		// is revoked at once.
		var late atomic.Int32
		sec.WatchRevocation(p, func(error) { late.Add(1) })()
		if late.Load() != 1 {
			t.Errorf("late watch revoked %d times", late.Load())
		}
	})
}
