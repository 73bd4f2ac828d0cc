package application

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// answeringChannel hands each command to answer, which may reply through
// the Messaging use case as the gRPC adapter does (before Send returns: the
// answer waits in its buffer).
type answeringChannel struct {
	openChannel
	answer func(cmd ports.ClientCommand)
}

func (c *answeringChannel) Send(_ context.Context, cmd ports.ClientCommand) error {
	c.answer(cmd)
	return nil
}

func (c *answeringChannel) TrySend(cmd ports.ClientCommand) error {
	return c.Send(context.Background(), cmd)
}

type lookupFunc func(ctx context.Context, topic, id string) (domain.StoredMessage, error)

func (f lookupFunc) LookupMessage(ctx context.Context, topic, id string) (domain.StoredMessage, error) {
	return f(ctx, topic, id)
}

func newTestClientOps(t *testing.T, lookup ports.MessageLookup) (*Messaging, *ClientOps) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Clients.CommandTimeout = 200 * time.Millisecond
	m, _, _ := newTestMessaging(cfg)
	return m, NewClientOps(cfg, m.sessions, lookup, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func register(t *testing.T, m *Messaging, clientID string, s ClientSettings, ch ports.ClientChannel) {
	t.Helper()
	ctx := ports.WithRequestInfo(t.Context(), ports.RequestInfo{ClientID: clientID, Language: "JAVA", ClientVersion: "5.0.7",
		RemoteAddr: netip.MustParseAddrPort("10.1.2.3:4567")})
	if _, err := m.UpdateSettings(ctx, s, ch); err != nil {
		t.Fatal(err)
	}
}

func TestClientOpsListsAndFilters(t *testing.T) {
	m, ops := newTestClientOps(t, nil)
	register(t, m, "p1", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t2", "t1", "t1"}}}, newOpenChannel())
	closed := newOpenChannel()
	register(t, m, "c1", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: &SubscriptionSettings{Group: "g",
		Entries: []SubscriptionEntry{{Topic: "t1"}}}}, closed)
	closed.close()
	all := ops.Clients(ClientFilter{})
	if len(all) != 2 || all[0].ClientID != "c1" || all[1].ClientID != "p1" {
		t.Fatalf("all: %+v", all)
	}
	c, p := all[0], all[1]
	if c.Kind() != "consumer" || c.Group != "g" || c.Streaming || strings.Join(c.Topics, ",") != "t1" {
		t.Fatalf("consumer: %+v", c)
	}
	if p.Kind() != "producer" || !p.Streaming || strings.Join(p.Topics, ",") != "t1,t2" || p.Language != "JAVA" || p.Version != "5.0.7" ||
		p.RemoteAddr.String() != "10.1.2.3:4567" || p.Since.IsZero() {
		t.Fatalf("producer: %+v", p)
	}
	if got := ops.Clients(ClientFilter{Group: "g"}); len(got) != 1 || got[0].ClientID != "c1" {
		t.Fatalf("group g: %+v", got)
	}
	if got := ops.Clients(ClientFilter{Topic: "t2"}); len(got) != 1 || got[0].ClientID != "p1" {
		t.Fatalf("topic t2: %+v", got)
	}
	if got := ops.Clients(ClientFilter{Topic: "t1", Group: "nope"}); len(got) != 0 {
		t.Fatalf("topic t1 group nope: %+v", got)
	}
}

func TestThreadStackWaitsForTheAnswerWithItsNonce(t *testing.T) {
	m, ops := newTestClientOps(t, nil)
	ch := &answeringChannel{openChannel: *newOpenChannel()}
	ch.answer = func(cmd ports.ClientCommand) {
		nonce := cmd.PrintThreadStack.Nonce
		// Another client's answer with the same nonce, and a wrong nonce, are dropped.
		m.ClientReplied(asClient(context.Background(), "other"), ClientReply{Nonce: nonce, Code: "OK", StackTrace: "not mine"})
		m.ClientReplied(asClient(context.Background(), "p1"), ClientReply{Nonce: nonce + "9", Code: "OK", StackTrace: "wrong nonce"})
		m.ClientReplied(asClient(context.Background(), "p1"), ClientReply{Nonce: nonce, Code: "OK", StackTrace: "goroutine 1"})
	}
	register(t, m, "p1", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t"}}}, ch)
	r, err := ops.ThreadStack(t.Context(), "p1")
	if err != nil || !r.OK() || r.StackTrace != "goroutine 1" {
		t.Fatalf("ThreadStack = %+v, %v", r, err)
	}
	if n := len(m.sessions.replies.m); n != 0 {
		t.Fatalf("%d pending replies left", n)
	}
}

// lateReturningChannel answers each command at once but returns from Send
// only once the command's time is up, as a machine too busy to run the
// wait before then would.
type lateReturningChannel struct{ answeringChannel }

func (c *lateReturningChannel) Send(ctx context.Context, cmd ports.ClientCommand) error {
	c.answer(cmd)
	<-ctx.Done()
	return nil
}

// An answer that is in when messaging.clients.commandTimeout ends is the
// answer, not a timeout: the wait saw both ready and chose either (half of
// the waits on a busy machine said the client did not answer).
func TestAnswerInWhenTheCommandTimeoutEndsIsTheAnswer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients.CommandTimeout = time.Millisecond
	m, _, _ := newTestMessaging(cfg)
	ops := NewClientOps(cfg, m.sessions, nil, nil, slog.New(slog.DiscardHandler))
	ch := &lateReturningChannel{answeringChannel{openChannel: *newOpenChannel()}}
	ch.answer = func(cmd ports.ClientCommand) {
		m.ClientReplied(asClient(context.Background(), "p1"), ClientReply{Nonce: cmd.PrintThreadStack.Nonce, Code: "OK", StackTrace: "goroutine 1"})
	}
	register(t, m, "p1", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t"}}}, ch)
	for i := range 50 { // either way each time: 50 catch it all but surely
		if r, err := ops.ThreadStack(t.Context(), "p1"); err != nil || r.StackTrace != "goroutine 1" {
			t.Fatalf("wait %d: ThreadStack = %+v, %v; want the answer that was in", i, r, err)
		}
	}
}

func TestThreadStackTimesOutAndRefusesUnknownClients(t *testing.T) {
	m, ops := newTestClientOps(t, nil)
	register(t, m, "silent", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t"}}}, newOpenChannel())
	_, err := ops.ThreadStack(t.Context(), "silent")
	if domain.ReasonOf(err) != domain.ReasonTimeout || !strings.Contains(err.Error(), "did not answer the thread stack request within 200ms (messaging.clients.commandTimeout)") {
		t.Fatalf("silent client: %v", err)
	}
	if _, err := ops.ThreadStack(t.Context(), "nobody"); domain.ReasonOf(err) != domain.ReasonNotFound {
		t.Fatalf("unknown client: %v", err)
	}
	gone := newOpenChannel()
	register(t, m, "gone", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t"}}}, gone)
	gone.close()
	if _, err := ops.ThreadStack(t.Context(), "gone"); domain.ReasonOf(err) != domain.ReasonUnavailable {
		t.Fatalf("client without a stream: %v", err)
	}
	if n := len(m.sessions.replies.m); n != 0 {
		t.Fatalf("%d pending replies left", n)
	}
}

func TestVerifyMessageSendsTheStoredMessage(t *testing.T) {
	lookup := lookupFunc(func(_ context.Context, topic, id string) (domain.StoredMessage, error) {
		if id != "M1" {
			return domain.StoredMessage{}, domain.Errorf(domain.ReasonMessageNotFound, "no %s", id)
		}
		return domain.StoredMessage{Message: domain.Message{Topic: topic, ID: id, Body: []byte("b")}}, nil
	})
	m, ops := newTestClientOps(t, lookup)
	got := make(chan domain.StoredMessage, 1)
	ch := &answeringChannel{openChannel: *newOpenChannel()}
	ch.answer = func(cmd ports.ClientCommand) {
		got <- cmd.VerifyMessage.Message
		m.ClientReplied(asClient(context.Background(), "c1"), ClientReply{Nonce: cmd.VerifyMessage.Nonce, Code: "FAILED_TO_CONSUME_MESSAGE", Message: "later"})
	}
	register(t, m, "c1", ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: &SubscriptionSettings{Group: "g", Entries: []SubscriptionEntry{{Topic: "t"}}}}, ch)
	r, err := ops.VerifyMessage(t.Context(), "c1", "t", "M1")
	if err != nil || r.OK() || r.Code != "FAILED_TO_CONSUME_MESSAGE" || r.Message != "later" {
		t.Fatalf("VerifyMessage = %+v, %v", r, err)
	}
	if msg := <-got; msg.ID != "M1" || string(msg.Body) != "b" || msg.Topic != "t" {
		t.Fatalf("command carried %+v", msg)
	}
	if _, err := ops.VerifyMessage(t.Context(), "c1", "t", "M2"); domain.ReasonOf(err) != domain.ReasonMessageNotFound {
		t.Fatalf("unknown message: %v", err)
	}
	if _, err := ops.VerifyMessage(t.Context(), "c1", "t", ""); domain.ReasonOf(err) != domain.ReasonIllegalMessageID {
		t.Fatalf("empty message id: %v", err)
	}
	register(t, m, "p1", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t"}}}, newOpenChannel())
	if _, err := ops.VerifyMessage(t.Context(), "p1", "t", "M1"); domain.ReasonOf(err) != domain.ReasonBadRequest {
		t.Fatalf("producer: %v", err)
	}
}

// recordingRelay records the handlers the client operations register.
type recordingRelay struct {
	h      ports.ConsumerRunningInfoHandler
	direct ports.ConsumeDirectlyHandler
}

func (r *recordingRelay) SetConsumerRunningInfoHandler(h ports.ConsumerRunningInfoHandler) { r.h = h }
func (r *recordingRelay) SetConsumeDirectlyHandler(h ports.ConsumeDirectlyHandler)         { r.direct = h }

func TestConsumerRunningInfoDescribesTheGroupsClients(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients.CommandTimeout = 200 * time.Millisecond
	m, _, _ := newTestMessaging(cfg)
	relay := &recordingRelay{}
	NewClientOps(cfg, m.sessions, nil, relay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if relay.h == nil {
		t.Fatal("no handler registered with the relay")
	}
	answering := &answeringChannel{openChannel: *newOpenChannel()}
	answering.answer = func(cmd ports.ClientCommand) {
		m.ClientReplied(asClient(context.Background(), "c1"), ClientReply{Nonce: cmd.PrintThreadStack.Nonce, Code: "OK", StackTrace: "goroutine 7\n"})
	}
	sub := func(topics ...string) *SubscriptionSettings {
		s := &SubscriptionSettings{Group: "g"}
		for _, t := range topics {
			s.Entries = append(s.Entries, SubscriptionEntry{Topic: t})
		}
		return s
	}
	register(t, m, "c1", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: sub("t1")}, answering)
	register(t, m, "c2", ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: sub("t1", "t2")}, newOpenChannel()) // silent
	register(t, m, "p1", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t1"}}}, newOpenChannel())
	info, err := relay.h(t.Context(), "g", false)
	if err != nil || strings.Join(info.Clients, ",") != "c1,c2" || strings.Join(info.Versions, ",") != "JAVA 5.0.7,JAVA 5.0.7" ||
		len(info.Subscriptions) != 2 || info.Subscriptions[0].Topic != "t1" || info.Subscriptions[1].Topic != "t2" || info.Stacks != "" || info.Since.IsZero() ||
		!info.Push {
		t.Fatalf("info = %+v, %v", info, err)
	}
	info, err = relay.h(t.Context(), "g", true)
	if err != nil || !strings.Contains(info.Stacks, "client c1:\ngoroutine 7\n") || !strings.Contains(info.Stacks, "client c2: no thread stacks: client c2 did not answer") {
		t.Fatalf("stacks = %q, %v", info.Stacks, err)
	}
	if _, err := relay.h(t.Context(), "nobody", false); domain.ReasonOf(err) != domain.ReasonNotFound {
		t.Fatalf("unknown group: %v", err)
	}
	register(t, m, "c3", ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: &SubscriptionSettings{Group: "g-simple"}}, newOpenChannel())
	if info, err := relay.h(t.Context(), "g-simple", false); err != nil || info.Push {
		t.Fatalf("a group of simple consumers: info = %+v, %v", info, err)
	}
}

// TestConsumeDirectlyAsksAConsumerOfTheTopic: a broker's consume-directly
// goes to a consumer of the group that subscribes to the message's topic
// and has an open stream, push consumers first; one answering
// NOT_IMPLEMENTED hands it to the next; no such consumer, or none
// answering in time, is a precise error.
func TestConsumeDirectlyAsksAConsumerOfTheTopic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients.CommandTimeout = 200 * time.Millisecond
	m, _, _ := newTestMessaging(cfg)
	relay := &recordingRelay{}
	NewClientOps(cfg, m.sessions, nil, relay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if relay.direct == nil {
		t.Fatal("no consume-directly handler registered with the relay")
	}
	var asked []string
	answering := func(id, code string) *answeringChannel {
		ch := &answeringChannel{openChannel: *newOpenChannel()}
		ch.answer = func(cmd ports.ClientCommand) {
			asked = append(asked, id+":"+cmd.VerifyMessage.Message.ID)
			m.ClientReplied(asClient(context.Background(), id), ClientReply{Nonce: cmd.VerifyMessage.Nonce, Code: code, Message: id + " says " + code})
		}
		return ch
	}
	sub := func(topics ...string) *SubscriptionSettings {
		s := &SubscriptionSettings{Group: "g"}
		for _, t := range topics {
			s.Entries = append(s.Entries, SubscriptionEntry{Topic: t})
		}
		return s
	}
	msg := func(topic string) domain.StoredMessage {
		return domain.StoredMessage{Message: domain.Message{Topic: topic, ID: "M1", Body: []byte("b")}}
	}
	if _, err := relay.direct(t.Context(), "g", msg("t1")); domain.ReasonOf(err) != domain.ReasonNotFound ||
		!strings.Contains(err.Error(), "no consumer of group g is connected") {
		t.Fatalf("no consumer: %v", err)
	}
	register(t, m, "a-simple", ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: sub("t1")}, answering("a-simple", "NOT_IMPLEMENTED"))
	register(t, m, "b-push", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: sub("t1")}, answering("b-push", "NOT_IMPLEMENTED"))
	register(t, m, "c-push", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: sub("t1")}, answering("c-push", "OK"))
	register(t, m, "d-other", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: sub("t9")}, answering("d-other", "OK"))
	closed := newOpenChannel()
	register(t, m, "e-closed", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: sub("t1", "t2")}, closed)
	closed.close()

	a, err := relay.direct(t.Context(), "g", msg("t1"))
	if err != nil || a.ClientID != "c-push" || a.Code != "OK" || a.Asked != 2 || strings.Join(asked, ",") != "b-push:M1,c-push:M1" {
		t.Fatalf("answer %+v, %v; asked %v", a, err, asked)
	}
	if _, err := relay.direct(t.Context(), "g", msg("t3")); domain.ReasonOf(err) != domain.ReasonNotFound ||
		!strings.Contains(err.Error(), "subscribes to topic t3 (they subscribe to t1, t2, t9)") {
		t.Fatalf("topic nobody subscribes to: %v", err)
	}
	if _, err := relay.direct(t.Context(), "g", msg("t2")); domain.ReasonOf(err) != domain.ReasonUnavailable ||
		!strings.Contains(err.Error(), "has an open Telemetry stream") {
		t.Fatalf("only a closed stream: %v", err)
	}

	// All answer NOT_IMPLEMENTED: the last answer, and how many were asked.
	m2, _, _ := newTestMessaging(cfg)
	NewClientOps(cfg, m2.sessions, nil, relay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m = m2
	asked = nil
	register(t, m, "x", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: sub("t1")}, answering("x", "NOT_IMPLEMENTED"))
	register(t, m, "y", ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: sub("t1")}, answering("y", "NOT_IMPLEMENTED"))
	a, err = relay.direct(t.Context(), "g", msg("t1"))
	if err != nil || a.ClientID != "y" || a.Code != "NOT_IMPLEMENTED" || a.Asked != 2 || a.Message != "y says NOT_IMPLEMENTED" {
		t.Fatalf("all NOT_IMPLEMENTED: %+v, %v", a, err)
	}

	// A silent consumer: the caller's deadline cause is the error.
	m3, _, _ := newTestMessaging(cfg)
	NewClientOps(cfg, m3.sessions, nil, relay, slog.New(slog.NewTextHandler(io.Discard, nil)))
	register(t, m3, "s", ClientSettings{ClientType: ClientTypePushConsumer, Subscription: sub("t1")}, newOpenChannel())
	cause := domain.Errorf(domain.ReasonTimeout, "the caller's bound")
	ctx, cancel := context.WithTimeoutCause(t.Context(), 50*time.Millisecond, cause)
	defer cancel()
	if _, err := relay.direct(ctx, "g", msg("t1")); err != cause {
		t.Fatalf("silent consumer within the caller's bound: %v", err)
	}
	if _, err := relay.direct(t.Context(), "g", msg("t1")); domain.ReasonOf(err) != domain.ReasonTimeout ||
		!strings.Contains(err.Error(), "client s did not answer the verify message request within 200ms") {
		t.Fatalf("silent consumer: %v", err)
	}
}

func TestCommandTimeoutIsBounded(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, 26 * time.Second} {
		cfg := DefaultConfig()
		cfg.Clients.CommandTimeout = d
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "clients.commandTimeout must be more than 0 and at most 25s") {
			t.Errorf("commandTimeout %v: %v", d, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Clients.CommandTimeout = 25 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
