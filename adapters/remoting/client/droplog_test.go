package client_test

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// records is a slog.Handler that keeps every record's level and message.
type records struct {
	mu  sync.Mutex
	got []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rec)
	return nil
}

// count returns how many records of msg were logged at level (any level
// when all).
func (r *records) count(msg string, level slog.Level, all bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.got {
		if rec.Message == msg && (all || rec.Level == level) {
			n++
		}
	}
	return n
}

// TestDroppedConnectionsAreWarnedOnce: a peer that accepts connections
// and closes them at once (a port forwarded to nothing) had every drop
// logged at WARN, about 100 lines while the start waited for two such
// NameServers; the first drop of an address is a WARN, the next ones
// within a minute DEBUG, the address working again is said once, and a
// drop after that is a WARN again.
func TestDroppedConnectionsAreWarnedOnce(t *testing.T) {
	var healthy atomic.Bool
	fb := newFakeBroker(t, func(p *peer) {
		if healthy.Load() {
			echo(p)
		}
	})
	logs := &records{}
	c := newClient(t, client.Config{ConnsPerAddr: 1, Logger: slog.New(logs)})
	const dropped, worksAgain = "remoting connection dropped", "remoting connection works again"
	for fb.acceptedConns() < 20 {
		if _, err := c.Invoke(t.Context(), fb.addr(), request("x")); err == nil {
			t.Fatal("a call through a connection the peer closes succeeded")
		}
	}
	waitfor.True(t, 10*time.Second, 10*time.Millisecond, "every connection's drop logged", func() bool {
		return logs.count(dropped, 0, true) == fb.acceptedConns()
	})
	if n := logs.count(dropped, slog.LevelWarn, false); n != 1 {
		t.Fatalf("%d of %d drops logged at WARN, want 1", n, fb.acceptedConns())
	}

	healthy.Store(true)
	waitfor.Condition(t, 10*time.Second, 10*time.Millisecond, func() error {
		_, err := c.Invoke(t.Context(), fb.addr(), request("x"))
		return err
	})
	for range 3 {
		if _, err := c.Invoke(t.Context(), fb.addr(), request("x")); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.count(worksAgain, slog.LevelInfo, false); n != 1 {
		t.Fatalf("the address working again was logged %d times at INFO, want 1", n)
	}

	healthy.Store(false)
	fb.closeConns()
	waitfor.True(t, 10*time.Second, 10*time.Millisecond, "a drop after the recovery warned about", func() bool {
		return logs.count(dropped, slog.LevelWarn, false) == 2
	})
}
