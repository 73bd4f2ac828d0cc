package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.uber.org/fx"
)

// ShutdownConfig gives each stage of a graceful stop its own time budget.
// The stages run one after the other, in reverse start order: the drain
// notice (not ready, still serving), the admin server, the gRPC drain, the
// use cases' background work, the storage engine, then the health server. A stage that runs out of its budget is logged and
// the next one still runs with its full budget, so the engine flushes and
// releases the data directory even when clients held the gRPC drain up.
// Requests a server's stage cuts off do not fail the stop (see
// stage.serving).
type ShutdownConfig struct {
	DrainDelay  time.Duration `yaml:"drainDelay" help:"at shutdown, how long the proxy goes on serving after it reports not ready (/readyz 503 and grpc.health.v1 NOT_SERVING), so that load balancers and Kubernetes Services stop sending it new clients before it closes its port; 0: close at once"`
	GRPCDrain   time.Duration `yaml:"grpcDrain" help:"at shutdown, how long in-flight gRPC requests may take to finish once the port stops accepting (long polls end at once); then they are cancelled and shutdown goes on"`
	EngineClose time.Duration `yaml:"engineClose" help:"at shutdown, how long the storage engine may take to flush, fsync, write its final snapshot and release the data directory (in cluster mode: to unregister from the brokers and wait for their answers to the pops of the long polls the stop ended); it runs after the gRPC drain, whether or not that finished in time"`
}

// DefaultShutdownConfig returns the defaults. The two stages together fit
// Kubernetes' default 30 s termination grace period; the small stages
// (5 s each at most) normally take milliseconds; the worst case of the
// whole stop ([StopTimeout]: five small stages and a margin) is 56 s, 61 s
// with the production profile's drain delay.
func DefaultShutdownConfig() ShutdownConfig {
	return ShutdownConfig{GRPCDrain: 10 * time.Second, EngineClose: 15 * time.Second}
}

// Validate checks that every budget is positive (the drain delay may be 0).
func (c ShutdownConfig) Validate() error {
	var errs []error
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("drainDelay must not be negative, not %v", c.DrainDelay))
	}
	if c.GRPCDrain <= 0 {
		errs = append(errs, fmt.Errorf("grpcDrain must be positive, not %v", c.GRPCDrain))
	}
	if c.EngineClose <= 0 {
		errs = append(errs, fmt.Errorf("engineClose must be positive, not %v", c.EngineClose))
	}
	return errors.Join(errs...)
}

// minorStageBudget bounds the stop of each of the small stages: the health
// and admin HTTP servers (quick requests only), the use cases'
// background loops and the telemetry flush.
const minorStageBudget = 5 * time.Second

// stopMargin is what the whole stop allows beyond the sum of the stages'
// budgets, for fx's own work between hooks.
const stopMargin = 5 * time.Second

// StopTimeout is the time the whole application has to stop: the sum of
// its stages' budgets and a margin. Past it the process gives up waiting.
func StopTimeout(cfg Root) time.Duration {
	return drainStageBudget(cfg) + cfg.Shutdown.GRPCDrain + cfg.Shutdown.EngineClose + 5*minorStageBudget + stopMargin
}

// drainStageBudget bounds the drain notice: its delay and a second for
// reporting not ready.
func drainStageBudget(cfg Root) time.Duration { return cfg.Shutdown.DrainDelay + time.Second }

// stage is one step of shutdown: the OnStop hooks of the modules it wraps.
type stage struct {
	name    string        // in logs: "gRPC drain"
	setting string        // the key of its budget, "" for a fixed one
	budget  time.Duration // for each OnStop hook of the stage
	// starting says what the stage's OnStart hooks do, for the log line
	// of a start cancelled by a signal (see [StartProgress]).
	starting string
	// startBudget bounds each OnStart hook of the stage; 0 leaves it
	// unbounded (see [StartTimeout]).
	startBudget time.Duration
	// serving: the stage stops a server, whose overrun only cuts off the
	// requests still in flight. That is logged, like any overrun, but is
	// no failure of the stop: rmqproxy still exits 0, as when the gRPC
	// drain cuts requests off. Other stages' errors make the stop fail.
	serving bool
	// hurried: the stage is cut short once the stop is hurried (a second
	// SIGTERM or SIGINT, see [WithHurry]): the drain notice and the gRPC
	// drain, which only wait for clients. The stages after them (the
	// engine's flush and close above all) keep their budgets.
	hurried bool
}

type hurryKey struct{}

// WithHurry returns a context for fx's Stop under which the stages that
// only wait for clients (the drain notice, the gRPC drain) end as soon as
// hurry is done, or at once if it is done already: what a second signal
// asks. Nothing that keeps data safe is cut short.
func WithHurry(ctx, hurry context.Context) context.Context {
	return context.WithValue(ctx, hurryKey{}, hurry)
}

// inStage runs the OnStop hooks that opts register with a context of
// their own, bounded by the stage's budget and not by the stages before
// it. It decorates fx.Lifecycle for opts only.
func inStage(s stage, opts ...fx.Option) fx.Option {
	return fx.Module("shutdown stage "+s.name, append([]fx.Option{
		fx.Decorate(func(lc fx.Lifecycle, log *slog.Logger) fx.Lifecycle {
			return &stagedLifecycle{Lifecycle: lc, stage: s, log: log}
		}),
	}, opts...)...)
}

// stagedLifecycle gives every OnStop hook appended to it its stage's
// budget, and every OnStart hook a context that a cancelled start ends
// (see [WithStartCancel]).
type stagedLifecycle struct {
	fx.Lifecycle
	stage stage
	log   *slog.Logger
}

func (l *stagedLifecycle) Append(h fx.Hook) {
	if start := h.OnStart; start != nil {
		h.OnStart = func(ctx context.Context) error { return l.start(ctx, start) }
	}
	if stop := h.OnStop; stop != nil {
		h.OnStop = func(ctx context.Context) error { return l.stop(ctx, stop) }
	}
	l.Lifecycle.Append(h)
}

// stop runs one OnStop hook with the stage's budget. The context is
// detached from ctx's deadline (the whole stop's, which is longer than the
// sum of the stages) so that an earlier stage's overrun cannot eat into
// this one; ctx's values are kept.
func (l *stagedLifecycle) stop(ctx context.Context, hook func(context.Context) error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.stage.budget)
	defer cancel()
	hurry, _ := ctx.Value(hurryKey{}).(context.Context)
	if l.stage.hurried && hurry != nil {
		defer context.AfterFunc(hurry, cancel)()
	}
	start := time.Now()
	err := hook(sctx)
	switch {
	case errors.Is(sctx.Err(), context.DeadlineExceeded):
		attrs := []any{"stage", l.stage.name, "budget", l.stage.budget, "took", time.Since(start).Round(time.Millisecond)}
		if l.stage.setting != "" {
			attrs = append(attrs, "setting", l.stage.setting)
		}
		if err != nil {
			attrs = append(attrs, "error", err)
		}
		l.log.WarnContext(ctx, "shutdown stage ran out of its time budget; going on with the next stage", attrs...)
		if l.stage.serving && errors.Is(err, context.DeadlineExceeded) {
			return nil // requests cut off at the budget: logged above
		}
	case sctx.Err() != nil && hurry != nil && hurry.Err() != nil:
		l.log.InfoContext(ctx, "shutdown stage cut short by a second signal", "stage", l.stage.name,
			"took", time.Since(start).Round(time.Millisecond))
		if errors.Is(err, context.Canceled) {
			return nil // it waited for clients only
		}
	}
	return err
}
