package application

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
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
	// User is the authenticated user that registered the client ("" with
	// authentication off): the client id is that user's, and requests of
	// other users naming it are refused (see [Sessions]).
	User string
	// GroupExists says the consumer group of the subscription was found
	// to exist (when the settings came, or by a receive since): only such
	// a group gets a consumer_group label value of its own in the client
	// gauges, so that clients naming made-up groups cannot take the
	// bounded label values (metrics.maxGroups) existing groups need.
	GroupExists bool
}

// fromCaller fills the settings' Language, Version, RemoteAddr and User
// from the request.
func (s ClientSettings) fromCaller(ctx context.Context) ClientSettings {
	info := ports.RequestInfoFrom(ctx)
	s.Language, s.Version, s.RemoteAddr = info.Language, info.ClientVersion, info.RemoteAddr
	s.User = userOf(ctx)
	return s
}

// userOf returns the name of the authenticated user of ctx ("" without
// authentication).
func userOf(ctx context.Context) string {
	if p, ok := PrincipalFrom(ctx); ok {
		return p.User.Name
	}
	return ""
}

// ClientCount is how many known clients share a type, a language, a
// version and, for consumers, a group.
type ClientCount struct {
	Type              ClientType
	Language, Version string
	Group             string
	// GroupUnknown: the group was not found to exist (see
	// [ClientSettings.GroupExists]).
	GroupUnknown bool
	Count        int
}

// Census counts the known clients by type, language, version and group.
func (s *Sessions) Census() []ClientCount {
	type key struct {
		t       ClientType
		l, v, g string
		unknown bool
	}
	s.mu.Lock()
	counts := map[key]int{}
	for _, c := range s.clients {
		k := key{t: c.settings.ClientType, l: c.settings.Language, v: c.settings.Version}
		if c.settings.Subscription != nil {
			k.g, k.unknown = c.settings.Subscription.Group, !c.settings.GroupExists
		}
		counts[k]++
	}
	s.mu.Unlock()
	out := make([]ClientCount, 0, len(counts))
	for k, n := range counts {
		out = append(out, ClientCount{Type: k.t, Language: k.l, Version: k.v, Group: k.g, GroupUnknown: k.unknown, Count: n})
	}
	return out
}

// Subscription is a consumer group's subscription to a topic.
type Subscription struct{ Group, Topic string }

// Subscriptions lists the topics the known consumers subscribe to, by
// group, without repeats: only those of groups found to exist (see
// [ClientSettings.GroupExists]) and topics their settings name (not one
// of a consumer whose settings have not come yet). For the consumer
// gauges, which report a group's lag on a topic it subscribes to before
// its first receive of it. A nil *Sessions has none.
func (s *Sessions) Subscriptions() []Subscription {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	seen := map[Subscription]struct{}{}
	for _, c := range s.clients {
		sub := c.settings.Subscription
		if sub == nil || !c.settings.GroupExists {
			continue
		}
		for _, e := range sub.Entries {
			seen[Subscription{Group: sub.Group, Topic: e.Topic}] = struct{}{}
		}
	}
	s.mu.Unlock()
	out := make([]Subscription, 0, len(seen))
	for k := range seen {
		out = append(out, k)
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
	// Ignored are the subscriptions of the client's settings no receive
	// can serve (an illegal topic, an SQL92 filter that does not
	// compile): accepted as upstream accepts them, they subscribe to
	// nothing.
	Ignored []SubscriptionEntry
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
	// streams are the client's command streams, the one that sent
	// settings last at the end (see [session.channel]).
	streams  []clientStream
	lastSeen time.Time
	// since is when this process first heard of the client.
	since time.Time
	// provisional says the settings were inferred from a receive or a
	// heartbeat, not declared on a Telemetry stream (after a restart the Go
	// client re-sends its settings only on its five-minute sync).
	provisional bool
	// addr is the client address (ClientAddress) an unauthenticated
	// client was registered from and is counted under (see
	// clients.maxClientsPerAddress); invalid when it is not counted.
	addr netip.Addr
	// owner is the user, or without one the client address, whose share
	// of clients.maxSettingsBytes the settings take ("" for none), and
	// size their bytes (settingsSize) counted there.
	owner string
	size  int64
}

// settingsSize is what a client's settings count in
// clients.maxSettingsBytes: the bytes of its names and filters, and a
// little for each entry.
func settingsSize(st ClientSettings) int64 {
	const entry = 64
	n := int64(entry)
	if p := st.Publishing; p != nil {
		for _, t := range p.Topics {
			n += entry + int64(len(t))
		}
	}
	if sub := st.Subscription; sub != nil {
		n += int64(len(sub.Group))
		for _, es := range [][]SubscriptionEntry{sub.Entries, sub.Ignored} {
			for _, e := range es {
				n += entry + int64(len(e.Topic)+len(e.Filter.Text))
			}
		}
	}
	return n
}

// ownerOf is whose share of clients.maxSettingsBytes a client of user
// registered from addr takes ("" for none).
func ownerOf(user string, addr netip.AddrPort) string {
	if user != "" {
		return "user " + user
	}
	if addr.IsValid() {
		return "address " + ClientAddress(addr.Addr()).String()
	}
	return ""
}

// resizeLocked makes cur's settings count size bytes in its owner's
// share, or refuses when the share would be over clients.maxSettingsBytes
// (settings that do not grow are never refused).
func (s *Sessions) resizeLocked(cur *session, size int64) error {
	if cur.owner == "" {
		return nil
	}
	have := s.settingsBytes[cur.owner]
	if s.maxBytes > 0 && size > cur.size && have-cur.size+size > s.maxBytes {
		kind, _, _ := strings.Cut(cur.owner, " ")
		return domain.Errorf(domain.ReasonTooManyRequests,
			"the settings of the clients of this %s would take %d bytes, more than its limit of %d (messaging.clients.maxSettingsBytes); clients are forgotten %v after their last heartbeat",
			kind, have-cur.size+size, s.maxBytes, s.expiry)
	}
	if have += size - cur.size; have > 0 {
		s.settingsBytes[cur.owner] = have
	} else {
		delete(s.settingsBytes, cur.owner)
	}
	cur.size = size
	return nil
}

// Sessions is the registry of connected clients: their settings (from
// Telemetry), their command channel and their liveness (heartbeats). A
// client silent for longer than the expiry timeout is forgotten and what it
// held is released.
//
// Client ids are chosen by the clients. With authentication on, a client
// id belongs to the user that registered it until it is forgotten: a
// request of another user that would register, refresh, replace or end it
// is refused (FORBIDDEN), so that one tenant cannot end, take over or keep
// alive another tenant's client by naming its id; and one user may have at
// most clients.maxClientsPerUser clients known at once, so that a client
// inventing ids cannot fill the registry other tenants need.
type Sessions struct {
	clock   ports.Clock
	expiry  time.Duration
	max     int // most clients known at once
	maxUser int // most clients of one user known at once (0: no bound)
	// maxAddr is the most unauthenticated clients of one client address
	// known at once (0: no bound).
	maxAddr int
	// maxBytes bounds settingsBytes of each owner (0: no bound).
	maxBytes int64
	log      *slog.Logger
	onGone   func(ctx context.Context, clientID string, s ClientSettings)
	mu       sync.Mutex
	clients  map[string]*session
	// perUser counts the known clients of each authenticated user.
	perUser map[string]int
	// perAddr counts the known unauthenticated clients of each client
	// address they were registered from.
	perAddr map[netip.Addr]int
	// settingsBytes counts the settings bytes of the known clients of
	// each owner (see session.owner).
	settingsBytes map[string]int64
	// byGroup holds the known clients with a subscription by its consumer
	// group, byTopic the producers by each topic they publish to: the
	// lookups of a group's consumers (every orderly push consumer's
	// QueryAssignment) and a topic's producers (every transaction
	// check-back) read only theirs, not every known client.
	byGroup, byTopic index
	// replies are the answers awaited from clients (see clientops.go).
	replies pendingReplies
	// departed are the clients that said goodbye (NotifyClientTermination)
	// within the expiry timeout: a heartbeat of one does not register it
	// again (see [Sessions.putProvisional]).
	departed map[string]departure
}

// departure is when a client of user said goodbye.
type departure struct {
	at   time.Time
	user string
}

// NewSessions returns an empty registry.
func NewSessions(cfg Config, clock ports.Clock, log *slog.Logger) *Sessions {
	return &Sessions{clock: clock, expiry: cfg.Clients.ExpiryTimeout, max: cfg.Clients.MaxClients, maxUser: cfg.Clients.MaxClientsPerUser,
		maxAddr: cfg.Clients.MaxClientsPerAddress, maxBytes: cfg.Clients.MaxSettingsBytes, log: log,
		clients: map[string]*session{}, perUser: map[string]int{}, perAddr: map[netip.Addr]int{}, settingsBytes: map[string]int64{},
		departed: map[string]departure{}, byGroup: index{}, byTopic: index{}}
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

// errForeignClient refuses a request naming the client id of a client
// another user registered. It does not name that user.
func errForeignClient(clientID string) error {
	return domain.Errorf(domain.ReasonForbidden,
		"client id %q is in use by a client of another user; every client needs an id of its own", clipText(clientID))
}

// reasonForeignClient is the audit reason of a request refused because
// it names a client id another user registered.
const reasonForeignClient = "foreign_client_id"

// foreignClient records err in the audit log, under the caller and
// operation op, when it refuses a request for naming another user's
// client (errForeignClient), and returns it. access returns the accesses
// the request asked for (its group and topics; nil for none), so that
// the event names them as other denials do: one event each.
func (m *Messaging) foreignClient(ctx context.Context, op string, err error, access func() []domain.AccessRequest) error {
	if err == nil || !domain.HasReason(err, domain.ReasonForbidden) || m.security == nil {
		return err
	}
	if p, ok := PrincipalFrom(ctx); ok {
		var reqs []domain.AccessRequest
		if access != nil {
			reqs = access()
		}
		_ = m.security.Refuse(ctx, p, op, reasonForeignClient, reqs...)
	}
	return err
}

// ownedLocked checks that a known client belongs to user.
func ownedLocked(cur *session, clientID, user string) error {
	if cur.settings.User != user {
		return errForeignClient(clientID)
	}
	return nil
}

// addLocked registers a new client of user (from addr, the address of
// the request that registers it), unless the registry or the share of it
// of the user (or, without one, of the client address) is full.
func (s *Sessions) addLocked(clientID, user string, addr netip.AddrPort, cur *session) error {
	if len(s.clients) >= s.max {
		return s.errTooManyClients()
	}
	if user != "" && s.maxUser > 0 && s.perUser[user] >= s.maxUser {
		return domain.Errorf(domain.ReasonTooManyRequests,
			"this user has %d clients known to the proxy, its limit (messaging.clients.maxClientsPerUser); clients are forgotten %v after their last heartbeat", s.perUser[user], s.expiry)
	}
	var a netip.Addr
	if user == "" && s.maxAddr > 0 && addr.IsValid() {
		// Without a user, the address is what a client cannot choose.
		a = ClientAddress(addr.Addr())
		if n := s.perAddr[a]; n >= s.maxAddr {
			return domain.Errorf(domain.ReasonTooManyRequests,
				"%d clients registered from this client address (an IPv6 address's /64) are known to the proxy, its limit (messaging.clients.maxClientsPerAddress); clients are forgotten %v after their last heartbeat", n, s.expiry)
		}
		s.perAddr[a]++
	}
	cur.addr = a
	cur.owner = ownerOf(user, addr)
	if err := s.resizeLocked(cur, settingsSize(cur.settings)); err != nil {
		if a.IsValid() {
			decrement(s.perAddr, a)
		}
		return err
	}
	s.clients[clientID] = cur
	if user != "" {
		s.perUser[user]++
	}
	s.indexLocked(clientID, cur, true)
	return nil
}

// index maps a consumer group or a topic to the sessions under it, by
// client id.
type index map[string]map[string]*session

func (x index) set(key, clientID string, cur *session, in bool) {
	m := x[key]
	if in {
		if m == nil {
			m = map[string]*session{}
			x[key] = m
		}
		m[clientID] = cur
		return
	}
	delete(m, clientID)
	if len(m) == 0 {
		delete(x, key)
	}
}

// indexLocked adds a client to (in) or removes it from the indexes of its
// current settings' group and topics.
func (s *Sessions) indexLocked(clientID string, cur *session, in bool) {
	if sub := cur.settings.Subscription; sub != nil {
		s.byGroup.set(sub.Group, clientID, cur, in)
	}
	if p := cur.settings.Publishing; p != nil {
		for _, t := range p.Topics {
			s.byTopic.set(t, clientID, cur, in)
		}
	}
}

// deleteLocked forgets a known client.
func (s *Sessions) deleteLocked(clientID string, cur *session) {
	delete(s.clients, clientID)
	s.indexLocked(clientID, cur, false)
	if u := cur.settings.User; u != "" {
		if s.perUser[u] <= 1 {
			delete(s.perUser, u)
		} else {
			s.perUser[u]--
		}
	}
	if cur.addr.IsValid() {
		decrement(s.perAddr, cur.addr)
	}
	_ = s.resizeLocked(cur, 0) // never refused: it shrinks
}

// put stores a client's settings and channel, and returns the settings it
// replaced (zero for a new client); a new client is refused when the
// registry is full, a known one when another user registered it.
func (s *Sessions) put(clientID string, st ClientSettings, ch ports.ClientChannel) (ClientSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.clients[clientID]
	added := cur == nil
	if added {
		cur = &session{since: s.clock.Now(), settings: ClientSettings{User: st.User}}
		if err := s.addLocked(clientID, st.User, st.RemoteAddr, cur); err != nil {
			return ClientSettings{}, err
		}
	} else if err := ownedLocked(cur, clientID, st.User); err != nil {
		return ClientSettings{}, err
	}
	if err := s.resizeLocked(cur, settingsSize(st)); err != nil {
		if added {
			s.deleteLocked(clientID, cur)
		}
		return ClientSettings{}, err
	}
	delete(s.departed, clientID) // it starts again
	prev := cur.settings
	s.indexLocked(clientID, cur, false)
	cur.settings = st
	s.indexLocked(clientID, cur, true)
	cur.provisional = false
	if ch != nil {
		cur.addStream(ch, st.RemoteAddr)
	}
	cur.lastSeen = s.clock.Now()
	return prev, nil
}

// clientStream is a command stream of a client and the address of the
// connection it came on.
type clientStream struct {
	ch   ports.ClientChannel
	addr netip.AddrPort
}

// addStream makes ch, which just carried the client's settings, the
// stream commands go to, and forgets the streams that ended. A client id
// normally has one stream; more are open at once when two processes use
// one id, or when a client opened a new stream before its old one ended.
func (cur *session) addStream(ch ports.ClientChannel, addr netip.AddrPort) {
	kept := cur.streams[:0]
	for _, cs := range cur.streams {
		if cs.ch != ch && isOpen(cs.ch) {
			kept = append(kept, cs)
		}
	}
	clear(cur.streams[len(kept):])
	cur.streams = append(kept, clientStream{ch: ch, addr: addr})
}

// channel returns the stream commands go to: the open one that sent
// settings last (as the Apache proxy writes a client id's commands to its
// latest stream), or when none is open the last one (nil if the client
// opened none). When the latest stream ends while an earlier one of the
// client id is still open, the earlier one gets the commands.
func (cur *session) channel() ports.ClientChannel {
	for i := len(cur.streams) - 1; i >= 0; i-- {
		if isOpen(cur.streams[i].ch) {
			return cur.streams[i].ch
		}
	}
	if n := len(cur.streams); n > 0 {
		return cur.streams[n-1].ch
	}
	return nil
}

// errDeparted refuses to register a client by its heartbeat after it said
// goodbye, with the Apache proxy's answer to a heartbeat of a client whose
// settings it dropped.
var errDeparted = domain.Errorf(domain.ReasonUnrecognizedClientType, "cannot find client settings for this client")

// putProvisional stores settings inferred from a request of a client that
// has not declared its own, unless it has meanwhile; it returns the
// client's settings either way, or an error when the registry is full or
// another user registered the client. With notDeparted it refuses
// (errDeparted) a client of the same user that said goodbye within the
// expiry timeout and has not sent settings since: the official Go client
// v5.1.4 says goodbye before it leaves its heartbeat timer, and a
// heartbeat sent in between must not bring it back, as a consumer that
// takes its share of an orderly group's queues or as a group's client on
// the brokers, until it expires. (Another user may take the id: it is
// free once its client left.)
func (s *Sessions) putProvisional(clientID string, st ClientSettings, notDeparted bool) (ClientSettings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.clients[clientID]; ok {
		if err := ownedLocked(cur, clientID, st.User); err != nil {
			return ClientSettings{}, err
		}
		cur.lastSeen = s.clock.Now()
		return cur.settings, nil
	}
	now := s.clock.Now()
	if d, ok := s.departed[clientID]; ok && notDeparted {
		if !d.at.Before(now.Add(-s.expiry)) && d.user == st.User {
			return ClientSettings{}, errDeparted
		}
		delete(s.departed, clientID)
	}
	if err := s.addLocked(clientID, st.User, st.RemoteAddr, &session{settings: st, provisional: true, lastSeen: now, since: now}); err != nil {
		return ClientSettings{}, err
	}
	return st, nil
}

// owned returns the stored settings of a client of user; known is false
// for a client the proxy does not know, and an error says that another
// user registered it.
func (s *Sessions) owned(clientID, user string) (st ClientSettings, known bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, known, err := s.ownedSessionLocked(clientID, user)
	if cur == nil {
		return ClientSettings{}, known, err
	}
	return cur.settings, true, nil
}

// ownedSessionLocked returns the session of a known client of user (nil
// when the client is unknown, or with an error when another user
// registered it) and whether the client is known.
func (s *Sessions) ownedSessionLocked(clientID, user string) (*session, bool, error) {
	cur, ok := s.clients[clientID]
	if !ok {
		return nil, false, nil
	}
	if err := ownedLocked(cur, clientID, user); err != nil {
		return nil, true, err
	}
	return cur, true, nil
}

// groupExists records that the consumer group of a client's subscription,
// group, exists (see [ClientSettings.GroupExists]).
func (s *Sessions) groupExists(clientID, group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.clients[clientID]; ok && cur.settings.Subscription != nil && cur.settings.Subscription.Group == group {
		cur.settings.GroupExists = true
	}
}

// GroupDeleted records that a consumer group was deleted: its clients no
// longer count as consumers of an existing group (see
// [ClientSettings.GroupExists]) until a receive finds it again, so that
// the client gauges do not give the deleted group's label value back to
// it.
func (s *Sessions) GroupDeleted(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.byGroup[group] {
		c.settings.GroupExists = false
	}
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

// touch records that a client of user is alive; it reports whether the
// client is known, and refuses a client another user registered.
func (s *Sessions) touch(clientID, user string) (ClientSettings, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, known, err := s.ownedSessionLocked(clientID, user)
	if cur == nil {
		return ClientSettings{}, known, err
	}
	cur.lastSeen = s.clock.Now()
	return cur.settings, true, nil
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
	return cur.channel(), true
}

// remove forgets a client of user, said goodbye on the connection from
// addr, and returns its settings and the command streams to end: those
// that came on that connection, or every one when none did (a balancer
// that spreads one connection's requests over several of its own); a
// stream of the client id on another connection (another process using
// the id) is left to its client. A client another user registered is
// kept.
func (s *Sessions) remove(clientID, user string, addr netip.AddrPort) (ClientSettings, []ports.ClientChannel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.clients[clientID]
	if !ok || cur.settings.User != user {
		return ClientSettings{}, nil, false
	}
	s.deleteLocked(clientID, cur)
	s.departLocked(clientID, user)
	var end, all []ports.ClientChannel
	for _, cs := range cur.streams {
		all = append(all, cs.ch)
		if cs.addr == addr {
			end = append(end, cs.ch)
		}
	}
	if len(end) == 0 {
		end = all
	}
	return cur.settings, end, true
}

// departLocked records that a client said goodbye. The record is kept
// for the expiry timeout, and there are at most as many as the registry
// holds clients: when full, the expired ones go, and if none has, the
// goodbye is not recorded (a heartbeat may then register the client again,
// as one after a restart does).
func (s *Sessions) departLocked(clientID, user string) {
	now := s.clock.Now()
	if len(s.departed) >= s.max {
		s.pruneDepartedLocked(now)
		if len(s.departed) >= s.max {
			return
		}
	}
	s.departed[clientID] = departure{at: now, user: user}
}

// pruneDepartedLocked forgets the goodbyes older than the expiry timeout.
func (s *Sessions) pruneDepartedLocked(now time.Time) {
	cutoff := now.Add(-s.expiry)
	for id, d := range s.departed {
		if d.at.Before(cutoff) {
			delete(s.departed, id)
		}
	}
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
			s.deleteLocked(id, cur)
		}
	}
	s.pruneDepartedLocked(s.clock.Now())
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
	everyPeriod(ctx, every, s.expire)
}

// hasProducerOf reports whether a producer that declared topic in its
// publishing settings has a live command channel.
func (s *Sessions) hasProducerOf(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cur := range s.byTopic[topic] {
		if cur.liveProducerOf(topic) {
			return true
		}
	}
	return false
}

// liveProducerOf reports whether the session is a producer that declared
// topic in its publishing settings and has a command channel still open.
func (cur *session) liveProducerOf(topic string) bool {
	if cur.settings.Publishing == nil || !slices.Contains(cur.settings.Publishing.Topics, topic) {
		return false
	}
	return isOpen(cur.channel())
}

// producer is a live producer of a topic: its command channel and who it
// is, for the check of what it may still receive.
type producer struct {
	clientID string
	channel  ports.ClientChannel
	settings ClientSettings
}

// producersOf returns the live producers that declared topic in their
// publishing settings, in a stable order.
func (s *Sessions) producersOf(topic string) []producer {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0)
	for id, cur := range s.byTopic[topic] {
		if cur.liveProducerOf(topic) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]producer, len(ids))
	for i, id := range ids {
		out[i] = producer{clientID: id, channel: s.clients[id].channel(), settings: s.clients[id].settings}
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
	for id, cur := range s.byGroup[group] {
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
// come yet) counts as subscribing to every topic, but not one whose
// entries were all ignored.
func (s *SubscriptionSettings) subscribes(topic string) bool {
	if len(s.Entries) == 0 && len(s.Ignored) == 0 {
		return true
	}
	return slices.ContainsFunc(s.Entries, func(e SubscriptionEntry) bool { return e.Topic == topic })
}
