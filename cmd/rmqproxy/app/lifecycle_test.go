package app_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.uber.org/fx"
	"go.uber.org/goleak"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

// lifecycleConfig is a local-mode configuration with every reload loop on
// (certificate files, traffic rules, policy file) and short intervals.
func lifecycleConfig(t *testing.T) app.Root {
	t.Helper()
	cfg := testenv.Config(t)
	dir := t.TempDir()
	ca := testenv.NewCA(t)
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	ca.WriteServerCert(t, 2, cert, key)
	cfg.GRPC.TLS.CertFile, cfg.GRPC.TLS.KeyFile, cfg.GRPC.TLS.ReloadInterval = cert, key, 10*time.Millisecond
	cfg.Admin.TLS.Enabled, cfg.Admin.TLS.CertFile, cfg.Admin.TLS.KeyFile, cfg.Admin.TLS.ReloadInterval = true, cert, key, 10*time.Millisecond
	rules := filepath.Join(dir, "traffic.yaml")
	if err := os.WriteFile(rules, []byte("clients:\n  send: {messagesPerSecond: 1000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Traffic.RulesFile, cfg.Traffic.ReloadInterval = rules, 10*time.Millisecond
	cfg.Local.AutoCreateTopics = true
	return cfg
}

// startStop starts the whole proxy in this process with cfg, runs use
// while it serves, stops it, runs what use returned, and returns the
// start's error.
func startStop(t *testing.T, cfg app.Root, use func(addr string) (after func())) error {
	t.Helper()
	var srv *grpcadapter.Server
	a := fx.New(app.Options(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), fx.Populate(&srv))
	if err := a.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		return err
	}
	after := func() {}
	if use != nil {
		after = use(srv.Addr().String())
	}
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	after()
	return nil
}

// TestStartStopLeavesNoGoroutines: a whole start and stop of the proxy in
// this process, with clients connected, a long poll and a Telemetry
// stream open when it stops, and every reload loop running, leaves no
// goroutine of its own behind.
func TestStartStopLeavesNoGoroutines(t *testing.T) {
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := lifecycleConfig(t)
	err := startStop(t, cfg, func(addr string) func() {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
		if err != nil {
			t.Fatal(err)
		}
		c := v2.NewMessagingServiceClient(conn)
		ctx := metadata.AppendToOutgoingContext(t.Context(),
			"x-mq-client-id", "lifecycle-1", "x-mq-language", "GO", "x-mq-client-version", "5.1.4", "x-mq-protocol", "v2")
		resp, err := c.SendMessage(ctx, &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage("life-t", []byte("m"), "")}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send: %v %v", resp, err)
		}
		stream, err := c.Telemetry(ctx)
		if err != nil {
			t.Fatal(err)
		}
		testenv.SendSettings(t, stream, v2.ClientType_SIMPLE_CONSUMER, "life-g", "life-t")
		// Receive what was sent, then leave a long poll open.
		req := testenv.ReceiveRequest("life-g", "life-t", 32, time.Minute)
		if st, msgs, err := (&testenv.RawClient{MessagingServiceClient: c}).ReceiveWith(ctx, req); err != nil || len(msgs) != 1 {
			t.Fatalf("receive: %v %d messages, %v", st, len(msgs), err)
		}
		req.LongPollingTimeout = durationpb.New(5 * time.Second)
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			_, _, _ = (&testenv.RawClient{MessagingServiceClient: c}).ReceiveWith(ctx, req)
		}()
		return func() { <-polled; conn.Close() }
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFailedStartLeavesNoGoroutines: a start that fails, in a constructor
// or in a start hook after others have run, stops what had started (no
// goroutine left, the data directory unlocked for the next start).
func TestFailedStartLeavesNoGoroutines(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for name, breakIt := range map[string]func(*app.Root){
		"admin port in use":     func(c *app.Root) { c.Admin.Address = busy.Addr().String() },
		"gRPC port in use":      func(c *app.Root) { c.GRPC.Address = busy.Addr().String() },
		"health port in use":    func(c *app.Root) { c.Health.Address = busy.Addr().String() },
		"bad gRPC certificate":  func(c *app.Root) { c.GRPC.TLS.CertFile = c.Traffic.RulesFile },
		"bad admin certificate": func(c *app.Root) { c.Admin.TLS.CertFile = c.Traffic.RulesFile },
		"bad traffic rules":     func(c *app.Root) { c.Traffic.RulesFile = c.GRPC.TLS.KeyFile },
		"missing policy file": func(c *app.Root) {
			c.Auth.Enabled, c.Auth.Source, c.Auth.File = true, "file", c.Traffic.RulesFile+".none"
		},
		"unreachable PostgreSQL": func(c *app.Root) {
			c.Auth.Enabled, c.Postgres.DSN = true, "postgres://u:p@"+busyClosed(t)+"/db?connect_timeout=1"
			c.Postgres.SecretKeys = "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32))
		},
		"no NameServer": func(c *app.Root) {
			c.Mode, c.Cluster.NameServers, c.Cluster.StartTimeout = app.ModeCluster, []string{busyClosed(t)}, time.Second
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
			cfg := lifecycleConfig(t)
			good := cfg
			breakIt(&cfg)
			err := startStop(t, cfg, nil)
			if err == nil {
				t.Fatal("started")
			}
			t.Logf("start: %v", err)
			if name == "missing policy file" && !strings.Contains(err.Error(), `auth.file "`+cfg.Auth.File+`"`) {
				t.Errorf("the error does not name auth.file and its path")
			}
			// The data directory is free again: the next start succeeds.
			if err := startStop(t, good, nil); err != nil {
				t.Fatalf("start after the failed one: %v", err)
			}
		})
	}
}

// busyClosed returns a loopback address nothing listens on.
func busyClosed(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestLockedDataDirLeavesNoGoroutines: a second proxy on the data
// directory of a running one fails to start, saying the directory is
// locked, and leaves nothing running; the first one is unaffected.
func TestLockedDataDirLeavesNoGoroutines(t *testing.T) {
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := lifecycleConfig(t)
	err := startStop(t, cfg, func(string) func() {
		defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
		second := lifecycleConfig(t)
		second.Local.DataDir = cfg.Local.DataDir
		err := startStop(t, second, nil)
		if err == nil || !strings.Contains(err.Error(), "is locked") {
			t.Errorf("second start on a locked data directory: %v", err)
		}
		return func() {}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStartStopWithPostgresLeavesNoGoroutines: with authentication on
// over PostgreSQL (the policy watcher, the audit writer, the pool), a
// whole start and stop leaves no goroutine behind.
func TestStartStopWithPostgresLeavesNoGoroutines(t *testing.T) {
	dsn := pgenv.Database(t)
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := lifecycleConfig(t)
	cfg.Auth.Enabled, cfg.Postgres.DSN = true, dsn
	cfg.Postgres.SecretKeys = "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	if err := startStop(t, cfg, nil); err != nil {
		t.Fatal(err)
	}
}

// TestCancelledStartLeavesNoGoroutines: a start cancelled while it waits
// for a NameServer (cluster mode, nothing listening) returns once the
// wait has ended, having stopped the modules that had started (the
// telemetry and the health server): no goroutine is left behind. The
// progress says what the start was doing.
func TestCancelledStartLeavesNoGoroutines(t *testing.T) {
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := lifecycleConfig(t)
	cfg.Mode, cfg.Cluster.NameServers, cfg.Cluster.StartTimeout = app.ModeCluster, []string{busyClosed(t)}, 10*time.Minute
	a := fx.New(app.Options(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err := a.Err(); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	defer cancel()
	var progress app.StartProgress
	const waiting = "waiting for a NameServer of cluster.nameServers to answer"
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		defer cancel()
		deadline := time.Now().Add(time.Minute)
		for progress.Doing() != waiting && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}()
	// The start's own deadline, far shorter than the 10-minute wait: a
	// start that the cancel did not end returns at this deadline instead.
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	err := a.Start(app.WithStartCancel(ctx, cancelled, &progress))
	<-watched
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("start: %v, want cancelled", err)
	}
	if got := progress.Doing(); got != waiting {
		t.Fatalf("progress %q, want %q", got, waiting)
	}
	if ctx.Err() != nil {
		t.Fatalf("the cancelled start returned only at its own deadline: %v", err)
	}
	t.Logf("start: %v", err)
}
