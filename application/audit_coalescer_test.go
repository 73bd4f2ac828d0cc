package application_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// recordingSink keeps every event it is given.
type recordingSink struct {
	mu     sync.Mutex
	events []domain.AuditEvent
}

func (s *recordingSink) Record(e domain.AuditEvent) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}
func (s *recordingSink) RecordWithin(_ context.Context, e domain.AuditEvent, _ time.Duration) bool {
	s.Record(e)
	return true
}
func (s *recordingSink) Dropped() uint64         { return 0 }
func (s *recordingSink) Stats() ports.AuditStats { return ports.AuditStats{} }
func (s *recordingSink) all() []domain.AuditEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

var (
	t0    = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
)

func newCoalescer(cfg application.AuditCoalesceConfig) (*application.AuditCoalescer, *recordingSink, *clocktest.Clock) {
	sink := &recordingSink{}
	clock := clocktest.New(t0)
	return application.NewAuditCoalescer(sink, clock, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), sink, clock
}

func denial(user, resource string, at time.Time) domain.AuditEvent {
	return domain.AuditEvent{Time: at, Category: domain.AuditAuthz, Principal: user, SourceIP: addrA, Protocol: "grpc",
		Operation: "SendMessage", Resource: resource, Actions: "Pub", Decision: domain.AuditDeny, Reason: "no_match_default_deny",
		Revision: 7, RequestID: "req-" + at.Format(time.RFC3339Nano), ClientID: "c1"}
}

func authnFailure(ak string, from netip.Addr, at time.Time) domain.AuditEvent {
	return domain.AuditEvent{Time: at, Category: domain.AuditAuthn, Principal: ak, SourceIP: from, Protocol: "grpc",
		Operation: "QueryRoute", Decision: domain.AuditDeny, Reason: application.ReasonBadSignature, Revision: 7}
}

func total(evs []domain.AuditEvent) (n int64) {
	for _, e := range evs {
		n += e.Count()
	}
	return n
}

func details(t *testing.T, e domain.AuditEvent) (d struct {
	Coalesced string   `json:"coalesced"`
	Varied    []string `json:"varied"`
}) {
	t.Helper()
	if err := json.Unmarshal([]byte(e.Details), &d); err != nil {
		t.Fatalf("details %q: %v", e.Details, err)
	}
	return d
}

// A refusal repeated within the window is recorded once at once, and its
// repeats as one event with their count and first and last times when the
// window ends; a key with no refusal for a whole window is forgotten, and
// its next refusal is recorded at once again.
func TestCoalescerRecordsRepeatsAsOneCountedEvent(t *testing.T) {
	c, sink, clock := newCoalescer(application.AuditCoalesceConfig{Window: 10 * time.Second, MaxKeys: 100, MaxKeysPerOrigin: 10})
	for i := range 1000 {
		c.Record(denial("tenant-a", "Topic:orders", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if evs := sink.all(); len(evs) != 1 || evs[0].Count() != 1 || evs[0].RequestID == "" {
		t.Fatalf("after 1000 identical denials the sink got %d events (%+v), want the first one alone", len(evs), evs)
	}
	clock.Advance(9 * time.Second)
	c.Flush()
	if n := len(sink.all()); n != 1 {
		t.Fatalf("%d events before the window ended, want 1", n)
	}
	clock.Advance(time.Second)
	c.Flush()
	evs := sink.all()
	if len(evs) != 2 {
		t.Fatalf("%d events after the window, want 2", len(evs))
	}
	sum := evs[1]
	if sum.Occurrences != 999 || !sum.Time.Equal(t0.Add(time.Millisecond)) || !sum.LastTime.Equal(t0.Add(999*time.Millisecond)) {
		t.Errorf("coalesced event: %d occurrences from %v to %v, want 999 from +1ms to +999ms", sum.Occurrences, sum.Time, sum.LastTime)
	}
	if sum.Principal != "tenant-a" || sum.Resource != "Topic:orders" || sum.Reason != "no_match_default_deny" || sum.Revision != 7 ||
		sum.ClientID != "c1" || sum.RequestID != "" || !sum.Refusal() {
		t.Errorf("coalesced event lost its key or kept a varying request id: %+v", sum)
	}
	if d := details(t, sum); d.Coalesced != "repeats" || !slices.Equal(d.Varied, []string{"request_id"}) {
		t.Errorf("details %+v", d)
	}
	if total(evs) != 1000 {
		t.Errorf("the events stand for %d refusals, want 1000", total(evs))
	}

	// The flood goes on: one event per window.
	for i := range 500 {
		c.Record(denial("tenant-a", "Topic:orders", clock.Now().Add(time.Duration(i)*time.Millisecond)))
	}
	clock.Advance(10 * time.Second)
	c.Flush()
	if evs = sink.all(); len(evs) != 3 || evs[2].Occurrences != 500 {
		t.Fatalf("second window: %d events, last %+v; want a third with 500", len(evs), evs[len(evs)-1])
	}
	// A quiet window: forgotten; the next refusal is recorded at once.
	clock.Advance(10 * time.Second)
	c.Flush()
	if k := c.Stats().CoalescingKeys; k != 0 {
		t.Errorf("%d keys held after a quiet window, want 0", k)
	}
	c.Record(denial("tenant-a", "Topic:orders", clock.Now()))
	if evs = sink.all(); len(evs) != 4 || evs[3].Count() != 1 {
		t.Fatalf("after a quiet window the refusal was not recorded at once: %d events", len(evs))
	}
	if st := c.Stats(); st.Coalesced != 1499 || st.CoalescedOverflow != 0 {
		t.Errorf("stats %+v, want 1499 coalesced, none over the bounds", st)
	}
}

// Allowed decisions, admin changes, revocations and system events are
// never coalesced: each is its own event, at once.
func TestCoalescerPassesEveryNonRefusal(t *testing.T) {
	c, sink, _ := newCoalescer(application.DefaultAuditCoalesceConfig())
	var want int
	for range 100 {
		allowed := denial("tenant-a", "Topic:orders", t0)
		allowed.Decision = domain.AuditAllow
		revoke := domain.AuditEvent{Time: t0, Category: domain.AuditAuthn, Principal: "tenant-a", Operation: "revoke", Decision: domain.AuditDeny, Reason: "secret_changed"}
		admin := domain.AuditEvent{Time: t0, Category: domain.AuditAdmin, Principal: "cli:root", Operation: "user.create", Decision: domain.AuditAllow}
		system := domain.AuditEvent{Time: t0, Category: domain.AuditSystem, Operation: "audit.dropped", Decision: domain.AuditError}
		for _, e := range []domain.AuditEvent{allowed, revoke, admin, system} {
			c.Record(e)
			want++
		}
	}
	evs := sink.all()
	if len(evs) != want {
		t.Fatalf("%d events passed, want %d", len(evs), want)
	}
	for _, e := range evs {
		if e.Occurrences != 0 || !e.LastTime.IsZero() || e.Details != "" {
			t.Fatalf("a non-refusal was changed: %+v", e)
		}
	}
}

// A user making up a resource per request holds at most maxKeysPerOrigin
// keys: its further refusals are counted in one aggregate for the user
// (the resource blanked and named as varied), and another user's denial
// is still recorded at once, with its resource.
func TestCoalescerBoundsOneUsersDistinctRefusals(t *testing.T) {
	c, sink, clock := newCoalescer(application.AuditCoalesceConfig{Window: 10 * time.Second, MaxKeys: 1000, MaxKeysPerOrigin: 10})
	for i := range 5000 {
		c.Record(denial("tenant-a", fmt.Sprintf("Topic:t%d", i), t0.Add(time.Duration(i)*time.Microsecond)))
	}
	c.Record(denial("tenant-b", "Topic:payments", t0.Add(time.Second)))
	evs := sink.all()
	if len(evs) != 11 || evs[10].Principal != "tenant-b" || evs[10].Resource != "Topic:payments" {
		t.Fatalf("got %d events at once, last %+v; want tenant-a's first 10 keys and tenant-b's denial", len(evs), evs[len(evs)-1])
	}
	if k := c.Stats().CoalescingKeys; k != 12 {
		t.Errorf("%d keys held, want 12 (10 keys and an aggregate of tenant-a, 1 of tenant-b)", k)
	}
	clock.Advance(10 * time.Second)
	c.Flush()
	evs = sink.all()
	if len(evs) != 12 {
		t.Fatalf("%d events after the window, want 12", len(evs))
	}
	agg := evs[11]
	if agg.Principal != "tenant-a" || agg.Resource != "" || agg.Occurrences != 4990 || agg.Operation != "SendMessage" || agg.Reason != "no_match_default_deny" {
		t.Errorf("aggregate %+v", agg)
	}
	if d := details(t, agg); d.Coalesced != "origin" || !slices.Contains(d.Varied, "resource") {
		t.Errorf("aggregate details %+v", d)
	}
	if total(evs) != 5001 {
		t.Errorf("the events stand for %d refusals, want 5001", total(evs))
	}
	if st := c.Stats(); st.CoalescedOverflow != 4990 {
		t.Errorf("stats %+v, want 4990 over the bounds", st)
	}
}

// Authentication failures count against their source address (the
// AccessKey is only claimed): a client inventing AccessKeys from one
// address cannot keep a brute force of another user's AccessKey from
// another address from being recorded with that AccessKey.
func TestCoalescerBoundsAuthenticationFailuresPerAddress(t *testing.T) {
	c, sink, clock := newCoalescer(application.AuditCoalesceConfig{Window: 10 * time.Second, MaxKeys: 1000, MaxKeysPerOrigin: 10})
	for i := range 5000 {
		c.Record(authnFailure(fmt.Sprintf("made-up-%d", i), addrA, t0))
	}
	for range 300 {
		c.Record(authnFailure("victim", addrB, t0.Add(time.Second)))
	}
	clock.Advance(10 * time.Second)
	c.Flush()
	var victim int64
	for _, e := range sink.all() {
		if e.Principal == "victim" {
			if e.SourceIP != addrB || e.Reason != application.ReasonBadSignature {
				t.Errorf("victim's failures: %+v", e)
			}
			victim += e.Count()
		}
		if e.SourceIP == addrA && e.Principal == "" {
			if d := details(t, e); e.Occurrences != 4990 || !slices.Contains(d.Varied, "principal") {
				t.Errorf("aggregate of the made-up keys: %+v %+v", e, d)
			}
		}
	}
	if victim != 300 {
		t.Errorf("%d failures on victim's AccessKey recorded, want 300", victim)
	}
	// IPv6: one /64 is one origin.
	c2, sink2, _ := newCoalescer(application.AuditCoalesceConfig{Window: 10 * time.Second, MaxKeys: 1000, MaxKeysPerOrigin: 10})
	for i := range 100 {
		c2.Record(authnFailure("k", netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}), t0))
	}
	if n := len(sink2.all()); n != 10 {
		t.Errorf("100 addresses of one IPv6 /64 had %d failures recorded at once, want 10", n)
	}
}

// However many origins, the keys held stay bounded (maxKeys keys, maxKeys
// origin aggregates, one aggregate per category), and every refusal is
// counted in exactly one event.
func TestCoalescerMemoryIsBoundedAndNothingIsLost(t *testing.T) {
	c, sink, clock := newCoalescer(application.AuditCoalesceConfig{Window: 10 * time.Second, MaxKeys: 50, MaxKeysPerOrigin: 5})
	var n int64
	for i := range 3000 {
		c.Record(denial(fmt.Sprintf("user-%d", i%700), fmt.Sprintf("Topic:t%d", i%13), t0))
		c.Record(authnFailure("k", netip.AddrFrom4([4]byte{10, 1, byte(i / 256), byte(i)}), t0))
		n += 2
		if k := c.Stats().CoalescingKeys; k > 50+50+2 {
			t.Fatalf("%d keys held, over the bound", k)
		}
	}
	clock.Advance(10 * time.Second)
	c.Flush()
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := sink.all()
	if total(evs) != n {
		t.Errorf("the events stand for %d refusals, want %d", total(evs), n)
	}
	var all int
	for _, e := range evs {
		if e.Details != "" && details(t, e).Coalesced == "over_origins" {
			all++
		}
	}
	if all != 2 {
		t.Errorf("%d aggregates over the origin bound, want one per category", all)
	}
}

// Stop records every count held, windows or not, and refusals after Stop
// pass through.
func TestCoalescerStopRecordsWhatItHolds(t *testing.T) {
	c, sink, _ := newCoalescer(application.AuditCoalesceConfig{Window: time.Hour, MaxKeys: 10, MaxKeysPerOrigin: 2})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		c.Record(denial("tenant-a", fmt.Sprintf("Topic:t%d", i%5), t0))
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs := sink.all()
	if total(evs) != 100 {
		t.Fatalf("after Stop the events stand for %d refusals, want 100", total(evs))
	}
	c.Record(denial("tenant-a", "Topic:t0", t0))
	if n := len(sink.all()); n != len(evs)+1 {
		t.Errorf("a refusal after Stop was held")
	}
}

// A zero window turns coalescing off.
func TestCoalescerOff(t *testing.T) {
	c, sink, _ := newCoalescer(application.AuditCoalesceConfig{})
	for range 10 {
		c.Record(denial("tenant-a", "Topic:orders", t0))
	}
	if n := len(sink.all()); n != 10 {
		t.Errorf("%d events, want 10", n)
	}
}

// With every key taken by other origins, a user's refusals are counted in
// its own origin's aggregate, which keeps every field they shared: the
// principal, resource and reason of another tenant's denial survive.
func TestCoalescerFullKeysStillKeepAnOriginsDetails(t *testing.T) {
	c, sink, clock := newCoalescer(application.AuditCoalesceConfig{Window: 10 * time.Second, MaxKeys: 20, MaxKeysPerOrigin: 5})
	for i := range 1000 {
		c.Record(denial(fmt.Sprintf("mallory-%d", i%4), fmt.Sprintf("Topic:t%d", i), t0))
	}
	for range 7 {
		c.Record(denial("tenant-b", "Topic:payments", t0))
	}
	clock.Advance(10 * time.Second)
	c.Flush()
	var found bool
	for _, e := range sink.all() {
		if e.Principal == "tenant-b" {
			found = true
			if e.Occurrences != 7 || e.Resource != "Topic:payments" || e.Reason != "no_match_default_deny" || e.SourceIP != addrA {
				t.Errorf("tenant-b's denials: %+v", e)
			}
		}
	}
	if !found {
		t.Error("tenant-b's denials were not recorded")
	}
}
