package cluster

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// maxStale bounds how long a cached route is still served when the
// NameServers cannot be asked for a fresh one.
const maxStale = 5 * time.Minute

// master is one master broker: its name and Remoting address.
type master struct{ name, addr string }

// clusterView is what the NameServers said about the brokers.
type clusterView struct {
	// brokers maps every broker name the NameServers know (any cluster) to
	// its master's address ("" when it has none).
	brokers map[string]string
	// slaves maps the name of a broker group without a master (stopped,
	// its slaves still registered) to its slave of the lowest broker id,
	// which read-only admin calls ask instead, as mqadmin does
	// (BrokerData.selectBrokerAddr).
	slaves map[string]string
	// members are the broker names of the configured cluster, sorted.
	members []string
	// clusters are the names of every cluster, to tell their topics apart.
	clusters []string
	fetched  time.Time
}

// readerList returns, for every broker group of the configured cluster,
// its master, or when it has none its slave (see slaves), in name order.
func (v *clusterView) readerList() []master {
	out := make([]master, 0, len(v.members))
	for _, n := range v.members {
		if a := cmp.Or(v.brokers[n], v.slaves[n]); a != "" {
			out = append(out, master{n, a})
		}
	}
	return out
}

// masterList returns the masters of the configured cluster, in name order.
func (v *clusterView) masterList() []master {
	out := make([]master, 0, len(v.members))
	for _, n := range v.members {
		if a := v.brokers[n]; a != "" {
			out = append(out, master{n, a})
		}
	}
	return out
}

// topicEntry is a cached topic: its route and configuration.
type topicEntry struct {
	route   ports.Route
	masters map[string]string // broker name → master address, from the route
	fetched time.Time
	stale   bool // a broker failed for it: read again before the next use
	// kept is when the NameServers were last found to have dropped every
	// broker of the route, which was then served as read before (see
	// droppedWithItsBrokers); until keptRecheck later, lookups serve it
	// without asking them again. Guarded by metaCache.mu.
	kept time.Time
}

// keptRecheck is how often the NameServers are asked again for a route
// served while they dropped its brokers: every lookup would otherwise ask
// them twice (the route and the cluster), at the rate of sends, until the
// brokers register again (every 30 s by default).
const keptRecheck = time.Second

// metaCache caches the cluster's brokers, topic routes and configurations
// and group configurations; lookups of one key share one fetch.
type metaCache struct {
	b     *Broker
	group singleflight.Group

	mu      sync.Mutex
	cluster *clusterView
	// clusterStale: a broker failed since the view was read; the next use
	// reads it again (a restarted broker may have a new address).
	clusterStale bool
	topics       map[string]*topicEntry
	// deletes counts the topics deleted through this instance (see
	// forgetDeletedTopic): a fetch that began before one (its answer may
	// predate the delete) does not cache what it read.
	deletes uint64
	groups  map[string]groupEntry
	// refreshing holds the keys read in the background now, closed stops
	// new ones and background counts them (see refreshInBackground).
	refreshing map[string]bool
	closed     bool
	background sync.WaitGroup
}

type groupEntry struct {
	g       domain.ConsumerGroup
	fetched time.Time
}

func newMetaCache(b *Broker) *metaCache {
	return &metaCache{b: b, topics: map[string]*topicEntry{}, groups: map[string]groupEntry{}}
}

// refreshCluster reads the cluster's brokers from the NameServers.
func (c *metaCache) refreshCluster(ctx context.Context) (*clusterView, error) {
	v, err := c.shared(ctx, "cluster", c.readCluster)
	if err != nil {
		return nil, err
	}
	return v.(*clusterView), nil
}

// readCluster reads the cluster's brokers from the NameServers and
// caches them (a *clusterView); see refreshCluster.
func (c *metaCache) readCluster(ctx context.Context) (any, error) {
	// A NameServer that knows no master of the cluster (restarted,
	// the brokers not registered with it again yet), or whose answer
	// cannot be used, is passed over for one that does; its answer is
	// decoded once.
	var info remoting.ClusterInfo
	var decoded *remoting.Command // the answer info was decoded from
	var decodeErr error
	decode := func(resp *remoting.Command) {
		info, decoded = remoting.ClusterInfo{}, resp
		decodeErr = remoting.DecodeJSONBody(resp.Body, &info)
	}
	resp, err := c.b.askNameServers(ctx, func() *remoting.Command {
		return remoting.NewRequest(remoting.RequestGetBrokerClusterInfo, nil, nil)
	}, func(resp *remoting.Command) nsVerdict {
		if resp.Code != int32(remoting.ResponseSuccess) {
			return nsUnusable
		}
		decode(resp)
		switch {
		case decodeErr != nil:
			return nsUnusable
		case !hasMaster(&info, c.b.cfg.ClusterName):
			return nsLacks
		}
		return nsAnswered
	})
	if err != nil {
		return nil, mapError(err)
	}
	if decoded != resp { // not the answer judged last
		decode(resp)
	}
	if decodeErr != nil {
		return nil, domain.Wrap(domain.ReasonBrokerError, decodeErr, "the NameServer's cluster info could not be decoded")
	}
	view := &clusterView{brokers: map[string]string{}, slaves: map[string]string{}, fetched: c.b.clock.Now()}
	for name, bd := range info.BrokerAddrTable {
		view.brokers[name] = bd.BrokerAddrs[remoting.MasterID]
		if view.brokers[name] == "" {
			ids := slices.Sorted(maps.Keys(bd.BrokerAddrs))
			for _, id := range ids {
				if a := bd.BrokerAddrs[id]; a != "" && id != remoting.MasterID {
					view.slaves[name] = a
					break
				}
			}
		}
	}
	view.members = slices.Sorted(slices.Values(info.ClusterAddrTable[c.b.cfg.ClusterName]))
	for name := range info.ClusterAddrTable {
		view.clusters = append(view.clusters, name)
	}
	c.mu.Lock()
	c.cluster, c.clusterStale = view, false
	c.mu.Unlock()
	return view, nil
}

// shared runs fetch once for the concurrent lookups of key. The fetch runs
// under a context that no one caller's cancellation or deadline ends (each
// request in it is bounded by cluster.requestTimeout), so that a caller who
// gives up does not fail the others; each caller waits only as long as its
// own ctx allows.
func (c *metaCache) shared(ctx context.Context, key string, fetch func(context.Context) (any, error)) (any, error) {
	detached := context.WithoutCancel(ctx)
	return awaitShared(ctx, c.group.DoChan(key, func() (any, error) { return fetch(detached) }))
}

// awaitShared waits for a shared fetch's result on ch, as long as ctx
// allows. A result in by the time ctx ends is the result: a select with
// both ready chooses either, and a wait that starts late (a busy machine)
// finds both ready.
func awaitShared(ctx context.Context, ch <-chan singleflight.Result) (any, error) {
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		select {
		case r := <-ch:
			return r.Val, r.Err
		default:
		}
		return nil, mapError(ctx.Err())
	}
}

// refreshInBackground runs fetch for key (as shared does, joining a fetch
// of key under way) without anyone waiting for it: a cached value past its
// TTL is served meanwhile. Without it, every lookup after the TTL waited
// for the read, and while the NameServers hang (packets dropped, a hung
// process) each read takes cluster.requestTimeout or the dial timeout per
// NameServer, which the sends, receives and acks waiting on it did not
// have. One runs per key at a time; none starts once the cache is closed,
// nor when due (called with c.mu held; nil: always due) says that the value
// is no longer due: a lookup that found it due may call this once a read
// that began before it has cached a new value, and then started a read
// more (TestKeptRouteRecheckedAtMostOncePerInterval failed one run in 25).
func (c *metaCache) refreshInBackground(ctx context.Context, key string, fetch func(context.Context) (any, error), due func() bool) {
	c.mu.Lock()
	if c.closed || c.refreshing[key] || due != nil && !due() {
		c.mu.Unlock()
		return
	}
	if c.refreshing == nil {
		c.refreshing = map[string]bool{}
	}
	c.refreshing[key] = true
	c.background.Add(1)
	c.mu.Unlock()
	detached := context.WithoutCancel(ctx)
	go func() {
		defer c.background.Done()
		_, _ = c.shared(detached, key, fetch) // what it read is cached; a failure leaves the cached value
		c.mu.Lock()
		delete(c.refreshing, key)
		c.mu.Unlock()
	}()
}

// close starts no more background reads and waits for those under way
// (they end quickly once the Remoting client is closed).
func (c *metaCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.background.Wait()
}

// clusterView returns the cached view, reading it when missing, older
// than maxStale, or made stale by a broker's failure; one older than the
// route TTL is returned while it is read again in the background.
func (c *metaCache) view(ctx context.Context) (*clusterView, error) {
	c.mu.Lock()
	v, stale := c.cluster, c.clusterStale
	c.mu.Unlock()
	if v != nil && !stale {
		switch age := c.b.clock.Now().Sub(v.fetched); {
		case age < c.b.cfg.RouteTTL:
			return v, nil
		case age < maxStale:
			c.refreshInBackground(ctx, "cluster", c.readCluster, func() bool { return c.cluster == v && !c.clusterStale })
			return v, nil
		}
	}
	if v != nil && c.b.clock.Now().Sub(v.fetched) < maxStale { // made stale by a broker's failure
		fresh, done, err := c.readAgain(ctx, "cluster", c.readCluster)
		if !done || err != nil {
			return v, nil
		}
		return fresh.(*clusterView), nil
	}
	return c.refreshCluster(ctx)
}

// staleReadWait bounds how long a lookup whose cached value a broker's
// failure made stale waits for the value to be read again (see readAgain).
const staleReadWait = time.Second

// readAgain reads key again for a lookup whose cached value (read within
// maxStale) a broker's failure made stale: a broker restarted at a new
// address, or a new master, is found in the fresh value, which the
// NameServers give at once while they answer. While they hang (packets
// dropped, a hung process), every such lookup waited for the read to fail,
// cluster.requestTimeout or the dial timeout per NameServer: sends,
// receives and acks timed out although the cache still named the brokers
// that serve. It now waits at most staleReadWait (or half the time ctx
// has left, if less); then the read goes on in the background, and this
// lookup, and those after it while that read lasts, are served the cached
// value (done false: the failed broker stays isolated, so it is chosen
// last).
func (c *metaCache) readAgain(ctx context.Context, key string, fetch func(context.Context) (any, error)) (v any, done bool, err error) {
	c.mu.Lock()
	reading := c.refreshing[key]
	c.mu.Unlock()
	if reading {
		return nil, false, nil
	}
	wait, cancel := shareOf(ctx, 2)
	defer cancel()
	wait, cancelWait := context.WithTimeout(wait, staleReadWait)
	defer cancelWait()
	v, err = c.shared(wait, key, fetch)
	if err != nil && wait.Err() != nil && ctx.Err() == nil {
		c.refreshInBackground(ctx, key, fetch, nil)
		return nil, false, nil
	}
	return v, true, err
}

// hasMaster reports whether info lists a master broker of cluster.
func hasMaster(info *remoting.ClusterInfo, cluster string) bool {
	for _, name := range info.ClusterAddrTable[cluster] {
		if info.BrokerAddrTable[name].BrokerAddrs[remoting.MasterID] != "" {
			return true
		}
	}
	return false
}

// currentView returns the cached cluster view (nil before the first read).
func (c *metaCache) currentView() *clusterView {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cluster
}

// noRouteViewAge is how old a cluster view may be to tell, for a topic the
// NameServers do not route, whether any broker is registered.
const noRouteViewAge = 2 * time.Second

// recentView returns the cached cluster view if it was read within maxAge
// and no broker failed since, else reads it again.
func (c *metaCache) recentView(ctx context.Context, maxAge time.Duration) (*clusterView, error) {
	c.mu.Lock()
	v, stale := c.cluster, c.clusterStale
	c.mu.Unlock()
	if v != nil && !stale && c.b.clock.Now().Sub(v.fetched) < maxAge {
		return v, nil
	}
	return c.refreshCluster(ctx)
}

// masters returns the masters of the cached cluster view.
func (c *metaCache) masters() []master {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cluster == nil {
		return nil
	}
	return c.cluster.masterList()
}

// clusterMasters returns the masters of the configured cluster, or
// ReasonUnavailable when it has none.
func (c *metaCache) clusterMasters(ctx context.Context) ([]master, error) {
	return c.clusterBrokers(ctx, (*clusterView).masterList)
}

// clusterReaders returns the broker groups of the cluster to read from
// (see clusterView.readerList); an error when none has a master.
func (c *metaCache) clusterReaders(ctx context.Context) ([]master, error) {
	return c.clusterBrokers(ctx, (*clusterView).readerList)
}

// clusterBrokers returns list of the cluster's view, or an error naming
// what the NameServers know when the cluster has no master.
func (c *metaCache) clusterBrokers(ctx context.Context, list func(*clusterView) []master) ([]master, error) {
	v, err := c.view(ctx)
	if err != nil {
		return nil, err
	}
	if len(v.masterList()) == 0 {
		return nil, domain.Errorf(domain.ReasonUnavailable, "%s; check cluster.clusterName and the brokers", v.noMaster(c.b.cfg.ClusterName))
	}
	return list(v), nil
}

// noMaster says that the configured cluster has no master broker, naming
// the clusters the NameServers do know when it is not among them (a
// cluster.clusterName that differs from the brokers' brokerClusterName).
func (v *clusterView) noMaster(cluster string) string {
	msg := fmt.Sprintf("cluster %q has no master broker registered with the NameServers", cluster)
	if len(v.clusters) > 0 && !slices.Contains(v.clusters, cluster) {
		msg += fmt.Sprintf(" (they know only the clusters %s: is cluster.clusterName the brokers' brokerClusterName?)", strings.Join(slices.Sorted(slices.Values(v.clusters)), ", "))
	}
	return msg
}

// brokerAddr returns the master address of a broker by name (for the
// requests that a receipt handle or a transaction addresses to its broker),
// from the cluster view, which the heartbeat loop reads every
// cluster.heartbeatInterval and a broker's failure makes read again: a
// broker restarted at a new address, or a new master after a failover, is
// found there, whereas a cached route of a topic no one uses any more may
// keep the old address. A name the view does not know makes it read again;
// a name it still does not know is looked for in the freshest route.
func (c *metaCache) brokerAddr(ctx context.Context, name string) (string, error) {
	v, err := c.view(ctx)
	if err == nil {
		if a := v.brokers[name]; a != "" {
			return a, nil
		}
		if v, err = c.refreshCluster(ctx); err == nil {
			if a := v.brokers[name]; a != "" {
				return a, nil
			}
		}
	}
	if a := c.routedAddr(name); a != "" {
		return a, nil
	}
	if err != nil {
		return "", err
	}
	// BAD_REQUEST, not INVALID_RECEIPT_HANDLE: the Go push consumer
	// retries such an ack (docs/compatibility.md), and a restarting
	// broker's handles work again once it has registered.
	return "", domain.Errorf(domain.ReasonBadRequest, "broker %q is not in the cluster's route now (restarting, without a master, or removed from the cluster): "+
		"the client's retry succeeds once a restarting broker has registered with the NameServers again", name)
}

// routedAddr returns the address of a broker's master in the most recently
// read route that names it and no failure has made stale, or "".
func (c *metaCache) routedAddr(name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addr string
	var at time.Time
	for _, e := range c.topics {
		if a := e.masters[name]; a != "" && !e.stale && e.fetched.After(at) {
			addr, at = a, e.fetched
		}
	}
	return addr
}

// brokerNameOf returns the name of the broker at addr, or "".
func (c *metaCache) brokerNameOf(addr string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cluster != nil {
		for n, a := range c.cluster.brokers {
			if a == addr {
				return n
			}
		}
	}
	for _, e := range c.topics {
		for n, a := range e.masters {
			if a == addr {
				return n
			}
		}
	}
	return ""
}

// topic returns a topic's route and configuration, from the cache when
// fresh enough. A topic the NameServers do not know is
// ReasonTopicNotFound.
func (c *metaCache) topic(ctx context.Context, name string) (*topicEntry, error) {
	c.mu.Lock()
	e := c.topics[name]
	var stale bool
	var kept time.Time
	if e != nil {
		stale, kept = e.stale, e.kept
	}
	c.mu.Unlock()
	now := c.b.clock.Now()
	if e != nil && (!stale && now.Sub(e.fetched) < c.b.cfg.RouteTTL || now.Sub(kept) < keptRecheck && now.Sub(e.fetched) < maxStale) {
		// Fresh, or kept while the NameServers dropped its brokers and
		// checked again less than keptRecheck ago (also when a call to
		// them failed since: they are down).
		return e, nil
	}
	fetch := func(ctx context.Context) (any, error) { return c.fetchTopic(ctx, name) }
	if e != nil && !stale && now.Sub(e.fetched) < maxStale {
		// Past its TTL (or its recheck, for a route kept while the
		// NameServers dropped its brokers): served while it is read again.
		c.refreshInBackground(ctx, "topic\x00"+name, fetch, func() bool { cur := c.topics[name]; return cur == e && !cur.stale && cur.kept.Equal(kept) })
		return e, nil
	}
	key := "topic\x00" + name
	var v any
	var err error
	if e != nil && now.Sub(e.fetched) < maxStale { // made stale by a broker's failure
		var done bool
		if v, done, err = c.readAgain(ctx, key, fetch); !done {
			return e, nil
		}
	} else {
		v, err = c.shared(ctx, key, fetch)
	}
	if err != nil {
		if e != nil && now.Sub(e.fetched) < maxStale && !domain.HasReason(err, domain.ReasonTopicNotFound) {
			c.b.log.LogAttrs(ctx, slog.LevelDebug, "serving a stale route", slog.String("topic", name), slog.Any("error", err))
			return e, nil
		}
		return nil, err
	}
	return v.(*topicEntry), nil
}

// fetchTopic reads a topic's route from the NameServers (see readRoute)
// and its configuration from one of its brokers, and caches both.
func (c *metaCache) fetchTopic(ctx context.Context, name string) (*topicEntry, error) {
	c.mu.Lock()
	deletes := c.deletes
	c.mu.Unlock()
	e, kept, err := c.readRoute(ctx, name)
	if err != nil || kept {
		return e, err
	}
	cfg, err := c.topicConfig(ctx, name, e)
	if err != nil {
		return nil, err
	}
	e.route.Topic = cfg
	c.mu.Lock()
	if c.deletes == deletes {
		c.topics[name] = e
	}
	c.mu.Unlock()
	return e, nil
}

// readRoute reads a topic's route from the NameServers into a new entry
// without its configuration (route.Topic holds only the name), and caches
// nothing. When the NameServers dropped every broker of a cached route
// (see droppedWithItsBrokers), it returns that cached entry, configuration
// and all, with kept set.
func (c *metaCache) readRoute(ctx context.Context, name string) (e *topicEntry, kept bool, err error) {
	return c.readRouteOnce(ctx, name, true)
}

// readRouteOnce is readRoute; again allows one more read of the route when
// the NameServers, which routed no such topic, list its cached brokers
// (see droppedWithItsBrokers).
func (c *metaCache) readRouteOnce(ctx context.Context, name string, again bool) (e *topicEntry, kept bool, err error) {
	// A NameServer that routes no such topic (restarted, the brokers not
	// registered with it again yet), or whose answer cannot be used, is
	// passed over for one that does; a topic that does not exist costs one
	// lookup per NameServer. The route is decoded once.
	var rd remoting.TopicRouteData
	var decoded *remoting.Command // the answer rd was decoded from
	var decodeErr error
	decode := func(resp *remoting.Command) {
		rd, decoded = remoting.TopicRouteData{}, resp
		decodeErr = decodeRoute(resp.Body, &rd, name)
	}
	resp, err := c.b.askNameServers(ctx, func() *remoting.Command {
		return remoting.NewRequest(remoting.RequestGetRouteinfoByTopic,
			remoting.EncodeHeader(&remoting.GetRouteInfoRequestHeader{Topic: name, AcceptStandardJSONOnly: true}), nil)
	}, func(resp *remoting.Command) nsVerdict {
		switch remoting.ResponseCode(resp.Code) {
		case remoting.ResponseTopicNotExist:
			return nsLacks
		case remoting.ResponseSuccess:
		default:
			return nsUnusable
		}
		if decode(resp); decodeErr != nil {
			return nsUnusable
		}
		return nsAnswered
	})
	if err != nil {
		if isCode(err, remoting.ResponseTopicNotExist) {
			e, relisted := c.droppedWithItsBrokers(ctx, name)
			if e != nil {
				return e, true, nil
			}
			if relisted && again {
				// A broker restarting registers its routes and its place
				// in the cluster at once: the route was asked for just
				// before its registration, the cluster view just after.
				return c.readRouteOnce(ctx, name, false)
			}
			c.forgetTopic(name)
			// The NameServers route no topic while no broker is registered
			// with them (all down, or cut off from them): the topic may
			// exist, and creating it is not what to do. The view is read
			// again when older than noRouteViewAge (a broker that went
			// away is in an older one), at most that often however many
			// unknown topics are asked for.
			if v, verr := c.recentView(ctx, noRouteViewAge); verr == nil && len(v.masterList()) == 0 {
				return nil, false, domain.Errorf(domain.ReasonTopicNotFound,
					"topic %q has no route: %s, so they route no topic (the brokers are down or cannot reach them); check the brokers and cluster.clusterName",
					name, v.noMaster(c.b.cfg.ClusterName))
			}
			return nil, false, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist in the cluster; create it with `rmqproxy topic create %s`", name, name)
		}
		return nil, false, mapError(err)
	}
	if decoded != resp {
		decode(resp)
	}
	if decodeErr != nil {
		return nil, false, decodeErr
	}
	e = &topicEntry{masters: map[string]string{}, fetched: c.b.clock.Now()}
	for _, bd := range rd.BrokerDatas {
		if a := bd.BrokerAddrs[remoting.MasterID]; a != "" {
			e.masters[bd.BrokerName] = a
		}
	}
	e.route = routeOf(name, &rd, e.masters)
	return e, false, nil
}

// decodeRoute decodes a NameServer's route of topic name into rd,
// refusing one that cannot be a real topic's.
func decodeRoute(body []byte, rd *remoting.TopicRouteData, name string) error {
	if err := remoting.DecodeJSONBody(body, rd); err != nil {
		return domain.Wrap(domain.ReasonBrokerError, err, "the NameServer's route of topic "+name+" could not be decoded")
	}
	for _, qd := range rd.QueueDatas {
		if max(qd.ReadQueueNums, qd.WriteQueueNums) > maxRouteQueues {
			// Garbage: routeOf would build a queue per count (2^31 of them
			// exhausted memory).
			return domain.Errorf(domain.ReasonBrokerError,
				"the NameServer's route of topic %s gives broker %s %d read and %d write queues; rmqproxy accepts at most %d per broker",
				name, qd.BrokerName, qd.ReadQueueNums, qd.WriteQueueNums, maxRouteQueues)
		}
	}
	return nil
}

// droppedWithItsBrokers returns the cached entry of a topic the
// NameServers no longer route when they list none of the brokers of its
// route any more and it was read within maxStale; else nil, with relisted
// set when they list one of them (the caller may ask for the route once
// more: a broker may have registered since it was asked for). A NameServer
// drops a broker whose connection to it closes and with it every route
// through it: a live broker (it closes its connection when one of its
// requests times out, as on a loaded machine) until its next
// registration, every registerNameServerPeriod (30 s by default); a broker
// that is down (killed, restarting) until it is back. Clients were told
// TOPIC_NOT_FOUND meanwhile for a topic that exists, and the push
// consumers asked again every 20 ms. Served the route, a send to a broker
// that is down fails as one that cannot be reached (retryable), and a
// receive long-polls for it to come back (see [Broker.Pop]).
func (c *metaCache) droppedWithItsBrokers(ctx context.Context, name string) (e *topicEntry, relisted bool) {
	c.mu.Lock()
	e = c.topics[name]
	c.mu.Unlock()
	if e == nil || len(e.masters) == 0 || c.b.clock.Now().Sub(e.fetched) >= maxStale {
		return nil, false
	}
	// Read now: a view read before the NameServers dropped the brokers
	// still lists them.
	v, err := c.refreshCluster(ctx)
	if err != nil {
		return nil, false
	}
	for bn := range e.masters {
		if v.brokers[bn] != "" {
			// A deleted topic, a route the NameServers changed, or a
			// broker that registered again since the route was asked for.
			return nil, true
		}
	}
	c.mu.Lock()
	e.kept = c.b.clock.Now()
	c.mu.Unlock()
	c.b.log.LogAttrs(ctx, slog.LevelDebug, "the NameServers dropped the brokers of a topic's route; serving the route read before",
		slog.String("topic", name), slog.Time("read", e.fetched))
	return e, false
}

// topicConfig reads the topic's configuration from the first broker of
// its route that answers.
func (c *metaCache) topicConfig(ctx context.Context, name string, e *topicEntry) (domain.Topic, error) {
	names := slices.Sorted(maps.Keys(e.masters))
	isolatedLast(c.b, names, func(n string) string { return n })
	var lastErr error
	for _, bn := range names {
		resp, err := c.b.call(ctx, e.masters[bn], remoting.RequestGetTopicConfig, &remoting.TopicRequestHeader{RPC: remoting.RPC{BrokerName: bn}, Topic: name}, nil)
		if err != nil {
			c.b.failed(bn, err)
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		var tc remoting.TopicConfig
		if err := remoting.DecodeJSONBody(resp.Body, &tc); err != nil {
			return domain.Topic{}, domain.Wrap(domain.ReasonBrokerError, err, "broker "+bn+"'s configuration of topic "+name+" could not be decoded")
		}
		return topicOf(&tc), nil
	}
	if lastErr == nil {
		return domain.Topic{}, domain.Errorf(domain.ReasonUnavailable, "topic %q has no master broker in its route now", name)
	}
	return domain.Topic{}, mapError(lastErr)
}

// routeOf turns a NameServer route into the port's route: the queues of
// each broker with a master, sorted by broker name then queue id. Queue i
// is readable when i < readQueueNums and the broker's permission allows
// reads, writable likewise; slaves add no queue.
func routeOf(topic string, rd *remoting.TopicRouteData, masters map[string]string) ports.Route {
	r := ports.Route{Topic: domain.Topic{Name: topic}}
	for _, qd := range rd.QueueDatas {
		if masters[qd.BrokerName] == "" {
			continue
		}
		n := max(qd.ReadQueueNums, qd.WriteQueueNums)
		for i := range n {
			var p domain.Permission
			if i < qd.ReadQueueNums && qd.Perm&remoting.PermRead != 0 {
				p |= domain.PermRead
			}
			if i < qd.WriteQueueNums && qd.Perm&remoting.PermWrite != 0 {
				p |= domain.PermWrite
			}
			r.Queues = append(r.Queues, ports.RouteQueue{BrokerName: qd.BrokerName, QueueID: i, Permission: p})
		}
	}
	slices.SortFunc(r.Queues, func(a, b ports.RouteQueue) int {
		if a.BrokerName != b.BrokerName {
			if a.BrokerName < b.BrokerName {
				return -1
			}
			return 1
		}
		return int(a.QueueID - b.QueueID)
	})
	return r
}

// topicOf turns a broker's topic configuration into the domain's. A topic
// without the message.type attribute is NORMAL, as upstream reads it.
func topicOf(tc *remoting.TopicConfig) domain.Topic {
	t := domain.Topic{Name: tc.TopicName, QueueCount: max(tc.ReadQueueNums, tc.WriteQueueNums), Type: domain.MessageTypeNormal}
	if tc.Perm&remoting.PermRead != 0 {
		t.Permission |= domain.PermRead
	}
	if tc.Perm&remoting.PermWrite != 0 {
		t.Permission |= domain.PermWrite
	}
	if v, ok := tc.Attributes[remoting.TopicAttributeMessageType]; ok {
		if mt, err := domain.ParseTopicMessageType(v); err == nil {
			t.Type = mt
		} else {
			t.Type = domain.MessageTypeUnspecified
		}
	}
	return t
}

// invalidateTopic makes the next use of a topic read its route again.
func (c *metaCache) invalidateTopic(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.topics[name]; e != nil {
		e.stale = true
	}
}

// invalidateBroker marks every route through a broker stale, and the
// cluster view.
func (c *metaCache) invalidateBroker(brokerName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clusterStale = true
	for _, e := range c.topics {
		if _, ok := e.masters[brokerName]; ok {
			e.stale = true
		}
	}
}

// prune forgets the topics and groups not read for maxStale (they would
// not be served from the cache any more): those of deleted topics and
// groups, and those no client uses now.
func (c *metaCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	maps.DeleteFunc(c.topics, func(_ string, e *topicEntry) bool { return now.Sub(e.fetched) >= maxStale })
	maps.DeleteFunc(c.groups, func(_ string, e groupEntry) bool { return now.Sub(e.fetched) >= maxStale })
}

func (c *metaCache) forgetTopic(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.topics, name)
}

// forgetDeletedTopic drops the entry of a topic deleted through this
// instance, and keeps the fetches under way, of any topic, from caching
// what they read: one of this topic may have been answered before the
// delete, and would have been served for cluster.routeTTL. Deletes are
// rare; a fetch that does not cache costs one lookup more.
func (c *metaCache) forgetDeletedTopic(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.topics, name)
	c.deletes++
}

// consumerGroup returns a group's configuration from the first master of
// the cluster that has it with settings other than a broker's own
// defaults (see brokerDefaults), else from the first that has it, as
// list and describe show it; cached for the route TTL;
// ReasonConsumerGroupNotFound when none that answered has it.
func (c *metaCache) consumerGroup(ctx context.Context, name string) (domain.ConsumerGroup, error) {
	c.mu.Lock()
	e, ok := c.groups[name]
	c.mu.Unlock()
	if ok && c.b.clock.Now().Sub(e.fetched) < c.b.cfg.RouteTTL {
		return e.g, nil
	}
	v, err := c.shared(ctx, "group\x00"+name, func(ctx context.Context) (any, error) {
		ms, err := c.clusterMasters(ctx)
		if err != nil {
			return nil, err
		}
		isolatedLast(c.b, ms, func(m master) string { return m.name })
		var lastErr error
		notOn := 0                         // masters that answered that they lack the group
		var fallback *domain.ConsumerGroup // the first answer with a broker's own defaults
		for _, m := range ms {
			if fallback != nil && c.b.faults.isolated(m.name, c.b.clock.Now()) {
				// The group has an answer; one that failed recently (the
				// isolated come last) is not waited for to better it.
				break
			}
			resp, err := c.b.call(ctx, m.addr, remoting.RequestGetSubscriptiongroupConfig,
				&remoting.GetSubscriptionGroupConfigRequestHeader{RPC: remoting.RPC{BrokerName: m.name}, Group: name}, nil)
			if isCode(err, remoting.ResponseSubscriptionGroupNotExist) {
				// Another master may have it (made there alone, or before
				// this one joined the cluster): list and describe show it
				// with that master's settings, and so are its consumers
				// given them.
				notOn++
				continue
			}
			if err != nil {
				c.b.failed(m.name, err)
				lastErr = err
				if ctx.Err() != nil {
					break
				}
				continue
			}
			var sg remoting.SubscriptionGroupConfig
			if err := remoting.DecodeJSONBody(resp.Body, &sg); err != nil {
				return nil, domain.Wrap(domain.ReasonBrokerError, err, "broker "+m.name+"'s configuration of group "+name+" could not be decoded")
			}
			g := groupOf(&sg)
			if brokerDefaults(&sg) {
				// Perhaps made by this very request (see brokerDefaults):
				// another master's settings, if one has others, are the
				// group's.
				if fallback == nil {
					fallback = &g
				}
				continue
			}
			c.mu.Lock()
			c.groups[name] = groupEntry{g: g, fetched: c.b.clock.Now()}
			c.mu.Unlock()
			return g, nil
		}
		if fallback != nil {
			c.mu.Lock()
			c.groups[name] = groupEntry{g: *fallback, fetched: c.b.clock.Now()}
			c.mu.Unlock()
			return *fallback, nil
		}
		if notOn > 0 {
			c.forgetGroup(name)
			return nil, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist in the cluster; create it with `rmqproxy group create %s`", name, name)
		}
		return nil, mapError(lastErr)
	})
	if err != nil {
		if ok && c.b.clock.Now().Sub(e.fetched) < maxStale && !domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
			return e.g, nil
		}
		return domain.ConsumerGroup{}, err
	}
	return v.(domain.ConsumerGroup), nil
}

func (c *metaCache) forgetGroup(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, name)
}

// brokerDefaults reports whether sg holds what a broker makes a group
// with on its own: the settings rmqproxy manages at upstream's defaults
// (16 retries, not orderly) with no retry policy of their own (rmqproxy's
// create and update always write one). A 5.x broker with
// autoCreateSubscriptionGroup (its default) makes a group it lacks so
// when a client pops with it, and when asked for its configuration
// (GET_SUBSCRIPTIONGROUP_CONFIG, which rmqproxy asks for the settings it
// gives consumers): a group made on some masters only (`mqadmin
// updateSubGroup -b`, or before a master joined the cluster) then has
// these defaults on the others, and they must not stand for the group.
func brokerDefaults(sg *remoting.SubscriptionGroupConfig) bool {
	p := sg.GroupRetryPolicy
	return sg.RetryMaxTimes == 16 && !sg.ConsumeMessageOrderly &&
		(p == nil || (p.Type != remoting.RetryPolicyExponential && (p.CustomizedRetryPolicy == nil || len(p.CustomizedRetryPolicy.Next) == 0)))
}

// groupOf turns a broker's subscription group into the domain's: max
// delivery attempts = retryMaxTimes + 1 and the group retry policy, as the
// Apache proxy derives a consumer's backoff policy.
func groupOf(sg *remoting.SubscriptionGroupConfig) domain.ConsumerGroup {
	g := domain.ConsumerGroup{Name: sg.GroupName, MaxDeliveryAttempts: sg.RetryMaxTimes + 1, Orderly: sg.ConsumeMessageOrderly}
	p := sg.GroupRetryPolicy
	switch {
	case p != nil && p.Type == remoting.RetryPolicyExponential:
		e := remoting.ExponentialRetryPolicy{Initial: 5000, Max: 7200000, Multiplier: 2}
		if p.ExponentialRetryPolicy != nil {
			e = *p.ExponentialRetryPolicy
		}
		g.RetryPolicy = domain.RetryPolicy{Initial: time.Duration(e.Initial) * time.Millisecond,
			Max: time.Duration(e.Max) * time.Millisecond, Multiplier: float64(e.Multiplier)}
	case p != nil && p.CustomizedRetryPolicy != nil && len(p.CustomizedRetryPolicy.Next) > 0:
		for _, ms := range p.CustomizedRetryPolicy.Next {
			g.RetryPolicy.Delays = append(g.RetryPolicy.Delays, time.Duration(ms)*time.Millisecond)
		}
	default:
		g.RetryPolicy.Delays = domain.DefaultRetryDelays()
	}
	return g
}

// subscriptionGroupOf is groupOf's inverse, on upstream's defaults.
func subscriptionGroupOf(g domain.ConsumerGroup) remoting.SubscriptionGroupConfig {
	sg := remoting.NewSubscriptionGroupConfig(g.Name)
	sg.RetryMaxTimes = g.MaxDeliveryAttempts - 1
	sg.ConsumeMessageOrderly = g.Orderly
	p := g.RetryPolicy
	if len(p.Delays) > 0 {
		next := make([]int64, len(p.Delays))
		for i, d := range p.Delays {
			next[i] = d.Milliseconds()
		}
		sg.GroupRetryPolicy = &remoting.GroupRetryPolicy{Type: remoting.RetryPolicyCustomized,
			CustomizedRetryPolicy: &remoting.CustomizedRetryPolicy{Next: next}}
	} else {
		sg.GroupRetryPolicy = &remoting.GroupRetryPolicy{Type: remoting.RetryPolicyExponential,
			ExponentialRetryPolicy: &remoting.ExponentialRetryPolicy{Initial: p.Initial.Milliseconds(), Max: p.Max.Milliseconds(),
				Multiplier: max(1, int64(p.Multiplier+0.5))}}
	}
	return sg
}

// faults remembers brokers that failed recently.
type faults struct {
	window time.Duration
	mu     sync.Mutex
	until  map[string]time.Time
}

func newFaults(window time.Duration) *faults {
	return &faults{window: window, until: map[string]time.Time{}}
}

func (f *faults) mark(broker string, now time.Time) {
	if f.window <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.until[broker] = now.Add(f.window)
}

func (f *faults) isolated(broker string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.until[broker]
	if ok && !now.Before(t) {
		delete(f.until, broker)
		return false
	}
	return ok
}

// isolatedLast moves the brokers isolated after a recent failure (see
// [Broker.failed]) to the end of list, keeping the order otherwise, for
// requests any broker can answer: a broker that stopped answering made each
// such request wait cluster.requestTimeout before the next was asked, and
// the sends and receives waiting on it time out.
func isolatedLast[T any](b *Broker, list []T, name func(T) string) {
	now := b.clock.Now()
	var isolated []T
	kept := list[:0]
	for _, x := range list {
		if b.faults.isolated(name(x), now) {
			isolated = append(isolated, x)
		} else {
			kept = append(kept, x)
		}
	}
	copy(list[len(kept):], isolated)
}

// failed records a failed call to a broker: a transport failure isolates
// the broker and makes the routes through it be read again.
func (b *Broker) failed(brokerName string, err error) {
	if !transportFailure(err) {
		return
	}
	b.faults.mark(brokerName, b.clock.Now())
	b.meta.invalidateBroker(brokerName)
	b.readyAt.Store(0)          // the next readiness check probes again,
	b.brokerAnsweredAt.Store(0) // and asks a broker too
}

// failedAt is failed, returning err.
func (b *Broker) failedAt(brokerName string, err error) error {
	if err != nil {
		b.failed(brokerName, err)
	}
	return err
}

// queue returns queue qid of brokerName in the route.
func (e *topicEntry) queue(brokerName string, qid int32) (ports.RouteQueue, bool) {
	i := slices.IndexFunc(e.route.Queues, func(q ports.RouteQueue) bool { return q.BrokerName == brokerName && q.QueueID == qid })
	if i < 0 {
		return ports.RouteQueue{}, false
	}
	return e.route.Queues[i], true
}

// checkTopicRoute returns the entry and an error for a broker missing from
// it.
func (e *topicEntry) addr(brokerName string) (string, error) {
	if a := e.masters[brokerName]; a != "" {
		return a, nil
	}
	return "", domain.Errorf(domain.ReasonBadRequest, "broker %q serves no queue of topic %q", brokerName, e.route.Topic.Name)
}

// maxRouteQueues bounds the queues of one broker in a topic's route read
// from the NameServers: far more than any topic has (each queue is a
// directory of files on the broker), and few enough to build.
const maxRouteQueues = 1 << 16
