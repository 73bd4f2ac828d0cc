package cluster

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// clientTTL forgets a tracked client that the application neither
// refreshed nor reported gone (a safety net: the application's own expiry
// is shorter).
const clientTTL = 3 * time.Minute

// clientSet is the set of clients connected to this proxy, and the groups
// they add up to.
type clientSet struct {
	mu      sync.Mutex
	clients map[string]trackedClient
	// registered are the groups the last heartbeat named. A group that a
	// heartbeat leaves out is unregistered in the same round, whatever
	// made it go (its clients left or were forgotten, their settings
	// dropped its subscriptions or named another group or fewer topics):
	// a broker closes a connection on which a group it registered is not
	// renewed within 120 s, failing every request in flight on it.
	registeredProducers map[string]bool
	registeredConsumers map[string]bool
}

type trackedClient struct {
	c    ports.ActiveClient
	seen time.Time
}

func newClientSet() *clientSet {
	return &clientSet{clients: map[string]trackedClient{}, registeredProducers: map[string]bool{}, registeredConsumers: map[string]bool{}}
}

// groups returns the producer groups (topics) and consumer groups of a set
// of clients.
func groupsOf(cs map[string]trackedClient) (producers, consumers map[string]bool) {
	producers, consumers = map[string]bool{}, map[string]bool{}
	for _, t := range cs {
		for _, topic := range t.c.ProducerTopics {
			producers[topic] = true
		}
		if t.c.ConsumerGroup != "" {
			consumers[t.c.ConsumerGroup] = true
		}
	}
	return producers, consumers
}

// ClientActive implements [ports.ClientTracker]. A client that brings a
// group the brokers have not seen from this proxy triggers a heartbeat
// round at once (a producer must be registered before the broker's first
// transaction check).
func (b *Broker) ClientActive(ctx context.Context, c ports.ActiveClient) {
	s := b.clients
	s.mu.Lock()
	old, had := s.clients[c.ClientID]
	s.clients[c.ClientID] = trackedClient{c: c, seen: b.clock.Now()}
	news := !had || !slices.Equal(old.c.ProducerTopics, c.ProducerTopics) || old.c.ConsumerGroup != c.ConsumerGroup ||
		!slices.Equal(old.c.Subscriptions, c.Subscriptions)
	s.mu.Unlock()
	if news {
		b.heartbeatSoon()
	}
}

// ClientGone implements [ports.ClientTracker]: the groups no other client
// holds are unregistered from the brokers on the next round.
func (b *Broker) ClientGone(ctx context.Context, clientID string) {
	s := b.clients
	s.mu.Lock()
	_, ok := s.clients[clientID]
	delete(s.clients, clientID)
	s.mu.Unlock()
	if ok {
		b.heartbeatSoon()
	}
}

func (b *Broker) heartbeatSoon() {
	select {
	case b.kick <- struct{}{}:
	default: // a round is pending already
	}
}

// heartbeatData builds this proxy's heartbeat: one producer group per
// topic a connected producer publishes to (the Apache proxy's producer
// group for gRPC producers), one pop consumer group per group a connected
// consumer with known subscriptions belongs to, with the union of their
// subscriptions. It also
// returns the groups the previous heartbeat named and this one does not,
// to unregister.
func (b *Broker) heartbeatData() (hb remoting.HeartbeatData, goneP, goneC []string) {
	s := b.clients
	s.mu.Lock()
	defer s.mu.Unlock()
	now := b.clock.Now()
	for id, t := range s.clients {
		if now.Sub(t.seen) > clientTTL {
			delete(s.clients, id)
		}
	}
	producers, _ := groupsOf(s.clients)
	subs := map[string]map[string]remoting.SubscriptionData{}
	for _, t := range s.clients {
		// A group is registered once a subscription of it is known: a
		// broker replaces the group's subscriptions with the heartbeat's,
		// so an empty set (a consumer registered by its heartbeat alone,
		// before its settings) would erase those of its other clients.
		g := t.c.ConsumerGroup
		if g == "" || len(t.c.Subscriptions) == 0 {
			continue
		}
		if subs[g] == nil {
			subs[g] = map[string]remoting.SubscriptionData{}
		}
		for _, sub := range t.c.Subscriptions {
			subs[g][sub.Topic] = subscriptionData(sub, t.seen)
		}
	}
	hb = remoting.HeartbeatData{ClientID: b.id}
	for _, p := range slices.Sorted(maps.Keys(producers)) {
		hb.ProducerDataSet = append(hb.ProducerDataSet, remoting.ProducerData{GroupName: p})
	}
	for _, g := range slices.Sorted(maps.Keys(subs)) {
		cd := remoting.ConsumerData{GroupName: g, ConsumeType: remoting.ConsumePop, MessageModel: remoting.MessageModelClustering,
			ConsumeFromWhere: remoting.ConsumeFromLastOffset}
		for _, t := range slices.Sorted(maps.Keys(subs[g])) {
			cd.SubscriptionDataSet = append(cd.SubscriptionDataSet, subs[g][t])
		}
		hb.ConsumerDataSet = append(hb.ConsumerDataSet, cd)
	}
	goneP = leftOut(s.registeredProducers, producers)
	goneC = leftOut(s.registeredConsumers, subs)
	s.registeredProducers = producers
	s.registeredConsumers = map[string]bool{}
	for g := range subs {
		s.registeredConsumers[g] = true
	}
	return hb, goneP, goneC
}

// leftOut returns, sorted, the groups of before that now lacks.
func leftOut[V any](before map[string]bool, now map[string]V) []string {
	var out []string
	for g := range before {
		if _, ok := now[g]; !ok {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}

// subscriptionData is a subscription as a Java client's heartbeat
// carries it (tags and their hash codes for tag expressions).
func subscriptionData(s ports.Subscription, at time.Time) remoting.SubscriptionData {
	sd := remoting.SubscriptionData{Topic: s.Topic, SubString: "*", ExpressionType: remoting.ExpressionTag, SubVersion: at.UnixMilli()}
	text := filter.TrimTag(s.Filter.Text)
	if s.Filter.Type == filter.TypeSQL92 {
		sd.ExpressionType, sd.SubString = remoting.ExpressionSQL92, text
		return sd
	}
	if text == "" || text == "*" {
		return sd
	}
	sd.SubString = text
	for tag := range strings.SplitSeq(text, "||") {
		if tag = filter.TrimTag(tag); tag != "" {
			sd.TagsSet = append(sd.TagsSet, tag)
			sd.CodeSet = append(sd.CodeSet, remoting.TagHashCode(tag))
		}
	}
	return sd
}

// heartbeatLoop registers the connected clients' groups with every master
// of the cluster every HeartbeatInterval, and at once when a group
// appears or goes; it also keeps the cluster view fresh and forgets idle
// coalescing lines.
func (b *Broker) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		b.heartbeatRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := b.meta.refreshCluster(ctx); err != nil && ctx.Err() == nil {
				b.log.LogAttrs(ctx, slog.LevelWarn, "reading the cluster's brokers failed", slog.Any("error", err))
			}
			// Idle coalescing lines and cached topics and groups unused for
			// long go, so that those of deleted topics and departed brokers
			// do not pile up; a busy line is kept.
			b.sendLines.Prune()
			b.ackLines.Prune()
			b.meta.prune(b.clock.Now())
		case <-b.kick:
		}
	}
}

// heartbeatRound sends one heartbeat (and the pending unregistrations) to
// every master, to all at once, each call bounded by the request timeout.
// Sent one master after the other, a hung master (one call per group to
// unregister, and the heartbeat, each waiting the request timeout) held
// back the others' heartbeats, and the next round; a master that fails
// a call is now sent nothing more in the round.
func (b *Broker) heartbeatRound(ctx context.Context) {
	ms := b.meta.masters()
	if len(ms) == 0 {
		return // the groups left out meanwhile are unregistered next time
	}
	hb, goneP, goneC := b.heartbeatData()
	bodies, err := b.heartbeatBodies(ctx, hb)
	if err != nil {
		b.log.LogAttrs(ctx, slog.LevelError, "encoding a heartbeat failed", slog.Any("error", err))
		return
	}
	beat := len(hb.ProducerDataSet) != 0 || len(hb.ConsumerDataSet) != 0
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			if ctx.Err() != nil || !b.unregister(ctx, m, goneP, goneC) || !beat {
				return
			}
			for _, body := range bodies {
				if err := b.callPinned(ctx, m.addr, remoting.RequestHeartBeat, &remoting.RPCHeader{}, body); err != nil {
					if ctx.Err() == nil {
						b.failed(m.name, err)
						b.log.LogAttrs(ctx, slog.LevelWarn, "heartbeat to a broker failed; it is retried next round",
							slog.String("broker", m.name), slog.String("broker_addr", m.addr), slog.Any("error", err))
					}
					return
				}
			}
		})
	}
	wg.Wait()
}

// maxHeartbeatBody bounds the body of one HEART_BEAT: the request must fit
// the 16 MiB frame a broker reads, with room for its header.
const maxHeartbeatBody = remoting.DefaultMaxFrameSize - 64<<10

// heartbeatBodies encodes hb as the bodies of one or more HEART_BEATs.
// One heartbeat carries every group of every client of this proxy, so one
// client's settings (many subscriptions with long tag expressions) could
// make it longer than a broker reads: it then failed at every round, and
// no group of any client was registered any more. A broker registers the
// groups each heartbeat names, so the groups are split over heartbeats
// that each fit; a group that cannot fit one alone is left out, logged.
func (b *Broker) heartbeatBodies(ctx context.Context, hb remoting.HeartbeatData) ([][]byte, error) {
	body, err := remoting.EncodeJSONBody(hb)
	if err != nil || len(body) <= maxHeartbeatBody {
		return [][]byte{body}, err
	}
	var bodies [][]byte
	part := remoting.HeartbeatData{ClientID: hb.ClientID}
	size := 0
	flush := func() error {
		if len(part.ProducerDataSet) == 0 && len(part.ConsumerDataSet) == 0 {
			return nil
		}
		body, err := remoting.EncodeJSONBody(part)
		if err != nil {
			return err
		}
		bodies = append(bodies, body)
		part = remoting.HeartbeatData{ClientID: hb.ClientID}
		size = 0
		return nil
	}
	// add counts an entry of n encoded bytes (and its comma) into part,
	// first sending part on when the entry would not fit beside it.
	add := func(n int) (bool, error) {
		const room = 256 // the object around the entries
		if n+1+room > maxHeartbeatBody {
			return false, nil
		}
		if size+n+1+room > maxHeartbeatBody {
			if err := flush(); err != nil {
				return false, err
			}
		}
		size += n + 1
		return true, nil
	}
	for _, p := range hb.ProducerDataSet {
		e, err := remoting.EncodeJSONBody(p)
		if err != nil {
			return nil, err
		}
		if ok, err := add(len(e)); err != nil {
			return nil, err
		} else if ok {
			part.ProducerDataSet = append(part.ProducerDataSet, p)
		}
	}
	for _, c := range hb.ConsumerDataSet {
		e, err := remoting.EncodeJSONBody(c)
		if err != nil {
			return nil, err
		}
		ok, err := add(len(e))
		if err != nil {
			return nil, err
		}
		if !ok {
			b.log.LogAttrs(ctx, slog.LevelError, "a consumer group's subscriptions are too large for a heartbeat (16 MiB): the group is not registered with the brokers",
				slog.String("consumer_group", c.GroupName), slog.Int("subscriptions", len(c.SubscriptionDataSet)), slog.Int("bytes", len(e)))
			continue
		}
		part.ConsumerDataSet = append(part.ConsumerDataSet, c)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return bodies, nil
}

// unregister tells one broker that this proxy no longer has clients in the
// given groups. It stops at a failure that says the broker cannot be
// reached or does not answer (recorded, see [Broker.failed]), reporting
// false: each further call would wait as long.
func (b *Broker) unregister(ctx context.Context, m master, producers, consumers []string) bool {
	send := func(h *remoting.UnregisterClientRequestHeader) bool {
		err := b.callPinned(ctx, m.addr, remoting.RequestUnregisterClient, h, nil)
		if err == nil || ctx.Err() != nil {
			return err == nil
		}
		if transportFailure(err) {
			b.failed(m.name, err)
			b.log.LogAttrs(ctx, slog.LevelWarn, "unregistering a group from a broker failed; it is sent nothing more this round, and expires the groups left",
				slog.String("broker", m.name), slog.String("broker_addr", m.addr), slog.Any("error", err))
			return false
		}
		b.log.LogAttrs(ctx, slog.LevelDebug, "unregistering a group from a broker failed; the broker expires it",
			slog.String("broker", m.name), slog.Any("error", err))
		return true
	}
	for _, p := range producers {
		if !send(&remoting.UnregisterClientRequestHeader{ClientID: b.id, ProducerGroup: p}) {
			return false
		}
	}
	for _, c := range consumers {
		if !send(&remoting.UnregisterClientRequestHeader{ClientID: b.id, ConsumerGroup: c}) {
			return false
		}
	}
	return true
}

// unregisterAll removes every group of this proxy from every broker, on
// shutdown.
func (b *Broker) unregisterAll(ctx context.Context) {
	s := b.clients
	s.mu.Lock()
	producers, consumers := groupsOf(s.clients)
	maps.Copy(producers, s.registeredProducers)
	maps.Copy(consumers, s.registeredConsumers)
	s.mu.Unlock()
	ps := slices.Sorted(maps.Keys(producers))
	cs := slices.Sorted(maps.Keys(consumers))
	if len(ps)+len(cs) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, m := range b.meta.masters() {
		wg.Go(func() { b.unregister(ctx, m, ps, cs) })
	}
	wg.Wait()
}
