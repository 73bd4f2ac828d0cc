package e2e_test

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

type sentMessage struct {
	body  []byte
	tag   string
	keys  []string
	props map[string]string
}

// TestThousandMessagesExactlyOnce sends 1000 messages (900 through the Go
// producer, 100 in batches of 10 through the raw protocol) and checks that a
// simple consumer and a push consumer each receive every one exactly once,
// intact, and that a tag subscription receives exactly its tag.
func TestThousandMessagesExactlyOnce(t *testing.T) {
	cfg := testenv.Config(t)
	// Push consumers' messages stay invisible testenv.PushInvisible
	// between renewals, so that one whose ack did not reach the broker
	// comes back soon.
	testenv.ShortPushInvisible(&cfg)
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "orders")
	simpleGroup, pushGroup, tagGroup := testenv.Name(t, "g-simple"), testenv.Name(t, "g-push"), testenv.Name(t, "g-tag-a")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 8)
	sent := map[string]sentMessage{}
	var mu sync.Mutex
	record := func(id string, m sentMessage) {
		mu.Lock()
		defer mu.Unlock()
		if _, dup := sent[id]; dup {
			t.Errorf("message id %s returned twice by send", id)
		}
		sent[id] = m
	}

	// 900 single sends from 10 concurrent goroutines.
	pr := testenv.NewProducer(t, p, topic)
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 900; i += 10 {
				m := sentMessage{
					body:  bytes.Repeat([]byte(fmt.Sprintf("single-%04d|", i)), 1+i%7),
					tag:   []string{"TagA", "TagB"}[i%2],
					keys:  []string{"k-" + strconv.Itoa(i), "order-" + strconv.Itoa(i/10)},
					props: map[string]string{"index": strconv.Itoa(i), "kind": "single", "unicode": "ünï-" + strconv.Itoa(i)},
				}
				msg := &rmq.Message{Topic: topic, Body: m.body}
				msg.SetTag(m.tag)
				msg.SetKeys(m.keys...)
				for k, v := range m.props {
					msg.AddProperty(k, v)
				}
				r, err := pr.Send(t.Context(), msg)
				if err != nil {
					t.Errorf("send %d: %v", i, err)
					return
				}
				record(r[0].MessageID, m)
			}
		}()
	}
	// 100 messages in 10 batch requests, which the Go client's API cannot make.
	raw := testenv.NewRawClient(t, p)
	for b := range 10 {
		req := &v2.SendMessageRequest{}
		var ms []sentMessage
		for j := range 10 {
			i := 900 + b*10 + j
			m := sentMessage{body: []byte(fmt.Sprintf("batched-%04d", i)), tag: []string{"TagA", "TagB"}[i%2],
				keys: []string{"k-" + strconv.Itoa(i)}, props: map[string]string{"index": strconv.Itoa(i), "kind": "batch"}}
			pm := testenv.RawMessage(topic, m.body, m.tag)
			pm.SystemProperties.Keys = m.keys
			pm.UserProperties = m.props
			req.Messages = append(req.Messages, pm)
			ms = append(ms, m)
		}
		resp, err := raw.SendMessage(raw.Ctx(t), req)
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK || len(resp.GetEntries()) != 10 {
			t.Fatalf("batch %d: %v %v", b, resp, err)
		}
		for j, e := range resp.GetEntries() {
			if e.GetMessageId() != req.Messages[j].SystemProperties.MessageId || e.GetStatus().GetCode() != v2.Code_OK {
				t.Fatalf("batch entry %d: %v", j, e)
			}
			if j > 0 && e.GetOffset() != resp.GetEntries()[j-1].GetOffset()+1 {
				t.Fatalf("batch entries are not consecutive in one queue: %v", resp.GetEntries())
			}
			record(e.GetMessageId(), ms[j])
		}
	}
	wg.Wait()
	if len(sent) != 1000 {
		t.Fatalf("sent %d messages", len(sent))
	}
	verify := func(t *testing.T, who string, m *rmq.MessageView) {
		t.Helper()
		want, ok := sent[m.GetMessageId()]
		if !ok {
			t.Errorf("%s: unknown message %s", who, m.GetMessageId())
			return
		}
		if !bytes.Equal(m.GetBody(), want.body) || m.GetTag() == nil || *m.GetTag() != want.tag ||
			fmt.Sprint(m.GetKeys()) != fmt.Sprint(want.keys) || fmt.Sprint(m.GetProperties()) != fmt.Sprint(want.props) {
			t.Errorf("%s: message %s differs: body %q tag %v keys %v props %v; sent %+v", who, m.GetMessageId(),
				m.GetBody(), m.GetTag(), m.GetKeys(), m.GetProperties(), want)
		}
	}

	// The three consumers (three groups) run as parallel subtests, so that
	// their waits for redeliveries that must not come (an invisible time
	// and the broker's revive delay each) overlap. They take turns at
	// draining the topic, so that each drains it on a machine no busier
	// than when they ran one after the other (a simple consumer must
	// verify and ack each batch within simpleInvisible).
	var draining sync.Mutex
	inTurn := func(drain func()) {
		draining.Lock()
		defer draining.Unlock()
		drain()
	}
	t.Run("simple consumer", func(t *testing.T) {
		t.Parallel()
		c := testenv.NewSimpleConsumer(t, p, simpleGroup, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
		got := testenv.NewCollector()
		deliveries := newDeliveryLog()
		inTurn(func() {
			testenv.WaitFor(t, 60*time.Second, func() error {
				ms, err := deliveries.receive(t, c, simpleBatch, simpleInvisible)
				if err != nil && !testenv.IsNoMessage(err) {
					return err
				}
				for _, m := range ms {
					if !deliveries.excuse(t, p, m) {
						verify(t, "simple", m)
						got.Add(m)
					}
					if err := deliveries.ack(t, c, m); err != nil {
						t.Errorf("ack: %v", err)
					}
				}
				return got.WantAtLeast(1000)()
			})
		})
		if n, dups := got.Count(); n != 1000 || dups != 0 {
			t.Fatalf("simple consumer got %d distinct, %d duplicates", n, dups)
		}
		// Acked messages are not delivered again, even after their
		// invisible time and the broker's revive delay.
		expectNoRedelivery(t, p, c, deliveries, simpleInvisible)
	})

	t.Run("push consumer", func(t *testing.T) {
		t.Parallel()
		got := testenv.NewCollector()
		inTurn(func() {
			pc := testenv.StartPushConsumer(t, p, pushGroup, topic, func(m *rmq.MessageView) rmq.ConsumerResult {
				verify(t, "push", m)
				got.Add(m)
				return rmq.SUCCESS
			}, rmq.WithPushConsumptionThreadCount(8))
			t.Cleanup(func() { _ = pc.GracefulStop() })
			testenv.WaitFor(t, 60*time.Second, got.WantAtLeast(1000))
		})
		// Every message is acked: none comes back after the invisible time
		// the proxy gave it (it stops renewing once acked) and the
		// broker's revive delay.
		deadline := time.Now().Add(testenv.PushInvisible + testenv.ReviveDelay())
		for time.Now().Before(deadline) {
			if _, dups := got.Count(); dups != 0 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if n, dups := got.Count(); n != 1000 || dups != 0 {
			t.Fatalf("push consumer got %d distinct, %d duplicates (acked messages delivered again)", n, dups)
		}
		// The group's stats show nothing in flight. A broker does not say:
		// cluster mode reports the count unknown and AckOffset is the
		// delivered offset, which proves nothing about acks; the wait for
		// redeliveries above is what shows them there.
		cluster := testenv.Target == testenv.TargetCluster
		testenv.WaitFor(t, 30*time.Second, func() error {
			stats, err := p.Admin.GroupStats(t.Context(), pushGroup)
			if err != nil {
				return err
			}
			var acked, inflight int64
			for _, s := range stats {
				if s.Topic != topic {
					continue // the group's retry topic (cluster mode)
				}
				acked += s.AckOffset
				inflight += s.InFlight
				if s.InFlightUnknown != cluster {
					return fmt.Errorf("queue %d: in flight unknown %v in %s mode", s.QueueID, s.InFlightUnknown, testenv.Target)
				}
			}
			if acked != 1000 || inflight != 0 {
				return fmt.Errorf("acked (cluster: delivered) %d, in flight %d", acked, inflight)
			}
			return nil
		})
	})

	t.Run("tag filter", func(t *testing.T) {
		t.Parallel()
		c := testenv.NewSimpleConsumer(t, p, tagGroup, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.NewFilterExpression("TagA")})
		got := testenv.NewCollector()
		deliveries := newDeliveryLog()
		inTurn(func() {
			testenv.WaitFor(t, 60*time.Second, func() error {
				ms, err := deliveries.receive(t, c, simpleBatch, simpleInvisible)
				if err != nil && !testenv.IsNoMessage(err) {
					return err
				}
				for _, m := range ms {
					if m.GetTag() == nil || *m.GetTag() != "TagA" {
						t.Errorf("tag filter TagA delivered tag %v", m.GetTag())
					}
					if !deliveries.excuse(t, p, m) {
						got.Add(m)
					}
					if err := deliveries.ack(t, c, m); err != nil {
						t.Errorf("ack: %v", err)
					}
				}
				return got.WantAtLeast(500)()
			})
		})
		if n, dups := got.Count(); n != 500 || dups != 0 {
			t.Fatalf("TagA subscription got %d distinct, %d dups", n, dups)
		}
		expectNoRedelivery(t, p, c, deliveries, simpleInvisible)
	})
}

const (
	// simpleInvisible is the invisible time of the simple consumers'
	// receives of simpleBatch messages: long enough to verify and ack the
	// batch one by one on a loaded CI machine (0.6 s a request has been
	// seen), short enough to wait for it to pass.
	simpleInvisible = 8 * time.Second
	simpleBatch     = 8
)

// expectNoRedelivery receives with short waits for longer than invisible
// plus the broker's revive delay, and fails on any message: everything c
// received was acked, so nothing may be delivered again. (One long poll
// would not do: a broker does not wake a waiting receive for a revived
// message.) A receive that fails (a timeout on a loaded machine) is
// retried; the wait ends with a receive that answered "no message" after
// the deadline. In the cluster pass one message may be excused as the
// broker's own redelivery (deliveryLog.excuse); it is acked and must not
// come again. A message delivered again is reported with its history
// from deliveries (its deliveries and acks, the failed receives, the
// clocks) and what p and the broker logged.
func expectNoRedelivery(t *testing.T, p *testenv.Proxy, c rmq.SimpleConsumer, deliveries *deliveryLog, invisible time.Duration) {
	t.Helper()
	deadline := time.Now().Add(invisible + testenv.ReviveDelay())
	giveUp := deadline.Add(time.Minute)
	for {
		ms, err := deliveries.receive(t, c, 32, invisible)
		var again []*rmq.MessageView
		for _, m := range ms {
			if !deliveries.excuse(t, p, m) {
				again = append(again, m)
				continue
			}
			if err := deliveries.ack(t, c, m); err != nil {
				t.Errorf("ack: %v", err)
			}
			// It must not come again either.
			deadline = time.Now().Add(invisible + testenv.ReviveDelay())
			giveUp = deadline.Add(time.Minute)
		}
		if len(again) != 0 {
			t.Fatalf("after acking everything, %d messages delivered again (first %s, attempt %d)\n%s",
				len(again), again[0].GetMessageId(), again[0].GetDeliveryAttempt(), deliveries.explain(t, p, again))
		}
		switch {
		case (err == nil || testenv.IsNoMessage(err)) && time.Now().After(deadline):
			return
		case err != nil && !testenv.IsNoMessage(err):
			if time.Now().After(giveUp) {
				t.Fatalf("receive after acking everything: %v", err)
			}
			t.Logf("receive after acking everything: %v (retrying)", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestRedeliveryInvisibleTimeAndDeadLetter follows one unacked message: it
// comes back after its invisible time with a higher delivery attempt,
// ChangeInvisibleDuration postpones it, and after the group's maximum
// attempts it lands in the dead-letter queue, where it keeps its id, body,
// tag, keys, properties and born time, and counts its deliveries on.
func TestRedeliveryInvisibleTimeAndDeadLetter(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "retry"), testenv.Name(t, "g-retry")
	dlqTopic := domain.DeadLetterTopic(group)
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group, MaxDeliveryAttempts: 3})
	pr := testenv.NewProducer(t, p, topic)
	msg := &rmq.Message{Topic: topic, Body: []byte("payload")}
	msg.AddProperty("p", "v")
	msg.SetTag("tg")
	msg.SetKeys("k1", "k2")
	r, err := pr.Send(t.Context(), msg)
	if err != nil {
		t.Fatal(err)
	}
	id := r[0].MessageID
	c := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})

	// receiveOne receives the message, and returns the wall-clock times
	// (the invisible time is the server's wall clock) just before the
	// receive that got it and just after: the server popped it between
	// the two. An early redelivery is told from the earliest the pop can
	// have been to the latest the redelivery can have been, so that a
	// slow answer on a loaded machine does not look like one.
	receiveOne := func(invisible time.Duration) (m *rmq.MessageView, before, after time.Time) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, func() error {
			before = testenv.WallNow()
			ms, err := c.Receive(t.Context(), 1, invisible)
			if len(ms) == 1 {
				m = ms[0]
				return nil
			}
			return fmt.Errorf("no message yet: %v", err)
		})
		if m.GetMessageId() != id {
			t.Fatalf("received %s, want %s", m.GetMessageId(), id)
		}
		return m, before, testenv.WallNow()
	}

	m1, popped1, _ := receiveOne(2 * time.Second)
	if m1.GetDeliveryAttempt() != 1 {
		t.Fatalf("first delivery attempt %d", m1.GetDeliveryAttempt())
	}
	m2, _, t2 := receiveOne(2 * time.Second)
	if m2.GetDeliveryAttempt() != 2 {
		t.Fatalf("redelivery attempt %d, want 2", m2.GetDeliveryAttempt())
	}
	if d := t2.Sub(popped1); d < 1900*time.Millisecond {
		t.Fatalf("redelivered after %v, before its 2s invisible time", d)
	}
	if m1.GetReceiptHandle() == m2.GetReceiptHandle() {
		t.Fatal("a redelivery must carry a new receipt handle")
	}
	// The first delivery's handle is dead now: an ack with it is refused
	// (the official client's Ack returns nil for that; the tests' consumer
	// reports it, see testenv.NewSimpleConsumer).
	if err := c.Ack(t.Context(), m1); err == nil || !strings.Contains(err.Error(), "INVALID_RECEIPT_HANDLE") {
		t.Fatalf("ack with the first delivery's handle: %v, want the proxy's INVALID_RECEIPT_HANDLE", err)
	}

	// ChangeInvisibleDuration postpones the next delivery to ~5s from now.
	tc := testenv.WallNow()
	if err := c.ChangeInvisibleDuration(m2, 5*time.Second); err != nil {
		t.Fatalf("change invisible duration: %v", err)
	}
	m3, _, t3 := receiveOne(time.Second)
	if d := t3.Sub(tc); d < 4900*time.Millisecond {
		t.Fatalf("changed message redelivered after %v, before its new 5s invisible time", d)
	}
	if m3.GetDeliveryAttempt() != 3 {
		t.Fatalf("third delivery attempt %d", m3.GetDeliveryAttempt())
	}

	// Attempt 3 of 3 is not acked: the message goes to %DLQ%g-retry, a topic
	// created when its first message arrives, as RocketMQ brokers do. (The
	// embedded broker moves it on its own; a RocketMQ broker redelivers it
	// and the proxy forwards it when the group receives again, as the
	// Apache proxy does: the receives below never return it.)
	testenv.WaitFor(t, 30*time.Second, func() error {
		if ms := testenv.ReceiveAnswered(t, c, 1, time.Second); len(ms) != 0 {
			t.Fatalf("an exhausted message was delivered again (attempt %d)", ms[0].GetDeliveryAttempt())
		}
		_, err := p.Admin.Topic(t.Context(), dlqTopic)
		return err
	})
	testenv.WaitForRoute(t, p, dlqTopic)
	dlq := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-dlq-reader"), time.Second, map[string]*rmq.FilterExpression{dlqTopic: rmq.SUB_ALL})
	var dead *rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := dlq.Receive(t.Context(), 1, 10*time.Second)
		if len(ms) == 1 {
			dead = ms[0]
			return nil
		}
		return fmt.Errorf("nothing in the DLQ yet: %v", err)
	})
	tag := "(none)"
	if dead.GetTag() != nil {
		tag = *dead.GetTag()
	}
	if dead.GetMessageId() != id || string(dead.GetBody()) != "payload" || dead.GetTopic() != dlqTopic ||
		fmt.Sprint(dead.GetProperties()) != "map[p:v]" || tag != "tg" ||
		fmt.Sprint(dead.GetKeys()) != "[k1 k2]" || !dead.GetBornTimestamp().Equal(*m1.GetBornTimestamp()) {
		t.Fatalf("DLQ message %s %s %q properties %v tag %v keys %v born %v (first delivery: born %v)", dead.GetMessageId(), dead.GetTopic(),
			dead.GetBody(), dead.GetProperties(), tag, dead.GetKeys(), dead.GetBornTimestamp(), m1.GetBornTimestamp())
	}
	// A RocketMQ broker's dead-letter copy counts the deliveries as its
	// reconsume times, plus the one it was moved at: the broker redelivers
	// the exhausted message once more (reconsume times 3) and the proxy
	// forwards that delivery instead of handing it out (the copy: 4). The
	// Apache proxy shows reconsume times + 1.
	if dead.GetDeliveryAttempt() != 5 {
		t.Fatalf("DLQ message delivery attempt %d, want 5 (3 attempts used, the move, then the next)", dead.GetDeliveryAttempt())
	}
	if err := dlq.Ack(t.Context(), dead); err != nil {
		t.Fatal(err)
	}
	// The original group never sees it again.
	ms, err := c.Receive(t.Context(), 1, time.Second)
	if len(ms) != 0 || !testenv.IsNoMessage(err) {
		t.Fatalf("dead-lettered message delivered again: %d %v", len(ms), err)
	}
}

// TestPushConsumerHoldsMessageWhileProxyRenews has a push consumer keep a
// message for several invisible times: the proxy renews it, no other
// consumer of the group gets it meanwhile, and the consumer's ack (with the
// handle it received, now stale at the broker) is applied to the renewed
// delivery.
func TestPushConsumerHoldsMessageWhileProxyRenews(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Messaging.Consumer.DefaultInvisibleTime = 3 * time.Second
	cfg.Messaging.Consumer.RenewAhead = 2 * time.Second
	cfg.Messaging.Consumer.RenewPeriod = 200 * time.Millisecond
	// The push consumer long-polls 1 s, not 5: the Go client v5.1.4's
	// GracefulStop waits its request timeout plus that (see stopTogether).
	cfg.Messaging.Consumer.MaxLongPolling = cfg.Messaging.Consumer.MinLongPolling
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "held"), testenv.Name(t, "g-held")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("slow work")}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	deliveries := 0
	release := make(chan struct{})
	pc := testenv.StartPushConsumer(t, p, group, topic, func(m *rmq.MessageView) rmq.ConsumerResult {
		mu.Lock()
		deliveries++
		mu.Unlock()
		<-release // hold the message for several invisible times
		return rmq.SUCCESS
	})
	defer pc.GracefulStop()
	testenv.WaitFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if deliveries == 0 {
			return fmt.Errorf("not delivered yet")
		}
		return nil
	})
	// A second consumer of the group polls while the first one holds the
	// message for three times its invisible time.
	other := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	until := time.Now().Add(3 * cfg.Messaging.Consumer.DefaultInvisibleTime)
	for time.Now().Before(until) {
		ms := testenv.ReceiveAnswered(t, other, 1, 10*time.Second)
		if len(ms) > 0 {
			t.Fatalf("a held message was delivered to another consumer (attempt %d)", ms[0].GetDeliveryAttempt())
		}
	}
	close(release)
	testenv.WaitFor(t, 30*time.Second, func() error {
		stats, err := p.Admin.GroupStats(t.Context(), group)
		if err != nil {
			return err
		}
		// A broker does not report in-flight messages: cluster mode says so.
		cluster := testenv.Target == testenv.TargetCluster
		stats = slices.DeleteFunc(stats, func(s ports.QueueStats) bool { return s.Topic != topic }) // not the retry topic
		if len(stats) != 1 || stats[0].AckOffset != 1 || stats[0].InFlight != 0 || stats[0].InFlightUnknown != cluster {
			return fmt.Errorf("group stats %+v", stats)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if deliveries != 1 {
		t.Fatalf("delivered %d times", deliveries)
	}
}

// TestDeadLetterForwardOfAnExpiredHandleMovesOnce: a consumer forwards a
// delivery whose invisible time has ended, after the message came again,
// and then the redelivery. In cluster mode the first forward copied the
// message into the dead-letter queue while the broker, having revived the
// checkpoint, delivered it again: forwarded again, it was there twice.
// Both modes answer both forwards OK, hold the message in the dead-letter
// queue once, and deliver it to the group no more.
func TestDeadLetterForwardOfAnExpiredHandleMovesOnce(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic, group, reader := testenv.Name(t, "dlq-expired"), testenv.Name(t, "g-dlq-expired"), testenv.Name(t, "g-dlq-expired-reader")
	raw := p.Subscriber(t, topic, group, 1)
	p.CreateGroup(t, application.GroupSpec{Name: reader})
	raw.SendN(t, topic, 1)
	first := raw.ReceiveN(t, group, topic, 1, 2*time.Second, 30*time.Second)
	again := raw.ReceiveN(t, group, topic, 1, time.Minute, time.Minute)
	if a := again[0].GetSystemProperties().GetDeliveryAttempt(); a != 2 {
		t.Fatalf("delivered again at attempt %d, want 2", a)
	}
	forward := func(what string, m *v2.Message) {
		t.Helper()
		resp, err := raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{
			Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: topic},
			ReceiptHandle: m.GetSystemProperties().GetReceiptHandle(), MessageId: m.GetSystemProperties().GetMessageId(),
			DeliveryAttempt: m.GetSystemProperties().GetDeliveryAttempt(), MaxDeliveryAttempts: 16})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("forward of %s: %v %v", what, resp, err)
		}
	}
	forward("the expired first delivery", first[0])
	forward("the redelivery", again[0])
	// A delivery that was left (the first one's checkpoint, had the
	// forward written one) comes within seconds of its end.
	for end := time.Now().Add(15 * time.Second); time.Until(end) > 0; {
		if ms := raw.ReceiveAnswered(t, testenv.ReceiveRequest(group, topic, 16, time.Minute)); len(ms) != 0 {
			t.Fatalf("delivered after both forwards: attempt %d", ms[0].GetSystemProperties().GetDeliveryAttempt())
		}
	}
	dlq := domain.DeadLetterTopic(group)
	testenv.WaitForRoute(t, p, dlq)
	rd := testenv.NewRawClient(t, p)
	rd.Subscribe(t, reader, dlq)
	dead := rd.ReceiveN(t, reader, dlq, 1, time.Minute, 30*time.Second)
	dead = append(dead, rd.ReceiveAnswered(t, testenv.ReceiveRequest(reader, dlq, 16, time.Minute))...)
	if len(dead) != 1 || dead[0].GetSystemProperties().GetMessageId() != first[0].GetSystemProperties().GetMessageId() {
		t.Fatalf("%s holds %d messages, want the forwarded one once", dlq, len(dead))
	}
}

// TestDeadLetterForwardOfWhatTheGroupDoesNotHoldEnds: the Go client
// v5.1.4 repeats a refused ForwardMessageToDeadLetterQueue every second
// for ever, and local mode refused a forward naming a message never
// delivered to the group (INVALID_RECEIPT_HANDLE) or one whose topic was
// deleted (TOPIC_NOT_FOUND); a RocketMQ broker answers both OK (it copies
// what the handle's commit-log offset holds), and so does local mode now.
func TestDeadLetterForwardOfWhatTheGroupDoesNotHoldEnds(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	const topic, group, other = "dlq-not-held", "g-dlq-not-held", "g-dlq-not-held-other"
	raw := p.Subscriber(t, topic, group, 1)
	p.CreateGroup(t, application.GroupSpec{Name: other})
	raw.SendN(t, topic, 1)
	msgs := raw.ReceiveN(t, group, topic, 1, time.Minute, 30*time.Second)
	forward := func(what, g string) {
		t.Helper()
		resp, err := raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{
			Group: &v2.Resource{Name: g}, Topic: &v2.Resource{Name: topic},
			ReceiptHandle: msgs[0].GetSystemProperties().GetReceiptHandle(), MessageId: msgs[0].GetSystemProperties().GetMessageId(),
			DeliveryAttempt: 1, MaxDeliveryAttempts: 16})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("forward %s: %v %v", what, resp, err)
		}
	}
	forward("naming another group", other)
	ac, err := admin.NewClient(p.AdminAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	forward("after the topic was deleted", group)
}
