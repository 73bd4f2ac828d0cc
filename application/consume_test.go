package application

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

func receiveReq(group, topic, tags string, autoRenew bool) ReceiveRequest {
	poll := time.Second
	return ReceiveRequest{Group: group, Topic: topic, QueueID: -1, Filter: filter.Expression{Type: filter.TypeTag, Text: tags},
		BatchSize: 8, InvisibleTime: 30 * time.Second, AutoRenew: autoRenew, LongPollingTimeout: &poll}
}

// TestReceiveWithoutSettings is a consumer the proxy does not know (it
// restarted, and the client re-sends its settings only minutes later): the
// receive is served with its own group and filter and the group's stored
// settings, and the client is registered until its settings arrive.
func TestReceiveWithoutSettings(t *testing.T) {
	for _, c := range []struct {
		name      string
		autoRenew bool
		want      ClientType
	}{
		{"simple consumer", false, ClientTypeSimpleConsumer},
		{"push consumer", true, ClientTypePushConsumer},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, b, _ := newTestMessaging(DefaultConfig())
			b.groups["g"] = domain.ConsumerGroup{Name: "g", MaxDeliveryAttempts: 5, Orderly: true}
			b.add("t", "m1", "a")
			b.add("t", "m2", "b")
			b.add("t", "m3", "c")
			ctx := asClient(t.Context(), "c1")
			msgs, err := m.ReceiveMessage(ctx, receiveReq("g", "t", "a||c", c.autoRenew))
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 2 || msgs[0].ID != "m1" || msgs[1].ID != "m3" {
				t.Fatalf("received %v, want m1 and m3 (the request's filter)", ids(msgs))
			}
			if p := b.pops[0]; !p.FIFO || p.Group != "g" || p.Topic != "t" {
				t.Fatalf("pop %+v does not follow the group's stored settings", p)
			}
			s, ok := m.sessions.Settings("c1")
			if !ok || s.ClientType != c.want || s.Subscription.Group != "g" {
				t.Fatalf("session %+v, %v", s, ok)
			}
			if c.autoRenew && len(m.renewer.held[holderKey{"c1", "g"}]) != 2 {
				t.Fatalf("auto-renewal does not track the deliveries: %v", m.renewer.held)
			}
			// The client's own settings replace the inferred ones.
			declared := ClientSettings{ClientType: c.want, RequestTimeout: 10 * time.Second,
				Subscription: &SubscriptionSettings{Group: "g", Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
			if _, err := m.UpdateSettings(ctx, declared, newOpenChannel()); err != nil {
				t.Fatal(err)
			}
			if s, _ := m.sessions.Settings("c1"); s.RequestTimeout != 10*time.Second {
				t.Fatalf("declared settings not kept: %+v", s)
			}
		})
	}
}

func TestReceiveWithoutSettingsValidatesFirst(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	ctx := asClient(t.Context(), "c1")
	for _, r := range []ReceiveRequest{
		receiveReq("bad group", "t", "*", false),
		receiveReq("g", "bad topic", "*", false),
		func() ReceiveRequest {
			r := receiveReq("g", "t", "a >", true)
			r.Filter.Type = filter.TypeSQL92
			return r
		}(),
	} {
		if _, err := m.ReceiveMessage(ctx, r); err == nil || domain.HasReason(err, domain.ReasonMessageNotFound) {
			t.Fatalf("%+v: %v", r, err)
		}
	}
	if m.sessions.Count() != 0 {
		t.Fatal("an invalid receive registered the client")
	}
}

// TestPushConsumerWithClosedStreamIsServed: a push consumer whose
// Telemetry stream ended is still registered (it heartbeats; the Go client
// reopens its stream only at its five-minute settings sync), so its
// receives are served and renewed, as upstream serves a client as long as
// it has a channel. Refusing them popped, released and so re-delivered the
// messages on every poll until they went to the dead-letter queue unread.
func TestPushConsumerWithClosedStreamIsServed(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	ctx := asClient(t.Context(), "c1")
	ch := newOpenChannel()
	settings := ClientSettings{ClientType: ClientTypePushConsumer, RequestTimeout: 3 * time.Second,
		Subscription: &SubscriptionSettings{Group: "g", Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Text: "*"}}}}}
	if _, err := m.UpdateSettings(ctx, settings, ch); err != nil {
		t.Fatal(err)
	}
	ch.close()
	if err := m.Heartbeat(ctx, "g", ClientTypePushConsumer); err != nil {
		t.Fatal(err)
	}
	b.add("t", "m1", "")
	msgs, err := m.ReceiveMessage(ctx, receiveReq("g", "t", "*", true))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive after the stream ended: %v, %v", ids(msgs), err)
	}
	if ch := b.changesSnapshot(); len(ch) != 0 {
		t.Fatalf("a delivered message was released: %+v", ch)
	}
	clock.Advance(cfg.Consumer.DefaultInvisibleTime - cfg.Consumer.RenewAhead + time.Second)
	m.renewer.renewDue(t.Context())
	if ch := b.changesSnapshot(); len(ch) != 1 || ch[0].InvisibleTime != renewSteps[0] {
		t.Fatalf("the delivery is not renewed: %+v", ch)
	}
}

// TestPushConsumerGoneDuringPoll: a push consumer that terminates while its
// receive long-polls is refused, as upstream refuses a client without a
// channel, and the messages popped for it are released, not renewed.
func TestPushConsumerGoneDuringPoll(t *testing.T) {
	m, b, _ := newTestMessaging(DefaultConfig())
	ctx := asClient(t.Context(), "c1")
	if err := m.Heartbeat(ctx, "g", ClientTypePushConsumer); err != nil {
		t.Fatal(err)
	}
	receiveReleasedAfter(t, m, b, func() error { return m.NotifyClientTermination(ctx, "g") })
}

// receiveReleasedAfter receives from topic t for client c1 under group g
// with auto-renewal, runs leave (how c1 leaves g) once the receive has
// long-polled, just before its pop, and checks that the receive is answered
// MESSAGE_NOT_FOUND and the message popped for it released (made visible
// after consumer.invisibleTimeOnClear), not renewed.
func receiveReleasedAfter(t *testing.T, m *Messaging, b *fakeBroker, leave func() error) {
	t.Helper()
	b.beforePop = func() {
		if err := leave(); err != nil {
			t.Error(err)
		}
	}
	b.add("t", "m1", "")
	_, err := m.ReceiveMessage(asClient(t.Context(), "c1"), receiveReq("g", "t", "*", true))
	if !domain.HasReason(err, domain.ReasonMessageNotFound) {
		t.Fatalf("receive whose client left the group during the poll: %v", err)
	}
	if ch := b.changesSnapshot(); len(ch) != 1 || ch[0].InvisibleTime != m.cfg.Consumer.InvisibleTimeOnClear {
		t.Fatalf("the popped message was not released: %+v", ch)
	}
	if len(m.renewer.held) != 0 {
		t.Fatalf("a delivery of a group the client left is renewed: %v", m.renewer.held)
	}
}

func TestHeartbeatRegistersUnknownClient(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	cases := []struct {
		name   string
		client string
		group  string
		ct     ClientType
		want   domain.Reason // 0: OK
	}{
		{"producer", "p", "", ClientTypeProducer, 0},
		{"push consumer", "c", "g", ClientTypePushConsumer, 0},
		{"simple consumer", "s", "g", ClientTypeSimpleConsumer, 0},
		{"consumer with a bad group", "x", "bad group", ClientTypeSimpleConsumer, domain.ReasonIllegalConsumerGroup},
		{"unspecified type", "u", "g", ClientTypeUnspecified, domain.ReasonUnrecognizedClientType},
		{"pull consumer", "l", "g", ClientTypePullConsumer, domain.ReasonUnrecognizedClientType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := m.Heartbeat(asClient(t.Context(), c.client), c.group, c.ct)
			if c.want == 0 && err != nil || c.want != 0 && !domain.HasReason(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			s, ok := m.sessions.Settings(c.client)
			if ok != (c.want == 0) || ok && s.ClientType != c.ct {
				t.Fatalf("session %+v, %v", s, ok)
			}
		})
	}
	if got := m.sessions.pushConsumersOf("g", "t"); len(got) != 1 || got[0] != "c" {
		t.Fatalf("push consumers of g: %v", got)
	}
}

func ids(msgs []domain.StoredMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// receiveHeld makes client c1 receive one message with auto-renewal and
// returns it with the handle the client got.
func receiveHeld(t *testing.T, m *Messaging, b *fakeBroker) (domain.StoredMessage, domain.ReceiptHandle) {
	t.Helper()
	b.add("t", "m1", "")
	msgs, err := m.ReceiveMessage(asClient(t.Context(), "c1"), receiveReq("g", "t", "*", true))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive: %v, %v", msgs, err)
	}
	h, err := domain.ParseReceiptHandle(msgs[0].ReceiptHandle)
	if err != nil {
		t.Fatal(err)
	}
	return msgs[0], h
}

// heldHandle returns the latest handle of client c1's held delivery of msg
// in group g.
func heldHandle(t *testing.T, m *Messaging, msg domain.StoredMessage) domain.ReceiptHandle {
	t.Helper()
	h, err := domain.ParseReceiptHandle(msg.ReceiptHandle)
	if err != nil {
		t.Fatal(err)
	}
	hm := m.renewer.held[holderKey{"c1", "g"}][deliveryOf(msg.ID, h)]
	if hm == nil {
		t.Fatalf("delivery of %s at %v not held", msg.ID, h)
	}
	return hm.handle
}

func TestRenewalSteps(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	msg, first := receiveHeld(t, m, b)
	if first.InvisibleTime != cfg.Consumer.DefaultInvisibleTime.Milliseconds() {
		t.Fatalf("first invisible time %v", first.InvisibleTime)
	}
	// Not due yet: nothing renewed.
	clock.Advance(cfg.Consumer.DefaultInvisibleTime - cfg.Consumer.RenewAhead - time.Second)
	m.renewer.renewDue(t.Context())
	if n := len(b.changesSnapshot()); n != 0 {
		t.Fatalf("%d renewals before the renew-ahead window", n)
	}
	// Each renewal grants the next step, starting from the delivery's latest handle.
	var last domain.ReceiptHandle
	for i, want := range renewSteps[:4] {
		clock.Advance(2 * time.Second)
		if i > 0 {
			clock.Set(last.NextVisibleTime().Add(-cfg.Consumer.RenewAhead))
		}
		m.renewer.renewDue(t.Context())
		ch := b.changesSnapshot()
		if len(ch) != i+1 || ch[i].InvisibleTime != want || ch[i].Release {
			t.Fatalf("renewal %d: %+v, want %v, not a release", i, ch, want)
		}
		if i > 0 && ch[i].Handle.StartOffset != last.StartOffset {
			t.Fatalf("renewal %d used handle %v, not the latest %v", i, ch[i].Handle, last)
		}
		last = heldHandle(t, m, msg)
	}
	// The client acks with the handle it received; the proxy substitutes the latest.
	res, err := m.AckMessage(asClient(t.Context(), "c1"), "g", "t", []AckEntry{{MessageID: msg.ID, ReceiptHandle: first.String()}})
	if err != nil || res[0] != nil {
		t.Fatalf("ack: %v %v", res, err)
	}
	if len(b.acks) != 1 || b.acks[0].Handle != last {
		t.Fatalf("acked with %v, want the latest handle %v", b.acks, last)
	}
	if len(m.renewer.held) != 0 {
		t.Fatalf("acked delivery still renewed: %v", m.renewer.held)
	}
}

// TestRenewalKeepsEveryDeliveryOfAMessageID: two stored copies of one
// message (a producer's retried send) share its message id; a push consumer
// holding both gets both renewed, and acking one leaves the other renewed.
// Keyed by message id alone, the second delivery replaced the first, which
// became visible again while the consumer still processed it.
func TestRenewalKeepsEveryDeliveryOfAMessageID(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	b.add("t", "dup", "")
	b.add("t", "dup", "")
	ctx := asClient(t.Context(), "c1")
	msgs, err := m.ReceiveMessage(ctx, receiveReq("g", "t", "*", true))
	if err != nil || len(msgs) != 2 {
		t.Fatalf("receive: %v, %v", msgs, err)
	}
	clock.Advance(cfg.Consumer.DefaultInvisibleTime - cfg.Consumer.RenewAhead + time.Second)
	m.renewer.renewDue(t.Context())
	if ch := b.changesSnapshot(); len(ch) != 2 || ch[0].Handle.QueueOffset == ch[1].Handle.QueueOffset {
		t.Fatalf("renewals %+v, want one for each of the 2 deliveries", ch)
	}
	renewed := heldHandle(t, m, msgs[0])
	if res, err := m.AckMessage(ctx, "g", "t", []AckEntry{{MessageID: "dup", ReceiptHandle: msgs[0].ReceiptHandle}}); err != nil || res[0] != nil {
		t.Fatalf("ack: %v %v", res, err)
	}
	if len(b.acks) != 1 || b.acks[0].Handle != renewed {
		t.Fatalf("acked %+v, want the renewed handle of the first delivery", b.acks)
	}
	left := m.renewer.held[holderKey{"c1", "g"}]
	if len(left) != 1 {
		t.Fatalf("held after acking one of two: %v", left)
	}
	heldHandle(t, m, msgs[1])
}

func TestRenewalGivesUpAfterMaxTime(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	b.groups["g"] = domain.ConsumerGroup{Name: "g", MaxDeliveryAttempts: 5, RetryPolicy: domain.RetryPolicy{Delays: []time.Duration{7 * time.Second}}}
	msg, _ := receiveHeld(t, m, b)
	// Renewed in time all along, until it has been held renewMaxTime.
	start := clock.Now()
	for {
		clock.Set(heldHandle(t, m, msg).NextVisibleTime().Add(-cfg.Consumer.RenewAhead))
		if clock.Now().Sub(start) >= cfg.Consumer.RenewMaxTime {
			break
		}
		m.renewer.renewDue(t.Context())
	}
	renewals := len(b.changesSnapshot())
	m.renewer.renewDue(t.Context())
	ch := b.changesSnapshot()[renewals:]
	if len(ch) != 1 || ch[0].InvisibleTime != 7*time.Second || !ch[0].Release {
		t.Fatalf("give-up change %+v, want a release after the group's retry delay", ch)
	}
	if len(m.renewer.held) != 0 {
		t.Fatal("a given-up delivery is still renewed")
	}
}

func TestRenewalFailures(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		name      string
		err       error
		forgetsAt int
	}{
		{"transient errors are retried", errors.New("disk busy"), maxRenewFailures},
		{"a superseded handle is forgotten at once", domain.Errorf(domain.ReasonInvalidReceiptHandle, "gone"), 1},
		{"a renewal the broker did not send as the handle expired is forgotten at once",
			domain.Wrap(domain.ReasonInvalidReceiptHandle, ports.ErrHandleExpiring, "expired"), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, b, clock := newTestMessaging(cfg)
			receiveHeld(t, m, b)
			b.changeErr = c.err
			clock.Advance(cfg.Consumer.DefaultInvisibleTime - time.Second)
			for i := 1; i <= c.forgetsAt; i++ {
				if len(m.renewer.held) == 0 {
					t.Fatalf("forgotten after %d attempts, want %d", i-1, c.forgetsAt)
				}
				m.renewer.renewDue(t.Context())
			}
			if len(m.renewer.held) != 0 || len(b.changesSnapshot()) != c.forgetsAt {
				t.Fatalf("after %d attempts: held %v, %d changes", c.forgetsAt, m.renewer.held, len(b.changesSnapshot()))
			}
		})
	}
}

// TestReleaseUndelivered: messages that could not be written to the client
// become visible again after invisibleTimeOnClear, through the latest
// handle of a renewed delivery.
func TestReleaseUndelivered(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	msg, _ := receiveHeld(t, m, b)
	clock.Advance(cfg.Consumer.DefaultInvisibleTime - time.Second)
	m.renewer.renewDue(t.Context())
	latest := heldHandle(t, m, msg)
	m.Release(asClient(t.Context(), "c1"), "g", []domain.StoredMessage{msg})
	ch := b.changesSnapshot()
	if len(ch) != 2 || ch[1].Handle != latest || ch[1].InvisibleTime != cfg.Consumer.InvisibleTimeOnClear || !ch[1].Release {
		t.Fatalf("release %+v, want a release of the latest handle %v with %v", ch, latest, cfg.Consumer.InvisibleTimeOnClear)
	}
	if len(m.renewer.held) != 0 {
		t.Fatal("a released delivery is still renewed")
	}
}

// TestReleaseLeavesExpiredDeliveries: a message that could not be written
// to the client is not released once its invisible time has ended, or
// ends within invisibleTimeOnClear: the broker revives it then anyway,
// and a RocketMQ broker that is asked to change an expired checkpoint
// writes a second one for the message, which delivered it twice. It is
// not renewed any more either.
func TestReleaseLeavesExpiredDeliveries(t *testing.T) {
	cfg := DefaultConfig()
	for _, left := range []time.Duration{0, cfg.Consumer.InvisibleTimeOnClear / 2, -time.Second} {
		m, b, clock := newTestMessaging(cfg)
		msg, h := receiveHeld(t, m, b)
		clock.Advance(h.NextVisibleTime().Sub(clock.Now()) - left)
		m.Release(asClient(t.Context(), "c1"), "g", []domain.StoredMessage{msg})
		if ch := b.changesSnapshot(); len(ch) != 0 {
			t.Fatalf("%v before its invisible time ends: released with %+v", left, ch)
		}
		if len(m.renewer.held) != 0 {
			t.Fatalf("%v before its invisible time ends: still renewed", left)
		}
	}
}

// TestDepartedClientReleasesHeld: a client that terminates (or expires)
// hands back what it held.
func TestDepartedClientReleasesHeld(t *testing.T) {
	cfg := DefaultConfig()
	m, b, _ := newTestMessaging(cfg)
	receiveHeld(t, m, b)
	ctx := asClient(t.Context(), "c1")
	if err := m.NotifyClientTermination(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	ch := b.changesSnapshot()
	if len(ch) != 1 || ch[0].InvisibleTime != cfg.Consumer.InvisibleTimeOnClear || !ch[0].Release {
		t.Fatalf("release on termination: %+v", ch)
	}
	if m.sessions.Count() != 0 || len(m.renewer.held) != 0 {
		t.Fatal("terminated client still known")
	}
}

// TestSwitchingGroupReleasesHeld: a client whose settings switch it to
// another consumer group (or make it a producer) hands back what it held
// under the group it left, as on termination; those deliveries were
// renewed until consumer.renewMaxTime (3 h), neither acked nor delivered
// to the group's other consumers. A client that keeps its group (settings
// sent again, another subscription) keeps what it holds.
func TestSwitchingGroupReleasesHeld(t *testing.T) {
	push := func(group, topic string) ClientSettings {
		return ClientSettings{ClientType: ClientTypePushConsumer, RequestTimeout: time.Second,
			Subscription: &SubscriptionSettings{Group: group, Entries: []SubscriptionEntry{{Topic: topic, Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
	}
	for _, c := range []struct {
		name     string
		next     ClientSettings
		releases bool
	}{
		{"same group again", push("g", "t"), false},
		{"same group, another topic", push("g", "t2"), false},
		{"another group", push("g2", "t"), true},
		{"a producer now", ClientSettings{ClientType: ClientTypeProducer, RequestTimeout: time.Second, Publishing: &PublishingSettings{Topics: []string{"t"}}}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			m, b, _ := newTestMessaging(cfg)
			ctx := asClient(t.Context(), "c1")
			if _, err := m.UpdateSettings(ctx, push("g", "t"), nil); err != nil {
				t.Fatal(err)
			}
			receiveHeld(t, m, b)
			if _, err := m.UpdateSettings(ctx, c.next, nil); err != nil {
				t.Fatal(err)
			}
			ch := b.changesSnapshot()
			if !c.releases {
				if len(ch) != 0 || len(m.renewer.held[holderKey{"c1", "g"}]) != 1 {
					t.Fatalf("a client keeping its group lost what it held: changes %+v, held %v", ch, m.renewer.held)
				}
				return
			}
			if len(ch) != 1 || ch[0].Group != "g" || ch[0].InvisibleTime != cfg.Consumer.InvisibleTimeOnClear {
				t.Fatalf("release on leaving group g: %+v", ch)
			}
			if len(m.renewer.held) != 0 {
				t.Fatalf("deliveries of a group the client left are still renewed: %v", m.renewer.held)
			}
		})
	}
}

// TestSwitchingGroupDuringPoll: a push consumer whose settings switch it
// to another group, or make it a producer, while its receive long-polls
// under the old group has left that group (UpdateSettings releases what it
// held), so the receive ending after them is answered MESSAGE_NOT_FOUND and
// the messages popped for it are released, not renewed
// (docs/compatibility.md); they were renewed until consumer.renewMaxTime.
func TestSwitchingGroupDuringPoll(t *testing.T) {
	consumer := func(group string) ClientSettings {
		return ClientSettings{ClientType: ClientTypePushConsumer, RequestTimeout: time.Second,
			Subscription: &SubscriptionSettings{Group: group, Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
	}
	for _, c := range []struct {
		name string
		next ClientSettings
	}{
		{"another group", consumer("g2")},
		{"a producer now", ClientSettings{ClientType: ClientTypeProducer, RequestTimeout: time.Second, Publishing: &PublishingSettings{Topics: []string{"t"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, b, _ := newTestMessaging(DefaultConfig())
			ctx := asClient(t.Context(), "c1")
			if _, err := m.UpdateSettings(ctx, consumer("g"), nil); err != nil {
				t.Fatal(err)
			}
			receiveReleasedAfter(t, m, b, func() error {
				_, err := m.UpdateSettings(ctx, c.next, nil)
				return err
			})
		})
	}
}

func TestQueryAssignment(t *testing.T) {
	route := ports.Route{Topic: domain.Topic{Name: "t"}}
	for _, br := range []string{"b1", "b2"} {
		for q := range int32(3) {
			route.Queues = append(route.Queues, ports.RouteQueue{BrokerName: br, QueueID: q, Permission: domain.PermReadWrite})
		}
	}
	route.Queues = append(route.Queues, ports.RouteQueue{BrokerName: "b2", QueueID: 9, Permission: domain.PermWrite})
	queues := func(as []Assignment) (out []string) {
		for _, a := range as {
			out = append(out, a.BrokerName+"#"+string(rune('0'+a.QueueID)))
		}
		return out
	}
	m, b, _ := newTestMessaging(DefaultConfig())
	b.route = route
	b.groups["fifo"] = domain.ConsumerGroup{Name: "fifo", Orderly: true}
	for _, id := range []string{"c1", "c2"} {
		if err := m.Heartbeat(asClient(t.Context(), id), "fifo", ClientTypePushConsumer); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, client, group string
		want                []string
	}{
		{"concurrent group: any queue of each broker", "c1", "g", []string{"b1#/", "b2#/"}},
		{"orderly group, first consumer", "c1", "fifo", []string{"b1#0", "b1#1", "b1#2"}},
		{"orderly group, second consumer", "c2", "fifo", []string{"b2#0", "b2#1", "b2#2"}},
		{"orderly group, unregistered consumer", "c3", "fifo", []string{"b1#0", "b1#1", "b1#2", "b2#0", "b2#1", "b2#2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			as, err := m.QueryAssignment(asClient(t.Context(), c.client), "t", c.group)
			if err != nil {
				t.Fatal(err)
			}
			if got := queues(as); len(got) != len(c.want) || (len(got) > 0 && (got[0] != c.want[0] || got[len(got)-1] != c.want[len(c.want)-1])) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	b.route = ports.Route{Topic: domain.Topic{Name: "t"}, Queues: []ports.RouteQueue{{BrokerName: "b1", Permission: domain.PermWrite}}}
	if _, err := m.QueryAssignment(asClient(t.Context(), "c1"), "t", "g"); !domain.HasReason(err, domain.ReasonForbidden) {
		t.Fatalf("no readable queue: %v", err)
	}
}

// TestOrderlyAssignmentCountsLiveSubscribers: the queues of an orderly
// group's topic go only to push consumers that subscribe to it and still
// heartbeat. Counting every push consumer of the group left queues of t to
// a consumer of another version that reads only u, and those of a killed
// consumer unread until its session expired.
func TestOrderlyAssignmentCountsLiveSubscribers(t *testing.T) {
	m, b, clock := newTestMessaging(DefaultConfig())
	for q := range int32(4) {
		b.route.Queues = append(b.route.Queues, ports.RouteQueue{BrokerName: "b1", QueueID: q, Permission: domain.PermReadWrite})
	}
	b.route.Topic = domain.Topic{Name: "t"}
	b.groups["fifo"] = domain.ConsumerGroup{Name: "fifo", Orderly: true}
	subscribe := func(id string, topics ...string) {
		t.Helper()
		s := ClientSettings{ClientType: ClientTypePushConsumer, Subscription: &SubscriptionSettings{Group: "fifo"}}
		for _, topic := range topics {
			s.Subscription.Entries = append(s.Subscription.Entries, SubscriptionEntry{Topic: topic, Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}})
		}
		if _, err := m.UpdateSettings(asClient(t.Context(), id), s, newOpenChannel()); err != nil {
			t.Fatal(err)
		}
	}
	assigned := func(id string) int {
		t.Helper()
		as, err := m.QueryAssignment(asClient(t.Context(), id), "t", "fifo")
		if err != nil {
			t.Fatal(err)
		}
		return len(as)
	}
	heartbeat := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if err := m.Heartbeat(asClient(t.Context(), id), "fifo", ClientTypePushConsumer); err != nil {
				t.Fatal(err)
			}
		}
	}
	subscribe("c1", "t", "u") // new version
	subscribe("c2", "u")      // old version: does not read t
	if n := assigned("c1"); n != 4 {
		t.Fatalf("c1, the only subscriber of t, is assigned %d of its 4 queues", n)
	}
	// c3 subscribes to t; c0 has only heartbeated (its settings are to
	// come), so it may subscribe to t too.
	subscribe("c3", "t")
	heartbeat("c0")
	if got := []int{assigned("c0"), assigned("c1"), assigned("c3")}; !slices.Equal(got, []int{2, 1, 1}) {
		t.Fatalf("queues of c0, c1, c3: %v, want 2, 1, 1", got)
	}
	// c3 and c0 stop heartbeating (kill -9): past assignmentLiveness c1
	// reads every queue, long before their sessions expire.
	for range 4 {
		clock.Advance(assignmentLiveness / 3)
		heartbeat("c1", "c2")
	}
	if n := assigned("c1"); n != 4 {
		t.Fatalf("with the other subscribers silent for longer than %v, c1 is assigned %d of 4 queues", assignmentLiveness, n)
	}
}

// TestClientRegistryIsBounded: beyond messaging.clients.maxClients a new
// client is refused with TOO_MANY_REQUESTS, by settings, heartbeat or
// receive alike; known clients go on, and room comes back as clients expire.
func TestClientRegistryIsBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Clients.MaxClients = 2
	m, _, clock := newTestMessaging(cfg)
	producer := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t"}}}
	for _, id := range []string{"a", "b"} {
		if _, err := m.UpdateSettings(asClient(t.Context(), id), producer, nil); err != nil {
			t.Fatal(err)
		}
	}
	full := func(what string, err error) {
		t.Helper()
		if !domain.HasReason(err, domain.ReasonTooManyRequests) {
			t.Errorf("%s of a new client with a full registry: %v", what, err)
		}
	}
	_, err := m.UpdateSettings(asClient(t.Context(), "c"), producer, nil)
	full("settings", err)
	full("heartbeat", m.Heartbeat(asClient(t.Context(), "c"), "", ClientTypeProducer))
	_, err = m.ReceiveMessage(asClient(t.Context(), "c"), receiveReq("g", "t", "*", false))
	full("receive", err)
	if err := m.Heartbeat(asClient(t.Context(), "a"), "", ClientTypeProducer); err != nil {
		t.Errorf("a known client's heartbeat: %v", err)
	}
	clock.Advance(cfg.Clients.ExpiryTimeout + time.Second)
	m.sessions.expire(t.Context())
	if err := m.Heartbeat(asClient(t.Context(), "c"), "", ClientTypeProducer); err != nil {
		t.Errorf("after the others expired: %v", err)
	}
}

// TestPopOutlivesThePollingTime: the broker polls for the client's
// long-polling time, but the call may take until just before the client's
// deadline, so that an answer arriving late (a loaded broker) still reaches
// the client. Ending the call with the polling time lost such answers'
// messages for their whole invisible time (a second delivery attempt).
func TestPopOutlivesThePollingTime(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Consumer.MinLongPolling = time.Second
	m, b, _ := newTestMessaging(cfg)
	b.add("t", "m1", "a")
	ctx, cancel := context.WithTimeout(asClient(t.Context(), "c1"), 5*time.Second)
	defer cancel()
	req := receiveReq("g", "t", "*", false)
	poll := 2 * time.Second
	req.LongPollingTimeout = &poll
	if _, err := m.ReceiveMessage(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := b.pops[0].PollTimeout; got != poll {
		t.Fatalf("the broker polls for %v, want the client's %v", got, poll)
	}
	// 5 s less the reserve for the answer to reach the client (and
	// whatever this test spent getting here).
	if left := b.popLeft[0]; left < 4*time.Second || left > 5*time.Second-pollReserve {
		t.Fatalf("the pop's context had %v left, want nearly the client's 5 s deadline less %v", left, pollReserve)
	}
}

// TestReceiveForAnotherGroupIsServed: a push consumer whose settings name
// group g and whose receive names g2 (no official client sends one; the
// Apache proxy serves it with the receive's group) is served, not popped
// and released on every receive until its messages are dead-lettered; only
// a switch during the poll releases (TestSwitchingGroupDuringPoll).
func TestReceiveForAnotherGroupIsServed(t *testing.T) {
	m, b, _ := newTestMessaging(DefaultConfig())
	ctx := asClient(t.Context(), "c1")
	s := ClientSettings{ClientType: ClientTypePushConsumer, RequestTimeout: time.Second,
		Subscription: &SubscriptionSettings{Group: "g", Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
	if _, err := m.UpdateSettings(ctx, s, nil); err != nil {
		t.Fatal(err)
	}
	b.add("t", "m1", "")
	msgs, err := m.ReceiveMessage(ctx, receiveReq("g2", "t", "*", true))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive for a group the settings do not name: %d messages, %v", len(msgs), err)
	}
	if ch := b.changesSnapshot(); len(ch) != 0 {
		t.Fatalf("its message was released: %+v", ch)
	}
}

// TestAckDuringRenewal: a push consumer's ack that comes while the proxy
// renews the same delivery takes it over without a data race (the ack read
// the delivery's latest handle while the renewal wrote it; seen under
// -race in test/interop's cluster pass). Run with -race.
func TestAckDuringRenewal(t *testing.T) {
	cfg := DefaultConfig()
	for range 50 {
		m, b, clock := newTestMessaging(cfg)
		msg, _ := receiveHeld(t, m, b)
		clock.Advance(cfg.Consumer.DefaultInvisibleTime - cfg.Consumer.RenewAhead + time.Second)
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			m.renewer.renewDue(t.Context())
		})
		wg.Go(func() {
			<-start
			res, err := m.AckMessage(asClient(t.Context(), "c1"), "g", "t", []AckEntry{{MessageID: msg.ID, ReceiptHandle: msg.ReceiptHandle}})
			if err != nil || res[0] != nil {
				t.Errorf("ack: %v %v", res, err)
			}
		})
		close(start)
		wg.Wait()
		if len(m.renewer.held) != 0 {
			t.Fatalf("acked delivery still renewed: %v", m.renewer.held)
		}
	}
}

// TestSettingsWithSubscriptionsThatCannotBeServed: settings subscribing
// to an illegal topic or with an SQL92 filter that does not compile are
// accepted, as the Apache proxy accepts them (the consumer's receives of
// that topic then fail with the precise code, its other subscriptions
// are served); before, the whole settings were refused and the client
// could not start. Such an entry subscribes to nothing: a push consumer
// whose only entry for t is one gets no queue of an orderly group's t.
// A tag expression of separators only, or an empty SQL92 one, is still
// refused, as upstream.
func TestSettingsWithSubscriptionsThatCannotBeServed(t *testing.T) {
	m, b, _ := newTestMessaging(DefaultConfig())
	for q := range int32(2) {
		b.route.Queues = append(b.route.Queues, ports.RouteQueue{BrokerName: "b1", QueueID: q, Permission: domain.PermReadWrite})
	}
	b.route.Topic = domain.Topic{Name: "t"}
	b.groups["fifo"] = domain.ConsumerGroup{Name: "fifo", Orderly: true}
	settings := func(id string, entries ...SubscriptionEntry) error {
		t.Helper()
		s := ClientSettings{ClientType: ClientTypePushConsumer, Subscription: &SubscriptionSettings{Group: "fifo", Entries: entries}}
		_, err := m.UpdateSettings(asClient(t.Context(), id), s, newOpenChannel())
		return err
	}
	tag := func(topic, text string) SubscriptionEntry {
		return SubscriptionEntry{Topic: topic, Filter: filter.Expression{Type: filter.TypeTag, Text: text}}
	}
	sql := func(topic, text string) SubscriptionEntry {
		return SubscriptionEntry{Topic: topic, Filter: filter.Expression{Type: filter.TypeSQL92, Text: text}}
	}
	if err := settings("good", tag("t", "*")); err != nil {
		t.Fatal(err)
	}
	if err := settings("broken", sql("t", "a =="), tag("a b", "*"), tag("TBW102", "*"), tag("u", "*")); err != nil {
		t.Fatalf("settings with subscriptions that cannot be served: %v", err)
	}
	as, err := m.QueryAssignment(asClient(t.Context(), "good"), "t", "fifo")
	if err != nil || len(as) != 2 {
		t.Fatalf("the only consumer that can read t is assigned %d of its 2 queues (%v)", len(as), err)
	}
	if err := settings("broken-only", sql("t", "a ==")); err != nil {
		t.Fatal(err)
	}
	if as, err := m.QueryAssignment(asClient(t.Context(), "good"), "t", "fifo"); err != nil || len(as) != 2 {
		t.Fatalf("a consumer whose only subscription cannot be served takes queues of t: the reader is assigned %d of 2 (%v)", len(as), err)
	}
	for name, e := range map[string]SubscriptionEntry{"tag of separators only": tag("t", "||"), "empty SQL92": sql("t", "")} {
		if err := settings("refused", e); !domain.HasReason(err, domain.ReasonIllegalFilterExpression) {
			t.Errorf("%s: %v, want ILLEGAL_FILTER_EXPRESSION", name, err)
		}
	}
}

// TestLateRenewalIsNotSent: a held message whose invisible time ended
// before the renewer came to it (a proxy too busy) is not renewed: a
// RocketMQ broker asked to change an expired checkpoint revives the old
// one and the new one, delivering the message twice. It is forgotten.
func TestLateRenewalIsNotSent(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	_, h := receiveHeld(t, m, b)
	clock.Set(h.NextVisibleTime())
	m.renewer.renewDue(t.Context())
	if ch := b.changesSnapshot(); len(ch) != 0 {
		t.Fatalf("an expired handle renewed: %+v", ch)
	}
	if len(m.renewer.held) != 0 {
		t.Fatal("an expired delivery is still held")
	}
}

// TestDepartedClientLeavesExpiredDeliveries: what a departing client held
// is released, except deliveries whose invisible time ends by the time a
// release would make them visible anyway (see TestLateRenewalIsNotSent).
func TestDepartedClientLeavesExpiredDeliveries(t *testing.T) {
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	_, h := receiveHeld(t, m, b)
	clock.Set(h.NextVisibleTime().Add(-cfg.Consumer.InvisibleTimeOnClear / 2))
	if err := m.NotifyClientTermination(asClient(t.Context(), "c1"), "g"); err != nil {
		t.Fatal(err)
	}
	if ch := b.changesSnapshot(); len(ch) != 0 {
		t.Fatalf("an expiring handle released: %+v", ch)
	}
	if len(m.renewer.held) != 0 {
		t.Fatal("a departed client's delivery is still held")
	}
}

// receiveRenewed has client c1 receive a message of group g with
// auto-renewal and lets the proxy renew it once: it returns the handle
// the client holds (first) and the latest, renewed one.
func receiveRenewed(t *testing.T) (m *Messaging, b *fakeBroker, msg domain.StoredMessage, first, renewed domain.ReceiptHandle) {
	t.Helper()
	cfg := DefaultConfig()
	m, b, clock := newTestMessaging(cfg)
	msg, first = receiveHeld(t, m, b)
	clock.Advance(cfg.Consumer.DefaultInvisibleTime - cfg.Consumer.RenewAhead + time.Second)
	m.renewer.renewDue(t.Context())
	renewed = heldHandle(t, m, msg)
	if renewed == first {
		t.Fatal("not renewed")
	}
	return m, b, msg, first, renewed
}

// TestFailedAckKeepsTheRenewedHandle: a push consumer acks with the
// handle it received, for which the proxy substitutes the latest one its
// renewals obtained. When the broker does not take the ack (unreachable,
// overloaded, out of disk), the official push consumers try again a
// second later with the same handle: the proxy must still know the
// latest one then, and renew the delivery meanwhile. It forgot it at the
// first try, so the retry named a checkpoint the renewal had superseded
// (local mode: INVALID_RECEIPT_HANDLE, which the client gives up on;
// a RocketMQ broker: OK without effect), and the message came again.
func TestFailedAckKeepsTheRenewedHandle(t *testing.T) {
	m, b, msg, first, renewed := receiveRenewed(t)
	ack := func() error {
		t.Helper()
		res, err := m.AckMessage(asClient(t.Context(), "c1"), "g", "t", []AckEntry{{MessageID: msg.ID, ReceiptHandle: first.String()}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	b.ackErrs = []error{domain.Errorf(domain.ReasonTooManyRequests, "the broker cannot be reached now; retry")}
	if err := ack(); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("first ack: %v, want the broker's TOO_MANY_REQUESTS", err)
	}
	// Still renewed while the client tries again.
	if got := heldHandle(t, m, msg); got != renewed {
		t.Fatalf("held handle %v after the failed ack, want %v", got, renewed)
	}
	if err := ack(); err != nil {
		t.Fatalf("second ack: %v", err)
	}
	if len(b.acks) != 2 || b.acks[1].Handle != renewed {
		t.Fatalf("the retried ack named %v, want the renewed handle %v", b.acks[len(b.acks)-1].Handle, renewed)
	}
	if len(m.renewer.held) != 0 {
		t.Fatalf("acked delivery still renewed: %v", m.renewer.held)
	}
	// A refused handle is not kept: the delivery is over.
	msg, first = receiveHeld(t, m, b)
	b.ackErrs = []error{domain.Errorf(domain.ReasonInvalidReceiptHandle, "expired")}
	if err := ack(); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		t.Fatalf("ack: %v", err)
	}
	if len(m.renewer.held) != 0 {
		t.Fatalf("a delivery the broker refused the handle of is still renewed: %v", m.renewer.held)
	}
}

// TestFailedNackKeepsTheRenewedHandle: as TestFailedAckKeepsTheRenewedHandle,
// for a push consumer's nack (ChangeInvisibleDuration to its retry
// backoff) the broker did not carry out: the Go push consumer tries it
// again every second with the handle it received. The proxy forgot the
// renewed handle at the first try, so the retry named the checkpoint the
// renewal had superseded (cluster mode: refused as expired once past the
// handle's own time, or applied beside the renewed checkpoint, which then
// delivered the message a second time), and the failed message came again
// when the renewed invisible time ended instead of after its backoff.
func TestFailedNackKeepsTheRenewedHandle(t *testing.T) {
	m, b, msg, first, renewed := receiveRenewed(t)
	nack := func() error {
		_, err := m.ChangeInvisibleDuration(asClient(t.Context(), "c1"), "g", "t", msg.ID, first.String(), 5*time.Second)
		return err
	}
	b.changeErr = domain.Errorf(domain.ReasonTooManyRequests, "the broker cannot be reached now; retry")
	if err := nack(); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("first nack: %v, want the broker's TOO_MANY_REQUESTS", err)
	}
	if got := heldHandle(t, m, msg); got != renewed {
		t.Fatalf("held handle %v after the failed nack, want %v", got, renewed)
	}
	b.changeErr = nil
	if err := nack(); err != nil {
		t.Fatalf("second nack: %v", err)
	}
	ch := b.changesSnapshot()
	if last := ch[len(ch)-1]; last.Handle != renewed || last.InvisibleTime != 5*time.Second {
		t.Fatalf("the retried nack named %v for %v, want the renewed handle %v for 5s", last.Handle, last.InvisibleTime, renewed)
	}
	if len(m.renewer.held) != 0 {
		t.Fatalf("nacked delivery still renewed: %v", m.renewer.held)
	}
	// A refused handle is not kept: the delivery is over.
	msg, first = receiveHeld(t, m, b)
	b.changeErr = domain.Errorf(domain.ReasonInvalidReceiptHandle, "expired")
	if err := nack(); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		t.Fatalf("nack: %v", err)
	}
	if len(m.renewer.held) != 0 {
		t.Fatalf("a delivery the broker refused the handle of is still renewed: %v", m.renewer.held)
	}
}

// TestFailedForwardKeepsTheRenewedHandle: as TestFailedAckKeepsTheRenewedHandle,
// for a dead-letter forward the broker did not carry out (the Go push
// consumer tries it again every second with the handle it received).
func TestFailedForwardKeepsTheRenewedHandle(t *testing.T) {
	m, b, msg, first, renewed := receiveRenewed(t)
	forward := func() error {
		return m.ForwardToDeadLetterQueue(asClient(t.Context(), "c1"), "g", "t", msg.ID, first.String())
	}
	b.forwardErr = domain.Errorf(domain.ReasonTooManyRequests, "the broker cannot be reached now; retry")
	if err := forward(); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("first forward: %v, want the broker's TOO_MANY_REQUESTS", err)
	}
	if got := heldHandle(t, m, msg); got != renewed {
		t.Fatalf("held handle %v after the failed forward, want %v", got, renewed)
	}
	b.forwardErr = nil
	if err := forward(); err != nil {
		t.Fatalf("second forward: %v", err)
	}
	if len(b.forwards) != 2 || b.forwards[1].Handle != renewed {
		t.Fatalf("the retried forward named %v, want the renewed handle %v", b.forwards[len(b.forwards)-1].Handle, renewed)
	}
	if len(m.renewer.held) != 0 {
		t.Fatalf("forwarded delivery still renewed: %v", m.renewer.held)
	}
}
