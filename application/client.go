package application

import (
	"context"
	"log/slog"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// UpdateSettings stores the settings a client declared on its Telemetry
// stream, remembers ch as its command channel, and returns the values the
// proxy imposes on it.
func (m *Messaging) UpdateSettings(ctx context.Context, s ClientSettings, ch ports.ClientChannel) (ServerSettings, error) {
	clientID := ports.RequestInfoFrom(ctx).ClientID
	switch {
	case s.Publishing != nil:
		for _, t := range s.Publishing.Topics {
			if err := domain.ValidateTopicName(t); err != nil {
				return ServerSettings{}, err
			}
		}
	case s.Subscription != nil:
		if !s.ClientType.IsConsumer() {
			return ServerSettings{}, domain.Errorf(domain.ReasonUnrecognizedClientType,
				"client type %s cannot subscribe through this proxy; use a push or simple consumer", s.ClientType)
		}
		if err := domain.ValidateGroupName(s.Subscription.Group); err != nil {
			return ServerSettings{}, err
		}
		sub := *s.Subscription
		sub.Entries, sub.Ignored = nil, nil
		var firstIgnored error
		for _, e := range s.Subscription.Entries {
			if err := m.cfg.checkFilterLength(e.Filter); err != nil {
				return ServerSettings{}, err
			}
			// Upstream refuses only what it cannot even store: a tag
			// expression of separators only, an empty SQL92 one; rmqproxy
			// also a tag expression that names no tag (" || ").
			_, err := filter.Compile(e.Filter)
			if err != nil && (e.Filter.Type != filter.TypeSQL92 || e.Filter.Text == "") {
				// Upstream's fixed text for settings (the cause stays in the chain).
				return ServerSettings{}, domain.Wrap(domain.ReasonIllegalFilterExpression, err, "expression format is not correct")
			}
			if err == nil {
				err = domain.ValidateTopicName(e.Topic)
			}
			if err != nil {
				// Accepted, as upstream accepts it: the client's receives
				// of the topic fail with the precise code and its other
				// subscriptions are served. It subscribes to nothing.
				if len(sub.Ignored) == 0 {
					firstIgnored = err
				}
				sub.Ignored = append(sub.Ignored, e)
				continue
			}
			sub.Entries = append(sub.Entries, e)
		}
		s.Subscription = &sub
		if len(sub.Ignored) > 0 {
			// One line for the command, at most one a minute: a command
			// may list any number of subscriptions and come again and
			// again on the stream.
			if n, ok := m.ignoredSubscriptionLog.add(m.clock.Now()); ok {
				m.log.LogAttrs(ctx, slog.LevelWarn, "a consumer's settings subscribe to a topic it cannot receive from; its receives of it will fail (logged at most once a minute)",
					slog.String("client_id", clientID), slog.String("consumer_group", sub.Group), slog.String("topic", sub.Ignored[0].Topic),
					slog.Any("error", firstIgnored), slog.Int("ignored_subscriptions", len(sub.Ignored)), slog.Int("commands_not_logged", n-1))
			}
		}
	default:
		return ServerSettings{}, domain.Errorf(domain.ReasonBadRequest, "settings carry neither publishing nor subscription")
	}
	prev, err := m.sessions.put(clientID, s.fromCaller(ctx), ch)
	if err != nil {
		return ServerSettings{}, m.foreignClient(ctx, "Telemetry", err, func() []domain.AccessRequest { return settingsAccess(ctx, s) })
	}
	if left := leftGroup(prev, s); left != "" {
		// What it holds under the group it left would be renewed until
		// consumer.renewMaxTime, neither acked nor delivered to the
		// group's other consumers: release it, as on termination.
		m.renewer.release(context.WithoutCancel(ctx), clientID, left)
	}
	m.track(ctx, clientID, s)
	server, err := m.serverSettings(ctx, s)
	if err == nil && server.GroupKnown {
		m.sessions.groupExists(clientID, s.Subscription.Group)
	}
	return server, err
}

// leftGroup returns the consumer group a client's new settings leave (""
// when it keeps its group, or had none).
func leftGroup(prev, next ClientSettings) string {
	if prev.Subscription == nil || (next.Subscription != nil && next.Subscription.Group == prev.Subscription.Group) {
		return ""
	}
	return prev.Subscription.Group
}

// serverSettings computes what the proxy pushes to a client.
func (m *Messaging) serverSettings(ctx context.Context, s ClientSettings) (ServerSettings, error) {
	if s.Publishing != nil {
		p := m.cfg.Producer
		return ServerSettings{
			MaxAttempts:         p.MaxAttempts,
			Backoff:             domain.RetryPolicy{Initial: p.BackoffInitial, Max: p.BackoffMax, Multiplier: p.BackoffMultiplier},
			MaxBodySize:         m.cfg.Limits.MaxBodySize,
			ValidateMessageType: m.cfg.Limits.TopicMessageTypeCheck,
		}, nil
	}
	out := ServerSettings{ReceiveBatchSize: m.cfg.Consumer.ReceiveBatchSize, LongPollingTimeout: m.cfg.Consumer.MaxLongPolling}
	g, err := m.meta.ConsumerGroup(ctx, s.Subscription.Group)
	switch {
	case err == nil:
		out.GroupKnown = true
	case domain.HasReason(err, domain.ReasonConsumerGroupNotFound):
		g = domain.NewConsumerGroup(s.Subscription.Group)
	default:
		return ServerSettings{}, err
	}
	out.MaxAttempts = g.MaxDeliveryAttempts
	// A nack's ChangeInvisibleDuration asks for the announced wait, and
	// one beyond consumer.maxInvisibleTime is refused: the Go client
	// retries it every second, and the message waited for renewMaxTime.
	out.Backoff = g.RetryPolicy.Capped(m.cfg.Consumer.MaxInvisibleTime)
	out.FIFO = g.Orderly
	return out, nil
}

// Heartbeat keeps a client's registration alive. A client the proxy does
// not know (after a restart, before it re-sends its settings) is
// registered with the type and group its heartbeat names, but not one that
// said goodbye within messaging.clients.expiryTimeout and sent no settings
// since (UNRECOGNIZED_CLIENT_TYPE, as the Apache proxy answers a heartbeat
// of a client whose settings it dropped).
func (m *Messaging) Heartbeat(ctx context.Context, group string, ct ClientType) error {
	clientID := ports.RequestInfoFrom(ctx).ClientID
	s, ok, err := m.sessions.touch(clientID, userOf(ctx))
	if err != nil {
		return m.foreignClient(ctx, "Heartbeat", err, func() []domain.AccessRequest { return heartbeatAccess(ctx, group, ct) })
	}
	if !ok {
		var err error
		switch {
		case ct == ClientTypeProducer:
			s, err = m.sessions.putProvisional(clientID, ClientSettings{ClientType: ct, RequestTimeout: provisionalRequestTimeout, Publishing: &PublishingSettings{}}.fromCaller(ctx), true)
		case ct.IsConsumer():
			if err := domain.ValidateGroupName(group); err != nil {
				return err
			}
			s, err = m.sessions.putProvisional(clientID, ClientSettings{ClientType: ct, RequestTimeout: provisionalRequestTimeout, Subscription: &SubscriptionSettings{Group: group}}.fromCaller(ctx), true)
		default:
			return domain.Errorf(domain.ReasonUnrecognizedClientType, "cannot find client settings for this client")
		}
		if err != nil {
			return m.foreignClient(ctx, "Heartbeat", err, func() []domain.AccessRequest { return heartbeatAccess(ctx, group, ct) })
		}
	}
	switch {
	case s.ClientType == ClientTypeProducer:
		m.track(ctx, clientID, s)
		return nil
	case s.ClientType.IsConsumer():
		if err := domain.ValidateGroupName(group); err != nil {
			return err
		}
		m.track(ctx, clientID, s)
		return nil
	default:
		return domain.Errorf(domain.ReasonUnrecognizedClientType, "%s", s.ClientType)
	}
}

// NotifyClientTermination forgets a client that is shutting down, makes
// the messages it held visible again soon and ends its Telemetry stream
// (the Apache proxy leaves it open; the Go client v5.1.4 would hold it
// for half an hour after it stopped, see [ports.ClientChannel]): the
// stream of the goodbye's connection, not one another process using the
// same client id opened (see [Sessions.remove]).
func (m *Messaging) NotifyClientTermination(ctx context.Context, group string) error {
	clientID := ports.RequestInfoFrom(ctx).ClientID
	user := userOf(ctx)
	s, ok, err := m.sessions.owned(clientID, user)
	if err != nil {
		return m.foreignClient(ctx, "NotifyClientTermination", err, func() []domain.AccessRequest { return requestAccess(ctx, group, 0) })
	}
	if !ok {
		return domain.Errorf(domain.ReasonUnrecognizedClientType, "cannot find client settings for this client")
	}
	switch {
	case s.ClientType == ClientTypeProducer:
	case s.ClientType.IsConsumer():
		if err := domain.ValidateGroupName(group); err != nil {
			return err
		}
	default:
		return domain.Errorf(domain.ReasonUnrecognizedClientType, "%s", s.ClientType)
	}
	if s, streams, ok := m.sessions.remove(clientID, user, ports.RequestInfoFrom(ctx).RemoteAddr); ok {
		m.clientGone(context.WithoutCancel(ctx), clientID, s)
		for _, ch := range streams {
			ch.End()
		}
	}
	return nil
}

// sessionSweepPeriod is how often silent clients are looked for.
const sessionSweepPeriod = 5 * time.Second

// heartbeatAccess returns, for the audit log, what a heartbeat asks for:
// a consumer's group (a producer's heartbeat names none).
func heartbeatAccess(ctx context.Context, group string, ct ClientType) []domain.AccessRequest {
	if !ct.IsConsumer() {
		group = ""
	}
	return requestAccess(ctx, group, 0)
}

// settingsAccess returns, for the audit log, what Telemetry settings ask
// for: a producer's topics (Pub), or a consumer's group and topics (Sub).
func settingsAccess(ctx context.Context, s ClientSettings) []domain.AccessRequest {
	switch {
	case s.Publishing != nil:
		return requestAccess(ctx, "", domain.ActionPub, s.Publishing.Topics...)
	case s.Subscription != nil:
		topics := make([]string, 0, len(s.Subscription.Entries)+len(s.Subscription.Ignored))
		for _, e := range s.Subscription.Entries {
			topics = append(topics, e.Topic)
		}
		for _, e := range s.Subscription.Ignored {
			topics = append(topics, e.Topic)
		}
		return requestAccess(ctx, s.Subscription.Group, domain.ActionSub, topics...)
	}
	return nil
}
