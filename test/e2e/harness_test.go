package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
)

func TestMain(m *testing.M) {
	// The Go client logs to files under its log root; keep them out of $HOME.
	dir, err := os.MkdirTemp("", "rmqproxy-e2e-client-logs")
	if err != nil {
		panic(err)
	}
	os.Setenv("rocketmq.client.logRoot", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proxy is an rmqproxy running in this process.
type proxy struct {
	addr    string // gRPC address for clients
	admin   *application.Admin
	dataDir string
	fx      *fxtest.App
}

// testConfig is the configuration tests start from: loopback, port 0, a
// private data directory, and short consumer minimums so that invisible-time
// tests run in seconds.
func testConfig(t *testing.T) app.Root {
	cfg := app.Defaults(app.ProfileDevelopment)
	dir := t.TempDir()
	cfg.GRPC.Address = "127.0.0.1:0"
	cfg.GRPC.TLS.SelfSignedDir = filepath.Join(dir, "tls")
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Health.Address = "127.0.0.1:0"
	cfg.Local.DataDir = filepath.Join(dir, "data")
	cfg.Local.AutoCreateTopics = false
	cfg.Local.AutoCreateGroups = true
	cfg.Messaging.Consumer.MinInvisibleTime = time.Second
	cfg.Messaging.Consumer.MinLongPolling = time.Second
	// Push consumers long-poll this long and wait for it when they stop.
	cfg.Messaging.Consumer.MaxLongPolling = 5 * time.Second
	cfg.Log.Level = "warn"
	return cfg
}

// startProxy runs rmqproxy in process until the test ends.
func startProxy(t *testing.T, cfg app.Root) *proxy {
	t.Helper()
	var srv *grpcadapter.Server
	p := &proxy{dataDir: cfg.Local.DataDir}
	p.fx = fxtest.New(t, app.Options(cfg, testLogger(t)), fx.Populate(&srv, &p.admin))
	p.fx.RequireStart()
	t.Cleanup(p.fx.RequireStop)
	p.addr = srv.Addr().String()
	return p
}

// testLogger fails the test on any Error-level log the test did not expect.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(&failOnError{t: t, h: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})})
}

type failOnError struct {
	t *testing.T
	h slog.Handler
}

func (f *failOnError) Enabled(ctx context.Context, l slog.Level) bool { return f.h.Enabled(ctx, l) }
func (f *failOnError) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		f.t.Errorf("unexpected error log: %s", r.Message)
	}
	return f.h.Handle(ctx, r)
}
func (f *failOnError) WithAttrs(a []slog.Attr) slog.Handler {
	return &failOnError{t: f.t, h: f.h.WithAttrs(a)}
}
func (f *failOnError) WithGroup(n string) slog.Handler {
	return &failOnError{t: f.t, h: f.h.WithGroup(n)}
}

func (p *proxy) createTopic(t *testing.T, name string, typ domain.MessageType, queues int32) {
	t.Helper()
	if _, err := p.admin.CreateTopic(t.Context(), application.TopicSpec{Name: name, Type: typ, QueueCount: queues}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

func (p *proxy) createGroup(t *testing.T, s application.GroupSpec) {
	t.Helper()
	if _, err := p.admin.CreateGroup(t.Context(), s); err != nil {
		t.Fatalf("create group %s: %v", s.Name, err)
	}
}

func (p *proxy) clientConfig(group string) *rmq.Config {
	return &rmq.Config{Endpoint: p.addr, ConsumerGroup: group, Credentials: nil}
}

func newProducer(t *testing.T, p *proxy, topics ...string) rmq.Producer {
	t.Helper()
	pr, err := rmq.NewProducer(p.clientConfig(""), rmq.WithTopics(topics...))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatalf("producer start: %v", err)
	}
	t.Cleanup(func() { _ = pr.GracefulStop() })
	return pr
}

func newSimpleConsumer(t *testing.T, p *proxy, group string, await time.Duration, subs map[string]*rmq.FilterExpression) rmq.SimpleConsumer {
	t.Helper()
	c, err := rmq.NewSimpleConsumer(p.clientConfig(group), rmq.WithSimpleAwaitDuration(await), rmq.WithSimpleSubscriptionExpressions(subs))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("simple consumer start: %v", err)
	}
	t.Cleanup(func() { _ = c.GracefulStop() })
	return c
}

// waitFor polls cond until it returns nil or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for err := cond(); err != nil; err = cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", d, err)
		}
		<-tick.C
	}
}

// collector records received messages by id, counting duplicates.
type collector struct {
	mu   sync.Mutex
	seen map[string]*rmq.MessageView
	dups int
}

func newCollector() *collector { return &collector{seen: map[string]*rmq.MessageView{}} }

func (c *collector) add(m *rmq.MessageView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[m.GetMessageId()]; ok {
		c.dups++
		return
	}
	c.seen[m.GetMessageId()] = m
}

func (c *collector) count() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.dups
}

func (c *collector) wantAtLeast(n int) func() error {
	return func() error {
		if got, _ := c.count(); got < n {
			return fmt.Errorf("received %d of %d", got, n)
		}
		return nil
	}
}

// isNoMessage reports whether err is the MESSAGE_NOT_FOUND status a simple
// consumer's Receive returns when long polling found nothing.
func isNoMessage(err error) bool {
	var st *rmq.ErrRpcStatus
	return errors.As(err, &st) && st.GetCode() == int32(v2.Code_MESSAGE_NOT_FOUND)
}
