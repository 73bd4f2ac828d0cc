package app

import (
	"io"
	"log/slog"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/cluster"
	"github.com/rmqproxy/rmqproxy/adapters/config"
	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker"
	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/adapters/trafficfile"
	"github.com/rmqproxy/rmqproxy/ports"
)

// StartTimeout bounds the whole application's start, which includes local
// storage recovery. The stop's is [StopTimeout], from the stages' budgets.
const StartTimeout = 10 * time.Minute

// NewLogger builds the process logger from the log settings.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	lv, _ := c.level()
	opts := &slog.HandlerOptions{Level: lv}
	// otel.LogHandler adds the trace id, client id and request id of the
	// request a record is logged for.
	if c.Format == "json" {
		return slog.New(otel.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(otel.LogHandler(slog.NewTextHandler(w, opts)))
}

// Options returns the fx options of the whole proxy for cfg. The broker
// side is chosen by cfg.Mode: the embedded engine (local) or the Remoting
// adapter in front of a RocketMQ cluster (cluster).
func Options(cfg Root, log *slog.Logger) fx.Option {
	cfg.Derive()
	return fx.Options(
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.SlogLogger{Logger: log.With("component", "fx")}
			l.UseLogLevel(slog.LevelDebug)
			// fx's own error lines repeat, wrapped in its chain of
			// constructors, the error rmqproxy prints when it stops: keep
			// them for debugging only.
			l.UseErrorLevel(slog.LevelDebug)
			return l
		}),
		fx.StartTimeout(StartTimeout),
		fx.StopTimeout(StopTimeout(cfg)),
		fx.Supply(log),
		fx.Provide(func() ports.Clock { return ports.SystemClock{} }),
		config.Module(cfg),
		// Each module's OnStop hooks run with their stage's own budget.
		// They start in this order and stop in reverse (admin, gRPC,
		// application, engine, health, telemetry): the health endpoints
		// come up first, so that /readyz reports the engine's recovery,
		// and go last but for the telemetry, which flushes the spans and
		// metrics of everything before it.
		inStage(stage{name: "telemetry flush", budget: minorStageBudget}, observabilityModule(cfg)),
		traceBrokerCalls(cfg),
		inStage(stage{name: "health", budget: minorStageBudget, serving: true}, health.Module),
		inStage(stage{name: "engine close", setting: "shutdown.engineClose", budget: cfg.Shutdown.EngineClose}, brokerModule(cfg)),
		inStage(stage{name: "background work", budget: minorStageBudget}, applicationModule, trafficfile.Module),
		inStage(stage{name: "security", budget: minorStageBudget}, securityModule(cfg)),
		inStage(stage{name: "gRPC drain", setting: "shutdown.grpcDrain", budget: cfg.Shutdown.GRPCDrain, serving: true, hurried: true}, grpcadapter.Module),
		inStage(stage{name: "admin API", budget: minorStageBudget, serving: true}, admin.Module),
		// Stops first: not ready, still serving, for shutdown.drainDelay.
		inStage(stage{name: "drain notice", setting: "shutdown.drainDelay", budget: drainStageBudget(cfg), hurried: true}, drainModule(cfg)),
	)
}

func brokerModule(cfg Root) fx.Option {
	if cfg.Mode == ModeCluster {
		return cluster.Module
	}
	return localbroker.Module
}
