package postgres_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/domain"
)

// hungServer accepts TCP connections and never answers: PostgreSQL that
// hangs (a stalled host, a network black hole after the handshake). It
// reports each accepted connection on accepted.
func hungServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 64)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// TestSourceHealthAnswersWhilePostgresHangs: the readiness check
// (Source.Health) must answer at once while a reload waits on a PostgreSQL
// that does not answer; it used to wait for the reload's lock, up to the
// reload's 30 s timeout, so /readyz timed out and the proxy was taken out
// of service exactly when it should report "degraded" and keep serving.
func TestSourceHealthAnswersWhilePostgresHangs(t *testing.T) {
	addr, accepted := hungServer(t)
	dsn := "postgres://rmqproxy@" + addr + "/rmqproxy?sslmode=disable&connect_timeout=60"
	store := postgres.NewStore(pool(t, dsn), nil, "test-proxy")
	cfg := postgres.DefaultConfig()
	cfg.ReloadInterval = 20 * time.Millisecond
	cfg.ReconnectDelay = time.Hour
	src := postgres.NewSource(store, dsn, cfg, discard())

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Watch(ctx, 1, func(domain.PolicySnapshot) error { return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })

	// The LISTEN connection and the pool's connection of a reload are both
	// accepted and hang.
	for range 2 {
		select {
		case <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("the source did not connect")
		}
	}
	answered := make(chan struct{})
	go func() { _ = src.Health(); close(answered) }()
	select {
	case <-answered:
	case <-time.After(time.Second):
		t.Error("Source.Health did not answer within 1s while a reload waits on PostgreSQL")
		cancel()
		<-answered
	}
}
