package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
	"golang.org/x/sync/singleflight"
)

func newTestBroker(t *testing.T, nameServer string, clock *clocktest.Clock) *Broker {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NameServers = []string{nameServer}
	var c ports.Clock
	if clock != nil {
		c = clock
	}
	return newBroker(t, cfg, c)
}

// newBroker returns an adapter of cfg and clock (nil: the system clock),
// closed when the test ends.
func newBroker(t testing.TB, cfg Config, clock ports.Clock) *Broker {
	t.Helper()
	b, err := New(cfg, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// TestBrokerAddrFollowsTheClusterView: the requests a receipt handle or a
// transaction addresses to a broker by name go to the master the
// NameServers list now. A broker restarted at a new address (a Kubernetes
// pod) or a new master after a failover is found there, even while a
// route of an idle topic, read before the move, still names the old one.
func TestBrokerAddrFollowsTheClusterView(t *testing.T) {
	const oldAddr = "127.0.0.1:1" // nothing listens there
	nameServer := startB1(t, 1, rw, nil).addr
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, nameServer, clock)
	b.meta.topics["idle"] = &topicEntry{masters: map[string]string{"b1": oldAddr}, fetched: clock.Now()}
	for range 20 { // the topics map's order is random: ask often
		if a, err := b.meta.brokerAddr(t.Context(), "b1"); err != nil || a != nameServer {
			t.Fatalf("brokerAddr(b1) = %q, %v; want %s, the NameServers' master", a, err, nameServer)
		}
	}
	// After a failure of the broker the view is read again.
	reads := func() time.Time { return b.meta.cluster.fetched }
	before := reads()
	clock.Advance(time.Second)
	b.failed("b1", &client.Error{Kind: client.KindConnection, Addr: oldAddr, Err: errors.New("peer closed the connection")})
	if _, err := b.meta.brokerAddr(t.Context(), "b1"); err != nil {
		t.Fatal(err)
	}
	if !reads().After(before) {
		t.Fatal("a broker's failure did not make the cluster view be read again")
	}
}

// TestSharedLookupOutlivesAGivingUpCaller: concurrent lookups of one
// uncached topic share one fetch; the first caller giving up does not fail
// the others, and a caller waits no longer than its own context allows.
func TestSharedLookupOutlivesAGivingUpCaller(t *testing.T) {
	hold := make(chan struct{})
	ns := newFakeNameServer("", 1, rw)
	ns.hold = hold
	ns.start(t, nil)
	b := newTestBroker(t, ns.addr, nil)
	first, giveUp := context.WithCancel(t.Context())
	firstDone := make(chan error, 1)
	go func() { _, err := b.meta.topic(first, "T"); firstDone <- err }()
	waitfor.True(t, 10*time.Second, time.Millisecond, "the first caller's route lookup", func() bool { return ns.routeLookups.Load() > 0 })
	second := make(chan error, 1)
	go func() { _, err := b.meta.topic(t.Context(), "T"); second <- err }()
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.meta.topic(short, "T"); err == nil {
		t.Fatal("a lookup with a 20 ms deadline returned a route the NameServer had not given yet")
	}
	giveUp()
	if err := <-firstDone; err == nil {
		t.Fatal("the caller who gave up got a route")
	}
	close(hold)
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("the other caller failed with the first one's cancellation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the other caller got no answer")
	}
	if n := ns.routeLookups.Load(); n != 1 {
		t.Fatalf("%d route lookups, want 1 shared", n)
	}
}

// TestTopicLookupAndBrokerFailureRace: a broker failure marks routes stale
// while lookups read them (run with -race).
func TestTopicLookupAndBrokerFailureRace(t *testing.T) {
	nameServer := startB1(t, 1, rw, nil).addr
	b := newTestBroker(t, nameServer, nil)
	if _, err := b.meta.topic(t.Context(), "T"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = b.meta.topic(t.Context(), "T") }()
		go func() {
			defer wg.Done()
			b.failed("b1", &client.Error{Kind: client.KindConnection, Err: errors.New("peer closed the connection")})
		}()
	}
	wg.Wait()
}

// TestPruneForgetsUnusedTopicsAndGroups: cached topics and groups not read
// for maxStale go (they would not be served any more); fresher ones stay.
func TestPruneForgetsUnusedTopicsAndGroups(t *testing.T) {
	nameServer := startB1(t, 1, rw, nil).addr
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, nameServer, clock)
	now := clock.Now()
	b.meta.topics["deleted"] = &topicEntry{fetched: now.Add(-maxStale)}
	b.meta.topics["used"] = &topicEntry{fetched: now.Add(-time.Second)}
	b.meta.groups["gone"] = groupEntry{fetched: now.Add(-maxStale - time.Second)}
	b.meta.groups["g"] = groupEntry{fetched: now}
	b.meta.prune(now)
	if _, ok := b.meta.topics["deleted"]; ok || len(b.meta.topics) != 1 || len(b.meta.groups) != 1 {
		t.Fatalf("after pruning: topics %v, groups %v", b.meta.topics, b.meta.groups)
	}
}

// TestTopicLosingItsBrokerIsNotCalledMissing: a topic whose only broker
// just went away (killed or restarting: a call to it failed, and the
// NameServers dropped it) was answered "does not exist in the cluster;
// create it", for up to noRouteViewAge after the cluster view was last
// read, because that view, read before the broker failed, still listed it
// (seen with a real 5.5.0 broker killed under a sending producer); then
// TOPIC_NOT_FOUND saying that no broker is registered, on every lookup
// from the broker's failure on: a receive, a send or a route query
// starting while the broker restarts was told that the topic it used a
// moment ago is not found, and the push consumers asked again every
// 20 ms. The route read before is served (a send fails as to a broker
// that cannot be reached, a receive long-polls for it to come back), the
// NameServers asked again at most once per keptRecheck; only a route read
// maxStale ago or more is TOPIC_NOT_FOUND, saying no broker is registered.
func TestTopicLosingItsBrokerIsNotCalledMissing(t *testing.T) {
	ns := startB1(t, 1, rw, nil) // routes orders (every topic) to b1, one queue
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, ns.addr, clock)
	if _, err := b.meta.view(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.meta.topic(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	ns.listed.Store(false)
	ns.routed.Store(false)
	b.failed("b1", &client.Error{Kind: client.KindDial})
	e, err := b.meta.topic(t.Context(), "orders")
	if err != nil || len(e.route.Queues) != 1 {
		t.Fatalf("the topic's broker just failed: %v; want the route read before", err)
	}
	// Failing again and again (a receive popping every second, sends),
	// the broker has the NameServers asked at most once per keptRecheck.
	before := ns.routeLookups.Load()
	for range 20 {
		b.failed("b1", &client.Error{Kind: client.KindDial})
		if _, err := b.meta.topic(t.Context(), "orders"); err != nil {
			t.Fatalf("the topic's broker failed again: %v", err)
		}
	}
	if n := ns.routeLookups.Load() - before; n != 0 {
		t.Errorf("20 lookups within %v of the last check asked the NameServers %d times", keptRecheck, n)
	}
	clock.Advance(maxStale)
	_, err = b.meta.topic(t.Context(), "orders")
	if msg := domain.MessageOf(err); domain.ReasonOf(err) != domain.ReasonTopicNotFound || strings.Contains(msg, "topic create") ||
		!strings.Contains(msg, `cluster "DefaultCluster" has no master broker registered with the NameServers`) {
		t.Errorf("the topic's broker down for %v: %v", maxStale, err)
	}
}

// TestTopicWithoutRouteWhileNoBrokerIsRegistered: with every broker of the
// cluster down, the NameServers route no topic, and a client starting
// with an existing topic was told that it does not exist and to create it;
// the message says that no broker is registered (the code stays
// TOPIC_NOT_FOUND, as the Apache proxy answers). With a broker registered,
// a topic without a route does not exist.
func TestTopicWithoutRouteWhileNoBrokerIsRegistered(t *testing.T) {
	ns := newFakeNameServer("", 1, rw)
	ns.listed.Store(false)
	ns.routed.Store(false)
	ns.start(t, nil)
	infos := &ns.listings
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, ns.addr, clock)
	_, err := b.meta.topic(t.Context(), "orders")
	if msg := domain.MessageOf(err); domain.ReasonOf(err) != domain.ReasonTopicNotFound || strings.Contains(msg, "topic create") ||
		!strings.Contains(msg, `topic "orders" has no route: cluster "DefaultCluster" has no master broker registered with the NameServers`) {
		t.Errorf("no broker registered: %v", err)
	}
	// Lookups of topics without a route read the cluster view at most
	// once per noRouteViewAge, not once each.
	before := infos.Load()
	for i := range 20 {
		_, _ = b.meta.topic(t.Context(), fmt.Sprintf("made-up-%d", i))
	}
	if n := infos.Load() - before; n != 0 {
		t.Errorf("20 lookups of unknown topics within %v read the cluster view %d more times", noRouteViewAge, n)
	}
	ns.listed.Store(true)
	clock.Advance(noRouteViewAge)
	_, err = b.meta.topic(t.Context(), "orders")
	if msg := domain.MessageOf(err); domain.ReasonOf(err) != domain.ReasonTopicNotFound || !strings.Contains(msg, "rmqproxy topic create orders") {
		t.Errorf("a broker registered: %v", err)
	}
}

// TestSharedResultWinsOverTheCallersEnd: a caller whose ctx ended just as
// the shared fetch's result came in got an error half of the time (a
// select with both ready chooses either), although the result was in. With
// both ready, the result is returned every time.
func TestSharedResultWinsOverTheCallersEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for i := range 200 { // without the preference, all pass with chance 2^-200
		ch := make(chan singleflight.Result, 1)
		ch <- singleflight.Result{Val: i}
		v, err := awaitShared(ctx, ch)
		if err != nil || v != i {
			t.Fatalf("round %d: %v, %v; want the result in", i, v, err)
		}
	}
}
