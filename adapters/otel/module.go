package otel

import (
	"context"
	"log/slog"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/internal/httpserve"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// Params are the module's dependencies: its three configuration sections,
// the access-log switches and the process description from the
// composition root, and the logger.
type Params struct {
	fx.In

	OTLP    OTLPConfig
	Tracing TracingConfig
	Metrics MetricsConfig
	Logging Logging
	Info    Info
	Log     *slog.Logger
}

// Logging carries the log settings the adapter passes on to the
// [observe.Telemetry]: log.access and log.bodies.
type Logging struct {
	AccessLog bool
	LogBodies bool
}

// Module provides the *[Provider], the *observe.Telemetry the inbound
// adapters record with, and the /metrics route (fx value group
// httproutes, mounted by the health and admin servers) when
// metrics.prometheus is on. The providers are flushed and shut down at
// stop (a flush that fails is logged, as any failed export, and does not
// fail the stop): list the module before the servers so that it stops
// after them.
var Module = fx.Module("otel",
	fx.Decorate(func(log *slog.Logger) *slog.Logger { return log.With("component", "otel") }),
	fx.Provide(
		newModuleProvider,
		func(p *Provider) *observe.Telemetry { return p.Telemetry() },
		fx.Annotate(metricsRoutes, fx.ResultTags(`group:"`+httpserve.RoutesGroup+`,flatten"`)),
	),
	fx.Invoke(func(lc fx.Lifecycle, p *Provider, log *slog.Logger) {
		lc.Append(fx.StopHook(func(ctx context.Context) error {
			// As every failed export, a final flush that cannot reach the
			// collector is logged and its data dropped: it does not fail
			// the stop (rmqproxy would exit 1 after a clean shutdown).
			if err := p.Shutdown(ctx); err != nil {
				log.WarnContext(ctx, "the final telemetry flush failed; its data is dropped", slog.Any("error", err))
			}
			return nil
		}))
	}),
)

func newModuleProvider(p Params) (*Provider, error) {
	return New(Options{OTLP: p.OTLP, Tracing: p.Tracing, Metrics: p.Metrics,
		AccessLog: p.Logging.AccessLog, LogBodies: p.Logging.LogBodies, Info: p.Info, Log: p.Log})
}

func metricsRoutes(p *Provider) []httpserve.Route {
	h := p.MetricsHandler()
	if h == nil {
		return nil
	}
	return []httpserve.Route{{Pattern: "GET /metrics", Handler: h}}
}
