package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"go.uber.org/fx"
)

// TestStageOverrunDoesNotStarveTheNext: a first stage whose hook holds on
// until its budget is gone is logged, and the stage after it (the engine's)
// still runs, with a live context of its own, even though the first used
// up more than the whole stop's context would have left it.
func TestStageOverrunDoesNotStarveTheNext(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var (
		drainDeadline time.Time
		engineCtxErr  error = errors.New("engine stage never ran")
		engineLeft    time.Time
	)
	app := fx.New(
		fx.NopLogger,
		fx.Supply(log),
		// Appended first, so stopped last: like the engine.
		inStage(stage{name: "engine close", setting: "shutdown.engineClose", budget: time.Hour}, fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{OnStop: func(ctx context.Context) error {
				engineCtxErr = ctx.Err()
				engineLeft, _ = ctx.Deadline()
				return nil
			}})
		})),
		inStage(stage{name: "gRPC drain", setting: "shutdown.grpcDrain", budget: 50 * time.Millisecond, serving: true}, fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{OnStop: func(ctx context.Context) error {
				drainDeadline, _ = ctx.Deadline()
				<-ctx.Done() // a drain that clients hold up
				return nil
			}})
		})),
	)
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The whole stop has a deadline far beyond the drain's budget, as in
	// serve; what matters is that each stage gets its own.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := app.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if engineCtxErr != nil {
		t.Fatalf("engine stage context: %v", engineCtxErr)
	}
	if !engineLeft.After(drainDeadline.Add(30 * time.Minute)) {
		t.Fatalf("engine stage deadline %v is not its own hour after the drain's %v", engineLeft, drainDeadline)
	}
	out := logs.String()
	if !strings.Contains(out, "shutdown stage ran out of its time budget") || !strings.Contains(out, `stage="gRPC drain"`) ||
		!strings.Contains(out, "setting=shutdown.grpcDrain") || strings.Contains(out, `stage="engine close"`) {
		t.Fatalf("logs:\n%s", out)
	}
}

// TestStopTimeoutCoversTheStages: the whole stop waits for every stage's
// budget, so fx never cuts the last stage short.
func TestStopTimeoutCoversTheStages(t *testing.T) {
	cfg := Defaults(ProfileDevelopment)
	cfg.Shutdown.DrainDelay, cfg.Shutdown.GRPCDrain, cfg.Shutdown.EngineClose = time.Minute, time.Minute, 2*time.Minute
	if got, min := StopTimeout(cfg), 4*time.Minute+3*minorStageBudget; got <= min {
		t.Fatalf("StopTimeout %v, want more than %v", got, min)
	}
	if err := (ShutdownConfig{}).Validate(); err == nil || !strings.Contains(err.Error(), "grpcDrain") || !strings.Contains(err.Error(), "engineClose") || strings.Contains(err.Error(), "drainDelay") {
		t.Fatalf("zero budgets: %v", err)
	}
	if err := (ShutdownConfig{DrainDelay: -time.Second, GRPCDrain: 1, EngineClose: 1}).Validate(); err == nil || !strings.Contains(err.Error(), "drainDelay") {
		t.Fatalf("negative drain delay: %v", err)
	}
}

// TestServingStageOverrunIsNoFailure: a server's stop that runs out of its
// budget because requests are still in flight (an HTTP server's graceful
// shutdown returns its context's error then) is logged, and the stop
// succeeds, so that rmqproxy exits 0 (a /debug/pprof/profile or an admin
// call in flight at SIGTERM made it exit 1, while a gRPC drain cut short
// does not); a stage that does not serve still fails the stop.
func TestServingStageOverrunIsNoFailure(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	held := func(name string) fx.Option {
		return fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{OnStop: func(ctx context.Context) error {
				<-ctx.Done() // a request still in flight
				return fmt.Errorf("%s: graceful shutdown: %w", name, ctx.Err())
			}})
		})
	}
	for _, serving := range []bool{true, false} {
		app := fx.New(fx.NopLogger, fx.Supply(log),
			inStage(stage{name: "health", budget: 50 * time.Millisecond, serving: serving}, held("health")))
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		err := app.Stop(ctx)
		cancel()
		if serving && err != nil {
			t.Fatalf("a serving stage's overrun failed the stop: %v", err)
		}
		if !serving && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("another stage's overrun: stop returned %v", err)
		}
		if out := logs.String(); !strings.Contains(out, "shutdown stage ran out of its time budget") || !strings.Contains(out, "graceful shutdown") {
			t.Fatalf("the overrun is not logged with its error:\n%s", out)
		}
	}
}

// TestSecondSignalCutsTheWaitForClientsShort: once the stop is hurried (a
// second SIGTERM), the stages that only wait for clients (drain notice,
// gRPC drain) end at once, whatever their budget, and without failing the
// stop; the engine's stage after them runs with its whole budget.
func TestSecondSignalCutsTheWaitForClientsShort(t *testing.T) {
	var logs logbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var engineCtxErr error = errors.New("engine stage never ran")
	waiting := make(chan struct{})
	app := fx.New(
		fx.NopLogger,
		fx.Supply(log),
		inStage(stage{name: "engine close", setting: "shutdown.engineClose", budget: time.Hour}, fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{OnStop: func(ctx context.Context) error {
				engineCtxErr = ctx.Err()
				return nil
			}})
		})),
		inStage(stage{name: "drain notice", setting: "shutdown.drainDelay", budget: time.Hour, hurried: true}, fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{OnStop: func(ctx context.Context) error {
				close(waiting)
				<-ctx.Done() // a drain delay of an hour
				return ctx.Err()
			}})
		})),
	)
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	hurry, hurryNow := context.WithCancel(context.Background())
	defer hurryNow()
	go func() {
		<-waiting
		hurryNow() // the second signal
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := app.Stop(WithHurry(ctx, hurry)); err != nil {
		t.Fatalf("stop: %v; logs:\n%s", err, logs.String())
	}
	if engineCtxErr != nil {
		t.Fatalf("engine stage context: %v", engineCtxErr)
	}
	if !strings.Contains(logs.String(), "cut short by a second signal") {
		t.Fatalf("no log of the hurried stage:\n%s", logs.String())
	}
}

// TestStartBudgetRollsBack: a stage whose start hook outlives its start
// budget (PostgreSQL that never answers) fails, saying what it did and for
// how long, and fx then stops the stage that had started before it, with a
// live context: the whole start has no deadline that would leave the
// rollback an expired one. A stage without a budget (local recovery) is
// not cut off.
func TestStartBudgetRollsBack(t *testing.T) {
	var (
		stopped     bool
		stopCtxErr  error
		unboundedOK bool
	)
	app := fx.New(
		fx.NopLogger,
		fx.Supply(slog.New(slog.DiscardHandler)),
		inStage(stage{name: "engine close", budget: time.Minute, starting: "recovering the data directory (local.dataDir)"}, fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{
				OnStart: func(ctx context.Context) error {
					// Longer than the next stage's budget: no budget here.
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(300 * time.Millisecond):
						unboundedOK = true
						return nil
					}
				},
				OnStop: func(ctx context.Context) error {
					stopped, stopCtxErr = true, ctx.Err()
					return nil
				},
			})
		})),
		inStage(stage{name: "security", budget: time.Minute, startBudget: 100 * time.Millisecond, starting: "connecting to PostgreSQL (postgres.dsn)"}, fx.Invoke(func(lc fx.Lifecycle) {
			lc.Append(fx.Hook{OnStart: func(ctx context.Context) error {
				<-ctx.Done() // a server that never answers
				return fmt.Errorf("postgres: connect (postgres.dsn): %w", ctx.Err())
			}})
		})),
	)
	err := app.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connecting to PostgreSQL (postgres.dsn) did not finish within 100ms") {
		t.Fatalf("start: %v", err)
	}
	if !unboundedOK {
		t.Fatal("the stage without a start budget was cut off")
	}
	if !stopped || stopCtxErr != nil {
		t.Fatalf("the stage started before was stopped: %v, with context error %v", stopped, stopCtxErr)
	}
}
