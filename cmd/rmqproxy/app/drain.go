package app

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"go.uber.org/fx"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/adapters/health"
)

// errDraining is the readiness of a proxy that is shutting down.
var errDraining = errors.New("the proxy is shutting down (draining its clients)")

// drainNotice is the first step of a graceful stop: it makes /readyz and
// grpc.health.v1 report not ready, then waits shutdown.drainDelay while
// everything still serves, so that load balancers stop sending new
// clients before the gRPC port closes and GOAWAYs reach the clients.
type drainNotice struct {
	draining atomic.Bool
}

// check fails once the stop began; the failure is expected, so the health
// server logs it at Info (a normal stop logs no Warn).
func (d *drainNotice) check(context.Context) error {
	if d.draining.Load() {
		return health.Expected(errDraining)
	}
	return nil
}

// drainModule provides the "shutdown" readiness check and the drain
// notice's OnStop hook. It must come last in Options so that its hook
// stops first.
func drainModule(cfg Root) fx.Option {
	return fx.Module("drain",
		fx.Provide(func() *drainNotice { return &drainNotice{} }),
		fx.Provide(health.AsCheck(func(d *drainNotice) health.Check { return health.Check{Name: "shutdown", Check: d.check} })),
		fx.Invoke(func(lc fx.Lifecycle, d *drainNotice, s *grpcadapter.Server, log *slog.Logger) {
			lc.Append(fx.Hook{OnStop: func(ctx context.Context) error {
				d.draining.Store(true)
				s.ReportNotServing()
				delay := cfg.Shutdown.DrainDelay
				log.InfoContext(ctx, "draining: reporting not ready", "drain_delay", delay)
				if delay <= 0 {
					return nil
				}
				t := time.NewTimer(delay)
				defer t.Stop()
				select {
				case <-t.C:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}})
		}),
	)
}
