package grpc

import (
	"log/slog"

	"go.uber.org/fx"
)

// Module serves the MessagingService. It needs a Config, a *slog.Logger and
// the application's *application.Messaging.
var Module = fx.Module("grpc",
	fx.Decorate(func(log *slog.Logger) *slog.Logger { return log.With("component", "grpc") }),
	fx.Provide(NewService, NewServer),
	fx.Invoke(func(lc fx.Lifecycle, s *Server) {
		lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	}),
)
