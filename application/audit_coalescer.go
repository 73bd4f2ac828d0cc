package application

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// AuditCoalesceConfig bounds how repeated refusals are recorded
// (auth.auditCoalesce).
type AuditCoalesceConfig struct {
	Window           time.Duration `yaml:"window" help:"repeated refusals (authentication failures, authorization denials) with the same principal or AccessKey, source address, protocol, operation, resource, actions and reason within this time are recorded as one audit event with a count, after the first (recorded at once); 0: every refusal is its own event"`
	MaxKeys          int           `yaml:"maxKeys" help:"distinct refusals coalesced at once; beyond, refusals are counted per origin (user, or source address for authentication failures), then per category, without their details"`
	MaxKeysPerOrigin int           `yaml:"maxKeysPerOrigin" help:"distinct refusals of one user (authorization) or one source address (authentication; IPv6: its /64) coalesced at once; beyond, that origin's new refusals are counted together"`
}

// DefaultAuditCoalesceConfig returns the defaults.
func DefaultAuditCoalesceConfig() AuditCoalesceConfig {
	return AuditCoalesceConfig{Window: 10 * time.Second, MaxKeys: 10000, MaxKeysPerOrigin: 100}
}

// Validate checks the settings.
func (c AuditCoalesceConfig) Validate() error {
	var errs []error
	if c.Window < 0 || c.Window > time.Hour {
		errs = append(errs, fmt.Errorf("window must be between 0 and 1h, not %v", c.Window))
	}
	if c.Window > 0 && c.MaxKeys < 1 {
		errs = append(errs, fmt.Errorf("maxKeys must be at least 1 (or window 0), not %d", c.MaxKeys))
	}
	if c.Window > 0 && c.MaxKeysPerOrigin < 1 {
		errs = append(errs, fmt.Errorf("maxKeysPerOrigin must be at least 1 (or window 0), not %d", c.MaxKeysPerOrigin))
	}
	return errors.Join(errs...)
}

// How a coalesced event was formed, in its details ("coalesced").
const (
	coalescedRepeats = "repeats"      // repeats of one refusal
	coalescedOrigin  = "origin"       // an origin's refusals beyond maxKeysPerOrigin or maxKeys
	coalescedAll     = "over_origins" // refusals beyond maxKeys origins too
)

// AuditCoalescer is a ports.AuditSink in front of another: events that
// are not refusals ([domain.AuditEvent.Refusal]: allowed decisions, admin
// changes, revocations, system events) pass through as they are, and so
// does the first refusal of a key (principal or presented AccessKey,
// source address, protocol, operation, resource, actions, reason, policy
// revision). Further refusals of that key are counted, and when the key's
// window ends one event records them (Occurrences, first and last time;
// the request and client id of the first, unless they varied). A key with
// no refusal in a whole window is forgotten. So a client repeating a
// refused request at any rate adds at most one event per window and key
// to the audit buffer, and cannot push other tenants' events out of it.
//
// Memory is bounded: at most MaxKeys keys, and MaxKeysPerOrigin of one
// origin (the user for denials, the source address, an IPv6 /64, for
// authentication failures, whose principal is only claimed). A refusal
// over a bound is counted in its origin's aggregate (at most MaxKeys of
// those), or beyond that in its category's; an aggregate's event keeps
// the fields all its refusals shared and blanks the others, naming them
// in its details ("varied"). Nothing is dropped here; Stop records every
// count held.
type AuditCoalescer struct {
	next  ports.AuditSink
	clock ports.Clock
	cfg   AuditCoalesceConfig
	log   *slog.Logger

	mu      sync.Mutex
	keys    map[coalesceKey]*coalesced
	perOrig map[originKey]int // keys held per origin
	origins map[originKey]*coalesced
	all     map[string]*coalesced // per category
	stopped bool

	coalesced atomic.Uint64 // refusals counted into a coalesced event
	overflow  atomic.Uint64 // of which over a key bound

	stop context.CancelFunc
	done sync.WaitGroup
}

var _ ports.AuditSink = (*AuditCoalescer)(nil)

type coalesceKey struct {
	category, principal, protocol, operation, resource, actions, reason string
	ip                                                                  netip.Addr
	revision                                                            int64
}

type originKey struct {
	category, principal string
	addr                netip.Prefix
}

// coalesced is one key's or aggregate's refusals counted in its window.
type coalesced struct {
	e      domain.AuditEvent // the first refusal counted (fields blanked as they vary)
	n      int64
	last   time.Time
	since  time.Time // window start
	origin originKey
	kind   string
	varied []string
}

// NewAuditCoalescer returns a coalescer in front of next; Start starts its
// timer, Stop records what it holds. A zero cfg.Window makes it a
// pass-through.
func NewAuditCoalescer(next ports.AuditSink, clock ports.Clock, cfg AuditCoalesceConfig, log *slog.Logger) *AuditCoalescer {
	return &AuditCoalescer{next: next, clock: clock, cfg: cfg, log: log,
		keys: map[coalesceKey]*coalesced{}, perOrig: map[originKey]int{}, origins: map[originKey]*coalesced{}, all: map[string]*coalesced{}}
}

// Record implements ports.AuditSink.
func (c *AuditCoalescer) Record(e domain.AuditEvent) {
	if c.cfg.Window <= 0 || !e.Refusal() {
		c.next.Record(e)
		return
	}
	if e.Time.IsZero() {
		e.Time = c.clock.Now()
	}
	k := coalesceKey{category: e.Category, principal: e.Principal, protocol: e.Protocol, operation: e.Operation,
		resource: e.Resource, actions: e.Actions, reason: e.Reason, ip: e.SourceIP.Unmap(), revision: e.Revision}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		c.next.Record(e)
		return
	}
	if x, ok := c.keys[k]; ok {
		x.add(e)
		c.mu.Unlock()
		c.coalesced.Add(1)
		return
	}
	o := originOf(e)
	if len(c.keys) < c.cfg.MaxKeys && c.perOrig[o] < c.cfg.MaxKeysPerOrigin {
		c.keys[k] = &coalesced{since: c.clock.Now(), origin: o, kind: coalescedRepeats}
		c.perOrig[o]++
		c.mu.Unlock()
		c.next.Record(e) // the first of its key: at once
		return
	}
	x, ok := c.origins[o]
	if !ok && len(c.origins) < c.cfg.MaxKeys {
		x = &coalesced{since: c.clock.Now(), origin: o, kind: coalescedOrigin}
		c.origins[o] = x
	} else if !ok {
		if x = c.all[e.Category]; x == nil {
			x = &coalesced{since: c.clock.Now(), kind: coalescedAll}
			c.all[e.Category] = x
		}
	}
	x.add(e)
	c.mu.Unlock()
	c.coalesced.Add(1)
	c.overflow.Add(1)
}

// originOf returns whose refusals e counts against: the user for a denial
// (authenticated), the source address for an authentication failure (its
// AccessKey is whatever the client claimed), an IPv6 address's /64.
func originOf(e domain.AuditEvent) originKey {
	if e.Category == domain.AuditAuthz {
		return originKey{category: e.Category, principal: e.Principal}
	}
	a := e.SourceIP.Unmap()
	bits := a.BitLen()
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits) // the zero Prefix for an invalid address
	return originKey{category: e.Category, addr: p}
}

// add counts e.
func (x *coalesced) add(e domain.AuditEvent) {
	if x.n == 0 {
		x.e, x.n, x.last, x.varied = e, 1, e.Time, nil
		x.e.Details = ""
		return
	}
	x.n++
	if e.Time.After(x.last) {
		x.last = e.Time
	}
	if e.Time.Before(x.e.Time) {
		x.e.Time = e.Time
	}
	vary := func(name string, same bool, blank func()) {
		if same || x.varies(name) {
			return
		}
		blank()
		x.varied = append(x.varied, name)
	}
	vary("principal", e.Principal == x.e.Principal, func() { x.e.Principal = "" })
	vary("source_ip", e.SourceIP.Unmap() == x.e.SourceIP.Unmap(), func() { x.e.SourceIP = netip.Addr{} })
	vary("protocol", e.Protocol == x.e.Protocol, func() { x.e.Protocol = "" })
	vary("operation", e.Operation == x.e.Operation, func() { x.e.Operation = "" })
	vary("resource", e.Resource == x.e.Resource, func() { x.e.Resource = "" })
	vary("actions", e.Actions == x.e.Actions, func() { x.e.Actions = "" })
	vary("reason", e.Reason == x.e.Reason, func() { x.e.Reason = "" })
	vary("policy_revision", e.Revision == x.e.Revision, func() { x.e.Revision = 0 })
	vary("request_id", e.RequestID == x.e.RequestID, func() { x.e.RequestID = "" })
	vary("client_id", e.ClientID == x.e.ClientID, func() { x.e.ClientID = "" })
}

func (x *coalesced) varies(name string) bool {
	for _, v := range x.varied {
		if v == name {
			return true
		}
	}
	return false
}

// event returns the event recording x's count.
func (x *coalesced) event() domain.AuditEvent {
	e := x.e
	e.Occurrences, e.LastTime = x.n, x.last
	d := struct {
		Coalesced string   `json:"coalesced"`
		Varied    []string `json:"varied,omitempty"`
	}{x.kind, x.varied}
	b, _ := json.Marshal(d)
	e.Details = string(b)
	return e
}

// Flush records the counts whose window has ended at the clock's time,
// and forgets keys that had no refusal in a whole window. The timer calls
// it; tests call it after moving their clock.
func (c *AuditCoalescer) Flush() {
	c.flush(false)
}

func (c *AuditCoalescer) flush(everything bool) {
	now := c.clock.Now()
	due := func(x *coalesced) bool { return everything || now.Sub(x.since) >= c.cfg.Window }
	var out []domain.AuditEvent
	c.mu.Lock()
	for k, x := range c.keys {
		if !due(x) {
			continue
		}
		if x.n == 0 || everything {
			if x.n > 0 {
				out = append(out, x.event())
			}
			delete(c.keys, k)
			if c.perOrig[x.origin]--; c.perOrig[x.origin] <= 0 {
				delete(c.perOrig, x.origin)
			}
			continue
		}
		out = append(out, x.event())
		x.n, x.since = 0, now
	}
	var over []domain.AuditEvent
	for o, x := range c.origins {
		if due(x) {
			over = append(over, x.event())
			delete(c.origins, o)
		}
	}
	for cat, x := range c.all {
		if due(x) {
			over = append(over, x.event())
			delete(c.all, cat)
		}
	}
	c.mu.Unlock()
	if len(over) > 0 {
		var n int64
		for _, e := range over {
			n += e.Occurrences
		}
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "refusals over the audit coalescing bounds were recorded per origin, without their details",
			slog.Int64("refusals", n), slog.Int("events", len(over)), slog.Int("max_keys", c.cfg.MaxKeys), slog.Int("max_keys_per_origin", c.cfg.MaxKeysPerOrigin))
	}
	for _, e := range append(out, over...) {
		c.next.Record(e)
	}
}

// RecordWithin implements ports.AuditSink: a refusal is coalesced as
// Record does (nothing waits on it); any other event goes to the sink.
func (c *AuditCoalescer) RecordWithin(ctx context.Context, e domain.AuditEvent, wait time.Duration) bool {
	if c.cfg.Window > 0 && e.Refusal() {
		c.Record(e)
		return true
	}
	return c.next.RecordWithin(ctx, e, wait)
}

// Dropped implements ports.AuditSink: the sink's drops (the coalescer
// drops nothing).
func (c *AuditCoalescer) Dropped() uint64 { return c.next.Dropped() }

// Stats implements ports.AuditSink.
func (c *AuditCoalescer) Stats() ports.AuditStats {
	st := c.next.Stats()
	st.Coalesced, st.CoalescedOverflow = c.coalesced.Load(), c.overflow.Load()
	c.mu.Lock()
	st.CoalescingKeys = len(c.keys) + len(c.origins) + len(c.all)
	c.mu.Unlock()
	return st
}

// Start starts the timer that records counts as their windows end.
func (c *AuditCoalescer) Start(context.Context) error {
	if c.cfg.Window <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	tick := max(c.cfg.Window/4, 10*time.Millisecond)
	c.done.Go(func() { everyPeriod(ctx, tick, func(context.Context) { c.Flush() }) })
	return nil
}

// Stop records every count held, whatever its window, into the sink (stop
// the sink after it); refusals recorded after Stop pass through.
func (c *AuditCoalescer) Stop(context.Context) error {
	if c.stop != nil {
		c.stop()
		c.done.Wait()
	}
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.flush(true)
	return nil
}
