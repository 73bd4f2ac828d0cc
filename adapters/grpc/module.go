package grpc

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/ports"
)

// Module serves the MessagingService. It needs a Config, a *slog.Logger and
// the application's *application.Messaging; with a [ports.Readiness] in the
// container, grpc.health.v1 reports it.
var Module = fx.Module("grpc",
	fx.Decorate(func(log *slog.Logger) *slog.Logger { return log.With("component", "grpc") }),
	fx.Provide(NewService, NewServer),
	fx.Invoke(fx.Annotate(func(lc fx.Lifecycle, s *Server, r ports.Readiness) {
		s.SetReadiness(r)
		lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	}, fx.ParamTags(``, ``, `optional:"true"`))),
)
