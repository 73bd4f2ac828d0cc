package localbroker

import (
	"context"
	"log/slog"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
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
