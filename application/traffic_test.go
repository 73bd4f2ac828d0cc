package application

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

func clientCtx(id string) context.Context {
	return ports.WithRequestInfo(context.Background(), ports.RequestInfo{ClientID: id})
}

func newTestTraffic(t *testing.T, r TrafficRules) (*Traffic, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	tr := NewTraffic(DefaultTrafficConfig(), clock)
	if _, err := tr.SetRules(r); err != nil {
		t.Fatal(err)
	}
	return tr, clock
}

func throttledCount(tr *Traffic, sc string, d Direction) uint64 {
	for _, c := range tr.Stats().Throttled {
		if c.Scope == sc && c.Direction == d {
			return c.Count
		}
	}
	return 0
}

func TestTrafficWithoutRulesAdmitsEverything(t *testing.T) {
	tr := NewTraffic(DefaultTrafficConfig(), ports.SystemClock{})
	for range 1000 {
		if err := tr.AdmitSend(clientCtx("c"), "t", 10, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if n, _, err := tr.AwaitReceive(clientCtx("c"), "g", "t", 0); n != 0 || err != nil {
		t.Fatalf("receive limit %d, %v; want none", n, err)
	}
}

// TestTrafficLimitMessageOfOne: a limit of one reads "1 message per
// second", not "1 messages".
func TestTrafficLimitMessageOfOne(t *testing.T) {
	tr, _ := newTestTraffic(t, TrafficRules{Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: 1}}}})
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 100); err != nil {
		t.Fatalf("first send: %v", err)
	}
	err := tr.AdmitSend(clientCtx("a"), "t", 1, 100)
	if !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), "this client may send 1 message per second") {
		t.Fatalf("second send: %v; want TooManyRequests saying 1 message per second", err)
	}
}

func TestTrafficClientSendLimitIsPerClient(t *testing.T) {
	tr, clock := newTestTraffic(t, TrafficRules{Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: 10}}}})
	for i := range 10 {
		if err := tr.AdmitSend(clientCtx("a"), "t", 1, 100); err != nil {
			t.Fatalf("send %d within the burst: %v", i, err)
		}
	}
	err := tr.AdmitSend(clientCtx("a"), "t", 1, 100)
	if !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), "this client may send 10 messages per second") {
		t.Fatalf("11th send: %v; want TooManyRequests naming the client limit", err)
	}
	if err := tr.AdmitSend(clientCtx("b"), "t", 1, 100); err != nil {
		t.Fatalf("another client: %v", err)
	}
	clock.Advance(100 * time.Millisecond) // one token back
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 100); err != nil {
		t.Fatalf("after 100ms: %v", err)
	}
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 100); err == nil {
		t.Fatal("second send after 100ms admitted; want refused")
	}
	if n := throttledCount(tr, "client", DirectionSend); n != 2 {
		t.Fatalf("client send throttles %d, want 2", n)
	}
}

// TestTrafficClientLimitIsPerUsersClient: a client of another user using
// the same client id (ids are the clients' choice) does not spend the
// client's tokens.
func TestTrafficClientLimitIsPerUsersClient(t *testing.T) {
	tr, _ := newTestTraffic(t, TrafficRules{Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: 10}}}})
	as := func(user string) context.Context {
		return WithPrincipal(clientCtx("c1"), Principal{User: domain.User{Name: user}})
	}
	for i := range 10 {
		if err := tr.AdmitSend(as("bob"), "t", 1, 100); err != nil {
			t.Fatalf("bob's send %d: %v", i, err)
		}
	}
	if err := tr.AdmitSend(as("alice"), "t", 1, 100); err != nil {
		t.Fatalf("alice's client c1 after bob's c1 spent its burst: %v", err)
	}
}

func TestTrafficRefusalChargesNothing(t *testing.T) {
	tr, _ := newTestTraffic(t, TrafficRules{
		Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: 5}}},
		Topics:  ScopeRules{Named: map[string]Limits{"hot": {Send: FlowLimits{Messages: Rate{PerSecond: 1}}}}},
	})
	if err := tr.AdmitSend(clientCtx("a"), "hot", 1, 0); err != nil {
		t.Fatal(err)
	}
	for range 3 { // refused by the topic: the client's tokens are untouched
		if err := tr.AdmitSend(clientCtx("a"), "hot", 1, 0); !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), `topic "hot"`) {
			t.Fatalf("send to the hot topic: %v", err)
		}
	}
	for i := range 4 {
		if err := tr.AdmitSend(clientCtx("a"), "cold", 1, 0); err != nil {
			t.Fatalf("send %d to another topic: %v (refusals were charged to the client)", i, err)
		}
	}
	if err := tr.AdmitSend(clientCtx("a"), "cold", 1, 0); err == nil {
		t.Fatal("6th send of the client admitted")
	}
}

func TestTrafficTenantsAndDefaults(t *testing.T) {
	tr, _ := newTestTraffic(t, TrafficRules{
		Topics:     ScopeRules{Default: &Limits{Send: FlowLimits{Messages: Rate{PerSecond: 2}}}},
		Namespaces: ScopeRules{Named: map[string]Limits{"tenant1": {Send: FlowLimits{Messages: Rate{PerSecond: 3}}}}},
		Users:      ScopeRules{Named: map[string]Limits{"alice": {Send: FlowLimits{Messages: Rate{PerSecond: 1}}}}},
	})
	// Each topic has its own default bucket.
	for _, topic := range []string{"x", "x", "y", "y"} {
		if err := tr.AdmitSend(clientCtx("a"), topic, 1, 0); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
	}
	if err := tr.AdmitSend(clientCtx("a"), "x", 1, 0); err == nil {
		t.Fatal("third send to x admitted")
	}
	// The namespace's quota is shared by its topics and clients.
	ns := func(topic string) string { return domain.WrapNamespace("tenant1", topic) }
	for i, topic := range []string{"p", "q", "r"} {
		if err := tr.AdmitSend(clientCtx(fmt.Sprint("c", i)), ns(topic), 1, 0); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
	}
	if err := tr.AdmitSend(clientCtx("c9"), ns("s"), 1, 0); !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), `namespace "tenant1"`) {
		t.Fatalf("4th send of the namespace: %v", err)
	}
	// A user's quota follows the authenticated principal.
	alice := WithPrincipal(clientCtx("d"), Principal{User: domain.User{Name: "alice"}})
	if err := tr.AdmitSend(alice, "z1", 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.AdmitSend(alice, "z2", 1, 0); !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), `user "alice"`) {
		t.Fatalf("alice's second send: %v", err)
	}
	if err := tr.AdmitSend(clientCtx("d"), "z2", 1, 0); err != nil {
		t.Fatalf("the same client unauthenticated: %v", err)
	}
}

func TestTrafficLargeRequestsPassAtTheAverage(t *testing.T) {
	tr, clock := newTestTraffic(t, TrafficRules{Clients: Limits{Send: FlowLimits{Bytes: Rate{PerSecond: 1000}}}})
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 5000); err != nil {
		t.Fatalf("a message larger than the burst with a full bucket: %v", err)
	}
	clock.Advance(4 * time.Second) // still 1000 bytes in debt
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 1); err == nil {
		t.Fatal("admitted while in debt")
	}
	clock.Advance(1001 * time.Millisecond)
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 1); err != nil {
		t.Fatalf("after the debt is paid: %v", err)
	}
}

func TestTrafficReceiveWaitsOrThrottles(t *testing.T) {
	tr, clock := newTestTraffic(t, TrafficRules{
		Groups: ScopeRules{Named: map[string]Limits{"g": {Receive: FlowLimits{Messages: Rate{PerSecond: 10, Burst: 4}}}}},
	})
	ctx := clientCtx("a")
	n, waited, err := tr.AwaitReceive(ctx, "g", "t", time.Second)
	if err != nil || n != 4 || waited != 0 {
		t.Fatalf("first receive: room %d, waited %v, %v; want 4 at once", n, waited, err)
	}
	tr.ChargeReceive(ctx, "g", "t", 6, 0) // a batch beyond the room: 2 in debt
	// The fake clock does not move: the bucket cannot recover within a
	// zero wait, and the refusal names the group.
	_, _, err = tr.AwaitReceive(ctx, "g", "t", 0)
	if !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), `group "g" may receive 10 messages per second`) {
		t.Fatalf("receive in debt: %v", err)
	}
	if n := throttledCount(tr, "group", DirectionReceive); n != 1 {
		t.Fatalf("group receive throttles %d, want 1", n)
	}
	clock.Advance(500 * time.Millisecond) // +5 tokens: 3
	if n, _, err := tr.AwaitReceive(ctx, "g", "t", 0); err != nil || n != 3 {
		t.Fatalf("after 500ms: room %d, %v; want 3", n, err)
	}
	if n, _, err := tr.AwaitReceive(clientCtx("b"), "other", "t", 0); err != nil || n != 0 {
		t.Fatalf("another group: room %d, %v; want no limit", n, err)
	}
}

func TestTrafficReceiveWaitsForTokens(t *testing.T) {
	tr := NewTraffic(DefaultTrafficConfig(), ports.SystemClock{})
	if _, err := tr.SetRules(TrafficRules{Clients: Limits{Receive: FlowLimits{Messages: Rate{PerSecond: 100, Burst: 1}}}}); err != nil {
		t.Fatal(err)
	}
	ctx := clientCtx("a")
	tr.ChargeReceive(ctx, "g", "t", 2, 0) // one message in debt: 20 ms to recover one
	n, waited, err := tr.AwaitReceive(ctx, "g", "t", time.Minute)
	if err != nil || n != 1 || waited <= 0 {
		t.Fatalf("room %d after waiting %v, %v; want 1 after a wait", n, waited, err)
	}
	if st := tr.Stats(); st.ReceiveWaits != 1 || st.ReceiveWaitTime <= 0 {
		t.Fatalf("stats %+v; want one receive wait", st)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	tr.ChargeReceive(ctx, "g", "t", 5, 0)
	if _, _, err := tr.AwaitReceive(cctx, "g", "t", time.Minute); err != context.Canceled {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestTrafficInflightBytes(t *testing.T) {
	cfg := DefaultTrafficConfig()
	cfg.MaxInflightBytes = 100
	tr := NewTraffic(cfg, ports.SystemClock{})
	release60, err := tr.ReserveBytes(60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.ReserveBytes(50); !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), "traffic.maxInflightBytes") {
		t.Fatalf("over the budget: %v", err)
	}
	release40, err := tr.ReserveBytes(40)
	if err != nil {
		t.Fatalf("up to the budget: %v", err)
	}
	release60.Release()
	release40.Release()
	if tr.InflightBytes() != 0 {
		t.Fatalf("in flight %d after release", tr.InflightBytes())
	}
	releaseBig, err := tr.ReserveBytes(500)
	if err != nil {
		t.Fatalf("a request larger than the budget with nothing in flight: %v", err)
	}
	if _, err := tr.ReserveBytes(1); err == nil {
		t.Fatal("admitted beside the oversized request")
	}
	releaseBig.Release()
	if throttledCount(tr, "inflight_bytes", DirectionSend) != 2 {
		t.Fatalf("stats %+v", tr.Stats().Throttled)
	}
}

func TestTrafficClientInflight(t *testing.T) {
	cfg := DefaultTrafficConfig()
	cfg.MaxInflightPerClient = 2
	tr := NewTraffic(cfg, ports.SystemClock{})
	l1, err1 := tr.EnterClient(clientCtx("a"), DirectionSend)
	l2, err2 := tr.EnterClient(clientCtx("a"), DirectionReceive)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := tr.EnterClient(clientCtx("a"), DirectionSend); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("third request: %v", err)
	}
	if l, err := tr.EnterClient(clientCtx("b"), DirectionSend); err != nil {
		t.Fatalf("another client: %v", err)
	} else {
		l()
	}
	l1()
	l3, err := tr.EnterClient(clientCtx("a"), DirectionSend)
	if err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	l2()
	l3()
	if len(tr.clientRequest) != 0 {
		t.Fatalf("clients left in the map: %v", tr.clientRequest)
	}
}

// TestTrafficUserInflight: client ids are the clients' choice, so a
// client inventing one per request passes maxInflightPerClient; its
// user's requests in flight are bounded (maxInflightPerUser), and other
// users' are not affected, nor is a client of another user that happens
// to use the same id (it could otherwise take that client's slots).
func TestTrafficUserInflight(t *testing.T) {
	cfg := DefaultTrafficConfig()
	cfg.MaxInflightPerClient = 2
	cfg.MaxInflightPerUser = 3
	tr := NewTraffic(cfg, ports.SystemClock{})
	as := func(client, user string) context.Context {
		return WithPrincipal(clientCtx(client), Principal{User: domain.User{Name: user}})
	}
	var leave []func()
	for i := range 3 {
		l, err := tr.EnterClient(as(fmt.Sprint("bob-", i), "bob"), DirectionReceive)
		if err != nil {
			t.Fatal(err)
		}
		leave = append(leave, l)
	}
	if _, err := tr.EnterClient(as("bob-new", "bob"), DirectionReceive); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("bob's fourth request under a new id: %v, want TOO_MANY_REQUESTS", err)
	}
	if throttledCount(tr, "user_inflight", DirectionReceive) != 1 {
		t.Fatalf("stats %+v", tr.Stats().Throttled)
	}
	// Alice, using one of bob's ids, has her own slots.
	for range 2 {
		l, err := tr.EnterClient(as("bob-0", "alice"), DirectionSend)
		if err != nil {
			t.Fatalf("alice: %v", err)
		}
		leave = append(leave, l)
	}
	for _, l := range leave {
		l()
	}
	if len(tr.clientRequest) != 0 || len(tr.userRequest) != 0 {
		t.Fatalf("left in the maps: %v %v", tr.clientRequest, tr.userRequest)
	}
}

func TestTrafficIdleBucketsAreSwept(t *testing.T) {
	tr, clock := newTestTraffic(t, TrafficRules{Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: 10}}}})
	for i := range minSweep {
		if err := tr.AdmitSend(clientCtx(fmt.Sprint("c", i)), "t", 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second) // every bucket full again
	if err := tr.AdmitSend(clientCtx("new"), "t", 1, 0); err != nil {
		t.Fatal(err)
	}
	if n := tr.Stats().Buckets; n > 1 {
		t.Fatalf("%d buckets after the sweep, want at most 1 (the new client's)", n)
	}
}

func TestTrafficReloadCapsTokens(t *testing.T) {
	tr, _ := newTestTraffic(t, TrafficRules{Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: 100}}}})
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 0); err != nil {
		t.Fatal(err)
	}
	rev, err := tr.SetRules(TrafficRules{Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: 2}}}})
	if err != nil || rev != 2 {
		t.Fatalf("revision %d, %v", rev, err)
	}
	for range 2 {
		if err := tr.AdmitSend(clientCtx("a"), "t", 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.AdmitSend(clientCtx("a"), "t", 1, 0); err == nil {
		t.Fatal("the old burst survived the reload")
	}
}

func TestTrafficRulesValidate(t *testing.T) {
	bad := []TrafficRules{
		{Clients: Limits{Send: FlowLimits{Messages: Rate{PerSecond: -1}}}},
		{Topics: ScopeRules{Named: map[string]Limits{"": {}}}},
		{Groups: ScopeRules{Named: map[string]Limits{"g": {Send: FlowLimits{Bytes: Rate{PerSecond: 1}}}}}},
		{Users: ScopeRules{Default: &Limits{Receive: FlowLimits{Bytes: Rate{PerSecond: 1, Burst: -2}}}}},
		// A burst without its rate would limit nothing.
		{Topics: ScopeRules{Named: map[string]Limits{"t": {Send: FlowLimits{Messages: Rate{Burst: 100}}}}}},
		{Clients: Limits{Receive: FlowLimits{Bytes: Rate{Burst: 1 << 20}}}},
	}
	for i, r := range bad {
		tr := NewTraffic(DefaultTrafficConfig(), ports.SystemClock{})
		if _, err := tr.SetRules(r); err == nil {
			t.Errorf("rules %d accepted", i)
		}
	}
	ok := TrafficRules{Namespaces: ScopeRules{Named: map[string]Limits{"": {Send: FlowLimits{Messages: Rate{PerSecond: 1}}}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("the default namespace: %v", err)
	}
}

// TestTrafficSlotsAllocateNothing: the in-flight counts every request
// takes (its client's and user's, a send's bytes) cost no allocation.
func TestTrafficSlotsAllocateNothing(t *testing.T) {
	cfg := DefaultTrafficConfig()
	cfg.MaxInflightBytes, cfg.MaxInflightPerClient, cfg.MaxInflightPerUser = 1000, 10, 10
	tr := NewTraffic(cfg, ports.SystemClock{})
	ctx := WithPrincipal(ports.WithRequestInfo(t.Context(), ports.RequestInfo{ClientID: "a"}), Principal{User: domain.User{Name: "u"}})
	if n := testing.AllocsPerRun(100, func() {
		e, err := tr.EnterClientRequest(ctx, DirectionSend)
		if err != nil {
			t.Fatal(err)
		}
		b, err := tr.ReserveBytes(100)
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		e.Leave()
	}); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
	if tr.InflightBytes() != 0 {
		t.Fatalf("%d bytes in flight after the releases", tr.InflightBytes())
	}
}

// TestTrafficNamedZeroRateExemptsFromTheDefault: a rate of 0 is no limit,
// and a named entry takes the place of the "*" entry as a whole, so it
// exempts its topic (what docs/operations.md says: 0 is not a block).
func TestTrafficNamedZeroRateExemptsFromTheDefault(t *testing.T) {
	tr, _ := newTestTraffic(t, TrafficRules{Topics: ScopeRules{
		Default: &Limits{Send: FlowLimits{Messages: Rate{PerSecond: 1}}},
		Named:   map[string]Limits{"orders": {Send: FlowLimits{Messages: Rate{PerSecond: 0}}}},
	}})
	for i := range 100 {
		if err := tr.AdmitSend(clientCtx("a"), "orders", 1, 0); err != nil {
			t.Fatalf("send %d to orders (rate 0: no limit): %v", i, err)
		}
	}
	if err := tr.AdmitSend(clientCtx("a"), "other", 1, 0); err != nil {
		t.Fatal(err)
	}
	if err := tr.AdmitSend(clientCtx("a"), "other", 1, 0); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("second send to another topic under the \"*\" limit of 1/s: %v", err)
	}
}

// TestTrafficFinishingRequestsCountApart: acks, transaction ends and
// heartbeats (EnterFinishingRequest) count in budgets of the same sizes
// apart from a client's and a user's other requests: long polls filling
// the budget do not refuse them, and they do not refuse long polls; each
// count is still bounded, so one user never holds more than
// maxInflightPerUser finishing requests either.
func TestTrafficFinishingRequestsCountApart(t *testing.T) {
	cfg := DefaultTrafficConfig()
	cfg.MaxInflightPerClient = 2
	cfg.MaxInflightPerUser = 3
	tr := NewTraffic(cfg, ports.SystemClock{})
	bob := func(client string) context.Context {
		return WithPrincipal(clientCtx(client), Principal{User: domain.User{Name: "bob"}})
	}
	var leave []ClientRequest
	enter := func(ctx context.Context, finishing bool) error {
		f := tr.EnterClientRequest
		if finishing {
			f = tr.EnterFinishingRequest
		}
		e, err := f(ctx, DirectionReceive)
		if err == nil {
			leave = append(leave, e)
		}
		return err
	}
	for range 2 { // c1's long polls fill its budget
		if err := enter(bob("c1"), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := enter(bob("c1"), false); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("c1's third poll: %v, want TOO_MANY_REQUESTS", err)
	}
	for i := range 2 {
		if err := enter(bob("c1"), true); err != nil {
			t.Fatalf("c1's ack %d while its polls fill its budget: %v", i+1, err)
		}
	}
	if err := enter(bob("c1"), true); !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), "acks") {
		t.Fatalf("c1's third ack in flight: %v, want TOO_MANY_REQUESTS about its acks", err)
	}
	if err := enter(bob("c2"), true); err != nil { // bob's third finishing request
		t.Fatal(err)
	}
	if err := enter(bob("c3"), true); !domain.HasReason(err, domain.ReasonTooManyRequests) || !strings.Contains(err.Error(), "maxInflightPerUser") {
		t.Fatalf("bob's fourth ack in flight: %v, want TOO_MANY_REQUESTS naming maxInflightPerUser", err)
	}
	if err := enter(bob("c2"), false); err != nil { // bob's third other request
		t.Fatalf("a poll of bob's while his acks fill their budget: %v", err)
	}
	for _, e := range leave {
		e.Leave()
	}
	if len(tr.clientRequest) != 0 || len(tr.userRequest) != 0 {
		t.Fatalf("left in the maps: %v %v", tr.clientRequest, tr.userRequest)
	}
}
