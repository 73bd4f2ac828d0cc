package application

import (
	"context"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// asUser is asClient for a request authenticated as user.
func asUser(ctx context.Context, clientID, user string) context.Context {
	return WithPrincipal(asClient(ctx, clientID), Principal{User: domain.User{Name: user}})
}

// TestClientIDOfAnotherUser: with authentication on, a client id belongs
// to the user that registered it. Another user naming it (client ids are
// chosen by clients) can neither end that client (NotifyClientTermination
// removed its session and ended its Telemetry stream), nor replace its
// settings and command channel, nor keep it alive, nor receive under it.
func TestClientIDOfAnotherUser(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	ctx := t.Context()
	alice := asUser(ctx, "c1", "alice")
	bob := asUser(ctx, "c1", "bob")
	ch := newOpenChannel()
	prod := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"orders"}}}
	if _, err := m.UpdateSettings(alice, prod, ch); err != nil {
		t.Fatal(err)
	}
	if err := m.NotifyClientTermination(bob, ""); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Errorf("bob's termination of alice's client: %v, want FORBIDDEN", err)
	}
	select {
	case <-ch.Done():
		t.Fatal("bob's termination ended alice's Telemetry stream")
	default:
	}
	bobs := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"bobs"}}}
	if _, err := m.UpdateSettings(bob, bobs, newOpenChannel()); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Errorf("bob's settings for alice's client: %v, want FORBIDDEN", err)
	}
	if err := m.Heartbeat(bob, "", ClientTypeProducer); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Errorf("bob's heartbeat for alice's client: %v, want FORBIDDEN", err)
	}
	if _, err := m.ReceiveMessage(bob, ReceiveRequest{Group: "g", Topic: "t", BatchSize: 1}); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Errorf("bob's receive as alice's client: %v, want FORBIDDEN", err)
	}
	if got := m.sessions.producersOf("orders"); len(got) != 1 || got[0] != ch {
		t.Fatalf("alice's client lost its channel: %v", got)
	}
	// Alice herself still can.
	if err := m.Heartbeat(alice, "", ClientTypeProducer); err != nil {
		t.Fatal(err)
	}
	if err := m.NotifyClientTermination(alice, ""); err != nil {
		t.Fatal(err)
	}
	if m.sessions.Count() != 0 {
		t.Fatalf("%d clients left", m.sessions.Count())
	}
	// Once forgotten, the id is free for anyone.
	if err := m.Heartbeat(bob, "", ClientTypeProducer); err != nil {
		t.Fatal(err)
	}
}

// TestClientsPerUser: a user inventing client ids (a producer's heartbeat
// needs no permission) fills its own share of the registry, not the
// registry: other users still register clients.
func TestClientsPerUser(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients.MaxClients = 10
	cfg.Clients.MaxClientsPerUser = 3
	m, _, clock := newTestMessaging(cfg)
	ctx := t.Context()
	for i := range 3 {
		if err := m.Heartbeat(asUser(ctx, "bob-"+string(rune('a'+i)), "bob"), "", ClientTypeProducer); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Heartbeat(asUser(ctx, "bob-x", "bob"), "", ClientTypeProducer); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("bob's fourth client: %v, want TOO_MANY_REQUESTS", err)
	}
	if err := m.Heartbeat(asUser(ctx, "alice-1", "alice"), "", ClientTypeProducer); err != nil {
		t.Fatalf("alice: %v", err)
	}
	// Bob's clients leave (one terminates, the others expire): his share
	// is free again.
	if err := m.NotifyClientTermination(asUser(ctx, "bob-a", "bob"), ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Heartbeat(asUser(ctx, "bob-x", "bob"), "", ClientTypeProducer); err != nil {
		t.Fatalf("bob after a termination: %v", err)
	}
	clock.Advance(cfg.Clients.ExpiryTimeout + 1)
	m.sessions.expire(ctx)
	for i := range 3 {
		if err := m.Heartbeat(asUser(ctx, "bob-n"+string(rune('a'+i)), "bob"), "", ClientTypeProducer); err != nil {
			t.Fatalf("bob after expiry: %v", err)
		}
	}
	// Without authentication only maxClients bounds.
	for i := range 6 {
		if err := m.Heartbeat(asClient(ctx, "anon-"+string(rune('a'+i))), "", ClientTypeProducer); err != nil {
			t.Fatalf("anonymous %d: %v", i, err)
		}
	}
}

// TestCensusTellsMadeUpGroups: a consumer group named by a heartbeat or
// settings (any name the client likes, within what it may Sub) counts as
// unknown in the census until it is found to exist, so that the client
// gauges do not give it a label value of its own.
func TestCensusTellsMadeUpGroups(t *testing.T) {
	m, b, _ := newTestMessaging(DefaultConfig())
	b.onlyListedGroups = true
	b.groups["real"] = domain.NewConsumerGroup("real")
	ctx := t.Context()
	sub := func(group string) ClientSettings {
		return ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: &SubscriptionSettings{Group: group}}
	}
	for i := range 3 {
		if err := m.Heartbeat(asUser(ctx, "hb-"+string(rune('a'+i)), "bob"), "made-up-"+string(rune('a'+i)), ClientTypeSimpleConsumer); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.UpdateSettings(asUser(ctx, "set-made-up", "bob"), sub("made-up-x"), newOpenChannel()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpdateSettings(asUser(ctx, "set-real", "alice"), sub("real"), newOpenChannel()); err != nil {
		t.Fatal(err)
	}
	// A heartbeat-registered consumer of a group that exists: found by its
	// first receive.
	if err := m.Heartbeat(asUser(ctx, "hb-real", "alice"), "real", ClientTypeSimpleConsumer); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReceiveMessage(asUser(ctx, "hb-real", "alice"), ReceiveRequest{Group: "real", Topic: "t", BatchSize: 1, InvisibleTime: 30 * time.Second}); err != nil && !domain.HasReason(err, domain.ReasonMessageNotFound) {
		t.Fatal(err)
	}
	known := map[string]int{}
	for _, c := range m.sessions.Census() {
		if !c.GroupUnknown {
			known[c.Group] += c.Count
		}
	}
	if len(known) != 1 || known["real"] != 2 {
		t.Fatalf("groups counted as existing: %v; want real: 2 only", known)
	}
}

// TestClientReplyFromAnotherUser: an answer to a command (a thread stack,
// a message verification) counts only from the client's own user: a
// stream of another user opened with the client's id (settings are not
// needed to answer) cannot complete the wait with an answer of its own.
func TestClientReplyFromAnotherUser(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	ctx := t.Context()
	alice := asUser(ctx, "c1", "alice")
	prod := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"orders"}}}
	if _, err := m.UpdateSettings(alice, prod, newOpenChannel()); err != nil {
		t.Fatal(err)
	}
	nonce, answer := m.sessions.replies.await("c1")
	defer m.sessions.replies.forget(nonce)
	m.ClientReplied(asUser(ctx, "c1", "bob"), ClientReply{Nonce: nonce, Code: "OK", StackTrace: "forged"})
	select {
	case r := <-answer:
		t.Fatalf("bob's answer for alice's client was taken: %+v", r)
	default:
	}
	m.ClientReplied(alice, ClientReply{Nonce: nonce, Code: "OK", StackTrace: "real"})
	select {
	case r := <-answer:
		if r.StackTrace != "real" {
			t.Fatalf("answer %+v", r)
		}
	default:
		t.Fatal("alice's answer was dropped")
	}
}
