package application

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// ClientType is the kind of client a session belongs to.
type ClientType uint8

// Client types, numbered as apache.rocketmq.v2.ClientType.
const (
	ClientTypeUnspecified ClientType = iota
	ClientTypeProducer
	ClientTypePushConsumer
	ClientTypeSimpleConsumer
	ClientTypePullConsumer
	ClientTypeLitePushConsumer
	ClientTypeLiteSimpleConsumer
)

var clientTypeNames = [...]string{"CLIENT_TYPE_UNSPECIFIED", "PRODUCER", "PUSH_CONSUMER", "SIMPLE_CONSUMER", "PULL_CONSUMER", "LITE_PUSH_CONSUMER", "LITE_SIMPLE_CONSUMER"}

func (t ClientType) String() string {
	if int(t) < len(clientTypeNames) {
		return clientTypeNames[t]
	}
	return "CLIENT_TYPE_UNSPECIFIED"
}

// IsConsumer reports whether t subscribes to topics.
func (t ClientType) IsConsumer() bool {
	return t == ClientTypePushConsumer || t == ClientTypeSimpleConsumer
}

// ClientSettings is what a client declares in its Telemetry settings.
type ClientSettings struct {
	ClientType     ClientType
	RequestTimeout time.Duration
	Publishing     *PublishingSettings
	Subscription   *SubscriptionSettings
	// Language and Version come from the request metadata of the call
	// that registered the client (x-mq-language, x-mq-client-version),
	// not from its settings; for metrics and client listings.
	Language, Version string
	// RemoteAddr is the address that call came from, for client listings.
	RemoteAddr netip.AddrPort
}

// fromCaller fills the settings' Language, Version and RemoteAddr from the
// request.
func (s ClientSettings) fromCaller(ctx context.Context) ClientSettings {
	info := ports.RequestInfoFrom(ctx)
	s.Language, s.Version, s.RemoteAddr = info.Language, info.ClientVersion, info.RemoteAddr
	return s
}

// ClientCount is how many known clients share a type, a language, a
// version and, for consumers, a group.
type ClientCount struct {
	Type              ClientType
	Language, Version string
	Group             string
	Count             int
}

// Census counts the known clients by type, language, version and group.
func (s *Sessions) Census() []ClientCount {
	type key struct {
		t       ClientType
		l, v, g string
	}
	s.mu.Lock()
	counts := map[key]int{}
	for _, c := range s.clients {
		k := key{t: c.settings.ClientType, l: c.settings.Language, v: c.settings.Version}
		if c.settings.Subscription != nil {
			k.g = c.settings.Subscription.Group
		}
		counts[k]++
	}
	s.mu.Unlock()
	out := make([]ClientCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, ClientCount{Type: k.t, Language: k.l, Version: k.v, Group: k.g, Count: n})
	}
	return out
}

// PublishingSettings lists the topics a producer publishes to.
type PublishingSettings struct {
	Topics []string
}

// SubscriptionSettings is a consumer's group and subscriptions.
type SubscriptionSettings struct {
	Group   string
	Entries []SubscriptionEntry
}

// SubscriptionEntry is one topic a consumer subscribes to, with its filter.
type SubscriptionEntry struct {
	Topic  string
	Filter filter.Expression
}

// ServerSettings are the values the proxy imposes on a client in the
// settings handshake. Backoff carries either an exponential policy or a list
// of delays.
type ServerSettings struct {
	MaxAttempts int32
	Backoff     domain.RetryPolicy
	// Producer values.
	MaxBodySize         int64
	ValidateMessageType bool
	// Consumer values.
	FIFO               bool
	ReceiveBatchSize   int32
	LongPollingTimeout time.Duration
	// GroupKnown is false when the consumer group does not exist: upstream
	// then keeps the client's own batch size and polling timeout and only
	// fills them in when the client left them unset.
	GroupKnown bool
}

// session is the proxy's knowledge of one client, keyed by client id.
type session struct {
	settings ClientSettings
	channel  ports.ClientChannel
	lastSeen time.Time
	// since is when this process first heard of the client.
	since time.Time
	// provisional says the settings were inferred from a receive or a
	// heartbeat, not declared on a Telemetry stream (after a restart the Go
	// client re-sends its settings only on its five-minute sync).
	provisional bool
}

// Sessions is the registry of connected clients: their settings (from
// Telemetry), their command channel and their liveness (heartbeats). A
// client silent for longer than the expiry timeout is forgotten and what it
// held is released.
type Sessions struct {
	clock   ports.Clock
	expiry  time.Duration
	max     int // most clients known at once
	log     *slog.Logger
	onGone  func(ctx context.Context, clientID string, s ClientSettings)
	mu      sync.Mutex
	clients map[string]*session
	// replies are the answers awaited from clients (see clientops.go).
	replies pendingReplies
}

// NewSessions returns an empty registry.
func NewSessions(cfg Config, clock ports.Clock, log *slog.Logger) *Sessions {
	return &Sessions{clock: clock, expiry: cfg.Clients.ExpiryTimeout, max: cfg.Clients.MaxClients, log: log, clients: map[string]*session{}}
}

// setOnGone registers the callback run when a client is forgotten.
func (s *Sessions) setOnGone(f func(ctx context.Context, clientID string, st ClientSettings)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onGone = f
}

// errTooManyClients refuses a new client when the registry is full.
func (s *Sessions) errTooManyClients() error {
	return domain.Errorf(domain.ReasonTooManyRequests,
		"the proxy knows %d clients, its limit (messaging.clients.maxClients); clients are forgotten %v after their last heartbeat", s.max, s.expiry)
}

// put stores a client's settings and channel, and returns the settings it
// replaced (zero for a new client); a new client is refused when the
// registry is full.
func (s *Sessions) put(clientID string, st ClientSettings, ch ports.ClientChannel) (ClientSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.clients[clientID]
	if cur == nil {
		if len(s.clients) >= s.max {
			return ClientSettings{}, s.errTooManyClients()
		}
		cur = &session{since: s.clock.Now()}
		s.clients[clientID] = cur
	}
	prev := cur.settings
	cur.settings = st
	cur.provisional = false
	if ch != nil {
		cur.channel = ch
	}
	cur.lastSeen = s.clock.Now()
	return prev, nil
}

// putProvisional stores settings inferred from a request of a client that
// has not declared its own, unless it has meanwhile; it returns the
// client's settings either way, or an error when the registry is full.
func (s *Sessions) putProvisional(clientID string, st ClientSettings) (ClientSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.clients[clientID]; ok {
		cur.lastSeen = s.clock.Now()
		return cur.settings, nil
	}
	if len(s.clients) >= s.max {
		return ClientSettings{}, s.errTooManyClients()
	}
	now := s.clock.Now()
	s.clients[clientID] = &session{settings: st, provisional: true, lastSeen: now, since: now}
	return st, nil
}

// Settings returns the stored settings of a client.
func (s *Sessions) Settings(clientID string) (ClientSettings, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.clients[clientID]
	if !ok {
		return ClientSettings{}, false
	}
	return cur.settings, true
}

// touch records that a client is alive; it reports whether the client is known.
func (s *Sessions) touch(clientID string) (ClientSettings, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.clients[clientID]
	if !ok {
		return ClientSettings{}, false
	}
	cur.lastSeen = s.clock.Now()
	return cur.settings, true
}

// consumesFor reports whether a client is registered and has not left
// group: its settings name group, or neither a consumer group nor
// publishing. Settings that made it a producer left its group, as
// [leftGroup] decides for UpdateSettings.
func (s *Sessions) consumesFor(clientID, group string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.clients[clientID]
	if !ok {
		return false
	}
	if sub := cur.settings.Subscription; sub != nil {
		return sub.Group == group
	}
	return cur.settings.Publishing == nil
}

// known reports whether a client is registered: by its settings, a
// heartbeat or a receive, until it terminates or expires. Its Telemetry
// stream may have ended meanwhile (see [Sessions.channel]).
func (s *Sessions) known(clientID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.clients[clientID]
	return ok
}

// channel returns the command stream of a client (nil if it opened none)
// and whether the client is known.
func (s *Sessions) channel(clientID string) (ports.ClientChannel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.clients[clientID]
	if !ok {
		return nil, false
	}
	return cur.channel, true
}

// remove forgets a client and returns its settings and its command
// stream (nil if it opened none).
func (s *Sessions) remove(clientID string) (ClientSettings, ports.ClientChannel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.clients[clientID]
	if !ok {
		return ClientSettings{}, nil, false
	}
	delete(s.clients, clientID)
	return cur.settings, cur.channel, true
}

// Count returns the number of known clients.
func (s *Sessions) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// expire forgets every client silent for longer than the expiry timeout.
func (s *Sessions) expire(ctx context.Context) {
	cutoff := s.clock.Now().Add(-s.expiry)
	type gone struct {
		id string
		st ClientSettings
	}
	var expired []gone
	s.mu.Lock()
	for id, cur := range s.clients {
		if cur.lastSeen.Before(cutoff) {
			expired = append(expired, gone{id, cur.settings})
			delete(s.clients, id)
		}
	}
	onGone := s.onGone
	s.mu.Unlock()
	for _, g := range expired {
		s.log.LogAttrs(ctx, slog.LevelInfo, "client expired", slog.String("client_id", g.id), slog.String("client_type", g.st.ClientType.String()))
		if onGone != nil {
			onGone(ctx, g.id, g.st)
		}
	}
}

// run expires silent clients until ctx ends.
func (s *Sessions) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.expire(ctx)
		}
	}
}

// hasProducerOf reports whether a producer that declared topic in its
// publishing settings has a live command channel.
func (s *Sessions) hasProducerOf(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cur := range s.clients {
		if cur.liveProducerOf(topic) {
			return true
		}
	}
	return false
}

// liveProducerOf reports whether the session is a producer that declared
// topic in its publishing settings and has a command channel still open.
func (cur *session) liveProducerOf(topic string) bool {
	if cur.channel == nil || cur.settings.Publishing == nil || !slices.Contains(cur.settings.Publishing.Topics, topic) {
		return false
	}
	select {
	case <-cur.channel.Done():
		return false
	default:
		return true
	}
}

// producersOf returns the live command channels of producers that declared
// topic in their publishing settings, in a stable order.
func (s *Sessions) producersOf(topic string) []ports.ClientChannel {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0)
	for id, cur := range s.clients {
		if cur.liveProducerOf(topic) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]ports.ClientChannel, len(ids))
	for i, id := range ids {
		out[i] = s.clients[id].channel
	}
	return out
}

// assignmentLiveness is how recently a push consumer must have been heard
// from (settings, heartbeat or receive registration) to be given queues of
// an orderly group. The official clients heartbeat every 10 s (Go client
// v5.1.4: HEART_BEAT_PERIOD, first after 1 s), so three periods pass a
// consumer over only once it missed two heartbeats in a row: one late or
// lost heartbeat does not reshuffle the queues, and the queues of a killed
// consumer go to the others within about 30 s rather than staying unread
// until its session expires (messaging.clients.expiryTimeout, 120 s).
const assignmentLiveness = 30 * time.Second

// pushConsumersOf returns the client ids of the push consumers of a group
// that subscribe to topic and were heard from within assignmentLiveness,
// sorted, so that every consumer of this process computes its share from
// the same list.
func (s *Sessions) pushConsumersOf(group, topic string) []string {
	cutoff := s.clock.Now().Add(-assignmentLiveness)
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, cur := range s.clients {
		sub := cur.settings.Subscription
		if cur.settings.ClientType != ClientTypePushConsumer || sub == nil || sub.Group != group {
			continue
		}
		if sub.subscribes(topic) && !cur.lastSeen.Before(cutoff) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// subscribes reports whether the subscription includes topic. One without
// entries (a consumer registered by a heartbeat, whose settings have not
// come yet) counts as subscribing to every topic.
func (s *SubscriptionSettings) subscribes(topic string) bool {
	if len(s.Entries) == 0 {
		return true
	}
	return slices.ContainsFunc(s.Entries, func(e SubscriptionEntry) bool { return e.Topic == topic })
}
