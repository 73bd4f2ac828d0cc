package localbroker

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestConcurrentSendsWhileTopicsChange guards the room the engine reuses
// on the send path (the batch's messages, the encoding buffer, the meta
// decoder of the applied record, the queues' pending lists, the commit
// log's batches) and the routes shared per topic definition: senders on
// several topics race topic updates (queue growth, permission changes) and
// the deletion and re-creation of another topic. Every route read is
// consistent and stays as it was read after later changes; every
// acknowledged send of the kept topics reads back with its bytes at its
// queue offset, and nothing else is there, before and after a restart
// (replay decodes the records again).
func TestConcurrentSendsWhileTopicsChange(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AutoCreateTopics = false })
	ctx := t.Context()
	kept := []string{"s0", "s1", "s2"}
	const churn = "c0"
	for _, name := range append(slices.Clone(kept), churn) {
		if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: 2}); err != nil {
			t.Fatal(err)
		}
	}
	type sent struct {
		q   domain.QueueRef
		off int64
		m   domain.Message
	}
	var (
		mu   sync.Mutex
		acks []sent
		wg   sync.WaitGroup
	)
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 3))
			for i := range 60 {
				topic := churn
				if r.IntN(4) != 0 {
					topic = kept[r.IntN(len(kept))]
				}
				route, err := h.e.Route(ctx, topic)
				if err != nil {
					if topic != churn || !domain.HasReason(err, domain.ReasonTopicNotFound) {
						report(fmt.Errorf("route of %s: %w", topic, err))
						return
					}
					continue
				}
				if err := checkRoute(route, h.cfg.BrokerName); err != nil {
					report(err)
					return
				}
				seen := slices.Clone(route.Queues)
				var writable []ports.RouteQueue
				for _, q := range route.Queues {
					if q.Permission.Writable() {
						writable = append(writable, q)
					}
				}
				if len(writable) == 0 {
					continue
				}
				rq := writable[r.IntN(len(writable))]
				q := domain.QueueRef{Topic: topic, BrokerName: rq.BrokerName, QueueID: rq.QueueID}
				n := 1 + r.IntN(3)
				if r.IntN(8) == 0 {
					n = 6
				}
				msgs := make([]domain.Message, n)
				for j := range msgs {
					body := make([]byte, 1+r.IntN(2000))
					for k := range body {
						body[k] = byte(r.Uint32())
					}
					msgs[j] = domain.Message{Topic: topic, ID: fmt.Sprintf("w%d-%d-%d", w, i, j), Tag: fmt.Sprintf("tag%d", r.IntN(3)),
						Keys: []string{fmt.Sprintf("k%d", r.IntN(100))}[:r.IntN(2)], Body: body,
						Properties: map[string]string{"p": fmt.Sprint(r.Uint64())}}
				}
				// The caller's messages must not change while the engine
				// holds them, nor be kept by it: keep a copy to compare.
				want := make([]domain.Message, n)
				for j := range msgs {
					want[j] = msgs[j]
					want[j].Body = bytes.Clone(msgs[j].Body)
				}
				receipts, err := h.e.Send(ctx, q, msgs)
				if !slices.Equal(route.Queues, seen) {
					report(fmt.Errorf("the route of %s read before a send changed: %+v, was %+v", topic, route.Queues, seen))
					return
				}
				for j := range msgs {
					if !bytes.Equal(msgs[j].Body, want[j].Body) {
						report(fmt.Errorf("send changed the body of the caller's message %s", want[j].ID))
						return
					}
				}
				if err != nil {
					// The topic changed since the route was read.
					if !domain.HasReason(err, domain.ReasonForbidden) && !domain.HasReason(err, domain.ReasonTopicNotFound) &&
						!domain.HasReason(err, domain.ReasonBadRequest) {
						report(fmt.Errorf("send to %s#%d: %w", topic, q.QueueID, err))
						return
					}
					continue
				}
				if topic == churn {
					continue // its messages go with its deletions
				}
				mu.Lock()
				for j, rc := range receipts {
					if rc.MessageID != want[j].ID {
						report(fmt.Errorf("receipt %d of a send names %s, want %s", j, rc.MessageID, want[j].ID))
					}
					acks = append(acks, sent{q: q, off: rc.QueueOffset, m: want[j]})
				}
				mu.Unlock()
			}
		}()
	}
	// Topic changes meanwhile.
	wg.Add(1)
	go func() {
		defer wg.Done()
		perms := []domain.Permission{domain.PermReadWrite, domain.PermRead, domain.PermWrite}
		for i := range 30 {
			name := kept[i%len(kept)]
			tp := domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: int32(min(2+i/3, 6)), Permission: perms[i%len(perms)]}
			if _, err := h.e.UpdateTopic(ctx, tp); err != nil {
				report(fmt.Errorf("update %s: %w", name, err))
				return
			}
			if i%2 == 0 {
				if err := h.e.DeleteTopic(ctx, churn); err != nil {
					report(fmt.Errorf("delete %s: %w", churn, err))
					return
				}
				if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: churn, Type: domain.MessageTypeNormal, QueueCount: int32(1 + i%3)}); err != nil {
					report(fmt.Errorf("create %s: %w", churn, err))
					return
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(acks) == 0 {
		t.Fatal("no send was acknowledged")
	}
	for _, name := range kept {
		if _, err := h.e.UpdateTopic(ctx, domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: 6}); err != nil {
			t.Fatal(err)
		}
	}
	verify := func(when string) {
		t.Helper()
		type at struct {
			topic string
			qid   int32
			off   int64
		}
		stored := map[at]domain.StoredMessage{}
		for _, name := range kept {
			route, err := h.e.Route(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkRoute(route, h.cfg.BrokerName); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			for _, rq := range route.Queues {
				q := domain.QueueRef{Topic: name, BrokerName: rq.BrokerName, QueueID: rq.QueueID}
				for off := int64(0); ; {
					res, err := h.e.Pull(ctx, ports.PullRequest{Group: "reader", Queue: q, Offset: off, BatchSize: 32})
					if err != nil {
						t.Fatalf("%s: pull %s#%d at %d: %v", when, name, rq.QueueID, off, err)
					}
					for _, m := range res.Messages {
						stored[at{name, m.QueueID, m.QueueOffset}] = m
					}
					if res.NextOffset >= res.MaxOffset {
						break
					}
					off = res.NextOffset
				}
			}
		}
		if len(stored) != len(acks) {
			t.Fatalf("%s: %d messages stored in the kept topics, %d sends acknowledged", when, len(stored), len(acks))
		}
		for _, a := range acks {
			m, ok := stored[at{a.q.Topic, a.q.QueueID, a.off}]
			switch {
			case !ok:
				t.Fatalf("%s: acknowledged message %s is not at %s#%d offset %d", when, a.m.ID, a.q.Topic, a.q.QueueID, a.off)
			case m.ID != a.m.ID || m.Topic != a.m.Topic || m.Tag != a.m.Tag || !bytes.Equal(m.Body, a.m.Body) ||
				!slices.Equal(m.Keys, a.m.Keys) || m.Properties["p"] != a.m.Properties["p"]:
				t.Fatalf("%s: at %s#%d offset %d: message %s tag %q keys %v %d bytes (p=%s); sent %s tag %q keys %v %d bytes (p=%s), equal bodies %v",
					when, a.q.Topic, a.q.QueueID, a.off, m.ID, m.Tag, m.Keys, len(m.Body), m.Properties["p"],
					a.m.ID, a.m.Tag, a.m.Keys, len(a.m.Body), a.m.Properties["p"], bytes.Equal(m.Body, a.m.Body))
			}
		}
	}
	verify("live")
	h.restart()
	verify("after a restart")
	t.Logf("%d acknowledged messages read back", len(acks))
}

// checkRoute checks a route against its topic definition.
func checkRoute(r ports.Route, broker string) error {
	if len(r.Queues) != int(r.Topic.QueueCount) {
		return fmt.Errorf("route of %s has %d queues, its topic %d", r.Topic.Name, len(r.Queues), r.Topic.QueueCount)
	}
	for i, q := range r.Queues {
		if q != (ports.RouteQueue{BrokerName: broker, QueueID: int32(i), Permission: r.Topic.Permission}) {
			return fmt.Errorf("route of %s (permission %v): queue %d is %+v", r.Topic.Name, r.Topic.Permission, i, q)
		}
	}
	return nil
}
