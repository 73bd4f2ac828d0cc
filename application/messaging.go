package application

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/rmqproxy/rmqproxy/ports"
)

// Messaging is the set of messaging use cases the inbound protocol adapters
// drive: route queries, send, receive, ack, invisible-time changes,
// dead-lettering, heartbeats and client settings.
type Messaging struct {
	cfg      Config
	broker   ports.Broker
	meta     ports.Metadata
	clock    ports.Clock
	log      *slog.Logger
	sessions *Sessions
	renewer  *Renewer

	// roundRobin holds one send counter per topic for queue selection.
	roundRobin sync.Map // topic → *atomic.Uint64
}

// NewMessaging wires the messaging use cases.
func NewMessaging(cfg Config, broker ports.Broker, meta ports.Metadata, clock ports.Clock, log *slog.Logger, sessions *Sessions, renewer *Renewer) *Messaging {
	m := &Messaging{cfg: cfg, broker: broker, meta: meta, clock: clock, log: log, sessions: sessions, renewer: renewer}
	sessions.setOnGone(m.clientGone)
	return m
}

// Sessions exposes the client registry (for adapters' diagnostics).
func (m *Messaging) Sessions() *Sessions { return m.sessions }

func (m *Messaging) nextRoundRobin(topic string) uint64 {
	v, ok := m.roundRobin.Load(topic)
	if !ok {
		v, _ = m.roundRobin.LoadOrStore(topic, new(atomic.Uint64))
	}
	return v.(*atomic.Uint64).Add(1) - 1
}

// clientGone releases what a departed client held.
func (m *Messaging) clientGone(ctx context.Context, clientID string, st ClientSettings) {
	if st.Subscription != nil {
		m.renewer.release(ctx, clientID, st.Subscription.Group)
	}
}
