package app

import (
	"context"
	"log/slog"

	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
)

// applicationModule wires the use cases. They need an application.Config,
// a *slog.Logger, a ports.Clock, and the broker-side ports (Broker,
// Metadata, Admin and the optional capabilities) from the local or cluster
// module. The application package itself knows nothing of fx.
var applicationModule = fx.Module("application",
	fx.Provide(
		application.NewSessions,
		application.NewRenewer,
		application.NewTraffic,
		newMessaging,
		newAdmin,
		newClientOps,
	),
	fx.Invoke(runApplication),
)

// messagingParams collects the messaging use cases' dependencies; the
// broker-side capabilities are optional.
type messagingParams struct {
	fx.In

	Config       application.Config
	Broker       ports.Broker
	Meta         ports.Metadata
	Clock        ports.Clock
	Log          *slog.Logger
	Sessions     *application.Sessions
	Renewer      *application.Renewer
	Transactions ports.Transactions  `optional:"true"`
	Recaller     ports.Recaller      `optional:"true"`
	Offsets      ports.Offsets       `optional:"true"`
	Tracker      ports.ClientTracker `optional:"true"`
	Traffic      *application.Traffic
	Security     *application.Security
}

func newMessaging(p messagingParams) *application.Messaging {
	return application.NewMessaging(application.MessagingParams{
		Config: p.Config, Broker: p.Broker, Meta: p.Meta, Clock: p.Clock, Log: p.Log,
		Sessions: p.Sessions, Renewer: p.Renewer,
		Transactions: p.Transactions, Recaller: p.Recaller, Offsets: p.Offsets, Tracker: p.Tracker,
		Traffic: p.Traffic, Security: p.Security,
	})
}

// adminParams are the admin use case's dependencies; only the embedded
// broker has TopicQueueStats.
type adminParams struct {
	fx.In

	Store    ports.Admin
	Clock    ports.Clock
	Sessions *application.Sessions
	Topics   ports.TopicQueueStats `optional:"true"`
}

// newAdmin wires the admin use case: group stats list the queues of the
// subscribed topics a group has not received from yet, as the consumer
// gauges count them.
func newAdmin(p adminParams) *application.Admin {
	return application.NewAdmin(p.Store, p.Clock).WithSubscribedQueues(p.Sessions, p.Topics)
}

// newClientOps wires the client operations; the broker side may not be
// able to look a message up by id, and only in cluster mode do brokers ask
// about the consumers.
func newClientOps(p struct {
	fx.In
	Config   application.Config
	Sessions *application.Sessions
	Lookup   ports.MessageLookup `optional:"true"`
	Relay    ports.ConsumerRelay `optional:"true"`
	Log      *slog.Logger
}) *application.ClientOps {
	return application.NewClientOps(p.Config, p.Sessions, p.Lookup, p.Relay, p.Log)
}

// runApplication runs the use cases' background work (session expiry,
// auto-renewal) for the lifetime of the application.
func runApplication(lc fx.Lifecycle, m *application.Messaging, log *slog.Logger) {
	var (
		cancel context.CancelFunc
		wait   func()
	)
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			// Running once the hook returns (a start that goes on, or a
			// test that looks at the goroutines then, finds them there).
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			wait = m.Start(ctx)
			return nil
		},
		OnStop: func(ctx context.Context) error {
			cancel()
			done := make(chan struct{})
			go func() { wait(); close(done) }()
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
