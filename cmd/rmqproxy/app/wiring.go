package app

import (
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/config"
	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Timeouts of the whole application's start (which includes local storage
// recovery) and stop (which includes draining requests and flushing).
const (
	StartTimeout = 10 * time.Minute
	StopTimeout  = 30 * time.Second
)

// NewLogger builds the process logger from the log settings.
func NewLogger(w io.Writer, c LogConfig) *slog.Logger {
	lv, _ := c.level()
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Options returns the fx options of the whole proxy for cfg. The broker
// side is chosen by cfg.Mode; only local mode exists in this version.
func Options(cfg Root, log *slog.Logger) fx.Option {
	if cfg.GRPC.TLS.SelfSignedDir == "" {
		cfg.GRPC.TLS.SelfSignedDir = filepath.Join(cfg.Local.DataDir, "tls")
	}
	return fx.Options(
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.SlogLogger{Logger: log.With("component", "fx")}
			l.UseLogLevel(slog.LevelDebug)
			return l
		}),
		fx.StartTimeout(StartTimeout),
		fx.StopTimeout(StopTimeout),
		fx.Supply(log),
		fx.Provide(func() ports.Clock { return ports.SystemClock{} }),
		config.Module(cfg),
		brokerModule(cfg),
		applicationModule,
		grpcadapter.Module,
		admin.Module,
		health.Module,
	)
}

func brokerModule(cfg Root) fx.Option {
	// cluster mode plugs a Remoting-backed ports.Broker in here.
	return localbroker.Module
}
