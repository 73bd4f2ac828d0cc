package bench_test

import (
	"crypto/rand"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
	"github.com/jackc/pgx/v5/pgxpool"

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
