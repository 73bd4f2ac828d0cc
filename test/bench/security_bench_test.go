package bench_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rmqproxy/rmqproxy/adapters/casbin"
	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// BenchmarkProduceWithAuth measures what authentication, authorization and
// audit cost on the produce path: 1 KiB durable sends from 16 senders of
// the Go producer, with auth off, on (signature checked, ACL decided with
// the cache, only denials audited), and on with every allowed send audited
// to PostgreSQL (auth.auditAllowed).
func BenchmarkProduceWithAuth(b *testing.B) {
	for _, mode := range []string{"off", "on", "on+audit-every-send"} {
		b.Run("auth="+mode, func(b *testing.B) {
			cfg := testenv.Config(b)
			var creds *credentials.SessionCredentials
			if mode != "off" {
				dsn := pgenv.Database(b)
				var k [32]byte
				_, _ = rand.Read(k[:])
				keys := "k1:" + base64.StdEncoding.EncodeToString(k[:])
				ring, _ := postgres.ParseKeyring(keys, "")
				pool, err := pgxpool.New(b.Context(), dsn)
				if err != nil {
					b.Fatal(err)
				}
				defer pool.Close()
				admin := application.NewSecurityAdmin(postgres.NewStore(pool, ring, "bench"))
				by := ports.Actor{Principal: "bench"}
				if _, err := admin.CreateUser(b.Context(), by, domain.User{Name: "producer"}, domain.Secret("producer-secret-0123456789")); err != nil {
					b.Fatal(err)
				}
				res, _ := domain.ParseResource("Topic:bench*")
				if err := admin.PutEntries(b.Context(), by, []domain.ACLEntry{{Subject: "User:producer", Resource: res, Actions: domain.ActionPub, Decision: domain.Allow}}, false, false); err != nil {
					b.Fatal(err)
				}
				cfg.Auth.Enabled = true
				cfg.Auth.AuditAllowed = mode == "on+audit-every-send"
				cfg.Postgres.DSN, cfg.Postgres.SecretKeys = dsn, keys
				creds = &credentials.SessionCredentials{AccessKey: "producer", AccessSecret: "producer-secret-0123456789"}
			}
			p := testenv.Start(b, cfg)
			p.CreateTopic(b, "bench", domain.MessageTypeNormal, 8)
			pr, err := rmq.NewProducer(&rmq.Config{Endpoint: p.Addr, Credentials: creds}, rmq.WithTopics("bench"))
			if err != nil {
				b.Fatal(err)
			}
			if err := pr.Start(); err != nil {
				b.Fatal(err)
			}
			defer pr.GracefulStop()
			b.SetBytes(int64(len(body1KiB)))
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range 16 {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := pr.Send(b.Context(), &rmq.Message{Topic: "bench", Body: body1KiB}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkRequestSecurity measures the CPU cost of the security checks of
// one request, without the network: parse the authorization header,
// verify its HMAC-SHA1 signature against the user's secret, and decide
// Pub on a topic with the casbin authorizer (the subject has 10 or 1000
// literal entries and a prefix Allow), through the decision cache or
// without it; and the same with every allowed request audited to
// PostgreSQL (the writer's COPY batches run in their own goroutine; this
// measures Record and what the writer takes from the CPU the benchmark
// shares).
func BenchmarkRequestSecurity(b *testing.B) {
	const secret = "producer-secret-0123456789"
	policy := func(b *testing.B, entries int) string {
		var sb strings.Builder
		sb.WriteString("users:\n  - {name: producer, secret: \"" + secret + "\"}\nacls:\n  - subject: User:producer\n    policies:\n      - policyType: Custom\n        entries:\n")
		for i := range entries - 1 {
			fmt.Fprintf(&sb, "          - {resource: \"Topic:other-%04d\", actions: [Pub], decision: Allow}\n", i)
		}
		sb.WriteString("          - {resource: \"Topic:bench-*\", actions: [Pub], decision: Allow}\n")
		name := filepath.Join(b.TempDir(), "policy.yaml")
		if err := os.WriteFile(name, []byte(sb.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		return name
	}
	discard := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name      string
		entries   int
		cache     int
		authorize bool
		audit     bool
	}{
		{"authn-only", 10, 100000, false, false},
		{"entries=10/cached", 10, 100000, true, false},
		{"entries=10/uncached", 10, 0, true, false},
		{"entries=1000/cached", 1000, 100000, true, false},
		{"entries=1000/uncached", 1000, 0, true, false},
		{"entries=10/cached+audit-every-request", 10, 100000, true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := application.DefaultSecurityConfig()
			cfg.Enabled, cfg.Source, cfg.CacheSize, cfg.AuditAllowed = true, application.SourceFile, tc.cache, tc.audit
			var sink ports.AuditSink
			var writer *postgres.AuditWriter
			if tc.audit {
				pool, err := pgxpool.New(b.Context(), pgenv.Database(b))
				if err != nil {
					b.Fatal(err)
				}
				defer pool.Close()
				writer = postgres.NewAuditWriter(pool, "bench", postgres.DefaultConfig().Audit, discard)
				if err := writer.Start(b.Context()); err != nil {
					b.Fatal(err)
				}
				defer func() { _ = writer.Stop(context.Background()) }()
				sink = writer
			}
			sec, err := application.NewSecurity(application.SecurityParams{Config: cfg,
				Source: policyfile.NewSource(policy(b, tc.entries), time.Hour, discard), Compiler: casbin.NewCompiler(domain.DenyOverrides, tc.cache),
				Audit: sink, Log: discard})
			if err != nil {
				b.Fatal(err)
			}
			if err := sec.Load(b.Context()); err != nil {
				b.Fatal(err)
			}
			ctx := ports.WithRequestInfo(b.Context(), ports.RequestInfo{Protocol: "grpc", RemoteAddr: netip.MustParseAddrPort("10.0.0.1:40000"), ClientID: "bench"})
			auth, dt := application.SignRequest("producer", []byte(secret), time.Now())
			reqs := make([]domain.AccessRequest, 64)
			for i := range reqs {
				reqs[i] = domain.AccessRequest{Resource: domain.TopicResource(fmt.Sprintf("bench-%02d", i)), Actions: domain.ActionPub, SourceIP: netip.MustParseAddr("10.0.0.1")}
			}
			// Warm the decision cache (a miss happens once per user,
			// resource, actions and address per policy revision).
			if p, err := sec.Authenticate(ctx, "warm-up", application.Credentials{AccessKey: "producer", Content: []byte(dt), Signature: application.Sign([]byte(secret), []byte(dt))}); err == nil {
				for i := range reqs {
					_ = sec.Authorize(ctx, p, "warm-up", reqs[i:i+1])
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ak, sig, err := application.ParseAuthorization(auth)
				if err != nil {
					b.Fatal(err)
				}
				p, err := sec.Authenticate(ctx, "SendMessage", application.Credentials{AccessKey: ak, Content: []byte(dt), Signature: sig})
				if err != nil {
					b.Fatal(err)
				}
				if tc.authorize {
					if err := sec.Authorize(ctx, p, "SendMessage", reqs[i%len(reqs):i%len(reqs)+1]); err != nil {
						b.Fatal(err)
					}
				}
				i++
			}
			b.StopTimer()
			if writer != nil {
				st := writer.Stats()
				b.ReportMetric(float64(st.Dropped), "dropped")
			}
		})
	}
}
