package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
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

// TestGroupStatsInFlight receives 3 of 5 messages without acking them, then
// acks them, and reads the group's stats each time. Local mode counts the 3
// in flight until the ack. A RocketMQ broker does not report them (it
// moves the group's offset when it delivers, and counts in-flight messages
// only in its metrics), so cluster mode says the count is unknown rather
// than 0, and its ack offset is the delivered offset.
func TestGroupStatsInFlight(t *testing.T) {
	topic, group := testenv.Name(t, "stats-inflight"), testenv.Name(t, "g-stats-inflight")
	p, raw := statsSetup(t, topic, group, 5)
	got := raw.ReceiveN(t, group, topic, 3, 2*time.Minute, 60*time.Second)
	cluster := testenv.Target == testenv.TargetCluster
	expect := func(when string, want ports.QueueStats) {
		t.Helper()
		want.Topic, want.MaxOffset, want.InFlightUnknown = topic, 5, cluster
		if cluster {
			want.Broker = testenv.Broker(t).Name
		}
		// Consumed up to the store time of the message below the ack
		// offset, as mqadmin consumerProgress's #LastTime.
		var upTo time.Time
		for _, m := range got {
			if m.GetSystemProperties().GetQueueOffset() == want.AckOffset-1 {
				upTo = m.GetSystemProperties().GetStoreTimestamp().AsTime()
			}
		}
		if want.AckOffset > 0 && upTo.IsZero() {
			t.Fatalf("%s: no message received at offset %d", when, want.AckOffset-1)
		}
		testenv.WaitFor(t, 30*time.Second, func() error {
			stats, err := p.Admin.GroupStats(t.Context(), group)
			if err != nil {
				return err
			}
			if len(stats) != 1 {
				return fmt.Errorf("%s: stats %+v, want one row %+v", when, stats, want)
			}
			row := stats[0]
			if !row.ConsumedUpTo.Equal(upTo) {
				return fmt.Errorf("%s: consumed up to %v, want %v (the store time of the message at offset %d)", when, row.ConsumedUpTo, upTo, want.AckOffset-1)
			}
			row.ConsumedUpTo = time.Time{}
			if row != want {
				return fmt.Errorf("%s: stats %+v, want %+v", when, stats, want)
			}
			return nil
		})
	}
	if cluster {
		expect("3 received, not acked", ports.QueueStats{AckOffset: 3, Consumable: 2})
	} else {
		expect("3 received, not acked", ports.QueueStats{AckOffset: 0, InFlight: 3, Consumable: 2})
	}
	code, out := testenv.CLI(t, "group", "stats", group, "--admin.address="+p.AdminAddr())
	if code != 0 || strings.Contains(out, "IN-FLIGHT ?") != cluster {
		t.Fatalf("rmqproxy group stats: exit %d:\n%s", code, out)
	}
	if ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got)); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack: %v %v", ack, err)
	}
	expect("3 acked", ports.QueueStats{AckOffset: 3, Consumable: 2})
}

// TestGroupStatsRedelivery receives 2 of 3 messages and lets their
// invisible time pass. Local mode makes them consumable again in their
// queue; a RocketMQ broker revives them into the group's retry topic, whose
// queues the stats list as rows of their own (as mqadmin consumerProgress
// does), so that what waits for redelivery is never left out of the
// backlog. After everything is received and acked nothing is consumable.
func TestGroupStatsRedelivery(t *testing.T) {
	waitsInParallel(t)
	topic, group := testenv.Name(t, "stats-retry"), testenv.Name(t, "g-stats-retry")
	p, raw := statsSetup(t, topic, group, 3)
	raw.ReceiveN(t, group, topic, 2, 2*time.Second, 60*time.Second)
	cluster := testenv.Target == testenv.TargetCluster
	// stats sums the group's rows of the topic and of its retry topics.
	type sums struct{ main, retry ports.QueueStats }
	stats := func() (sums, error) {
		rows, err := p.Admin.GroupStats(t.Context(), group)
		if err != nil {
			return sums{}, err
		}
		var s sums
		for _, r := range rows {
			dst := &s.main
			switch {
			case r.Topic == topic:
			case strings.HasPrefix(r.Topic, "%RETRY%") && strings.Contains(r.Topic, topic):
				dst = &s.retry
				dst.Topic = r.Topic
			default:
				return sums{}, fmt.Errorf("a row of another topic: %+v", r)
			}
			dst.MaxOffset += r.MaxOffset
			dst.AckOffset += r.AckOffset
			dst.InFlight += r.InFlight
			dst.Consumable += r.Consumable
		}
		return s, nil
	}
	expect := func(when string, check func(sums) error) {
		t.Helper()
		testenv.WaitFor(t, 3*time.Minute, func() error {
			s, err := stats()
			if err == nil {
				err = check(s)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", when, err)
			}
			return nil
		})
	}
	expect("2 received, invisible time over", func(s sums) error {
		if cluster {
			// The broker revived the 2 into the retry topic.
			if s.main.AckOffset != 2 || s.main.Consumable != 1 || s.retry.Consumable != 2 {
				return fmt.Errorf("stats %+v, want the topic's ack offset 2 with 1 consumable and 2 consumable in the retry topic", s)
			}
			return nil
		}
		if s.main.AckOffset != 0 || s.main.InFlight != 0 || s.main.Consumable != 3 || s.retry != (ports.QueueStats{}) {
			return fmt.Errorf("stats %+v, want 3 consumable, none in flight", s)
		}
		return nil
	})
	if cluster {
		s, _ := stats()
		code, out := testenv.CLI(t, "group", "stats", group, "--admin.address="+p.AdminAddr())
		if code != 0 || !strings.Contains(out, s.retry.Topic) {
			t.Fatalf("rmqproxy group stats does not list the retry topic %q: exit %d:\n%s", s.retry.Topic, code, out)
		}
	}
	got := raw.ReceiveN(t, group, topic, 3, time.Minute, 60*time.Second)
	if ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got)); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack: %v %v", ack, err)
	}
	expect("all received and acked", func(s sums) error {
		if s.main.AckOffset != 3 || s.main.InFlight != 0 || s.main.Consumable != 0 || s.retry.Consumable != 0 {
			return fmt.Errorf("stats %+v, want everything consumed", s)
		}
		return nil
	})
}

// statsSetup starts a proxy with a one-queue topic holding n messages and a
// group subscribed to it through a raw client.
func statsSetup(t *testing.T, topic, group string, n int) (*testenv.Proxy, *testenv.RawClient) {
	t.Helper()
	p := testenv.Start(t, testenv.Config(t))
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := testenv.NewRawClient(t, p)
	raw.SendN(t, topic, n)
	raw.Subscribe(t, group, topic)
	return p, raw
}

// TestGroupStatsListTheSubscribedQueuesNotReceivedFrom: rmqproxy group
// stats (GET /v1/groups/{name}/stats) listed only the queues the group had
// received from, so a group whose consumers subscribe to a topic but have
// not received from it yet (or only from some of its queues) showed no
// backlog there, while rocketmq_consumer_lag_messages counted it. Every
// queue of a subscribed topic is a row; one the group has no state on has
// every message as its backlog (its first receive starts at the
// beginning).
func TestGroupStatsListTheSubscribedQueuesNotReceivedFrom(t *testing.T) {
	testenv.LocalOnly(t, "in cluster mode the brokers' consume stats decide the rows")
	topic, group := testenv.Name(t, "stats-subscribed"), testenv.Name(t, "g-stats-subscribed")
	p := testenv.Start(t, testenv.Config(t))
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := testenv.NewRawClient(t, p)
	raw.SendN(t, topic, 4)
	raw.Subscribe(t, group, topic)
	expect := func(when string, inFlight, consumable int64) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, func() error {
			stats, err := p.Admin.GroupStats(t.Context(), group)
			if err != nil {
				return err
			}
			var sum ports.QueueStats
			for i, q := range stats {
				if q.Topic != topic || q.QueueID != int32(i) {
					return fmt.Errorf("%s: rows %+v, want queues 0 and 1 of %s", when, stats, topic)
				}
				sum.MaxOffset += q.MaxOffset
				sum.AckOffset += q.AckOffset
				sum.InFlight += q.InFlight
				sum.Consumable += q.Consumable
			}
			if want := (ports.QueueStats{MaxOffset: 4, InFlight: inFlight, Consumable: consumable}); len(stats) != 2 || sum != want {
				return fmt.Errorf("%s: rows %+v (sums %+v), want 2 rows summing to %+v", when, stats, sum, want)
			}
			return nil
		})
	}
	expect("subscribed, none received", 0, 4)
	code, out := testenv.CLI(t, "group", "stats", group, "--admin.address="+p.AdminAddr())
	if code != 0 || strings.Count(out, topic) != 2 || !strings.Contains(out, "TOTAL") {
		t.Fatalf("rmqproxy group stats: exit %d, want a row for each of the 2 queues and a total:\n%s", code, out)
	}
	raw.ReceiveN(t, group, topic, 1, time.Minute, 60*time.Second)
	expect("1 received", 1, 3)
}

// TestGroupStatsListEveryQueueOfAConsumedTopic: a group consumed a topic,
// its consumers went away, and queues were added to the topic (or the
// group had received from only some of its queues). rmqproxy group stats
// and rocketmq_consumer_lag_messages listed only the queues the group had
// received from, so the messages of the others, which its next consumer
// receives from their beginning, were no backlog while no consumer was
// connected: exactly when an operator checks whether the group is behind.
// A RocketMQ broker reports every queue of a topic the group has offsets
// on (GET_CONSUME_STATS), connected consumers or not.
func TestGroupStatsListEveryQueueOfAConsumedTopic(t *testing.T) {
	testenv.LocalOnly(t, "in cluster mode the brokers' consume stats decide the rows, every queue of the topics the group has offsets on")
	topic, group := testenv.Name(t, "stats-added"), testenv.Name(t, "g-stats-added")
	p := testenv.Start(t, testenv.Config(t))
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pr := testenv.NewProducer(t, p, topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	c := testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	m := testenv.ReceiveFirst(t, c, time.Minute, time.Minute)
	if err := c.Ack(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	_ = c.GracefulStop()
	_ = pr.GracefulStop()
	testenv.WaitFor(t, time.Minute, func() error {
		code, out := testenv.CLI(t, "client", "list", "--group", group, "--json", "--admin.address="+p.AdminAddr())
		var l admin.ClientList
		if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil {
			return fmt.Errorf("client list: exit %d, %v:\n%s", code, err, out)
		}
		if len(l.Clients) != 0 {
			return fmt.Errorf("the group's consumer is still known: %+v", l.Clients)
		}
		return nil
	})
	if _, err := p.Admin.UpdateTopic(t.Context(), application.TopicSpec{Name: topic, QueueCount: 4}); err != nil {
		t.Fatal(err)
	}
	pr = testenv.NewProducer(t, p, topic)
	const sent = 8
	for i := range sent {
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint("later ", i))}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		stats, err := p.Admin.GroupStats(t.Context(), group)
		if err != nil {
			return err
		}
		var sum ports.QueueStats
		for _, q := range stats {
			sum.MaxOffset += q.MaxOffset
			sum.Consumable += q.Consumable
		}
		if len(stats) != 4 || sum.MaxOffset != sent+1 || sum.Consumable != sent {
			return fmt.Errorf("rows %+v, want the 4 queues with %d messages, %d of them consumable", stats, sent+1, sent)
		}
		return nil
	})
}

// TestGroupStatsOrderlyGroupWithAHeldMessage: an orderly group's consumer
// holds the first of 5 messages of one message group, which blocks the
// rest. In cluster mode rmqproxy group stats said ACK-OFFSET 0, CONSUMABLE
// 5, BACKLOG ">=5", under a note saying that ACK-OFFSET is the offset up to
// which messages were delivered and CONSUMABLE counts the messages never
// delivered: the operator read that nothing had been delivered, when one
// message is held. A broker moves an orderly group's offset when messages
// are acked, not when they are delivered, so there ACK-OFFSET is the ack
// offset and CONSUMABLE counts the in-flight messages too: the backlog is
// exact, and the table says so.
func TestGroupStatsOrderlyGroupWithAHeldMessage(t *testing.T) {
	topic, group := testenv.Name(t, "stats-fifo"), testenv.Name(t, "g-stats-fifo")
	p := testenv.Start(t, testenv.Config(t))
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 1)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	pr := testenv.NewProducer(t, p, topic)
	for i := range 5 {
		m := &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint(i))}
		m.SetMessageGroup("one")
		if _, err := pr.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	c := testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	testenv.ReceiveFirst(t, c, time.Minute, 10*time.Minute)
	cluster := testenv.Target == testenv.TargetCluster
	want := ports.QueueStats{Topic: topic, MaxOffset: 5, InFlight: 1, Consumable: 4}
	if cluster {
		want = ports.QueueStats{Topic: topic, Broker: testenv.Broker(t).Name, MaxOffset: 5, Consumable: 5, InFlightUnknown: true, InFlightInConsumable: true}
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		stats, err := p.Admin.GroupStats(t.Context(), group)
		if err != nil {
			return err
		}
		if len(stats) != 1 || stats[0] != want {
			return fmt.Errorf("stats %+v, want %+v", stats, want)
		}
		return nil
	})
	code, out := testenv.CLI(t, "group", "stats", group, "--admin.address="+p.AdminAddr())
	row := strings.Fields(strings.Split(out, "\n")[1])
	if code != 0 || len(row) < 8 || row[len(row)-2] != "5" || row[len(row)-1] != "-" || cluster && strings.Contains(out, "never delivered") {
		t.Fatalf("rmqproxy group stats: exit %d, want the exact backlog 5, nothing consumed yet and no note that nothing was delivered:\n%s", code, out)
	}
}
