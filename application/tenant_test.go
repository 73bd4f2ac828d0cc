package application

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// asUser is asClient for a request authenticated as user.
func asUser(ctx context.Context, clientID, user string) context.Context {
	return WithPrincipal(asClient(ctx, clientID), Principal{User: domain.User{Name: user}})
}

// TestClientIDOfAnotherUser: with authentication on, a client id belongs
// to the user that registered it. Another user naming it (client ids are
// chosen by clients) can neither end that client (NotifyClientTermination
// removed its session and ended its Telemetry stream), nor replace its
// settings and command channel, nor keep it alive, nor receive, ack,
// change or forward under it.
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
	// Nor settle messages under it: the proxy renews a push consumer's
	// deliveries by client id (and hands the latest handle to the ack),
	// so bob naming alice's client would stop the renewal of her delivery
	// of a topic he may not read, and it would come again.
	h := domain.ReceiptHandle{BrokerName: "b", RetrieveTime: time.Now().UnixMilli(), InvisibleTime: 60000, CommitLogOffset: 1}.String()
	if _, err := m.AckMessage(bob, "g", "t", []AckEntry{{MessageID: "m", ReceiptHandle: h}}); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Errorf("bob's ack as alice's client: %v, want FORBIDDEN", err)
	}
	if _, err := m.ChangeInvisibleDuration(bob, "g", "t", "m", h, time.Minute); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Errorf("bob's invisible-time change as alice's client: %v, want FORBIDDEN", err)
	}
	if err := m.ForwardToDeadLetterQueue(bob, "g", "t", "m", h); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Errorf("bob's dead-letter forward as alice's client: %v, want FORBIDDEN", err)
	}
	if got := m.sessions.producersOf("orders"); len(got) != 1 || got[0].channel != ch {
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

	// The group deleted: its consumers, still known, count as unknown
	// again (the client gauges must not take its freed label value back)
	// until a receive finds it again.
	m.sessions.GroupDeleted("real")
	for _, c := range m.sessions.Census() {
		if !c.GroupUnknown {
			t.Fatalf("after the delete, %d clients of %q count as existing", c.Count, c.Group)
		}
	}
	if _, err := m.ReceiveMessage(asUser(ctx, "hb-real", "alice"), ReceiveRequest{Group: "real", Topic: "t", BatchSize: 1, InvisibleTime: 30 * time.Second}); err != nil && !domain.HasReason(err, domain.ReasonMessageNotFound) {
		t.Fatal(err)
	}
	known = map[string]int{}
	for _, c := range m.sessions.Census() {
		if !c.GroupUnknown {
			known[c.Group] += c.Count
		}
	}
	if len(known) != 1 || known["real"] != 1 {
		t.Fatalf("after a receive found the group again, groups counted as existing: %v; want real: 1 (the receiving client) only", known)
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

// aclCompiler decides with domain.EvaluateACL.
type aclCompiler struct{}

type aclPolicy []domain.ACLEntry

func (aclCompiler) Compile(entries []domain.ACLEntry) (ports.Policy, error) {
	return aclPolicy(entries), nil
}

func (p aclPolicy) Decide(subject string, req domain.AccessRequest) domain.AccessDecision {
	var mine []domain.ACLEntry
	for _, e := range p {
		if e.Subject == subject {
			mine = append(mine, e)
		}
	}
	return domain.EvaluateACL(mine, req, domain.DenyOverrides)
}

type noSource struct{}

func (noSource) Load(context.Context) (domain.PolicySnapshot, error) {
	return domain.PolicySnapshot{}, nil
}
func (noSource) Watch(ctx context.Context, _ int64, _ func(domain.PolicySnapshot) error) {
	<-ctx.Done()
}
func (noSource) Health() error { return nil }

// TestCheckBackNeedsPubNow: a transaction check-back carries a whole
// message of its topic. A producer whose Pub on the topic was revoked
// after its settings were authorized (an ACL entry removed; the user stays
// enabled, so its Telemetry stream stays open) is passed over: the
// check-back goes to a producer that may still publish, or to none.
func TestCheckBackNeedsPubNow(t *testing.T) {
	cfg := DefaultSecurityConfig()
	cfg.Enabled = true
	sec, err := NewSecurity(SecurityParams{Config: cfg, Source: noSource{}, Compiler: aclCompiler{}})
	if err != nil {
		t.Fatal(err)
	}
	tx, _ := domain.ParseResource("Topic:tx")
	users := []domain.UserRecord{{User: domain.User{Name: "alice"}}, {User: domain.User{Name: "bob"}}}
	entry := func(id int64, user string) domain.ACLEntry {
		return domain.ACLEntry{ID: id, Subject: "User:" + user, Resource: tx, Actions: domain.ActionPub, Decision: domain.Allow}
	}
	apply := func(rev int64, entries ...domain.ACLEntry) {
		t.Helper()
		if err := sec.Apply(domain.PolicySnapshot{Revision: rev, Users: users, Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
	apply(1, entry(1, "alice"), entry(2, "bob"))
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newFakeBroker(clock)
	m := NewMessaging(MessagingParams{Config: DefaultConfig(), Broker: b, Meta: b, Clock: clock, Log: slog.New(slog.DiscardHandler),
		Sessions: NewSessions(DefaultConfig(), clock, slog.New(slog.DiscardHandler)), Renewer: NewRenewer(DefaultConfig(), b, b, clock, slog.New(slog.DiscardHandler)),
		Security: sec})
	chans := map[string]*recordingChannel{}
	for _, user := range []string{"alice", "bob"} {
		chans[user] = &recordingChannel{openChannel: *newOpenChannel()}
		s := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"tx"}}}
		if _, err := m.UpdateSettings(asUser(t.Context(), user+"-client", user), s, chans[user]); err != nil {
			t.Fatal(err)
		}
	}
	check := func(id string) ports.TransactionCheck {
		return ports.TransactionCheck{Message: domain.StoredMessage{Message: domain.Message{Topic: "tx", ID: "m-" + id}, TransactionID: id}}
	}
	// Bob's Pub on tx is removed: every check-back goes to alice.
	apply(2, entry(1, "alice"))
	for i := range 4 {
		m.deliverCheck(t.Context(), check(fmt.Sprint("a", i)))
	}
	if a, b := chans["alice"].count(), chans["bob"].count(); a != 4 || b != 0 {
		t.Fatalf("after bob's Pub was removed: alice got %d, bob %d check-backs; want 4 and 0", a, b)
	}
	// Alice's too: nobody gets one.
	apply(3)
	m.deliverCheck(t.Context(), check("none"))
	if a, b := chans["alice"].count(), chans["bob"].count(); a != 4 || b != 0 {
		t.Fatalf("with no Pub left: alice got %d, bob %d check-backs", a, b)
	}
}

// auditRecorder keeps the audit events it is given.
type auditRecorder struct {
	mu  sync.Mutex
	evs []domain.AuditEvent
}

func (r *auditRecorder) Record(e domain.AuditEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, e)
}
func (r *auditRecorder) RecordWithin(_ context.Context, e domain.AuditEvent, _ time.Duration) bool {
	r.Record(e)
	return true
}
func (r *auditRecorder) Dropped() uint64         { return 0 }
func (r *auditRecorder) Stats() ports.AuditStats { return ports.AuditStats{} }

// seen returns "operation reason resource actions client-id" of each
// denial recorded.
func (r *auditRecorder) seen() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, e := range r.evs {
		if e.Decision == domain.AuditDeny && e.Category == domain.AuditAuthz {
			out[strings.Join([]string{e.Operation, e.Reason, e.Principal, e.Resource, e.Actions, e.ClientID}, " ")] = true
		}
	}
	return out
}

// newAuditedMessaging is newTestMessaging with authentication on and
// its audit events recorded.
func newAuditedMessaging(t *testing.T) (*Messaging, *fakeBroker, *auditRecorder) {
	t.Helper()
	cfg := DefaultSecurityConfig()
	cfg.Enabled = true
	rec := &auditRecorder{}
	sec, err := NewSecurity(SecurityParams{Config: cfg, Source: noSource{}, Compiler: aclCompiler{}, Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Apply(domain.PolicySnapshot{Revision: 1, Users: []domain.UserRecord{{User: domain.User{Name: "alice"}}, {User: domain.User{Name: "bob"}}}}); err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newFakeBroker(clock)
	log := slog.New(slog.DiscardHandler)
	m := NewMessaging(MessagingParams{Config: DefaultConfig(), Broker: b, Meta: b, Clock: clock, Log: log,
		Sessions: NewSessions(DefaultConfig(), clock, log), Renewer: NewRenewer(DefaultConfig(), b, b, clock, log), Security: sec})
	return m, b, rec
}

// TestRefusedDeadLetterForwardIsAudited: a dead-letter forward whose
// receipt handle names no message of the request's group and topic (made
// up, or another topic's message) moves nothing and is answered as done,
// and was only logged by the broker adapter: it is in the audit log, a
// denial under the user, with the client id, the reason the broker gave
// and the group and topic the request named.
func TestRefusedDeadLetterForwardIsAudited(t *testing.T) {
	m, b, rec := newAuditedMessaging(t)
	h := domain.ReceiptHandle{BrokerName: "b", RetrieveTime: time.Now().UnixMilli(), InvisibleTime: 60000, CommitLogOffset: 1}.String()
	alice := asUser(t.Context(), "alices-client", "alice")
	for _, reason := range []string{ports.ForwardForeignMessage, ports.ForwardForgedHandle} {
		b.forwardErr = &ports.ForwardRefusedError{Reason: reason}
		if err := m.ForwardToDeadLetterQueue(alice, "g", "t", "m", h); err != nil {
			t.Fatalf("forward refused as %s: %v, want it answered as done", reason, err)
		}
		for _, want := range []string{
			"ForwardMessageToDeadLetterQueue " + reason + " alice Group:g Sub alices-client",
			"ForwardMessageToDeadLetterQueue " + reason + " alice Topic:t Sub alices-client",
		} {
			if !rec.seen()[want] {
				t.Errorf("no %q audited: %v", want, rec.seen())
			}
		}
	}
	// The client gets the broker's answer when it has one.
	b.forwardErr = &ports.ForwardRefusedError{Reason: ports.ForwardForgedHandle, Err: domain.Errorf(domain.ReasonInvalidReceiptHandle, "no message there")}
	if err := m.ForwardToDeadLetterQueue(alice, "g", "t", "m", h); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		t.Errorf("forward refused with an answer: %v, want INVALID_RECEIPT_HANDLE", err)
	}
	// A forward that moved its message is not a denial.
	n := len(rec.seen())
	b.forwardErr = nil
	if err := m.ForwardToDeadLetterQueue(alice, "g", "t", "m", h); err != nil {
		t.Fatal(err)
	}
	if len(rec.seen()) != n {
		t.Errorf("a forward that moved its message was audited as a denial: %v", rec.seen())
	}
}

// TestForeignClientRefusalsNameTheirResources: a request refused for
// naming another user's client id was audited with no resource; each
// refusal names the group and topics the request asked for (one event
// each, as other denials name theirs), under the user who tried and the
// client id named.
func TestForeignClientRefusalsNameTheirResources(t *testing.T) {
	m, _, rec := newAuditedMessaging(t)
	ctx := t.Context()
	alice := asUser(ctx, "c1", "alice")
	bob := asUser(ctx, "c1", "bob")
	sub := ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: &SubscriptionSettings{Group: "g",
		Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
	if _, err := m.UpdateSettings(alice, sub, newOpenChannel()); err != nil {
		t.Fatal(err)
	}
	h := domain.ReceiptHandle{BrokerName: "b", RetrieveTime: time.Now().UnixMilli(), InvisibleTime: 60000, CommitLogOffset: 1}.String()
	forbidden := func(what string, err error) {
		t.Helper()
		if !domain.HasReason(err, domain.ReasonForbidden) {
			t.Errorf("bob's %s as alice's client: %v, want FORBIDDEN", what, err)
		}
	}
	_, err := m.AckMessage(bob, "g-ack", "t-ack", []AckEntry{{MessageID: "m", ReceiptHandle: h}})
	forbidden("ack", err)
	_, err = m.ChangeInvisibleDuration(bob, "g-change", "t-change", "m", h, time.Minute)
	forbidden("invisible-time change", err)
	forbidden("forward", m.ForwardToDeadLetterQueue(bob, "g-fwd", "t-fwd", "m", h))
	_, err = m.ReceiveMessage(bob, ReceiveRequest{Group: "g-recv", Topic: "t-recv", BatchSize: 1})
	forbidden("receive", err)
	forbidden("heartbeat", m.Heartbeat(bob, "g-hb", ClientTypeSimpleConsumer))
	forbidden("termination", m.NotifyClientTermination(bob, "g-end"))
	bobs := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t-pub"}}}
	_, err = m.UpdateSettings(bob, bobs, newOpenChannel())
	forbidden("settings", err)
	for _, want := range []string{
		"AckMessage foreign_client_id bob Group:g-ack Sub c1",
		"AckMessage foreign_client_id bob Topic:t-ack Sub c1",
		"ChangeInvisibleDuration foreign_client_id bob Group:g-change Sub c1",
		"ChangeInvisibleDuration foreign_client_id bob Topic:t-change Sub c1",
		"ForwardMessageToDeadLetterQueue foreign_client_id bob Group:g-fwd Sub c1",
		"ForwardMessageToDeadLetterQueue foreign_client_id bob Topic:t-fwd Sub c1",
		"ReceiveMessage foreign_client_id bob Group:g-recv Sub c1",
		"ReceiveMessage foreign_client_id bob Topic:t-recv Sub c1",
		"Heartbeat foreign_client_id bob Group:g-hb Sub c1",
		"NotifyClientTermination foreign_client_id bob Group:g-end Sub c1",
		"Telemetry foreign_client_id bob Topic:t-pub Pub c1",
	} {
		if !rec.seen()[want] {
			t.Errorf("no %q audited: %v", want, rec.seen())
		}
	}
	for e := range rec.seen() {
		if strings.HasSuffix(e, "  c1") {
			t.Errorf("refusal audited with no resource: %q", e)
		}
	}
}

// TestHeartbeatAfterGoodbye: a heartbeat that comes after its client's
// goodbye (the Go client says goodbye before it leaves its heartbeat
// timer) does not register the client again, as the Apache proxy's does
// not; new settings do, and so does a heartbeat once the expiry timeout
// passed (as after a restart), or one of another user (the id is free).
func TestHeartbeatAfterGoodbye(t *testing.T) {
	cfg := DefaultConfig()
	m, _, clock := newTestMessaging(cfg)
	ctx := t.Context()
	alice, bob := asUser(ctx, "c1", "alice"), asUser(ctx, "c1", "bob")
	if err := m.Heartbeat(alice, "g", ClientTypePushConsumer); err != nil {
		t.Fatal(err)
	}
	if err := m.NotifyClientTermination(alice, "g"); err != nil {
		t.Fatal(err)
	}
	if err := m.Heartbeat(alice, "g", ClientTypePushConsumer); !domain.HasReason(err, domain.ReasonUnrecognizedClientType) {
		t.Fatalf("heartbeat after the goodbye: %v, want UNRECOGNIZED_CLIENT_TYPE", err)
	}
	if m.sessions.known("c1") {
		t.Fatal("a heartbeat after the goodbye registered the client again")
	}
	clock.Advance(cfg.Clients.ExpiryTimeout + 1)
	if err := m.Heartbeat(alice, "g", ClientTypePushConsumer); err != nil {
		t.Fatalf("heartbeat an expiry timeout after the goodbye: %v", err)
	}
	if err := m.NotifyClientTermination(alice, "g"); err != nil {
		t.Fatal(err)
	}
	if err := m.Heartbeat(bob, "g", ClientTypePushConsumer); err != nil {
		t.Fatalf("another user's heartbeat naming the id: %v", err)
	}
	if err := m.NotifyClientTermination(bob, "g"); err != nil {
		t.Fatal(err)
	}
	settings := ClientSettings{ClientType: ClientTypePushConsumer, Subscription: &SubscriptionSettings{Group: "g",
		Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
	if _, err := m.UpdateSettings(bob, settings, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Heartbeat(bob, "g", ClientTypePushConsumer); err != nil {
		t.Fatalf("heartbeat after new settings: %v", err)
	}
	m.sessions.expire(ctx)
	if n := len(m.sessions.departed); n != 0 {
		t.Fatalf("%d goodbyes remembered after new settings", n)
	}
}

// goodbyeTracker is a client tracker that lets a goodbye land while a
// heartbeat or settings of the same client are between their registration
// and their report to the tracker (the Go client sends its heartbeats and
// its goodbye from different goroutines).
type goodbyeTracker struct {
	mu     sync.Mutex
	active map[string]bool
	during func() // run once, inside the first ClientActive
}

func (g *goodbyeTracker) ClientActive(_ context.Context, c ports.ActiveClient) {
	if f := g.during; f != nil {
		g.during = nil
		f()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active[c.ClientID] = true
}

func (g *goodbyeTracker) ClientGone(_ context.Context, clientID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.active, clientID)
}

// TestGoodbyeDuringAHeartbeatLeavesNoTrackedClient: a goodbye that lands
// while a heartbeat (or settings) of its client is between the registry
// and the tracker left the client with the tracker (cluster mode: its
// group registered on the brokers for 3 minutes, as the proxy's client),
// although the registry had forgotten it.
func TestGoodbyeDuringAHeartbeatLeavesNoTrackedClient(t *testing.T) {
	cfg := DefaultConfig()
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newFakeBroker(clock)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := &goodbyeTracker{active: map[string]bool{}}
	m := NewMessaging(MessagingParams{Config: cfg, Broker: b, Meta: b, Clock: clock, Log: log, Tracker: tr,
		Sessions: NewSessions(cfg, clock, log), Renewer: NewRenewer(cfg, b, b, clock, log)})
	ctx := asClient(t.Context(), "c1")
	settings := ClientSettings{ClientType: ClientTypePushConsumer, Subscription: &SubscriptionSettings{Group: "g",
		Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
	for _, step := range []struct {
		name string
		call func() error
	}{
		{"heartbeat", func() error { return m.Heartbeat(ctx, "g", ClientTypePushConsumer) }},
		{"settings", func() error { _, err := m.UpdateSettings(ctx, settings, nil); return err }},
	} {
		if _, err := m.UpdateSettings(ctx, settings, nil); err != nil {
			t.Fatal(err)
		}
		tr.during = func() {
			if err := m.NotifyClientTermination(ctx, "g"); err != nil {
				t.Errorf("goodbye: %v", err)
			}
		}
		if err := step.call(); err != nil {
			t.Logf("%s answered %v", step.name, err)
		}
		if m.sessions.known("c1") {
			t.Fatalf("%s: the registry knows the client after its goodbye", step.name)
		}
		if tr.active["c1"] {
			t.Errorf("a goodbye during the client's %s left it with the tracker", step.name)
		}
		delete(tr.active, "c1")
	}
}
