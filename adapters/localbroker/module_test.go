package localbroker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/tmpfs"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

func TestModuleLifecycle(t *testing.T) {
	cfg := testConfig(t.TempDir())
	var broker ports.Broker
	var admin ports.Admin
	var meta ports.Metadata
	var engine *Engine
	var txns ports.Transactions
	var recaller ports.Recaller
	var offsets ports.Offsets
	app := fxtest.New(t,
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		fx.Provide(func() ports.Clock { return ports.SystemClock{} }),
		Module,
		fx.Populate(&broker, &admin, &meta, &engine, &txns, &recaller, &offsets),
	)
	// Registered before the engine starts, as the application does.
	txns.SetTransactionCheckHandler(func(context.Context, ports.TransactionCheck) {})
	app.RequireStart()
	if txns != engine || recaller != engine || offsets != engine {
		t.Fatal("the ports are not bound to the engine")
	}
	if _, err := admin.CreateTopic(t.Context(), domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.Send(t.Context(), domain.QueueRef{Topic: "t", BrokerName: cfg.BrokerName}, []domain.Message{msg("t", "a", "")}); err != nil {
		t.Fatal(err)
	}
	if tp, err := meta.Topic(t.Context(), "t"); err != nil || tp.Name != "t" {
		t.Fatalf("Topic: %v", err)
	}
	app.RequireStop()
	// The data survives the lifecycle.
	e, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	got, err := e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 5})
	if err != nil || len(got) != 1 {
		t.Fatalf("after restart: %v %v", got, err)
	}
}

func TestModuleRejectsBadConfig(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Flush = "sometimes"
	app := fx.New(
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		fx.Provide(func() ports.Clock { return ports.SystemClock{} }),
		Module,
		fx.Invoke(func(ports.Broker) {}),
		fx.NopLogger,
	)
	if err := app.Err(); err == nil {
		t.Fatal("bad config accepted")
	}
}

// TestModuleReadinessCheck: the module registers the engine's readiness with
// the health server: not ready before it started, ready once open, not
// ready once closed.
func TestModuleReadinessCheck(t *testing.T) {
	cfg := testConfig(t.TempDir())
	var checks struct {
		fx.In
		All []health.Check `group:"readiness"`
	}
	app := fxtest.New(t,
		fx.Supply(cfg, slog.New(slog.DiscardHandler)),
		fx.Provide(func() ports.Clock { return ports.SystemClock{} }),
		Module,
		fx.Populate(&checks),
	)
	if len(checks.All) != 1 || checks.All[0].Name != "localbroker" {
		t.Fatalf("readiness checks: %+v", checks.All)
	}
	check := checks.All[0].Check
	if err := check(t.Context()); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Fatalf("before start: %v", err)
	}
	app.RequireStart()
	if err := check(t.Context()); err != nil {
		t.Fatalf("open: %v", err)
	}
	app.RequireStop()
	if err := check(t.Context()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("after stop: %v", err)
	}
}

// TestCheckDataDir: an unusable data directory is reported with the
// setting's name and the cause.
func TestCheckDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{file, filepath.Join(file, "sub")} {
		err := CheckDataDir(dir)
		if err == nil || !strings.Contains(err.Error(), `local.dataDir "`+dir+`"`) || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("%s: %v", dir, err)
		}
	}
	if err := CheckDataDir(filepath.Join(t.TempDir(), "new", "dir")); err != nil {
		t.Fatalf("a new directory: %v", err)
	}
	ro := tmpfs.Mount(t, "1m")
	if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	if err := CheckDataDir(ro); err == nil || !strings.Contains(err.Error(), "is not writable") || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("a read-only file system: %v", err)
	}
}

// TestReadyReportsRecoveryAndHighWater: readiness says when the engine is
// recovering, and when the disk is past local.diskHighWater.
func TestReadyReportsRecoveryAndHighWater(t *testing.T) {
	h := newClosedHarness(t, nil)
	h.open()
	h.send("t", 0, msg("t", "a", ""))
	if err := h.e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Recovery blocks in its first fdatasync until released.
	release := make(chan struct{})
	e, err := New(h.cfg, h.logger(), h.clock)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	e.syncFault = func(f *os.File) error {
		once.Do(func() { <-release })
		return f.Sync()
	}
	started := make(chan error, 1)
	go func() { started <- e.Start(context.Background()) }()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if err := e.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), "recovering") {
			return fmt.Errorf("readiness while recovering: %v", err)
		}
		return nil
	})
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(t.Context()); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	e.cfg.DiskHighWater = 1e-9 // any used byte is past it
	if err := e.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), "local.diskHighWater") {
		t.Fatalf("past the high-water mark: %v", err)
	}
	h.e = e
}
