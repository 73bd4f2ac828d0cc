package ports

import (
	"context"

	"github.com/rmqproxy/rmqproxy/domain/filter"
)

// ClientTracker learns which clients are connected to this proxy and what
// they produce and consume. The broker side uses it where brokers must see
// the proxy's clients: in cluster mode, heartbeats that register the
// clients' producer and consumer groups with every broker. Both methods
// record and return at once; they never wait for a broker.
type ClientTracker interface {
	// ClientActive records (or refreshes) a client; it is called on every
	// settings update and heartbeat.
	ClientActive(ctx context.Context, c ActiveClient)
	// ClientGone forgets a client that terminated or expired.
	ClientGone(ctx context.Context, clientID string)
}

// ActiveClient describes a connected client.
type ActiveClient struct {
	ClientID string
	Language string
	Version  string
	// ProducerTopics are the topics a producer declared it publishes to.
	ProducerTopics []string
	// ConsumerGroup and Subscriptions describe a consumer.
	ConsumerGroup string
	Subscriptions []Subscription
}

// Subscription is one topic a consumer subscribes to.
type Subscription struct {
	Topic  string
	Filter filter.Expression
}
