// Package brokermodule builds the fx module of a broker adapter. The
// embedded engine (localbroker) and the Remoting cluster adapter (cluster)
// are wired alike: the adapter is provided as its own type, as every port
// the application needs of a broker and as the adapter's optional ports, its
// readiness check joins the health server's group under the module's name,
// and its Start and Close become lifecycle hooks.
//
// The hooks are appended by the module's invoke, not by the constructor, so
// that modules listed before it (the health server) start first and report
// the adapter's start-up. The package knows no adapter: each passes its
// constructor, its check and its optional ports.
package brokermodule

import (
	"context"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/adapters/health"
	"github.com/rmqproxy/rmqproxy/ports"
)

// required are the ports the application needs of a broker adapter, in
// either mode.
func required() []any {
	return []any{
		new(ports.Broker),
		new(ports.Metadata),
		new(ports.Admin),
		new(ports.Transactions),
		new(ports.Recaller),
		new(ports.Offsets),
		new(ports.MessageLookup),
	}
}

// Broker is what the module starts and stops: Start runs in OnStart, Close
// in OnStop.
type Broker interface {
	Start(ctx context.Context) error
	Close(ctx context.Context) error
}

// Module returns the fx module name for the broker adapter B. newBroker is
// its fx constructor (returning B, or B and an error), which fx provides as
// B, as each port the application needs of a broker ([ports.Broker],
// [ports.Metadata], [ports.Admin], [ports.Transactions], [ports.Recaller],
// [ports.Offsets], [ports.MessageLookup]) and as each of optional, pointers
// to the further port interfaces B implements (new(ports.ClientTracker),
// ...); ready picks B's readiness check, registered with the health server
// as name.
func Module[B Broker](name string, newBroker any, ready func(B) func(context.Context) error, optional ...any) fx.Option {
	as := []fx.Annotation{fx.As(fx.Self())}
	for _, p := range append(required(), optional...) {
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
