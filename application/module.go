package application

import (
	"context"
	"log/slog"
	"sync"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/ports"
)

// Module provides the use cases. It needs a Config, a *slog.Logger, a
// ports.Clock, and the broker-side ports (Broker, Metadata, Admin) from the
// local or cluster module.
var Module = fx.Module("application",
	fx.Provide(
		NewSessions,
		NewRenewer,
		NewMessaging,
		NewAdmin,
	),
	fx.Invoke(registerBackgroundWork),
)

// registerBackgroundWork runs session expiry and auto-renewal for the
// lifetime of the application.
func registerBackgroundWork(lc fx.Lifecycle, s *Sessions, r *Renewer, _ *Messaging, log *slog.Logger) {
	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
	)
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			wg.Add(2)
			go func() { defer wg.Done(); s.run(ctx, sessionSweepPeriod) }()
			go func() { defer wg.Done(); r.run(ctx) }()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			cancel()
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				log.Warn("application background work did not stop in time")
				return ctx.Err()
			}
		},
	})
}

var _ ports.Clock = ports.SystemClock{}
