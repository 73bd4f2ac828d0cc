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
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
)

// StartTimeout bounds each start-up stage's OnStart hooks (connecting to
// PostgreSQL, loading the policy, binding the ports, waiting for a
// NameServer, which has its own cluster.startTimeout as well), but for
// local mode's recovery of the data directory: its time grows with the
// data (a damaged index is rebuilt by reading the whole commit log), and a
// start cut off would only begin it again, so it is bounded by nothing
// but a signal. The stop's is [StopTimeout], from the stages' budgets.
const StartTimeout = 10 * time.Minute

// NewLogger builds the process logger from the log settings.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	lv, _ := c.level()
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: durationsAsText}
	// otel.LogHandler adds the trace id, client id and request id of the
	// request a record is logged for.
	if c.Format == "json" {
		return slog.New(otel.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(otel.LogHandler(slog.NewTextHandler(w, opts)))
}

// durationsAsText logs every duration attribute (drain_delay, the access
// log's duration, expires_in ...) as Go writes it, "5s" or "1.5ms", in
// both formats: slog's JSON handler would write nanoseconds, a bare
// number whose unit the reader has to guess, while its text handler
// writes "5s". The slog.HandlerOptions.ReplaceAttr hook of NewLogger.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
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
		inStage(stage{name: "telemetry flush", startBudget: StartTimeout, budget: minorStageBudget, starting: "starting the telemetry exporters"}, observabilityModule(cfg)),
		traceBrokerCalls(cfg),
		releaseDeletedNames(cfg),
		inStage(stage{name: "health", startBudget: StartTimeout, budget: minorStageBudget, serving: true, starting: "starting the health endpoints"}, health.Module),
		inStage(stage{name: "engine close", setting: "shutdown.engineClose", budget: cfg.Shutdown.EngineClose, startBudget: brokerStartBudget(cfg), starting: brokerStarting(cfg)}, brokerModule(cfg)),
		inStage(stage{name: "background work", startBudget: StartTimeout, budget: minorStageBudget, starting: "starting the background work and loading the traffic rules"}, applicationModule, trafficfile.Module),
		inStage(stage{name: "security", startBudget: StartTimeout, budget: minorStageBudget, starting: securityStarting(cfg)}, securityModule(cfg)),
		inStage(stage{name: "gRPC drain", startBudget: StartTimeout, setting: "shutdown.grpcDrain", budget: cfg.Shutdown.GRPCDrain, serving: true, hurried: true, starting: "starting the gRPC server"}, grpcadapter.Module),
		inStage(stage{name: "admin API", startBudget: StartTimeout, budget: minorStageBudget, serving: true, starting: "starting the admin API"}, admin.Module, fx.Invoke(reportBoundPort)),
		// Stops first: not ready, still serving, for shutdown.drainDelay.
		inStage(stage{name: "drain notice", startBudget: StartTimeout, setting: "shutdown.drainDelay", budget: drainStageBudget(cfg), hurried: true}, drainModule(cfg)),
	)
}

// brokerStartBudget bounds the broker side's start: the wait for a
// NameServer in cluster mode; nothing in local mode, whose recovery ends
// when it is done or on a signal (see [StartTimeout]).
func brokerStartBudget(cfg Root) time.Duration {
	if cfg.Mode == ModeCluster {
		return StartTimeout
	}
	return 0
}

// brokerStarting says what the broker side's start does.
func brokerStarting(cfg Root) string {
	if cfg.Mode == ModeCluster {
		return "waiting for a NameServer of cluster.nameServers to answer"
	}
	return "recovering the data directory (local.dataDir)"
}

// securityStarting says what the security module's start does.
func securityStarting(cfg Root) string {
	switch {
	case !cfg.Auth.Enabled:
		return "starting the security module"
	case cfg.Auth.Source == application.SourcePostgres:
		return "connecting to PostgreSQL (postgres.dsn) and loading the security policy"
	}
	return "loading the security policy (auth.file)"
}

func brokerModule(cfg Root) fx.Option {
	if cfg.Mode == ModeCluster {
		return cluster.Module
	}
	return localbroker.Module
}
