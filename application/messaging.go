package application

import (
	"context"
	"log/slog"
	"math/rand/v2"
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
	// Optional capabilities of the broker side; nil answers NotImplemented.
	transactions ports.Transactions
	recaller     ports.Recaller
	offsets      ports.Offsets
	tracker      ports.ClientTracker
	// traffic applies rate limits to sends and receives; nil: none.
	traffic *Traffic
	// security, when enabled, decides whether a producer may still be
	// given a check-back (its access may have been revoked since its
	// settings were authorized); nil: every producer may.
	security *Security

	// sendTurns holds one counter per topic for send queue selection;
	// checkTurns one per topic for picking the producer a transaction
	// check-back goes to.
	sendTurns  turns
	checkTurns turns

	// checks queues transaction check-backs for dispatch, by topic;
	// checkDrops rate-limits the warning about those dropped when it is full.
	checks     checkQueue
	checkDrops dropLog
	// ignoredSubscriptionLog rate-limits the warning about consumer
	// settings that subscribe to topics no receive can name.
	ignoredSubscriptionLog dropLog
}

// MessagingParams are the dependencies of the messaging use cases. The
// broker side provides Broker and Metadata; Transactions, Recaller and
// Offsets are optional capabilities (nil: the matching RPCs answer
// NOT_IMPLEMENTED); Tracker, when set, hears of every client's settings,
// heartbeats and departure.
type MessagingParams struct {
	Config       Config
	Broker       ports.Broker
	Meta         ports.Metadata
	Clock        ports.Clock
	Log          *slog.Logger
	Sessions     *Sessions
	Renewer      *Renewer
	Transactions ports.Transactions
	Recaller     ports.Recaller
	Offsets      ports.Offsets
	Tracker      ports.ClientTracker
	// Traffic, when set, applies rate limits to sends and receives.
	Traffic *Traffic
	// Security, when set and enabled, authorizes each transaction
	// check-back for the producer it would go to.
	Security *Security
}

// NewMessaging wires the messaging use cases.
func NewMessaging(p MessagingParams) *Messaging {
	m := &Messaging{cfg: p.Config, broker: p.Broker, meta: p.Meta, clock: p.Clock, log: p.Log, sessions: p.Sessions,
		renewer: p.Renewer, transactions: p.Transactions, recaller: p.Recaller, offsets: p.Offsets, tracker: p.Tracker,
		traffic: p.Traffic, security: p.Security}
	p.Sessions.setOnGone(m.clientGone)
	if m.transactions != nil {
		m.transactions.SetTransactionCheckHandler(m.relayTransactionCheck)
	}
	return m
}

// maxTurns bounds the round-robin counters a [turns] keeps: one per topic
// in use, so that topics created and deleted for months (or a client
// sending to names it makes up) do not grow it for ever.
const maxTurns = 4096

// turns is a set of round-robin counters by topic, at most maxTurns of
// them: a new counter beyond that forgets an arbitrary other one. A
// counter starts at a random value, so a topic whose counter was
// forgotten (or one of many topics each sending rarely) still spreads
// its turns evenly instead of starting over at the first queue.
type turns struct {
	m sync.Map // topic → *atomic.Uint64
	n atomic.Int64
}

// nextTurn returns the next value of the round-robin counter of key in turns.
func nextTurn(t *turns, key string) uint64 {
	v, ok := t.m.Load(key)
	if !ok {
		c := new(atomic.Uint64)
		c.Store(rand.Uint64())
		var loaded bool
		if v, loaded = t.m.LoadOrStore(key, c); !loaded && t.n.Add(1) > maxTurns {
			t.m.Range(func(k, _ any) bool {
				if k == key {
					return true
				}
				if _, gone := t.m.LoadAndDelete(k); gone {
					t.n.Add(-1)
				}
				return false
			})
		}
	}
	return v.(*atomic.Uint64).Add(1) - 1
}

// len returns the number of counters held.
func (t *turns) len() int { return int(t.n.Load()) }

// clientGone releases what a departed client held.
func (m *Messaging) clientGone(ctx context.Context, clientID string, st ClientSettings) {
	if st.Subscription != nil {
		m.renewer.release(ctx, clientID, st.Subscription.Group)
	}
	if m.tracker != nil {
		m.tracker.ClientGone(ctx, clientID)
	}
}

// track tells the tracker (if any) what a live client produces or consumes.
// A goodbye that forgot the client meanwhile (between its registration
// and this report) may have told the tracker it was gone before this
// report came: it is told again, so that the tracker does not keep it
// (cluster mode: its groups registered on the brokers for minutes).
func (m *Messaging) track(ctx context.Context, clientID string, st ClientSettings) {
	if m.tracker == nil {
		return
	}
	info := ports.RequestInfoFrom(ctx)
	c := ports.ActiveClient{ClientID: clientID, Language: info.Language, Version: info.ClientVersion}
	if st.Publishing != nil {
		c.ProducerTopics = st.Publishing.Topics
	}
	if st.Subscription != nil {
		c.ConsumerGroup = st.Subscription.Group
		for _, e := range st.Subscription.Entries {
			c.Subscriptions = append(c.Subscriptions, ports.Subscription{Topic: e.Topic, Filter: e.Filter})
		}
	}
	m.tracker.ClientActive(ctx, c)
	if !m.sessions.known(clientID) {
		m.tracker.ClientGone(ctx, clientID)
	}
}
