package trafficfile

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/application"
)

// Module loads traffic.rulesFile into the *application.Traffic of the
// graph when the file is set, reloads it on SIGHUP and reports a failed
// reload as degraded in /readyz. SIGHUP is handled (and logged) even
// without a rules file, so that it never ends the process. It needs an
// application.TrafficConfig, the *application.Traffic and an *slog.Logger.
var Module = fx.Module("trafficfile",
	fx.Decorate(func(log *slog.Logger) *slog.Logger { return log.With("component", "traffic") }),
	fx.Provide(health.AsCheck(newSource)),
)

func newSource(lc fx.Lifecycle, cfg application.TrafficConfig, t *application.Traffic, log *slog.Logger) health.Check {
	var s *Source
	if cfg.RulesFile != "" {
		s = NewSource(cfg.RulesFile, cfg.ReloadInterval, t, log)
	}
	var (
		hup  chan os.Signal
		done sync.WaitGroup
	)
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			if s != nil {
				if err := s.Start(ctx); err != nil {
					return err
				}
			}
			hup = make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			done.Go(func() {
				for range hup {
					if s == nil {
						log.Info("SIGHUP: no traffic.rulesFile to reload")
						continue
					}
					log.Info("SIGHUP: reloading the traffic rules", slog.String("file", cfg.RulesFile))
					s.Reload()
				}
			})
			return nil
		},
		OnStop: func(ctx context.Context) error {
			if hup != nil {
				signal.Stop(hup)
				close(hup)
				done.Wait()
			}
			if s != nil {
				return s.Stop(ctx)
			}
			return nil
		},
	})
	return health.Check{Name: "traffic rules", Check: func(context.Context) error {
		if s == nil {
			return nil
		}
		return health.Degraded(s.Health())
	}}
}
