// Package brokermodule builds the fx module of a broker adapter. The
// embedded engine (localbroker) and the Remoting cluster adapter (cluster)
// are wired alike: the adapter is provided as its own type and as each port
// it implements, its readiness check joins the health server's group under
// the module's name, and its Start and Close become lifecycle hooks.
//
// The hooks are appended by the module's invoke, not by the constructor, so
// that modules listed before it (the health server) start first and report
// the adapter's start-up. The package knows no adapter and no port: each
// adapter passes its constructor, its ports and its check.
package brokermodule

import (
	"context"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/health"
)

// Broker is what the module starts and stops: Start runs in OnStart, Close
// in OnStop.
type Broker interface {
	Start(ctx context.Context) error
	Close(ctx context.Context) error
}

// Module returns the fx module name for the broker adapter B. newBroker is
// its fx constructor (returning B, or B and an error); ports are pointers to
// the interfaces B is provided as besides itself (new(ports.Broker), ...);
// ready picks B's readiness check, registered with the health server as
// name.
func Module[B Broker](name string, newBroker any, ready func(B) func(context.Context) error, ports ...any) fx.Option {
	as := make([]fx.Annotation, 0, 1+len(ports))
	as = append(as, fx.As(fx.Self()))
	for _, p := range ports {
		as = append(as, fx.As(p))
	}
	return fx.Module(name,
		fx.Provide(
			fx.Annotate(newBroker, as...),
			health.AsCheck(func(b B) health.Check { return health.Check{Name: name, Check: ready(b)} }),
		),
		fx.Invoke(func(lc fx.Lifecycle, b B) {
			lc.Append(fx.Hook{OnStart: b.Start, OnStop: b.Close})
		}),
	)
}
