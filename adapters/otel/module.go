package otel

import (
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
// stop: list the module before the servers so that it stops after them.
var Module = fx.Module("otel",
	fx.Decorate(func(log *slog.Logger) *slog.Logger { return log.With("component", "otel") }),
	fx.Provide(
		newModuleProvider,
		func(p *Provider) *observe.Telemetry { return p.Telemetry() },
		fx.Annotate(metricsRoutes, fx.ResultTags(`group:"`+httpserve.RoutesGroup+`,flatten"`)),
	),
	fx.Invoke(func(lc fx.Lifecycle, p *Provider) {
		lc.Append(fx.StopHook(p.Shutdown))
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
