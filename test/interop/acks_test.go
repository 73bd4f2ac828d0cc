package interop_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// In the local pass settled() sees acks in the proxy's own GroupStats. In
// the cluster pass GroupStats reports the broker's consumer offset, which a
// RocketMQ 5 broker advances when it pops, so it would hold with no ack
// reaching the broker; there a scenario's group is watched instead: once
// the invisible time its program received with and the broker's revive
// delay have passed, no message may be delivered again (ackWatch). To keep
// that wait short the programs' simple consumers receive with
// clusterSimpleInvisible, and rmqproxy gives push consumers' messages
// testenv.PushInvisible (testenv.ShortPushInvisible).
const (
	// clusterSimpleInvisible is the invisible duration of the programs'
	// simple-consumer receives in the cluster pass: long enough to ack a
	// batch of 16 one by one on a loaded CI machine (0.6 s a request has
	// been seen), short enough to wait out.
	clusterSimpleInvisible = 15 * time.Second
	// localSimpleInvisible is the programs' default, kept in the local
	// pass, where GroupStats shows the acks.
	localSimpleInvisible = 30 * time.Second
	// ackWatchReceiveTimeout bounds one receive of the watch (its long
	// polling is 1 s).
	ackWatchReceiveTimeout = 10 * time.Second
	// ackWatchSlack is how long the watch keeps retrying receives that
	// fail (timeouts on a loaded machine) after its window.
	ackWatchSlack = time.Minute
)

// simpleInvisible is the invisible duration the programs' simple
// consumers receive with in the running pass.
func simpleInvisible() time.Duration {
	if testenv.Target == testenv.TargetCluster {
		return clusterSimpleInvisible
	}
	return localSimpleInvisible
}

// invisibleOf is the invisible time a program's consumer of the kind
// ("simple" or "push") received its messages with.
func invisibleOf(consumer string) time.Duration {
	if consumer == "push" {
		return testenv.PushInvisible
	}
	return simpleInvisible()
}

// ackWatch collects, in the cluster pass, the consumer groups whose
// programs acked every message they received, and once every language's
// scenarios have run, checks that none of those messages comes back. It is
// nil in the local pass.
//
// The check runs once for all languages, at the end of TestInterop (in a
// cleanup, which runs after the parallel language subtests): by then the
// windows of most groups have passed and only the last scenarios' are
// waited out. (Inside each language's subtest the wait would hold one of
// the -parallel slots, which on 2 cores is one of two: a language waiting
// out its window would delay the language waiting for a slot.) The
// language subtests' proxies are gone by then; the check receives through
// a proxy of its own in front of the same broker.
type ackWatch struct {
	mu     sync.Mutex
	groups []watchedGroup
}

type watchedGroup struct {
	scenario     string // the subtest that ran the program
	group, topic string
	ended        time.Time // when the program had ended
	// quietAfter is when a message of the group that was not acked would
	// have been delivered again: the program's invisible time plus the
	// broker's revive delay after the program ended.
	quietAfter time.Time
}

// newAckWatch returns, in the cluster pass, an ackWatch that checks its
// groups when t (TestInterop) ends; nil in the local pass.
func newAckWatch(t *testing.T) *ackWatch {
	if testenv.Target != testenv.TargetCluster {
		return nil
	}
	w := &ackWatch{}
	t.Cleanup(func() { w.check(t) })
	return w
}

// expect records, right after a program ended, that every message it
// received from topic as a consumer of group, with invisible time
// invisible, was acked. A nil watch (local pass) records nothing.
func (w *ackWatch) expect(t *testing.T, group, topic string, invisible time.Duration) {
	if w == nil {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.groups = append(w.groups, watchedGroup{scenario: t.Name(), group: group, topic: topic, ended: now,
		quietAfter: now.Add(invisible + testenv.ReviveDelay())})
}

// check watches every recorded group, all at once, each until its
// quietAfter, and fails t naming each message delivered again.
func (w *ackWatch) check(t *testing.T) {
	w.mu.Lock()
	groups := w.groups
	w.mu.Unlock()
	if len(groups) == 0 {
		return
	}
	start := time.Now()
	p := testenv.Start(t, testenv.Config(t))
	raw := testenv.NewRawClient(t, p)
	// t.Context() is canceled before cleanups run.
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := expectNoRedelivery(ctx, t, raw, g); err != nil {
				t.Errorf("%s: could not watch group %s for redeliveries: %v", g.scenario, g.group, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("acks: watched %d groups for redeliveries, %v after the last scenario", len(groups), time.Since(start).Round(time.Second/10))
}

// expectNoRedelivery receives from g's group and topic with short long
// polls until a receive that started after g.quietAfter answered that there
// is no message (a broker does not wake a waiting receive for a revived
// message, hence short polls rather than one long one), and fails t naming
// any message delivered meanwhile. Receives that fail are retried for
// ackWatchSlack past the window; it returns the last failure then.
func expectNoRedelivery(ctx context.Context, t *testing.T, raw *testenv.RawClient, g watchedGroup) error {
	return waitfor.Poll(time.Until(g.quietAfter)+ackWatchSlack, 20*time.Millisecond, func() error {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, ackWatchReceiveTimeout)
		defer cancel()
		st, msgs, err := raw.ReceiveWith(raw.WithHeaders(rctx), testenv.ReceiveRequest(g.group, g.topic, 32, time.Minute))
		if len(msgs) > 0 {
			var named []string
			for _, m := range msgs[:min(len(msgs), 5)] {
				sp := m.GetSystemProperties()
				named = append(named, fmt.Sprintf("%s (body %q, delivery attempt %d)", sp.GetMessageId(), m.GetBody(), sp.GetDeliveryAttempt()))
			}
			if len(msgs) > len(named) {
				named = append(named, "...")
			}
			t.Errorf("%s: %d message(s) delivered again to group %s %v after the program ended: acks that did not reach the broker: %s",
				g.scenario, len(msgs), g.group, time.Since(g.ended).Round(time.Second/10), strings.Join(named, ", "))
		}
		switch {
		case len(msgs) > 0:
			return nil // reported; one receive's worth is enough
		case err != nil:
			return fmt.Errorf("receive from %s: %w", g.group, err)
		case st.GetCode() != v2.Code_MESSAGE_NOT_FOUND:
			return fmt.Errorf("receive from %s answered %v", g.group, st)
		case start.Before(g.quietAfter):
			return fmt.Errorf("watching %s until %s", g.group, g.quietAfter.Format(time.TimeOnly))
		}
		return nil
	})
}
