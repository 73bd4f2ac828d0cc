package application

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TrafficConfig bounds what clients may make the proxy do (key traffic).
// The rate limits live in a rules file of their own, so that they can be
// changed without a restart; the budgets here are fixed for the process.
type TrafficConfig struct {
	RulesFile            string        `yaml:"rulesFile" help:"YAML or JSON file of rate limits (messages/s, bytes/s) per client, topic, consumer group, namespace and user (format in docs/operations.md); reloaded when it changes (see reloadInterval) and on SIGHUP; a file that does not load keeps the rules in force; empty: no rate limits"`
	ReloadInterval       time.Duration `yaml:"reloadInterval" help:"how often rulesFile is checked for changes; 0: only on SIGHUP"`
	MaxInflightBytes     int64         `yaml:"maxInflightBytes" unit:"bytes" help:"message bytes of send requests being processed at once (a memory budget); a send that would exceed it gets TOO_MANY_REQUESTS, except when nothing else is in flight; 0: no limit"`
	MaxInflightPerClient int           `yaml:"maxInflightPerClient" help:"requests one client id may have in flight at once (long polls and its Telemetry stream count), so that one client cannot take every slot of grpc.maxInflightPerKind; more get TOO_MANY_REQUESTS; acks, invisible-time changes, dead-letterings, transaction ends, offset commits and heartbeats count apart, in a budget of the same size, so that long polls filling it never refuse them; 0: no limit"`
	// MaxInflightPerUser bounds a tenant: client ids are the clients'
	// choice, so a client inventing one per request is bounded only here.
	MaxInflightPerUser int `yaml:"maxInflightPerUser" help:"with auth.enabled, requests all clients of one user may have in flight at once (long polls and Telemetry streams count), so that a client inventing client ids cannot take every slot of grpc.maxInflightPerKind from the other users; keep it below grpc.maxInflightPerKind; more get TOO_MANY_REQUESTS (acks, transaction ends and heartbeats count apart, in a budget of the same size, as with maxInflightPerClient); 0: no limit"`
	// MaxInflightPerAddress bounds what maxInflightPerUser bounds for
	// clients that are not authenticated: their address is what they
	// cannot choose.
	MaxInflightPerAddress int `yaml:"maxInflightPerAddress" help:"requests all clients without authentication at one client IP address (an IPv6 /64) may have in flight at once (long polls and Telemetry streams count), so that a client inventing client ids cannot take every slot of grpc.maxInflightPerKind from the other clients; keep it below grpc.maxInflightPerKind and raise it when many clients share an address behind NAT (as grpc.maxConnectionsPerAddress); more get TOO_MANY_REQUESTS (acks, transaction ends and heartbeats count apart, in a budget of the same size, as with maxInflightPerClient); authenticated clients are bounded by maxInflightPerUser instead; 0: no limit"`
}

// DefaultTrafficConfig returns the defaults: no rate limits, 512 MiB of
// send requests, 1000 requests per client and 5000 per user and per
// unauthenticated client address in flight (half of
// grpc.maxInflightPerKind's default).
func DefaultTrafficConfig() TrafficConfig {
	return TrafficConfig{ReloadInterval: 10 * time.Second, MaxInflightBytes: 512 << 20, MaxInflightPerClient: 1000, MaxInflightPerUser: 5000,
		MaxInflightPerAddress: 5000}
}

// Validate checks that the budgets are not negative.
func (c TrafficConfig) Validate() error {
	var errs []error
	if c.ReloadInterval < 0 {
		errs = append(errs, errors.New("reloadInterval must not be negative (0: reload on SIGHUP only)"))
	}
	for _, n := range []struct {
		key   string
		value int64
	}{{"maxInflightBytes", c.MaxInflightBytes}, {"maxInflightPerClient", int64(c.MaxInflightPerClient)}, {"maxInflightPerUser", int64(c.MaxInflightPerUser)},
		{"maxInflightPerAddress", int64(c.MaxInflightPerAddress)}} {
		if n.value < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative (0: no limit), not %d", n.key, n.value))
		}
	}
	return errors.Join(errs...)
}

// Rate is a token bucket: PerSecond units are added every second, up to
// Burst. A zero PerSecond means no limit; a zero Burst means one second's
// worth. A request costing more than the burst is let through when the
// bucket is full and leaves it in debt, so that large messages still pass
// at the configured average.
type Rate struct {
	PerSecond float64
	Burst     float64
}

func (r Rate) limited() bool { return r.PerSecond > 0 }

func (r Rate) burst() float64 {
	if r.Burst > 0 {
		return r.Burst
	}
	return r.PerSecond
}

// FlowLimits limit one direction of traffic in messages and in body bytes.
type FlowLimits struct {
	Messages Rate
	Bytes    Rate
}

func (f FlowLimits) limited() bool { return f.Messages.limited() || f.Bytes.limited() }

// Limits are the rate limits of one client, topic, group, namespace or
// user: what it may send (produce) and receive (consume).
type Limits struct {
	Send    FlowLimits
	Receive FlowLimits
}

// ScopeRules are the limits of one kind of name (topics, groups, ...):
// Named for listed names, Default (when set) for every other name, each
// with buckets of its own.
type ScopeRules struct {
	Default *Limits
	Named   map[string]Limits
}

func (s ScopeRules) of(name string) (Limits, bool) {
	if l, ok := s.Named[name]; ok {
		return l, true
	}
	if s.Default != nil {
		return *s.Default, true
	}
	return Limits{}, false
}

// TrafficRules are the rate limits in force. A request is charged to every
// scope that has a limit for it: its client, its topic, its consumer group
// (receives), the namespace of its topic, and its user (when
// authentication is on). A tenant is a namespace or a user: quotas for
// either are the limits of its scope, shared by all its clients.
type TrafficRules struct {
	// Clients applies to every client id, each with buckets of its own.
	Clients    Limits
	Topics     ScopeRules
	Groups     ScopeRules
	Namespaces ScopeRules
	Users      ScopeRules
}

// Validate reports limits that cannot work: negative or non-finite rates,
// bursts without a rate (which would limit nothing), and send limits on
// consumer groups (sends have no group).
func (r TrafficRules) Validate() error {
	var errs []error
	check := func(where string, l Limits) {
		for _, f := range []struct {
			name string
			r    Rate
		}{{"send.messagesPerSecond", l.Send.Messages}, {"send.bytesPerSecond", l.Send.Bytes},
			{"receive.messagesPerSecond", l.Receive.Messages}, {"receive.bytesPerSecond", l.Receive.Bytes}} {
			if !(f.r.PerSecond >= 0) || math.IsInf(f.r.PerSecond, 0) || !(f.r.Burst >= 0) || math.IsInf(f.r.Burst, 0) {
				errs = append(errs, fmt.Errorf("%s: %s and its burst must be finite and not negative", where, f.name))
			} else if f.r.Burst > 0 && f.r.PerSecond == 0 {
				errs = append(errs, fmt.Errorf("%s: a burst without %s limits nothing; set the rate too", where, f.name))
			}
		}
	}
	scope := func(kind string, s ScopeRules) {
		if s.Default != nil {
			check(kind+" default", *s.Default)
		}
		for name, l := range s.Named {
			if name == "" {
				if kind != "namespaces" {
					errs = append(errs, fmt.Errorf("%s: an entry has an empty name", kind))
				}
			}
			check(fmt.Sprintf("%s %q", kind, name), l)
		}
	}
	check("clients", r.Clients)
	scope("topics", r.Topics)
	scope("groups", r.Groups)
	scope("namespaces", r.Namespaces)
	scope("users", r.Users)
	if d := r.Groups.Default; d != nil && d.Send.limited() {
		errs = append(errs, errors.New("groups default: consumer groups have receive limits only (sends name no group)"))
	}
	for name, l := range r.Groups.Named {
		if l.Send.limited() {
			errs = append(errs, fmt.Errorf("groups %q: consumer groups have receive limits only (sends name no group)", name))
		}
	}
	return errors.Join(errs...)
}

// scope is a kind of name traffic is charged to, or another bound a
// request can run into.
type scope uint8

const (
	scopeClient scope = iota
	scopeTopic
	scopeGroup
	scopeNamespace
	scopeUser
	scopeInflightBytes
	scopeClientInflight
	scopeUserInflight
	scopeAddressInflight
	scopeCount
)

var scopeNames = [scopeCount]string{"client", "topic", "group", "namespace", "user", "inflight_bytes", "client_inflight", "user_inflight", "address_inflight"}

// Direction is what a limit applies to.
type Direction uint8

// Directions of traffic.
const (
	DirectionSend Direction = iota
	DirectionReceive
	directionCount
)

func (d Direction) String() string {
	if d == DirectionSend {
		return "send"
	}
	return "receive"
}

// Token counters of a bucket, in this order.
const (
	tokSendMessages = iota
	tokSendBytes
	tokReceiveMessages
	tokReceiveBytes
	tokCount
)

func (l Limits) rates() [tokCount]Rate {
	return [tokCount]Rate{l.Send.Messages, l.Send.Bytes, l.Receive.Messages, l.Receive.Bytes}
}

type bucketKey struct {
	scope scope
	name  string
}

// bucket holds the tokens of one name of one scope. Its limits are read
// from the rules in force at each use, so that a reload applies to buckets
// already in use (their tokens are capped at the new burst).
type bucket struct {
	mu     sync.Mutex
	tokens [tokCount]float64
	last   time.Time
}

// refill adds the tokens earned since the last use, up to each burst.
func (b *bucket) refill(now time.Time, rates *[tokCount]Rate) {
	dt := now.Sub(b.last).Seconds()
	if dt < 0 {
		dt = 0
	}
	for i, r := range rates {
		if r.limited() {
			b.tokens[i] = min(r.burst(), b.tokens[i]+dt*r.PerSecond)
		}
	}
	b.last = now
}

// full reports whether no bucket counter is below its burst: such a
// bucket remembers nothing and can be dropped.
func (b *bucket) full(now time.Time, rates *[tokCount]Rate) bool {
	b.refill(now, rates)
	for i, r := range rates {
		if r.limited() && b.tokens[i] < r.burst() {
			return false
		}
	}
	return true
}

// charged is one bucket a request is charged to, with the limits that
// apply to it.
type charged struct {
	key   bucketKey
	b     *bucket
	rates [tokCount]Rate
}

// minSweep is the bucket count below which idle buckets are kept.
const minSweep = 4096

// Traffic is traffic governance shared by the protocol adapters: rate
// limits from [TrafficRules] (token buckets per client, topic, group,
// namespace and user), the budget of send bytes in flight and the bound on
// one client's requests in flight. Refusals are domain TooManyRequests
// errors, which clients treat as throttling: producers back off and retry,
// consumers receive again later. The zero rules limit nothing; a Traffic
// without rules costs an atomic load per request.
type Traffic struct {
	cfg   TrafficConfig
	clock ports.Clock

	rules    atomic.Pointer[TrafficRules]
	revision atomic.Int64

	mu       sync.Mutex // guards buckets and sweepAt
	buckets  map[bucketKey]*bucket
	sweepAt  int
	inflight atomic.Int64 // send bytes being processed

	clientMu sync.Mutex
	// clientRequest counts the requests in flight of each client id of
	// each user (clientKey), userRequest those of each user; finishing
	// requests (EnterFinishingRequest) apart from the others.
	clientRequest map[clientKey]int
	userRequest   map[userKey]int
	// addressRequest counts those of the unauthenticated clients of each
	// client address (ClientAddress).
	addressRequest map[addressKey]int

	throttled      [scopeCount][directionCount]atomic.Uint64
	receiveWaits   atomic.Uint64
	receiveWaitDur atomic.Int64 // nanoseconds
}

// NewTraffic returns traffic governance with cfg's budgets and no rate
// limits until SetRules.
func NewTraffic(cfg TrafficConfig, clock ports.Clock) *Traffic {
	return &Traffic{cfg: cfg, clock: clock, buckets: map[bucketKey]*bucket{}, sweepAt: minSweep,
		clientRequest: map[clientKey]int{}, userRequest: map[userKey]int{}, addressRequest: map[addressKey]int{}}
}

// SetRules puts rules in force (after validating them) and returns their
// revision, which counts the rule sets this process has put in force.
// Buckets in use keep their tokens, capped at the new bursts.
func (t *Traffic) SetRules(r TrafficRules) (int64, error) {
	if err := r.Validate(); err != nil {
		return 0, err
	}
	t.rules.Store(&r)
	return t.revision.Add(1), nil
}

// Rules returns the rules in force and their revision (0: none loaded).
func (t *Traffic) Rules() (TrafficRules, int64) {
	r := t.rules.Load()
	if r == nil {
		return TrafficRules{}, 0
	}
	return *r, t.revision.Load()
}

// subject is who and what a request is charged to.
type subject struct {
	client, topic, group, user string
}

func subjectOf(ctx context.Context, topic, group string) subject {
	s := subject{client: ports.RequestInfoFrom(ctx).ClientID, topic: topic, group: group}
	if p, ok := PrincipalFrom(ctx); ok {
		s.user = p.User.Name
	}
	return s
}

// applicable returns the buckets of s limited in direction d, in scope
// order (the order their locks are taken in).
func (t *Traffic) applicable(r *TrafficRules, s subject, d Direction) []charged {
	var out []charged
	add := func(sc scope, name string, l Limits, ok bool) {
		if !ok {
			return
		}
		f := l.Send
		if d == DirectionReceive {
			f = l.Receive
		}
		if f.limited() {
			out = append(out, charged{key: bucketKey{sc, name}, rates: l.rates()})
		}
	}
	// A client id is the client's choice: the buckets of one user's
	// client are not those of another user's client with the same id.
	client := s.client
	if s.user != "" {
		client = s.user + "\x00" + s.client
	}
	add(scopeClient, client, r.Clients, s.client != "")
	if s.topic != "" {
		l, ok := r.Topics.of(s.topic)
		add(scopeTopic, s.topic, l, ok)
		ns, _ := domain.SplitNamespace(s.topic)
		l, ok = r.Namespaces.of(ns)
		add(scopeNamespace, ns, l, ok)
	}
	if s.group != "" && d == DirectionReceive {
		l, ok := r.Groups.of(s.group)
		add(scopeGroup, s.group, l, ok)
	}
	if s.user != "" {
		l, ok := r.Users.of(s.user)
		add(scopeUser, s.user, l, ok)
	}
	if len(out) == 0 {
		return nil
	}
	now := t.clock.Now()
	t.mu.Lock()
	for i := range out {
		b := t.buckets[out[i].key]
		if b == nil {
			b = &bucket{last: now}
			for j, rt := range out[i].rates {
				b.tokens[j] = rt.burst()
			}
			t.buckets[out[i].key] = b
		}
		out[i].b = b
	}
	if len(t.buckets) > t.sweepAt {
		t.sweepLocked(now, r)
	}
	t.mu.Unlock()
	return out
}

// sweepLocked drops buckets that are full (idle long enough to have
// refilled) and sets the size of the next sweep to twice what is left, so
// that sweeping costs O(1) per bucket created.
func (t *Traffic) sweepLocked(now time.Time, r *TrafficRules) {
	for k, b := range t.buckets {
		l, ok := r.limitsOf(k)
		rates := l.rates()
		if !b.mu.TryLock() {
			continue
		}
		if !ok || b.full(now, &rates) {
			delete(t.buckets, k)
		}
		b.mu.Unlock()
	}
	t.sweepAt = max(minSweep, 2*len(t.buckets))
}

func (r *TrafficRules) limitsOf(k bucketKey) (Limits, bool) {
	switch k.scope {
	case scopeClient:
		return r.Clients, true
	case scopeTopic:
		return r.Topics.of(k.name)
	case scopeGroup:
		return r.Groups.of(k.name)
	case scopeNamespace:
		return r.Namespaces.of(k.name)
	case scopeUser:
		return r.Users.of(k.name)
	}
	return Limits{}, false
}

func lockAll(cs []charged, now time.Time) {
	for i := range cs {
		cs[i].b.mu.Lock()
		cs[i].b.refill(now, &cs[i].rates)
	}
}

func unlockAll(cs []charged) {
	for i := range cs {
		cs[i].b.mu.Unlock()
	}
}

// AdmitSend charges a send of messages carrying bodyBytes to every limit
// that applies to it (client, topic, namespace of the topic, user), or
// refuses it with a TooManyRequests error naming the first limit it is
// over, without charging anything.
func (t *Traffic) AdmitSend(ctx context.Context, topic string, messages int, bodyBytes int64) error {
	r := t.rules.Load()
	if r == nil {
		return nil
	}
	cs := t.applicable(r, subjectOf(ctx, topic, ""), DirectionSend)
	if cs == nil {
		return nil
	}
	lockAll(cs, t.clock.Now())
	defer unlockAll(cs)
	cost := [tokCount]float64{tokSendMessages: float64(messages), tokSendBytes: float64(bodyBytes)}
	for i := range cs {
		for _, k := range [...]int{tokSendMessages, tokSendBytes} {
			rt := cs[i].rates[k]
			if rt.limited() && cs[i].b.tokens[k] < min(cost[k], rt.burst()) {
				t.throttled[cs[i].key.scope][DirectionSend].Add(1)
				return overLimit(cs[i].key, DirectionSend, k, rt)
			}
		}
	}
	for i := range cs {
		for _, k := range [...]int{tokSendMessages, tokSendBytes} {
			if cs[i].rates[k].limited() {
				cs[i].b.tokens[k] -= cost[k]
			}
		}
	}
	return nil
}

func overLimit(k bucketKey, d Direction, tok int, r Rate) error {
	unit := "message"
	if tok == tokSendBytes || tok == tokReceiveBytes {
		unit = "byte"
	}
	if r.PerSecond != 1 {
		unit += "s"
	}
	who := fmt.Sprintf("%s %q", scopeNames[k.scope], k.name)
	if k.scope == scopeClient {
		who = "this client"
	}
	return domain.Errorf(domain.ReasonTooManyRequests,
		"rate limit: %s may %s %g %s per second (traffic rules, %s); retry later", who, d, r.PerSecond, unit, scopePlural(k.scope))
}

func scopePlural(s scope) string { return scopeNames[s] + "s" }

// AwaitReceive waits, up to maxWait, until every receive limit that
// applies to a consumer of group and topic has room for one message, and
// returns the most messages the receive may take (0: no limit applies) and
// how long it waited. When the limits do not recover within maxWait it
// waits maxWait and returns a TooManyRequests error: consumers then back
// off instead of polling again at once.
func (t *Traffic) AwaitReceive(ctx context.Context, group, topic string, maxWait time.Duration) (int32, time.Duration, error) {
	r := t.rules.Load()
	if r == nil {
		return 0, 0, nil
	}
	cs := t.applicable(r, subjectOf(ctx, topic, group), DirectionReceive)
	if cs == nil {
		return 0, 0, nil
	}
	start := t.clock.Now()
	deadline := start.Add(maxWait)
	for {
		now := t.clock.Now()
		lockAll(cs, now)
		limit, wait, over := receiveRoom(cs)
		unlockAll(cs)
		if over == nil {
			waited := now.Sub(start)
			if waited > 0 {
				t.receiveWaits.Add(1)
				t.receiveWaitDur.Add(int64(waited))
			}
			return limit, waited, nil
		}
		if left := deadline.Sub(now); wait > left {
			t.throttled[over.key.scope][DirectionReceive].Add(1)
			if err := sleepCtx(ctx, left); err != nil {
				return 0, now.Sub(start), err
			}
			return 0, maxWait, overLimit(over.key, DirectionReceive, over.tok, over.rate)
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return 0, now.Sub(start), err
		}
	}
}

type overReceive struct {
	key  bucketKey
	tok  int
	rate Rate
}

// receiveRoom returns the most messages the buckets allow now, or how long
// until they allow one and which limit is short. Buckets are locked.
func receiveRoom(cs []charged) (int32, time.Duration, *overReceive) {
	limit := math.MaxFloat64
	var wait time.Duration
	var over *overReceive
	for i := range cs {
		for _, k := range [...]int{tokReceiveMessages, tokReceiveBytes} {
			rt := cs[i].rates[k]
			if !rt.limited() {
				continue
			}
			need := min(1, rt.burst())
			have := cs[i].b.tokens[k]
			if have < need {
				w := time.Duration((need - have) / rt.PerSecond * float64(time.Second))
				if over == nil || w > wait {
					wait, over = w, &overReceive{cs[i].key, k, rt}
				}
				continue
			}
			if k == tokReceiveMessages {
				limit = min(limit, have)
			}
		}
	}
	if over != nil {
		return 0, max(wait, time.Millisecond), over
	}
	if limit >= math.MaxInt32 {
		return 0, 0, nil
	}
	return int32(max(1, limit)), 0, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ChargeReceive charges messages carrying bodyBytes delivered to a
// consumer of group and topic to every receive limit that applies; the
// buckets may go into debt, which later receives wait out.
func (t *Traffic) ChargeReceive(ctx context.Context, group, topic string, messages int, bodyBytes int64) {
	r := t.rules.Load()
	if r == nil || messages == 0 {
		return
	}
	cs := t.applicable(r, subjectOf(ctx, topic, group), DirectionReceive)
	if cs == nil {
		return
	}
	lockAll(cs, t.clock.Now())
	for i := range cs {
		if cs[i].rates[tokReceiveMessages].limited() {
			cs[i].b.tokens[tokReceiveMessages] -= float64(messages)
		}
		if cs[i].rates[tokReceiveBytes].limited() {
			cs[i].b.tokens[tokReceiveBytes] -= float64(bodyBytes)
		}
	}
	unlockAll(cs)
}

// ReserveBytes reserves n bytes of the in-flight send budget
// (traffic.maxInflightBytes) and returns the reservation, to be released
// (a value: no allocation per send), or a TooManyRequests error when they
// do not fit. A request that
// is larger than the whole budget is admitted only when nothing else is in
// flight, so that it can still be served.
func (t *Traffic) ReserveBytes(n int64) (BytesReservation, error) {
	max := t.cfg.MaxInflightBytes
	if max <= 0 || n <= 0 {
		return BytesReservation{}, nil
	}
	for {
		cur := t.inflight.Load()
		if cur > 0 && cur+n > max {
			t.throttled[scopeInflightBytes][DirectionSend].Add(1)
			return BytesReservation{}, domain.Errorf(domain.ReasonTooManyRequests,
				"the proxy is processing %d bytes of messages, its budget is %d (traffic.maxInflightBytes); retry later", cur, max)
		}
		if t.inflight.CompareAndSwap(cur, cur+n) {
			return BytesReservation{t: t, n: n}, nil
		}
	}
}

// BytesReservation is bytes of the in-flight send budget ReserveBytes
// reserved; the zero value reserves none.
type BytesReservation struct {
	t *Traffic
	n int64
}

// Release gives the bytes back; call it once.
func (b BytesReservation) Release() {
	if b.t != nil {
		b.t.inflight.Add(-b.n)
	}
}

// InflightBytes returns the send bytes being processed.
func (t *Traffic) InflightBytes() int64 { return t.inflight.Load() }

// clientKey is a client id as one user uses it: the ids are the clients'
// choice, so two users' clients with one id are two clients. Finishing
// requests count apart.
type clientKey struct {
	user, client string
	finishing    bool
}

// userKey is a user's count of requests, finishing ones apart.
type userKey struct {
	user      string
	finishing bool
}

// addressKey is a client address's count of requests, finishing ones
// apart.
type addressKey struct {
	addr      netip.Addr
	finishing bool
}

// ClientAddress is what counts as one client address: an IPv4 address, or
// an IPv6 address's /64, the least a network gives one IPv6 host (which
// can then connect from any of its 2^64 addresses).
func ClientAddress(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if !a.Is6() {
		return a
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}

// EnterClient counts a request of the client (and user, when
// authenticated) of ctx in flight and returns the function that ends it,
// or a TooManyRequests error when the client already has
// traffic.maxInflightPerClient requests in flight, or its user
// traffic.maxInflightPerUser.
func (t *Traffic) EnterClient(ctx context.Context, d Direction) (func(), error) {
	e, err := t.EnterClientRequest(ctx, d)
	if err != nil {
		return nil, err
	}
	return e.Leave, nil
}

// EnterClientRequest is EnterClient returning the request's place as a
// value, which costs no allocation: every request takes one.
func (t *Traffic) EnterClientRequest(ctx context.Context, d Direction) (ClientRequest, error) {
	return t.enterClient(ctx, d, false)
}

// EnterFinishingRequest is EnterClientRequest for a request that finishes
// work its client holds or keeps it known (an ack, an invisible-time
// change, a transaction end, a heartbeat). These count in budgets of the
// same sizes apart from the client's other requests: its Telemetry stream
// and long polls, which may fill its budget for as long as they wait,
// never keep it from acking what it received (refused acks bring messages
// back; refused heartbeats let a session expire), while one user still
// never holds more than traffic.maxInflightPerUser requests of a kind.
func (t *Traffic) EnterFinishingRequest(ctx context.Context, d Direction) (ClientRequest, error) {
	return t.enterClient(ctx, d, true)
}

func (t *Traffic) enterClient(ctx context.Context, d Direction, finishing bool) (ClientRequest, error) {
	maxClient, maxUser, maxAddr := t.cfg.MaxInflightPerClient, t.cfg.MaxInflightPerUser, t.cfg.MaxInflightPerAddress
	info := ports.RequestInfoFrom(ctx)
	k := clientKey{userOf(ctx), info.ClientID, finishing}
	what := "requests"
	if finishing {
		what = "acks, transaction ends and heartbeats"
	}
	if k.client == "" {
		maxClient = 0
	}
	var ak addressKey
	if k.user == "" {
		maxUser = 0
		// Without a user, the address is what the client cannot choose.
		ak = addressKey{ClientAddress(info.RemoteAddr.Addr()), finishing}
	}
	if k.user != "" || !ak.addr.IsValid() {
		maxAddr = 0
	}
	if maxClient <= 0 && maxUser <= 0 && maxAddr <= 0 {
		return ClientRequest{}, nil
	}
	t.clientMu.Lock()
	if n := t.clientRequest[k]; maxClient > 0 && n >= maxClient {
		t.clientMu.Unlock()
		t.throttled[scopeClientInflight][d].Add(1)
		return ClientRequest{}, domain.Errorf(domain.ReasonTooManyRequests,
			"this client has %d %s in flight, its limit (traffic.maxInflightPerClient); retry later", n, what)
	}
	if n := t.userRequest[userKey{k.user, finishing}]; maxUser > 0 && n >= maxUser {
		t.clientMu.Unlock()
		t.throttled[scopeUserInflight][d].Add(1)
		return ClientRequest{}, domain.Errorf(domain.ReasonTooManyRequests,
			"the clients of this user have %d %s in flight, its limit (traffic.maxInflightPerUser); retry later", n, what)
	}
	if n := t.addressRequest[ak]; maxAddr > 0 && n >= maxAddr {
		t.clientMu.Unlock()
		t.throttled[scopeAddressInflight][d].Add(1)
		return ClientRequest{}, domain.Errorf(domain.ReasonTooManyRequests,
			"the clients at this client address (an IPv6 address's /64) have %d %s in flight, its limit (traffic.maxInflightPerAddress); retry later", n, what)
	}
	if maxClient > 0 {
		t.clientRequest[k]++
	}
	if maxUser > 0 {
		t.userRequest[userKey{k.user, finishing}]++
	}
	if maxAddr > 0 {
		t.addressRequest[ak]++
	}
	t.clientMu.Unlock()
	return ClientRequest{t: t, k: k, a: ak, client: maxClient > 0, user: maxUser > 0, addr: maxAddr > 0}, nil
}

// ClientRequest is a request EnterClientRequest counted for its client
// and user; the zero value counts nowhere.
type ClientRequest struct {
	t                  *Traffic
	k                  clientKey
	a                  addressKey
	client, user, addr bool // counted for the client, the user, the address
}

// Leave ends the request's count; call it once.
func (e ClientRequest) Leave() {
	if e.t == nil {
		return
	}
	t := e.t
	t.clientMu.Lock()
	if e.client {
		decrement(t.clientRequest, e.k)
	}
	if e.user {
		decrement(t.userRequest, userKey{e.k.user, e.k.finishing})
	}
	if e.addr {
		decrement(t.addressRequest, e.a)
	}
	t.clientMu.Unlock()
}

// decrement counts one less for k, forgetting k at zero.
func decrement[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k)
	} else {
		m[k]--
	}
}

// ThrottleCount is how many requests one bound refused (or, for receives
// of rate limits, held for their whole polling time).
type ThrottleCount struct {
	// Scope is client, topic, group, namespace, user (rate limits),
	// inflight_bytes, client_inflight, user_inflight or address_inflight.
	Scope     string
	Direction Direction
	Count     uint64
}

// TrafficStats is what traffic governance has done since start.
type TrafficStats struct {
	RulesRevision int64
	Throttled     []ThrottleCount
	// ReceiveWaits counts receives that waited for their rate limits to
	// recover and were then served; ReceiveWaitTime is their total wait.
	ReceiveWaits    uint64
	ReceiveWaitTime time.Duration
	InflightBytes   int64
	Buckets         int
}

// Stats returns the counters, with every scope and direction listed.
func (t *Traffic) Stats() TrafficStats {
	st := TrafficStats{RulesRevision: t.revision.Load(), ReceiveWaits: t.receiveWaits.Load(),
		ReceiveWaitTime: time.Duration(t.receiveWaitDur.Load()), InflightBytes: t.inflight.Load()}
	for sc := range scopeCount {
		for d := range directionCount {
			if scope(sc) == scopeInflightBytes && d == DirectionReceive {
				continue
			}
			st.Throttled = append(st.Throttled, ThrottleCount{Scope: scopeNames[sc], Direction: d, Count: t.throttled[sc][d].Load()})
		}
	}
	t.mu.Lock()
	st.Buckets = len(t.buckets)
	t.mu.Unlock()
	return st
}
