package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	adminapi "github.com/rmqproxy/rmqproxy/adapters/admin"
	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/goclient"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// Main runs a test binary's tests and leaves nothing behind: the Go
// client's log files go to a temporary directory instead of
// $HOME/logs/rocketmq, and that directory and the rmqproxy binary [Binary]
// built are removed when the tests end. Directories that earlier runs
// left behind because they were killed (a test timeout) are removed at the
// start. Call it from TestMain.
func Main(m *testing.M) int { return withTestDirs(m.Run) }

// withTestDirs runs f with the client's log directory set up and removes
// it and the built binary afterwards.
func withTestDirs(f func() int) int {
	removeStaleTemp()
	dir, err := os.MkdirTemp("", tempPrefix("client-logs"))
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	defer removeBinary()
	goclient.LogTo(dir)
	return f()
}

// tempPrefix names a temporary directory of this test process:
// rmqproxy-test-PID-KIND-.
func tempPrefix(kind string) string {
	return fmt.Sprintf("rmqproxy-test-%d-%s-", os.Getpid(), kind)
}

// removeStaleTemp removes the temporary directories of test processes that
// are gone. Those of running processes (other test runs) stay.
func removeStaleTemp() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "rmqproxy-test-*-*-*"))
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), "rmqproxy-test-%d-", &pid); err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// Proxy is an rmqproxy under test, in this process or in a child process
// (see [UseChildProcess]).
type Proxy struct {
	t       testing.TB // the test it serves, for name claims (see Claim)
	Addr    string     // gRPC address for clients
	Admin   AdminAPI
	DataDir string
	fx      *fxtest.App
	child   *Child
	health  string
	admin   string // the admin API's address, in process
}

// AdminAddr is the address of the proxy's admin HTTP API (for the CLI),
// empty when it is disabled.
func (p *Proxy) AdminAddr() string {
	if p.child != nil {
		return p.child.AdminAddr
	}
	return p.admin
}

// HealthAddr is the address of the health port (/livez, /readyz,
// /metrics).
func (p *Proxy) HealthAddr() string {
	if p.child != nil {
		return p.child.HealthAddr
	}
	return p.health
}

// Logs returns what a proxy run as a child process logged so far (its
// stderr, copied as it comes); a proxy in this process logs to the test's
// output instead, and Logs fails the test.
func (p *Proxy) Logs(t testing.TB) string {
	t.Helper()
	if p.child == nil {
		t.Fatal("Logs needs a proxy run as a child process (testenv.UseChildProcess)")
	}
	return p.child.Output()
}

// PID is the process id of a proxy run as a child process, 0 for one in
// this process.
func (p *Proxy) PID() int {
	if p.child == nil {
		return 0
	}
	return p.child.PID()
}

// AdminAPI is the part of the admin use case tests drive; the in-process
// *application.Admin and the admin HTTP client (*admin.Client) both have it.
type AdminAPI interface {
	CreateTopic(ctx context.Context, s application.TopicSpec) (domain.Topic, error)
	UpdateTopic(ctx context.Context, s application.TopicSpec) (domain.Topic, error)
	CreateGroup(ctx context.Context, s application.GroupSpec) (domain.ConsumerGroup, error)
	UpdateGroup(ctx context.Context, s application.GroupSpec) (domain.ConsumerGroup, error)
	Topic(ctx context.Context, name string) (domain.Topic, error)
	GroupStats(ctx context.Context, name string) ([]ports.QueueStats, error)
}

// UseChildProcess makes [Start] run the rmqproxy binary as a child process
// (built with the race detector when this test binary is, or when
// RMQPROXY_TEST_CHILD_RACE=1) instead of in this process. The end-to-end
// tests set it: the official Go client v5.1.4 has data races of its own
// (it applies a settings update from its Telemetry goroutine while sends
// read them, and reads a start-up error without synchronisation), so a test
// process that uses it cannot run under the race detector, while the proxy
// it talks to still must.
var UseChildProcess bool

// Config is the configuration tests start from: loopback, port 0, a
// private data directory, and short consumer minimums so that invisible-time
// tests run in seconds. In the cluster pass (see [Target]) it is cluster
// mode in front of a broker of the test's own.
func Config(t testing.TB) app.Root {
	cfg := app.Defaults(app.ProfileDevelopment)
	dir := t.TempDir()
	cfg.GRPC.Address = "127.0.0.1:0"
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
	applyTarget(t, &cfg)
	return cfg
}

// Start runs rmqproxy with cfg until the test ends. Any log at Error level
// the proxy writes fails the test.
func Start(t testing.TB, cfg app.Root) *Proxy {
	t.Helper()
	reportClockSteps(t)
	if UseChildProcess {
		return startChildWithConfig(t, cfg)
	}
	return StartInProcess(t, cfg)
}

// StartInProcess runs rmqproxy with cfg in this process, whatever
// [UseChildProcess] says, with opts added to its fx options (for example
// an fx.Decorate of [ports.Clock] to give the proxy a clock that differs
// from the brokers'), until the test ends. Any log at Error level the
// proxy writes fails the test. The test process then cannot use the race
// detector (see UseChildProcess).
func StartInProcess(t testing.TB, cfg app.Root, opts ...fx.Option) *Proxy {
	t.Helper()
	var srv *grpcadapter.Server
	var admin *application.Admin
	var hs *health.Server
	var as *adminapi.Server
	p := &Proxy{t: t, DataDir: cfg.Local.DataDir}
	p.fx = fxtest.New(t, app.Options(cfg, Logger(t)), fx.Options(opts...), fx.Populate(&srv, &admin, &hs, &as))
	p.fx.RequireStart()
	p.Admin = admin
	if a := as.Addr(); a != nil {
		p.admin = a.String()
	}
	t.Cleanup(p.fx.RequireStop)
	p.Addr = srv.Addr().String()
	p.health = hs.Addr().String()
	return p
}

// Logger fails the test on any Error-level log the test did not expect.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(&failOnError{t: t, h: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})})
}

type failOnError struct {
	t testing.TB
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

func (p *Proxy) CreateTopic(t testing.TB, name string, typ domain.MessageType, queues int32) {
	t.Helper()
	Claim(t, "topic", name)
	if _, err := p.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: name, Type: typ, QueueCount: queues}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

func (p *Proxy) CreateGroup(t testing.TB, s application.GroupSpec) {
	t.Helper()
	Claim(t, "consumer group", s.Name)
	if _, err := p.Admin.CreateGroup(t.Context(), s); err != nil {
		t.Fatalf("create group %s: %v", s.Name, err)
	}
}

// Subscriber creates a normal topic with queues queues and a consumer
// group, and returns a raw client subscribed to the topic as a simple
// consumer of the group.
func (p *Proxy) Subscriber(t testing.TB, topic, group string, queues int32) *RawClient {
	t.Helper()
	p.CreateTopic(t, topic, domain.MessageTypeNormal, queues)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	return raw
}

func (p *Proxy) ClientConfig(group string) *rmq.Config {
	if p.t != nil {
		Claim(p.t, "consumer group", group)
	}
	return &rmq.Config{Endpoint: p.Addr, ConsumerGroup: group, Credentials: nil}
}

func NewProducer(t testing.TB, p *Proxy, topics ...string) rmq.Producer {
	t.Helper()
	pr, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(topics...))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatalf("producer start: %v", err)
	}
	t.Cleanup(func() { _ = pr.GracefulStop() })
	return pr
}

// StartPushConsumer starts an official Go push consumer of group through
// p, subscribed to every message of topic, that hands each message to
// consume. Stopping it is left to the test: some stop it halfway.
func StartPushConsumer(t testing.TB, p *Proxy, group, topic string, consume func(*rmq.MessageView) rmq.ConsumerResult,
	opts ...rmq.PushConsumerOption) rmq.PushConsumer {
	t.Helper()
	opts = append([]rmq.PushConsumerOption{
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}),
		rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: consume}),
	}, opts...)
	pc, err := rmq.NewPushConsumer(p.ClientConfig(group), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	return pc
}

// NewSimpleConsumer starts an official Go simple consumer of group through
// p, stopped when the test ends. Its Ack fails when the proxy refuses the
// ack (see checkedConsumer), which the client's own Ack does not report.
func NewSimpleConsumer(t testing.TB, p *Proxy, group string, await time.Duration, subs map[string]*rmq.FilterExpression) rmq.SimpleConsumer {
	t.Helper()
	c, err := rmq.NewSimpleConsumer(p.ClientConfig(group), rmq.WithSimpleAwaitDuration(await), rmq.WithSimpleSubscriptionExpressions(subs))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("simple consumer start: %v", err)
	}
	t.Cleanup(func() { _ = c.GracefulStop() })
	return checkedConsumer{c}
}

// WaitFor polls cond until it returns nil or the deadline passes.
func WaitFor(t testing.TB, d time.Duration, cond func() error) {
	t.Helper()
	waitfor.Condition(t, d, 20*time.Millisecond, cond)
}

// ReceiveBodies receives n messages with c, acks each and returns their
// bodies in the order received.
func ReceiveBodies(t testing.TB, c rmq.SimpleConsumer, n int) []string {
	t.Helper()
	var got []string
	WaitFor(t, 2*time.Minute, func() error {
		ms, err := c.Receive(t.Context(), int32(n-len(got)), time.Minute)
		for _, m := range ms {
			got = append(got, string(m.GetBody()))
			if err := c.Ack(t.Context(), m); err != nil {
				t.Fatalf("ack of %s: %v", m.GetBody(), err)
			}
		}
		if err != nil && !IsNoMessage(err) {
			return err
		}
		if len(got) < n {
			return fmt.Errorf("received %v, want %d messages", got, n)
		}
		return nil
	})
	return got
}

// Collector records received messages by id, counting duplicates.
type Collector struct {
	mu   sync.Mutex
	seen map[string]*rmq.MessageView
	dups int
}

func NewCollector() *Collector { return &Collector{seen: map[string]*rmq.MessageView{}} }

func (c *Collector) Add(m *rmq.MessageView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[m.GetMessageId()]; ok {
		c.dups++
		return
	}
	c.seen[m.GetMessageId()] = m
}

func (c *Collector) Count() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.dups
}

func (c *Collector) WantAtLeast(n int) func() error {
	return func() error {
		if got, _ := c.Count(); got < n {
			return fmt.Errorf("received %d of %d", got, n)
		}
		return nil
	}
}

// ReceiveAnswered receives once from c (batch messages at most, invisible
// for invisible) and returns what came, failing t unless the proxy
// answered: with messages or with "no message". A check that nothing is
// delivered uses it: a receive that failed otherwise (a deadline, a broken
// connection) saw nothing and would have passed without looking. A failed
// receive is retried for up to receiveAnsweredWithin.
func ReceiveAnswered(t testing.TB, c rmq.SimpleConsumer, batch int32, invisible time.Duration) []*rmq.MessageView {
	t.Helper()
	var ms []*rmq.MessageView
	err := waitfor.Poll(receiveAnsweredWithin, 100*time.Millisecond, func() error {
		var err error
		ms, err = c.Receive(t.Context(), batch, invisible)
		if err != nil && !IsNoMessage(err) {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no receive was answered: %v", err)
	}
	return ms
}

// ReceiveFirst receives from c (one message, invisible for invisible)
// until a message comes, for up to within, and returns it; it fails t when
// none came or a receive failed otherwise than with "no message".
func ReceiveFirst(t testing.TB, c rmq.SimpleConsumer, within, invisible time.Duration) *rmq.MessageView {
	t.Helper()
	var got *rmq.MessageView
	WaitFor(t, within, func() error {
		ms, err := c.Receive(t.Context(), 1, invisible)
		if len(ms) > 0 {
			got = ms[0]
			return nil
		}
		if err == nil || IsNoMessage(err) {
			return errors.New("no message yet")
		}
		return err
	})
	return got
}

// receiveAnsweredWithin is how long ReceiveAnswered retries failed receives.
var receiveAnsweredWithin = time.Minute

// IsNoMessage reports whether err is the MESSAGE_NOT_FOUND status a simple
// consumer's Receive returns when long polling found nothing.
func IsNoMessage(err error) bool {
	var st *rmq.ErrRpcStatus
	return errors.As(err, &st) && st.GetCode() == int32(v2.Code_MESSAGE_NOT_FOUND)
}
