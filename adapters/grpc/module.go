package grpc

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Module serves the MessagingService. It needs a Config, a *slog.Logger and
// the application's *application.Messaging; with a [ports.Readiness] in the
// container, grpc.health.v1 reports it. The logger is not decorated for the
// module: the service and the server log with component=grpc, the access
// log with component=access alone (slog.With does not replace a key).
var Module = fx.Module("grpc",
	fx.Provide(newService, NewServer),
	fx.Invoke(fx.Annotate(func(lc fx.Lifecycle, s *Server, r ports.Readiness) {
		s.SetReadiness(r)
		lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	}, fx.ParamTags(``, ``, `optional:"true"`))),
)

type serviceParams struct {
	fx.In

	Config   Config
	App      *application.Messaging
	Log      *slog.Logger
	Security *application.Security `optional:"true"`
	// Telemetry comes from adapters/otel when it is in the graph.
	Telemetry *observe.Telemetry   `optional:"true"`
	Traffic   *application.Traffic `optional:"true"`
}

func newService(p serviceParams) *Service {
	s := NewService(p.Config, p.App, p.Log.With("component", "grpc"))
	if p.Security != nil {
		s.UseSecurity(p.Security, p.Config.Auth)
	}
	s.UseTelemetry(p.Telemetry)
	if p.Traffic != nil {
		s.UseTraffic(p.Traffic)
	}
	return s
}
