package cluster

import (
	"bufio"
	"context"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// lateRoutes is a NameServer (and two masters, b1 and b2) whose route of a
// topic follows a broker's create or update only after some route lookups:
// the broker's registration of the topic with the NameServer arrives late,
// as on a loaded machine or when the NameServer had dropped the broker and
// takes the topic only with the broker's next full registration (every
// registerNameServerPeriod, 30 s by default).
type lateRoutes struct {
	mu sync.Mutex
	// lag is how many route lookups after a broker's create or update the
	// NameServer routes the change (-1: never).
	lag        map[string]int
	pending    map[string]pendingRoute // broker → change not routed yet
	routed     map[string]int32        // broker → queue count routed
	configured map[string]int32        // broker → queue count it has
	lookups    int
	// configReads counts GET_TOPIC_CONFIG requests.
	configReads int
	// createTakes is how long a broker takes to answer
	// UPDATE_AND_CREATE_TOPIC (a loaded broker).
	createTakes time.Duration
	// configBusy answers GET_TOPIC_CONFIG with SYSTEM_BUSY (a loaded
	// broker).
	configBusy bool
	addrs      map[string]string
}

type pendingRoute struct {
	queues int32
	left   int
}

func startLateRoutes(t *testing.T, lag map[string]int) (*lateRoutes, *Broker) {
	t.Helper()
	f := &lateRoutes{lag: lag, pending: map[string]pendingRoute{}, routed: map[string]int32{}, configured: map[string]int32{}, addrs: map[string]string{}}
	serve := func(broker string) func(*remoting.Command) *remoting.Command {
		return func(req *remoting.Command) *remoting.Command { return f.answer(broker, req) }
	}
	f.addrs["b1"] = startFakeSocket(t, serve("b1"))
	f.addrs["b2"] = startFakeSocket(t, serve("b2"))
	return f, newTestBroker(t, f.addrs["b1"], nil)
}

func (f *lateRoutes) answer(broker string, req *remoting.Command) *remoting.Command {
	if remoting.RequestCode(req.Code) == remoting.RequestUpdateAndCreateTopic {
		f.mu.Lock()
		d := f.createTakes
		f.mu.Unlock()
		time.Sleep(d) // a slow broker, not a wait of the test
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
	switch remoting.RequestCode(req.Code) {
	case remoting.RequestGetBrokerClusterInfo:
		resp.Body = twoBrokerCluster(f.addrs["b1"], f.addrs["b2"])
	case remoting.RequestGetAllTopicConfig:
		table := map[string]remoting.TopicConfig{}
		if q, ok := f.configured[broker]; ok {
			table["orders"] = remoting.TopicConfig{TopicName: "orders", ReadQueueNums: q, WriteQueueNums: q, Perm: remoting.PermRead | remoting.PermWrite}
		}
		resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: table})
	case remoting.RequestUpdateAndCreateTopic:
		q, _ := strconv.Atoi(req.Fields.Value("readQueueNums"))
		f.configured[broker] = int32(q)
		f.pending[broker] = pendingRoute{queues: int32(q), left: f.lag[broker]}
	case remoting.RequestGetTopicConfig:
		f.configReads++
		q, ok := f.configured[broker]
		if !ok {
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic in this broker. topic: orders")
		}
		if f.configBusy {
			return remoting.NewResponse(req, remoting.ResponseSystemBusy, "[PCBUSY_CLEAN_QUEUE]broker busy")
		}
		resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "orders", ReadQueueNums: q, WriteQueueNums: q, Perm: remoting.PermRead | remoting.PermWrite})
	case remoting.RequestGetRouteinfoByTopic:
		f.lookups++
		for b, p := range f.pending {
			if p.left == 0 {
				f.routed[b] = p.queues
				delete(f.pending, b)
			} else if p.left > 0 {
				p.left--
				f.pending[b] = p
			}
		}
		if len(f.routed) == 0 {
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic route info in name server for the topic: orders")
		}
		var rd remoting.TopicRouteData
		for _, b := range slices.Sorted(maps.Keys(f.routed)) {
			rd.QueueDatas = append(rd.QueueDatas, remoting.QueueData{BrokerName: b, ReadQueueNums: f.routed[b], WriteQueueNums: f.routed[b], Perm: remoting.PermRead | remoting.PermWrite})
			rd.BrokerDatas = append(rd.BrokerDatas, remoting.BrokerData{Cluster: "DefaultCluster", BrokerName: b, BrokerAddrs: map[int64]string{0: f.addrs[b]}})
		}
		resp.Body, _ = remoting.EncodeJSONBody(rd)
	}
	return resp
}

func (f *lateRoutes) routeLookups() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lookups
}

func (f *lateRoutes) topicConfigReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.configReads
}

// queuesPerBroker counts a route's queues by broker.
func queuesPerBroker(b *Broker, t *testing.T, topic string) map[string]int {
	t.Helper()
	r, err := b.Route(t.Context(), topic)
	if err != nil {
		t.Fatalf("route of %s: %v", topic, err)
	}
	out := map[string]int{}
	for _, q := range r.Queues {
		out[q.BrokerName]++
	}
	return out
}

// TestCreateAndUpdateReturnOnceEveryBrokerIsRouted: a topic created on two
// masters whose registrations reach the NameServer late (the first after
// 2 route lookups, the second after 4) was reported created as soon as the
// NameServer routed it to the first: the route cached then, with b1's
// queues only, was what clients got for cluster.routeTTL (sends and
// receives to half the queues). An update of the queue count did not wait
// at all, and the route read right after it kept the old count for
// cluster.routeTTL. Both now return once the NameServers route the topic
// to every master with its queue count, and the route served right after
// is that one, from the cache. A lookup made before the create (answered
// TOPIC_NOT_FOUND) leaves nothing behind that the create has to clear.
func TestCreateAndUpdateReturnOnceEveryBrokerIsRouted(t *testing.T) {
	f, b := startLateRoutes(t, map[string]int{"b1": 2, "b2": 4})
	b.routeWait = 10 * time.Second

	if _, err := b.Route(t.Context(), "orders"); !domain.HasReason(err, domain.ReasonTopicNotFound) {
		t.Fatalf("route before the create: %v, want TOPIC_NOT_FOUND", err)
	}
	if _, err := b.CreateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 2}); err != nil {
		t.Fatalf("create: %v", err)
	}
	n := f.routeLookups()
	if got := queuesPerBroker(b, t, "orders"); got["b1"] != 2 || got["b2"] != 2 {
		t.Errorf("route right after the create: queues per broker %v, want 2 on b1 and 2 on b2", got)
	}
	if m := f.routeLookups(); m != n {
		t.Errorf("the route right after the create took %d more NameServer lookups, want it from the cache", m-n)
	}

	if _, err := b.UpdateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 4}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got := queuesPerBroker(b, t, "orders"); got["b1"] != 4 || got["b2"] != 4 {
		t.Errorf("route right after the update to 4 queues: queues per broker %v, want 4 on b1 and 4 on b2", got)
	}
}

// TestRouteWaitWithClientsLookingUp: clients looking the topic up all
// through the wait (their lookups cache routes naming only some of the
// masters, and the wait's read-back may join one under way) leave, once
// create and then update return, the complete route with the topic's
// configuration in the cache: the route served next, not an older one a
// lookup under way put there after the wait.
func TestRouteWaitWithClientsLookingUp(t *testing.T) {
	f, b := startLateRoutes(t, map[string]int{"b1": 3, "b2": 9})
	b.routeWait = 10 * time.Second
	for _, queues := range []int32{2, 4} {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					_, _ = b.Route(t.Context(), "orders")
				}
			})
		}
		topic := domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: queues}
		var err error
		if queues == 2 {
			_, err = b.CreateTopic(t.Context(), topic)
		} else {
			_, err = b.UpdateTopic(t.Context(), topic)
		}
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("%d queues: %v", queues, err)
		}
		n := f.routeLookups()
		r, err := b.Route(t.Context(), "orders")
		if err != nil {
			t.Fatal(err)
		}
		per := map[string]int32{}
		for _, q := range r.Queues {
			per[q.BrokerName]++
		}
		if per["b1"] != queues || per["b2"] != queues || r.Topic.QueueCount != queues {
			t.Errorf("route served after the %d-queue command: queues per broker %v, configuration's queue count %d", queues, per, r.Topic.QueueCount)
		}
		if m := f.routeLookups(); m != n {
			t.Errorf("the route after the %d-queue command took %d more NameServer lookups, want it from the cache", queues, m-n)
		}
	}
}

// TestRouteWaitReadsTheConfigurationOnce: each round of the wait for the
// route read the topic's configuration from a broker (GET_TOPIC_CONFIG) as
// well as the route, though only the route decides whether to wait on:
// one broker call per 100 ms for up to 25 s. The rounds read the route
// alone; the configuration is read once, when the route is complete (it
// goes into the cache with the route, which clients are served next).
func TestRouteWaitReadsTheConfigurationOnce(t *testing.T) {
	f, b := startLateRoutes(t, map[string]int{"b1": 2, "b2": 4})
	b.routeWait = 10 * time.Second
	if _, err := b.CreateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 2}); err != nil {
		t.Fatalf("create: %v", err)
	}
	// Besides the wait's read, a command asks each of the 2 masters
	// whether it has the topic before it changes anything.
	const checks = 2
	if n := f.topicConfigReads(); n != 1+checks {
		t.Errorf("create (routed after %d route lookups) read the topic's configuration %d times, want once and once per master before", f.routeLookups(), n)
	}
	r, err := b.Route(t.Context(), "orders")
	if err != nil || r.Topic.QueueCount != 2 || r.Topic.Type != domain.MessageTypeNormal || r.Topic.Permission != domain.PermReadWrite {
		t.Errorf("route right after the create: %+v, %v; want the topic's configuration with it", r.Topic, err)
	}
	before := f.topicConfigReads()
	if _, err := b.UpdateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 4}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if n := f.topicConfigReads() - before; n != 1+checks {
		t.Errorf("update read the topic's configuration %d times, want once and once per master before", n)
	}
}

// TestRouteWaitCountsFromTheCommandsStart: the wait for the route was
// bounded from its own start, so brokers slow to take the topic (a
// broker answers UPDATE_AND_CREATE_TOPIC only after its registration with
// the NameServers, up to 24 s) pushed the answer past the CLI's 30 s. It
// is bounded from the command's start now, and still reads the route once
// when the time is spent by then: a topic routed already is reported
// created, one that is not says so after that one lookup.
func TestRouteWaitCountsFromTheCommandsStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		lag  int // b2's
	}{{"routed", 0}, {"not routed", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			f, b := startLateRoutes(t, map[string]int{"b1": 0, "b2": tc.lag})
			b.routeWait = 300 * time.Millisecond
			f.createTakes = 400 * time.Millisecond // per broker: the wait's time is spent before it begins
			_, err := b.CreateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 2})
			if tc.lag == 0 {
				if err != nil {
					t.Fatalf("create routed at the first lookup: %v", err)
				}
				return
			}
			if domain.ReasonOf(err) != domain.ReasonTimeout || !strings.Contains(domain.MessageOf(err), `topic "orders" was created on the brokers`) {
				t.Fatalf("create never routed to b2: %v (reason %v)", err, domain.ReasonOf(err))
			}
			if n := f.routeLookups(); n != 1 {
				t.Errorf("the wait read the route %d times after the brokers had taken longer than the whole wait, want once", n)
			}
		})
	}
}

// TestRouteWaitEndsBeforeTheCallersDeadline: a caller's deadline sooner
// than the wait's own end ends the wait routeAnswerMargin before it, so
// that the answer saying what happened reaches the caller before it gives
// up.
func TestRouteWaitEndsBeforeTheCallersDeadline(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	wait := 25 * time.Second
	for _, tc := range []struct {
		name     string
		deadline time.Time // zero: none
		want     time.Time
	}{
		{"no deadline", time.Time{}, start.Add(wait)},
		{"later deadline", start.Add(time.Minute), start.Add(wait)},
		{"sooner deadline", start.Add(10 * time.Second), start.Add(10*time.Second - routeAnswerMargin)},
		{"deadline within the margin", start.Add(routeAnswerMargin / 2), start.Add(-routeAnswerMargin / 2)},
	} {
		ctx := t.Context()
		if !tc.deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, tc.deadline)
			defer cancel()
		}
		if got := routeWaitEnd(ctx, start, wait); !got.Equal(tc.want) {
			t.Errorf("%s: the wait ends at %v, want %v", tc.name, got.Sub(start), tc.want.Sub(start))
		}
	}
}

// TestCreateNotRoutedInTimeSaysSo: when the NameServers do not route the
// new topic to every master within the wait, create fails with a timeout
// that says the topic was created on the brokers, names the broker the
// route lacks and says what to check.
func TestCreateNotRoutedInTimeSaysSo(t *testing.T) {
	_, b := startLateRoutes(t, map[string]int{"b1": 0, "b2": -1})
	b.routeWait = 300 * time.Millisecond
	_, err := b.CreateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 2})
	msg := domain.MessageOf(err)
	if domain.ReasonOf(err) != domain.ReasonTimeout || !strings.Contains(msg, `topic "orders" was created on the brokers`) ||
		!strings.Contains(msg, "b2") || !strings.Contains(msg, "namesrvAddr") {
		t.Fatalf("create never routed to b2: %v (reason %v)", err, domain.ReasonOf(err))
	}
}

// TestRouteRoutedButConfigurationUnreadAtTheEnd: when the wait's time was
// over as the route came complete and reading the topic's configuration
// then failed with an error the wait retries (a busy broker, a timeout),
// awaitRoute built its not-routed error from the empty list of the brokers
// the route lacked, and panicked (index out of range). It fails now with
// a timeout, as a route that did not come complete in time does, that says
// the topic is routed but its configuration could not be read, and why.
func TestRouteRoutedButConfigurationUnreadAtTheEnd(t *testing.T) {
	f, b := startLateRoutes(t, map[string]int{"b1": 0, "b2": 0})
	b.routeWait = 300 * time.Millisecond
	f.createTakes = 400 * time.Millisecond // per broker: the wait's time is spent before it begins
	f.configBusy = true
	_, err := b.CreateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 2})
	msg := domain.MessageOf(err)
	if domain.ReasonOf(err) != domain.ReasonTimeout || !strings.Contains(msg, `topic "orders" was created on the brokers and the NameServers route it`) ||
		!strings.Contains(msg, "configuration could not be read") || !strings.Contains(msg, "busy") {
		t.Fatalf("create routed, its configuration unreadable: %v (reason %v)", err, domain.ReasonOf(err))
	}
}

// TestDeleteDropsARouteReadBeforeIt: a route lookup that the NameServer
// answered before a topic delete through this instance, but that ended
// after it, put the deleted topic's route into the cache after the delete
// had dropped it: this instance then served the deleted topic's route for
// cluster.routeTTL (clients sent to it until a broker refused). A lookup
// that overlaps a delete leaves nothing in the cache; the next one asks
// the NameServers.
func TestDeleteDropsARouteReadBeforeIt(t *testing.T) {
	var mu sync.Mutex
	deleted := false
	lookups := 0
	arrived, hold := make(chan struct{}), make(chan struct{})
	var addr string
	addr = startConcurrentFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetBrokerClusterInfo:
			resp.Body = oneBrokerCluster(addr)
		case remoting.RequestGetAllTopicConfig:
			mu.Lock()
			table := map[string]remoting.TopicConfig{}
			if !deleted {
				table["T"] = remoting.TopicConfig{TopicName: "T", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite}
			}
			mu.Unlock()
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: table})
		case remoting.RequestDeleteTopicInBroker, remoting.RequestDeleteTopicInNamesrv:
			mu.Lock()
			deleted = true
			mu.Unlock()
		case remoting.RequestGetTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "T", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite})
		case remoting.RequestGetRouteinfoByTopic:
			mu.Lock()
			lookups++
			first, gone := lookups == 1, deleted
			mu.Unlock()
			if first { // answered with the route, held until after the delete
				close(arrived)
				<-hold
			} else if gone {
				return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic route info in name server for the topic: T")
			}
			resp.Body = oneBrokerRoute(addr, 1, remoting.PermRead|remoting.PermWrite)
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)

	done := make(chan error, 1)
	go func() { _, err := b.Route(t.Context(), "T"); done <- err }()
	<-arrived
	if err := b.DeleteTopic(t.Context(), "T"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("the lookup that overlapped the delete: %v", err)
	}
	if _, err := b.Route(t.Context(), "T"); !domain.HasReason(err, domain.ReasonTopicNotFound) {
		t.Errorf("route after the delete: %v, want TOPIC_NOT_FOUND (not the route read before it, from the cache)", err)
	}
}

// startConcurrentFakeSocket is startFakeSocket answering each request on a
// goroutine of its own, so that one answer held back does not hold back
// the others on the same connection.
func startConcurrentFakeSocket(t *testing.T, answer func(*remoting.Command) *remoting.Command) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	acceptEach(t, &wg, ln, func(nc net.Conn) {
		var writeMu sync.Mutex
		var reqs sync.WaitGroup
		defer reqs.Wait()
		br := bufio.NewReader(nc)
		for {
			req, err := remoting.ReadCommand(br, 0)
			if err != nil {
				return
			}
			reqs.Go(func() {
				b, _ := remoting.AppendCommand(nil, answer(req))
				writeMu.Lock()
				defer writeMu.Unlock()
				_, _ = nc.Write(b)
			})
		}
	})
	return ln.Addr().String()
}

// TestRouteKeptWhileTheNameServersDroppedItsBroker: a NameServer drops a
// broker whose connection to it closes (a broker closes it when one of
// its requests times out, as on a loaded machine), and with it every route
// through it until the broker registers again (every 30 s by default).
// Lookups of a topic on that broker alone answered TOPIC_NOT_FOUND
// meanwhile, although the broker still served it (how TestBrokerWithTLS
// failed once at a load average of 50, right after creating its topic).
// The route read before is served while the NameServers list none of its
// brokers and it is younger than maxStale, also after a call to them
// failed (they are down: see TestTopicLosingItsBrokerIsNotCalledMissing);
// a topic the NameServers do not route while they list its broker
// (deleted by another tool), or an older route, answer TOPIC_NOT_FOUND as
// before.
func TestRouteKeptWhileTheNameServersDroppedItsBroker(t *testing.T) {
	ns := startB1(t, 1, rw, nil) // routes orders (every topic) to b1, one queue
	listed, routed := &ns.listed, &ns.routed
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, ns.addr, clock)
	// The next lookup serves the route read before and has the
	// NameServer asked again in the background; the one after it gets
	// what that read found.
	expire := func() {
		clock.Advance(b.cfg.RouteTTL)
		_, _ = b.Route(t.Context(), "orders")
		b.meta.settle()
	}
	if _, err := b.Route(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}

	// The NameServer drops the broker, which is still up.
	listed.Store(false)
	routed.Store(false)
	expire()
	if r, err := b.Route(t.Context(), "orders"); err != nil || len(r.Queues) != 1 {
		t.Fatalf("route while the NameServer dropped the broker: %+v, %v; want the route read before", r, err)
	}
	// It registers again: the NameServer's route is read.
	listed.Store(true)
	routed.Store(true)
	expire()
	if _, err := b.Route(t.Context(), "orders"); err != nil {
		t.Fatalf("route once the broker registered again: %v", err)
	}

	// Deleted by another tool: the broker is listed, the topic not routed.
	routed.Store(false)
	expire()
	if _, err := b.Route(t.Context(), "orders"); !domain.HasReason(err, domain.ReasonTopicNotFound) || !strings.Contains(domain.MessageOf(err), "does not exist") {
		t.Errorf("route of a topic deleted elsewhere: %v, want TOPIC_NOT_FOUND saying it does not exist", err)
	}

	// A route read more than maxStale ago is not served.
	routed.Store(true)
	expire()
	if _, err := b.Route(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	listed.Store(false)
	routed.Store(false)
	clock.Advance(maxStale)
	if _, err := b.Route(t.Context(), "orders"); !domain.HasReason(err, domain.ReasonTopicNotFound) {
		t.Errorf("route read %v ago, its broker dropped: %v, want TOPIC_NOT_FOUND", maxStale, err)
	}

	// A broker that failed a call (down) keeps its route served.
	listed.Store(true)
	routed.Store(true)
	if _, err := b.Route(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	listed.Store(false)
	routed.Store(false)
	b.failed("b1", &client.Error{Kind: client.KindDial})
	if r, err := b.Route(t.Context(), "orders"); err != nil || len(r.Queues) != 1 {
		t.Errorf("route after a failed call to the dropped broker: %+v, %v; want the route read before", r, err)
	}
}

// TestRouteOfABrokerRegisteringMeanwhileIsNotMissing: a restarting
// broker registers with the NameServers its routes and its place in the
// cluster at once, but a lookup after a failed call to it (the route kept
// while the NameServers listed none of its brokers) that asked for the
// route just before the registration and for the cluster view just after
// saw no route for a broker that was listed, as for a topic deleted
// elsewhere: TOPIC_NOT_FOUND for a topic that exists, once in CI's
// TestClientsOutliveARealBrokerRestart (a real 5.5.0 broker killed and
// started again under a producer). The route is read again once when its
// brokers are listed again.
func TestRouteOfABrokerRegisteringMeanwhileIsNotMissing(t *testing.T) {
	ns := startB1(t, 1, rw, nil)
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, ns.addr, clock)
	if _, err := b.Route(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	// Killed: the NameServer drops it, a call to it fails.
	ns.listed.Store(false)
	ns.routed.Store(false)
	b.failed("b1", &client.Error{Kind: client.KindDial})
	if r, err := b.Route(t.Context(), "orders"); err != nil || len(r.Queues) != 1 {
		t.Fatalf("route while the broker is down: %+v, %v; want the route read before", r, err)
	}
	// Started again: it registers between the next lookup's two reads.
	ns.listed.Store(true)
	ns.routed.Store(true)
	ns.unroutedLookups.Store(1)
	clock.Advance(keptRecheck)
	b.failed("b1", &client.Error{Kind: client.KindDial})
	if r, err := b.Route(t.Context(), "orders"); err != nil || len(r.Queues) != 1 {
		t.Fatalf("route of a topic whose broker registered between the route lookup and the cluster view: %+v, %v; want its route", r, err)
	}
}

// TestKeptRouteRecheckedAtMostOncePerInterval: while the NameServers have
// dropped the brokers of a route that is served as read before, lookups
// ask them again at most every keptRecheck, not on every lookup (each
// send would otherwise cost two NameServer requests until the brokers
// register again).
func TestKeptRouteRecheckedAtMostOncePerInterval(t *testing.T) {
	ns := startB1(t, 1, rw, nil) // routes orders (every topic) to b1, one queue
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newTestBroker(t, ns.addr, clock)
	if _, err := b.Route(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	ns.listed.Store(false) // the NameServer dropped the broker
	ns.routed.Store(false)
	clock.Advance(b.cfg.RouteTTL)
	before := ns.routeLookups.Load()
	for i := range 50 {
		if r, err := b.Route(t.Context(), "orders"); err != nil || len(r.Queues) != 1 {
			t.Fatalf("lookup %d while the NameServer dropped the broker: %+v, %v; want the route read before", i, r, err)
		}
	}
	b.meta.settle() // the route is read again in the background
	if n := ns.routeLookups.Load() - before; n != 1 {
		t.Errorf("50 lookups within %v asked the NameServer for the route %d times, want 1", keptRecheck, n)
	}
	clock.Advance(keptRecheck)
	if _, err := b.Route(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	b.meta.settle()
	if n := ns.routeLookups.Load() - before; n != 2 {
		t.Errorf("after %v the NameServer was asked %d times in all, want 2 (asked again)", keptRecheck, n)
	}
}
