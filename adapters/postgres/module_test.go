package postgres_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/goleak"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

// TestFailedStartClosesThePool: when PostgreSQL cannot be reached at
// start, the start fails naming postgres.dsn and the pool is closed: fx
// does not stop a hook whose start failed, and the pool's health-check
// goroutine was left running.
func TestFailedStartClosesThePool(t *testing.T) {
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there
	app := fx.New(fx.NopLogger,
		fx.Supply(postgres.Config{DSN: "postgres://u:secret@" + addr + "/db?connect_timeout=2", MaxConns: 2}),
		fx.Provide(postgres.NewPool),
		fx.Invoke(func(*pgxpool.Pool) {}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = app.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "postgres.dsn") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("start: %v; want a failure naming postgres.dsn without the password", err)
	}
}
