package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/ports"
)

// NewPool returns the connection pool for cfg.DSN. It does not dial:
// OnStart pings PostgreSQL and checks that the schema is the one this build
// knows (so a proxy refuses to start on a newer or missing schema), and
// OnStop closes the pool. A failed OnStart closes it too (fx stops only
// the hooks that started), ending the pool's health-check goroutine.
func NewPool(lc fx.Lifecycle, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: postgres.dsn is not a PostgreSQL connection string")
	}
	pc.MaxConns = cfg.MaxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", redact(err))
	}
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				pool.Close()
				return fmt.Errorf("postgres: connect (postgres.dsn): %w", redact(err))
			}
			if _, err := CheckSchema(ctx, pool); err != nil {
				pool.Close()
				return fmt.Errorf("postgres: %w", err)
			}
			return nil
		},
		OnStop: func(context.Context) error { pool.Close(); return nil },
	})
	return pool, nil
}

// ProxyID names this process in audit events: host name, PID and a
// random instance id chosen once per process. Host name and PID alone
// repeat (a restarted container is often PID 1 on the same host name),
// and the audit writer's seq starts again at 1 in every process, so
// (proxy id, seq) identifies an event only with the instance id.
var ProxyID = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(b[:])
})

func newKeyring(cfg Config) (*Keyring, error) {
	if cfg.SecretKeys == "" {
		return nil, fmt.Errorf("postgres: postgres.secretKeys is required: the keys user secrets are encrypted with")
	}
	return ParseKeyring(cfg.SecretKeys, cfg.ActiveSecretKey)
}

// Module provides the policy source (ports.PolicySource) and the audit
// sink (ports.AuditSink) over PostgreSQL, with the pool, the keyring and
// the [Store]. It needs a [Config] and an *slog.Logger.
var Module = fx.Module("postgres",
	fx.Decorate(func(log *slog.Logger) *slog.Logger { return log.With("component", "postgres") }),
	fx.Provide(
		NewPool,
		newKeyring,
		func(pool *pgxpool.Pool, keys *Keyring) *Store { return NewStore(pool, keys, ProxyID()) },
		fx.Annotate(func(store *Store, cfg Config, log *slog.Logger) *Source {
			return NewSource(store, cfg.DSN, cfg, log)
		}, fx.As(new(ports.PolicySource))),
		fx.Annotate(func(lc fx.Lifecycle, pool *pgxpool.Pool, cfg Config, log *slog.Logger) *AuditWriter {
			w := NewAuditWriter(pool, ProxyID(), cfg.Audit, log)
			lc.Append(fx.Hook{OnStart: w.Start, OnStop: w.Stop})
			return w
		}, fx.As(new(ports.AuditSink))),
	),
)
