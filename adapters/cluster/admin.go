package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// routeWait bounds how long topic create and update take before they
// answer, waiting for the NameServers to route the topic to every master
// that took it: long enough for a registration held up by a loaded broker
// or NameServer, and short enough that the answer reaches the CLI within
// its 30 s. It counts from the command's start, the broker calls before
// the wait included.
const routeWait = 25 * time.Second

// routeAnswerMargin is how long before the caller's deadline, when the
// caller's context has one sooner than routeWait's end, the wait for the
// route ends: the answer, which says what happened on the brokers, then
// reaches the caller before it gives up.
const routeAnswerMargin = time.Second

// Topic implements [ports.Metadata] from the cached route and topic
// configuration.
func (b *Broker) Topic(ctx context.Context, name string) (domain.Topic, error) {
	e, err := b.meta.topic(ctx, name)
	if err != nil {
		return domain.Topic{}, err
	}
	return e.route.Topic, nil
}

// Route implements [ports.Broker] from the cached NameServer route.
func (b *Broker) Route(ctx context.Context, topic string) (ports.Route, error) {
	e, err := b.meta.topic(ctx, topic)
	if err != nil {
		return ports.Route{}, err
	}
	return e.route, nil
}

// ConsumerGroup implements [ports.Metadata] from the cached group
// configuration of the cluster's first master that answers. Like a
// broker's own lookup it creates the group when the broker auto-creates
// groups (autoCreateSubscriptionGroup).
func (b *Broker) ConsumerGroup(ctx context.Context, name string) (domain.ConsumerGroup, error) {
	return b.meta.consumerGroup(ctx, name)
}

// eachMaster runs f on every master of the cluster at once (f must be
// safe for concurrent use), all of them even when some fail, and joins
// the failures, in the masters' name order. With more than one master,
// the message names each failed broker with its failure (see
// brokerFailures; when every master failed, it named only the first
// failure, without the broker) and, when only some fail, says what the
// others did: for a change (after: what the operator runs once the failed
// brokers answer) that they applied it, for a read (after == "") that
// nothing is shown rather than an incomplete result. Asked one after the other, a hung
// broker held the command up for its whole timeout before the next was
// asked, and when the command's deadline passed meanwhile, the brokers
// after it were not asked at all (as [Broker.everyNameServer] for the
// NameServers).
func (b *Broker) eachMaster(ctx context.Context, after string, f func(m master) error) error {
	ms, err := b.meta.clusterMasters(ctx)
	if err != nil {
		return err
	}
	return b.eachOf(ms, after, f)
}

// eachReader is eachMaster for a read that a slave can answer: a broker
// group whose master is down is asked through its slave (see
// clusterView.readerList) rather than left out of the result unsaid.
func (b *Broker) eachReader(ctx context.Context, f func(m master) error) error {
	ms, err := b.meta.clusterReaders(ctx)
	if err != nil {
		return err
	}
	return b.eachOf(ms, "", f)
}

// eachOf is eachMaster on the brokers ms.
func (b *Broker) eachOf(ms []master, after string, f func(m master) error) error {
	results := atOnce(ms, f)
	var errs []error
	var failed []brokerFailure
	for i, m := range ms {
		if err := results[i]; err != nil {
			b.failed(m.name, err)
			errs = append(errs, fmt.Errorf("broker %s: %w", m.name, err))
			failed = append(failed, brokerFailure{m.name, domain.MessageOf(mapError(err))})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	first := mapError(errs[0])
	if len(ms) == 1 {
		return domain.Wrap(domain.ReasonOf(first), errors.Join(errs...), domain.MessageOf(first))
	}
	msg := fmt.Sprintf("%d of %d brokers failed (%s)", len(errs), len(ms), brokerFailures(failed))
	if len(errs) < len(ms) {
		what := "the others answered, but a result without them would be incomplete; retry once they answer"
		if after != "" {
			what = "the others applied the change; " + after
		}
		msg += "; " + what
	}
	return domain.Wrap(domain.ReasonOf(first), errors.Join(errs...), msg)
}

// brokerFailure is a master's failure of an admin call, as the client is
// told it.
type brokerFailure struct{ broker, msg string }

// The bounds of brokerFailures' text.
const (
	failureMsgBytes    = 500 // of one failure's message (a broker's remark may be a Java stack trace)
	failuresShown      = 5   // distinct failures
	failedBrokersNamed = 8   // brokers named with one failure
)

// brokerFailures says which masters failed with what, in their order: a
// failure several share once, with their names, and its length bounded
// however many masters fail and however long their remarks.
func brokerFailures(failed []brokerFailure) string {
	var msgs []string
	names := map[string][]string{}
	for _, f := range failed {
		if _, ok := names[f.msg]; !ok {
			msgs = append(msgs, f.msg)
		}
		names[f.msg] = append(names[f.msg], f.broker)
	}
	var parts []string
	left := 0
	for i, msg := range msgs {
		if i == failuresShown {
			for _, m := range msgs[i:] {
				left += len(names[m])
			}
			break
		}
		ns := names[msg]
		who := "broker " + ns[0]
		if len(ns) > 1 {
			shown := ns[:min(len(ns), failedBrokersNamed)]
			last := ns[len(shown)-1]
			if len(ns) > len(shown) {
				last = fmt.Sprintf("%d more", len(ns)-len(shown))
			} else {
				shown = shown[:len(shown)-1]
			}
			who = "brokers " + strings.Join(shown, ", ") + " and " + last
		}
		parts = append(parts, who+": "+domain.Clip(msg, failureMsgBytes))
	}
	if left > 0 {
		parts = append(parts, fmt.Sprintf("%d more brokers failed otherwise", left))
	}
	return strings.Join(parts, "; ")
}

// allTopics reads every topic configuration of the cluster's masters. A
// topic several masters have with different queue counts (each made with
// `mqadmin updateTopic -b`) counts the largest: clients are routed to
// every queue of every master, and update, which writes the count it reads
// here to every master, took the queues above the first master's count
// away from the others (their messages unreachable), with or without
// --queues.
func (b *Broker) allTopics(ctx context.Context) (map[string]remoting.TopicConfig, error) {
	all, _, err := b.topicTables(ctx)
	return all, err
}

// topicTables is allTopics, with each master's own table (by broker name).
func (b *Broker) topicTables(ctx context.Context) (map[string]remoting.TopicConfig, map[string]map[string]remoting.TopicConfig, error) {
	return mergedMasterTables(ctx, b, remoting.RequestGetAllTopicConfig, "topic",
		func(w *remoting.TopicConfigWrapper) map[string]remoting.TopicConfig { return w.TopicConfigTable },
		func(kept *remoting.TopicConfig, next remoting.TopicConfig) {
			kept.ReadQueueNums = max(kept.ReadQueueNums, next.ReadQueueNums)
			kept.WriteQueueNums = max(kept.WriteQueueNums, next.WriteQueueNums)
		})
}

// mergedMasterTables asks every master of the cluster for one of its
// name-keyed tables (code returns a JSON body W; table picks the table out
// of it; kind names it in errors) and merges them: a name several masters
// have keeps the entry of the first that has it, to which merge (when not
// nil) adds what the later ones have. It also returns each master's own
// table, by broker name.
func mergedMasterTables[W, V any](ctx context.Context, b *Broker, code remoting.RequestCode, kind string, table func(*W) map[string]V, merge func(kept *V, next V)) (map[string]V, map[string]map[string]V, error) {
	own := map[string]map[string]V{}
	var mu sync.Mutex
	err := b.eachMaster(ctx, "", func(m master) error {
		resp, err := b.call(ctx, m.addr, code, &remoting.RPCHeader{RPC: remoting.RPC{BrokerName: m.name}}, nil)
		if err != nil {
			return err
		}
		var w W
		if err := remoting.DecodeJSONBody(resp.Body, &w); err != nil {
			return domain.Wrap(domain.ReasonBrokerError, err, "the broker's "+kind+" table could not be decoded")
		}
		mu.Lock()
		own[m.name] = table(&w)
		mu.Unlock()
		return nil
	})
	// Merged in the masters' name order (eachMaster's), whatever order
	// they answered in.
	out := map[string]V{}
	for _, name := range slices.Sorted(maps.Keys(own)) {
		for n, v := range own[name] {
			if kept, seen := out[n]; !seen {
				out[n] = v
			} else if merge != nil {
				merge(&kept, v)
				out[n] = kept
			}
		}
	}
	return out, own, err
}

// userTopic reports whether a topic is one users see: theirs and the
// dead-letter topics the brokers create, not RocketMQ's own, retry topics
// or the topics named after a broker or cluster (the cluster's own and its
// reply topic).
func (b *Broker) userTopic(name string, v *clusterView) bool {
	if domain.IsSystemTopic(name) || strings.HasPrefix(name, remoting.RetryGroupTopicPrefix) || domain.ValidateTopicName(name) != nil {
		return false
	}
	if v != nil {
		if _, ok := v.brokers[name]; ok {
			return false
		}
		for _, c := range v.clusters {
			// The broker creates <cluster>_REPLY_TOPIC for request-reply.
			if name == c || name == c+"_"+remoting.ReplyTopicSuffix {
				return false
			}
		}
	}
	return true
}

// brokersOwnTopic refuses the topics list does not show that a name check
// lets through: a consumer group's retry topic (it holds the messages
// waiting to be delivered again, which deleting it would lose) and the
// topics named after a broker or a cluster. Without it, delete removed a
// retry topic that describe said did not exist, and create made a topic
// that list never showed.
func (b *Broker) brokersOwnTopic(ctx context.Context, name string) error {
	if err := domain.ValidateNewTopicName(name); err != nil {
		return err
	}
	v, _ := b.meta.view(ctx)
	if !b.userTopic(name, v) {
		return domain.Errorf(domain.ReasonIllegalTopic,
			"topic %q is named after a broker or a cluster, and the brokers keep it; rmqproxy does not create, change or delete it", name)
	}
	return nil
}

// ListTopics implements [ports.Admin]: the user topics of every master,
// with their descriptions from the NameServers.
func (b *Broker) ListTopics(ctx context.Context) ([]domain.Topic, error) {
	all, err := b.allTopics(ctx)
	if err != nil {
		return nil, err
	}
	v, _ := b.meta.view(ctx)
	entries, err := b.entries(ctx, topicKV, func(n string) bool { _, ok := all[n]; return ok && b.userTopic(n, v) })
	if err != nil {
		return nil, err
	}
	out := make([]domain.Topic, 0, len(all))
	for n, tc := range all {
		if b.userTopic(n, v) {
			tc.TopicName = n
			t := topicOf(&tc)
			e := entries[n]
			t.Description = e.Description
			t.CreatedAt, t.UpdatedAt = e.times()
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b domain.Topic) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// topicExists reports whether a master of the cluster has the topic.
func (b *Broker) topicExists(ctx context.Context, name string) (bool, error) {
	all, err := b.allTopics(ctx)
	if err != nil {
		return false, err
	}
	_, ok := all[name]
	return ok, nil
}

// checkTopicPut runs the checks CreateTopic and UpdateTopic share: it
// gives t read-write permission when it has none, validates it, refuses the
// brokers' own topics and reports whether a master has the topic, with
// each master's topic table.
func (b *Broker) checkTopicPut(ctx context.Context, t *domain.Topic) (exists bool, own map[string]map[string]remoting.TopicConfig, err error) {
	if t.Permission == domain.PermNone {
		t.Permission = domain.PermReadWrite
	}
	if err := t.Validate(); err != nil {
		return false, nil, err
	}
	if err := b.brokersOwnTopic(ctx, t.Name); err != nil {
		return false, nil, err
	}
	own, err = b.topicOnMasters(ctx, t.Name)
	if err != nil {
		return false, nil, err
	}
	return len(own) > 0, own, nil
}

// topicOnMasters reads one topic's configuration from every master
// (GET_TOPIC_CONFIG, which create and update need Get on Topic:T for
// anyway), by broker name, as topicTables has it: the masters that lack it
// are left out. Reading every master's whole topic table instead made each
// create and update cost time in proportion to the topics of the cluster
// (about 1.1 MB to decode per master for 5,000 topics), so that creating
// thousands of topics took time growing with the square of their number.
func (b *Broker) topicOnMasters(ctx context.Context, name string) (map[string]map[string]remoting.TopicConfig, error) {
	own := map[string]map[string]remoting.TopicConfig{}
	var mu sync.Mutex
	err := b.eachMaster(ctx, "", func(m master) error {
		resp, err := b.call(ctx, m.addr, remoting.RequestGetTopicConfig, &remoting.TopicRequestHeader{RPC: remoting.RPC{BrokerName: m.name}, Topic: name}, nil)
		if isCode(err, remoting.ResponseTopicNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var tc remoting.TopicConfig
		if err := remoting.DecodeJSONBody(resp.Body, &tc); err != nil {
			return domain.Wrap(domain.ReasonBrokerError, err, "broker "+m.name+"'s configuration of topic "+name+" could not be decoded")
		}
		mu.Lock()
		own[m.name] = map[string]remoting.TopicConfig{name: tc}
		mu.Unlock()
		return nil
	})
	return own, err
}

// putTopic creates or updates a topic on every master, with its message
// type as the message.type attribute (FIFO topics are also "order"), and
// returns the names of the masters that took it. A master that has the
// topic (own: each master's topic table) keeps its permission, and its
// read and write queue counts unless t has more queues than both: an
// operator drains a broker's upper queues with fewer write than read
// queues (`mqadmin updateTopic -w`), or stops a topic's writes on one
// broker (`mqadmin updateTopicPerm`), and an update of the description or
// type wrote the first master's permission and one count for both over
// that, opening them to producers again.
func (b *Broker) putTopic(ctx context.Context, t domain.Topic, own map[string]map[string]remoting.TopicConfig, after string) ([]string, error) {
	perm := int32(0)
	if t.Permission.Readable() {
		perm |= remoting.PermRead
	}
	if t.Permission.Writable() {
		perm |= remoting.PermWrite
	}
	var took []string
	var mu sync.Mutex
	err := b.eachMaster(ctx, after, func(m master) error {
		h := &remoting.CreateTopicRequestHeader{
			RPC: remoting.RPC{BrokerName: m.name}, Topic: t.Name, DefaultTopic: defaultTopic, ReadQueueNums: t.QueueCount,
			WriteQueueNums: t.QueueCount, Perm: perm, TopicFilterType: "SINGLE_TAG", Order: t.Type == domain.MessageTypeFIFO,
			Attributes: remoting.FormatAttributes(map[string]string{remoting.TopicAttributeMessageType: t.Type.String()})}
		if cur, ok := own[m.name][t.Name]; ok {
			h.Perm, h.TopicSysFlag = cur.Perm, cur.TopicSysFlag
			if max(cur.ReadQueueNums, cur.WriteQueueNums) >= t.QueueCount {
				h.ReadQueueNums, h.WriteQueueNums = cur.ReadQueueNums, cur.WriteQueueNums
			}
		}
		_, err := b.call(ctx, m.addr, remoting.RequestUpdateAndCreateTopic, h, nil)
		if t.Type == domain.MessageTypeMixed && isCode(err, remoting.ResponseInvalidParameter) {
			// A broker refuses MIXED topics unless enableMixedMessageType.
			return domain.Wrap(domain.ReasonBrokerError, err, domain.MessageOf(mapError(err))+
				" (a broker takes MIXED topics only with enableMixedMessageType=true: set it in every broker's configuration,"+
				" or with `mqadmin updateBrokerConfig -c "+b.cfg.ClusterName+" -k enableMixedMessageType -v true`;"+
				" or give the topic the one type its producers send: --type NORMAL, FIFO, DELAY or TRANSACTION)")
		}
		if err == nil {
			mu.Lock()
			took = append(took, m.name)
			mu.Unlock()
		}
		return err
	})
	slices.Sort(took)
	b.meta.invalidateTopic(t.Name)
	return took, err
}

// CreateTopic implements [ports.Admin]: UPDATE_AND_CREATE_TOPIC on every
// master of the cluster, then its description to every NameServer, then a
// wait until the NameServers route it to every master (see awaitRoute), so
// that clients can use it through this instance as soon as the command
// returns. A NameServer that does not take the description leaves the
// topic created: the error says so.
func (b *Broker) CreateTopic(ctx context.Context, t domain.Topic) (domain.Topic, error) {
	start := time.Now()
	exists, own, err := b.checkTopicPut(ctx, &t)
	if err != nil {
		return domain.Topic{}, err
	}
	if exists {
		return domain.Topic{}, domain.Errorf(domain.ReasonAlreadyExists, "topic %q already exists", t.Name)
	}
	took, err := b.putTopic(ctx, t, own, fmt.Sprintf("once they answer, run `rmqproxy topic update %s` with the same options to create it on them too (create would answer that it exists)", t.Name))
	if err != nil {
		return domain.Topic{}, err
	}
	// Also without a description: a topic of the same name deleted by
	// other tools may have left one.
	if err := b.storeEntry(ctx, topicKV, t.Name, entryOf(t.Description, t.CreatedAt, t.UpdatedAt)); err != nil {
		return domain.Topic{}, descriptionFailed(fmt.Sprintf("topic %q was created", t.Name), err,
			storeAgain("topic", t.Name, t.Description))
	}
	if err := b.awaitRoute(ctx, start, t, took, "created"); err != nil {
		return domain.Topic{}, err
	}
	return t, nil
}

// storeAgain says how to store a created topic's or group's description
// on the NameServers that missed it: with the text given, or, for none,
// with an empty one (which clears what a deleted namesake left there and
// stores the times); "--description with the text again" asked for a text
// the operator never gave.
func storeAgain(kind, name, description string) string {
	if description == "" {
		return fmt.Sprintf("once they answer, run `rmqproxy %s update %s --description \"\"` to store it there (an empty one, and its updated time)", kind, name)
	}
	return fmt.Sprintf("once they answer, run `rmqproxy %s update %s --description` with the text again", kind, name)
}

// awaitRoute waits until the NameServers route topic t to every master
// of brokers (those that took it) with t's queue count, and leaves that
// route in the cache: the route clients are served next. A broker answers
// UPDATE_AND_CREATE_TOPIC before its registration of the topic with the
// NameServers is known to have arrived (it waits for them for up to
// registerBrokerTimeoutMills and answers SUCCESS whatever happened), and a
// NameServer that dropped the broker (its connection closed) refuses the
// registration of the one topic until the broker's next full
// registration, every registerNameServerPeriod (30 s by default). The
// route read first after the create was cached for cluster.routeTTL even
// when it named only some of the masters.
//
// Each round reads the route alone; the topic's configuration, which the
// cached entry holds too, is read once, when the route is complete.
// Lookups that fail (no route yet, a NameServer or broker not answering in
// time) are repeated until routeWaitEnd (b.routeWait after start, the
// command's start, or a margin before the caller's deadline); the first
// round runs even when that time is spent already (slow brokers). done
// ("created", "updated") says what happened on the brokers in the error
// then.
func (b *Broker) awaitRoute(ctx context.Context, start time.Time, t domain.Topic, brokers []string, done string) error {
	wctx, cancel := context.WithDeadline(ctx, routeWaitEnd(ctx, start, b.routeWait))
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	rctx := ctx // the first round's
	for {
		lacking := brokers
		e, _, err := b.meta.readRoute(rctx, t.Name)
		if err == nil {
			if lacking = unrouted(e, t.QueueCount, brokers); len(lacking) == 0 {
				// The route again with the configuration, into the cache
				// (a lookup under way joins it rather than caching an
				// older route after it).
				b.meta.invalidateTopic(t.Name)
				if e, err = b.meta.topic(rctx, t.Name); err == nil {
					if lacking = unrouted(e, t.QueueCount, brokers); len(lacking) == 0 {
						return nil
					}
				}
			}
		}
		if err != nil {
			if r := domain.ReasonOf(err); r != domain.ReasonTopicNotFound && r != domain.ReasonUnavailable &&
				r != domain.ReasonTimeout && r != domain.ReasonTooManyRequests {
				return domain.Wrap(r, err, fmt.Sprintf("topic %q was %s on the brokers, but reading its route failed: %s", t.Name, done, domain.MessageOf(err)))
			}
		}
		if wctx.Err() != nil {
			return notRouted(t, done, lacking, err, time.Since(start).Round(100*time.Millisecond))
		}
		select {
		case <-wctx.Done(): // the wait, or the caller's deadline, ran out
			return notRouted(t, done, lacking, err, time.Since(start).Round(100*time.Millisecond))
		case <-tick.C:
		}
		rctx = wctx
	}
}

// routeWaitEnd is when awaitRoute stops waiting: wait after start, or
// routeAnswerMargin before ctx's deadline when that is sooner. The admin
// API's requests carry no deadline (HTTP does not pass on the CLI's 30 s;
// a request's context ends only when the CLI hangs up), so the fixed bound
// is what keeps the answer within the CLI's time; a caller's own deadline
// (one in the process, or a client that sends it) can only shorten it.
func routeWaitEnd(ctx context.Context, start time.Time, wait time.Duration) time.Time {
	end := start.Add(wait)
	if dl, ok := ctx.Deadline(); ok && dl.Add(-routeAnswerMargin).Before(end) {
		end = dl.Add(-routeAnswerMargin)
	}
	return end
}

// unrouted returns the brokers that e does not route t's queueCount queues
// to.
func unrouted(e *topicEntry, queueCount int32, brokers []string) []string {
	var out []string
	for _, name := range brokers {
		n := int32(0)
		for _, q := range e.route.Queues {
			if q.BrokerName == name {
				n++
			}
		}
		if e.masters[name] == "" || n != queueCount {
			out = append(out, name)
		}
	}
	return out
}

// notRouted is awaitRoute's error when the wait ran out: the topic is on
// the brokers, clients cannot use it (or get its old queues) until the
// NameServers route it, and what to check. With no broker lacking (the
// route came complete, but reading it back with the topic's configuration
// failed: lastErr), it says so.
func notRouted(t domain.Topic, done string, lacking []string, lastErr error, waited time.Duration) error {
	if len(lacking) == 0 {
		return domain.Errorf(domain.ReasonTimeout, "topic %q was %s on the brokers and the NameServers route it, but after %v its configuration could not be read back (%s); clients may get the route read before for up to cluster.routeTTL",
			t.Name, done, waited, domain.MessageOf(lastErr))
	}
	which := "broker " + lacking[0]
	if len(lacking) > 1 {
		which = "brokers " + strings.Join(lacking, ", ")
	}
	msg := fmt.Sprintf("topic %q was %s on the brokers, but after %v the NameServers do not route it to %s with its %d queues",
		t.Name, done, waited, which, t.QueueCount)
	if lastErr != nil {
		msg += " (" + domain.MessageOf(lastErr) + ")"
	}
	msg += "; until they do, clients get TOPIC_NOT_FOUND or the queues routed before." +
		" A broker registers a topic with its NameServers when it creates or changes it, and all its topics every registerNameServerPeriod (30 s by default):" +
		" check that every broker's namesrvAddr lists the NameServers of cluster.nameServers and that the brokers reach them (their broker.log says so)"
	return domain.Errorf(domain.ReasonTimeout, "%s", msg)
}

// UpdateTopic implements [ports.Admin] with UPDATE_AND_CREATE_TOPIC on every
// master, then the description (kept or changed) to every NameServer, then
// a wait until the NameServers route the new queue count (see awaitRoute).
func (b *Broker) UpdateTopic(ctx context.Context, t domain.Topic) (domain.Topic, error) {
	start := time.Now()
	exists, own, err := b.checkTopicPut(ctx, &t)
	if err != nil {
		return domain.Topic{}, err
	}
	if !exists {
		return domain.Topic{}, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist; create it with `rmqproxy topic create %s`", t.Name, t.Name)
	}
	took, err := b.putTopic(ctx, t, own, "once they answer, run the command again")
	if err != nil {
		return domain.Topic{}, err
	}
	if err := b.storeEntry(ctx, topicKV, t.Name, entryOf(t.Description, t.CreatedAt, t.UpdatedAt)); err != nil {
		return domain.Topic{}, descriptionFailed(fmt.Sprintf("topic %q was updated", t.Name), err,
			"once they answer, run the command again")
	}
	if err := b.awaitRoute(ctx, start, t, took, "updated"); err != nil {
		return domain.Topic{}, err
	}
	return t, nil
}

// DeleteTopic implements [ports.Admin]: DELETE_TOPIC_IN_BROKER on every
// master, then DELETE_TOPIC_IN_NAMESRV for the cluster on every NameServer
// (each keeps its own route table, and keeps a deleted topic's route until
// it is told), then DELETE_KV_CONFIG of its description on every
// NameServer. A topic no master has any more but a NameServer still
// routes for the cluster (a NameServer that missed an earlier delete) is
// deleted from the NameServers, so that running the command again
// finishes a delete that failed half-way.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if err := b.brokersOwnTopic(ctx, name); err != nil {
		return err
	}
	exists, err := b.topicExists(ctx, name)
	if err != nil {
		return err
	}
	if !exists {
		if !b.routedByAnyNameServer(ctx, name) {
			return domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", name)
		}
	} else {
		err = b.eachMaster(ctx, "once they answer, run the command again", func(m master) error {
			_, err := b.call(ctx, m.addr, remoting.RequestDeleteTopicInBroker, &remoting.TopicRequestHeader{RPC: remoting.RPC{BrokerName: m.name}, Topic: name}, nil)
			return err
		})
		if err != nil {
			return err
		}
	}
	err = b.deleteRoute(ctx, name, fmt.Sprintf("topic %q was deleted from the brokers", name), fmt.Sprintf("once they answer, run `rmqproxy topic delete %s` again", name))
	b.meta.forgetDeletedTopic(name)
	if err != nil {
		return err
	}
	if err := b.storeEntry(ctx, topicKV, name, kvEntry{}); err != nil {
		return descriptionFailed(fmt.Sprintf("topic %q was deleted", name), err,
			"it stays there until a topic of that name is created again, which replaces it")
	}
	return nil
}

// deleteRoute removes a topic's route for the cluster from every
// NameServer (DELETE_TOPIC_IN_NAMESRV), and says which did not take it
// (what: the change that did take effect; advice: how to finish it).
func (b *Broker) deleteRoute(ctx context.Context, name, what, advice string) error {
	err := b.everyNameServer(func(addr string) error {
		resp, err := b.invoke(ctx, addr, remoting.NewRequest(remoting.RequestDeleteTopicInNamesrv,
			remoting.EncodeHeader(&remoting.TopicRequestHeader{Topic: name, ClusterName: b.cfg.ClusterName}), nil))
		if err != nil {
			return err
		}
		return remoting.Expect(resp)
	})
	var se *storeError
	if !errors.As(err, &se) {
		return nil
	}
	return domain.Wrap(domain.ReasonOf(mapError(se.failed[0])), se,
		fmt.Sprintf("%s, but not every NameServer removed the route of %q (%v), so clients asking those NameServers are still routed to it; %s", what, name, se, advice))
}

// routedByAnyNameServer reports whether a NameServer that answers still
// routes a topic to a broker of the cluster; the NameServers are asked at
// once (see [Broker.everyNameServer]).
func (b *Broker) routedByAnyNameServer(ctx context.Context, name string) bool {
	var routed atomic.Bool
	_ = b.everyNameServer(func(addr string) error {
		resp, err := b.invoke(ctx, addr, remoting.NewRequest(remoting.RequestGetRouteinfoByTopic,
			remoting.EncodeHeader(&remoting.GetRouteInfoRequestHeader{Topic: name, AcceptStandardJSONOnly: true}), nil))
		if err != nil || remoting.Expect(resp) != nil {
			return nil
		}
		var rd remoting.TopicRouteData
		if err := remoting.DecodeJSONBody(resp.Body, &rd); err != nil {
			return nil
		}
		if slices.ContainsFunc(rd.BrokerDatas, func(bd remoting.BrokerData) bool { return bd.Cluster == b.cfg.ClusterName }) {
			routed.Store(true)
		}
		return nil
	})
	return routed.Load()
}

// allGroups reads every subscription group of the cluster's masters
// (without creating any, unlike a single-group lookup).
func (b *Broker) allGroups(ctx context.Context) (map[string]remoting.SubscriptionGroupConfig, error) {
	all, _, err := b.groupTables(ctx)
	return all, err
}

// groupTables is allGroups, with each master's own table (by broker name).
// A group several masters have with different settings is shown with the
// first master's that are not a broker's own defaults (brokerDefaults),
// else the first master's: what its consumers are given.
func (b *Broker) groupTables(ctx context.Context) (map[string]remoting.SubscriptionGroupConfig, map[string]map[string]remoting.SubscriptionGroupConfig, error) {
	return mergedMasterTables(ctx, b, remoting.RequestGetAllSubscriptiongroupConfig, "group",
		func(w *remoting.SubscriptionGroupWrapper) map[string]remoting.SubscriptionGroupConfig {
			return w.SubscriptionGroupTable
		}, func(kept *remoting.SubscriptionGroupConfig, next remoting.SubscriptionGroupConfig) {
			// As consumerGroup chooses what consumers are given.
			if brokerDefaults(kept) && !brokerDefaults(&next) {
				*kept = next
			}
		})
}

// ListGroups implements [ports.Admin]: the user groups of every master,
// with their descriptions from the NameServers.
func (b *Broker) ListGroups(ctx context.Context) ([]domain.ConsumerGroup, error) {
	all, err := b.allGroups(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := b.entries(ctx, groupKV, func(n string) bool { _, ok := all[n]; return ok })
	if err != nil {
		return nil, err
	}
	out := make([]domain.ConsumerGroup, 0, len(all))
	for n, sg := range all {
		if domain.IsSystemGroup(n) || domain.ValidateGroupName(n) != nil {
			continue
		}
		sg.GroupName = n
		g := groupOf(&sg)
		e := entries[n]
		g.Description = e.Description
		g.CreatedAt, g.UpdatedAt = e.times()
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b domain.ConsumerGroup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// storableRetryPolicy refuses a retry policy a broker's group
// configuration cannot hold as given: it keeps the times in whole
// milliseconds and an exponential multiplier as a whole number, so a
// multiplier of 1.5 was stored as 2 (and shown so by describe) while the
// command answered with 1.5.
func storableRetryPolicy(g domain.ConsumerGroup) error {
	p := g.RetryPolicy
	whole := func(d time.Duration) bool { return d >= time.Millisecond && d%time.Millisecond == 0 }
	if len(p.Delays) > 0 {
		for _, d := range p.Delays {
			if !whole(d) {
				return domain.Errorf(domain.ReasonBadRequest, "group %q: retry delay %v is not a whole number of milliseconds, which is what the brokers keep", g.Name, d)
			}
		}
		return nil
	}
	if !whole(p.Initial) || !whole(p.Max) {
		return domain.Errorf(domain.ReasonBadRequest, "group %q: exponential retry times %v and %v must be whole numbers of milliseconds, which is what the brokers keep", g.Name, p.Initial, p.Max)
	}
	if p.Multiplier != math.Trunc(p.Multiplier) || p.Multiplier > math.MaxInt32 {
		return domain.Errorf(domain.ReasonBadRequest, "group %q: exponential retry multiplier %v must be a whole number: the brokers keep it as one", g.Name, p.Multiplier)
	}
	return nil
}

// checkGroupPut runs the checks CreateGroup and UpdateGroup share: it
// validates g, refuses a retry policy the brokers cannot hold and
// RocketMQ's own groups (domain.IsSystemGroup), and reports whether a master has the
// group, with each master's group table.
func (b *Broker) checkGroupPut(ctx context.Context, g domain.ConsumerGroup) (exists bool, own map[string]map[string]remoting.SubscriptionGroupConfig, err error) {
	if err := g.Validate(); err != nil {
		return false, nil, err
	}
	if err := storableRetryPolicy(g); err != nil {
		return false, nil, err
	}
	if domain.IsSystemGroup(g.Name) {
		// As delete refuses them: list does not show them, so one created
		// under such a name was never listed, described or deleted.
		return false, nil, domain.Errorf(domain.ReasonIllegalConsumerGroup, "consumer group %q is RocketMQ's own; rmqproxy does not create or change it", g.Name)
	}
	all, own, err := b.groupTables(ctx)
	if err != nil {
		return false, nil, err
	}
	_, exists = all[g.Name]
	return exists, own, nil
}

// putGroup creates or updates a group on every master. A master that has
// the group (own: each master's group table) has its configuration changed in what rmqproxy manages (the
// maximum delivery attempts, orderly, the retry policy) and nothing else:
// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP replaces the whole configuration,
// and written from upstream's defaults an update (of the description
// alone, too) turned back on a group whose consumption an operator had
// stopped (`mqadmin updateSubGroup -s false`), and reset its broadcast
// permission and consume timeout.
func (b *Broker) putGroup(ctx context.Context, g domain.ConsumerGroup, own map[string]map[string]remoting.SubscriptionGroupConfig, after string) error {
	err := b.eachMaster(ctx, after, func(m master) error {
		sg := subscriptionGroupOf(g)
		if cur, ok := own[m.name][g.Name]; ok {
			cur.GroupName, cur.RetryMaxTimes, cur.ConsumeMessageOrderly, cur.GroupRetryPolicy = sg.GroupName, sg.RetryMaxTimes, sg.ConsumeMessageOrderly, sg.GroupRetryPolicy
			// Sent back as stored, the attributes would be read as changes
			// ("+key=value"); left out, the broker keeps them.
			cur.Attributes = nil
			sg = cur
		}
		body, err := remoting.EncodeJSONBody(sg)
		if err != nil {
			return err
		}
		_, err = b.call(ctx, m.addr, remoting.RequestUpdateAndCreateSubscriptiongroup, &remoting.RPCHeader{RPC: remoting.RPC{BrokerName: m.name}}, body)
		return err
	})
	b.meta.forgetGroup(g.Name)
	return err
}

// putGroupDescription stores a group's description (what: "consumer group
// \"g\" was created") on every NameServer.
func (b *Broker) putGroupDescription(ctx context.Context, g domain.ConsumerGroup, what, advice string) error {
	if err := b.storeEntry(ctx, groupKV, g.Name, entryOf(g.Description, g.CreatedAt, g.UpdatedAt)); err != nil {
		return descriptionFailed(what, err, advice)
	}
	return nil
}

// CreateGroup implements [ports.Admin]: UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
// on every master, then its description to every NameServer (also an
// empty one: a group of the same name deleted by other tools may have left
// one). A NameServer that does not take the description leaves the group
// created: the error says so.
func (b *Broker) CreateGroup(ctx context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error) {
	exists, own, err := b.checkGroupPut(ctx, g)
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	if exists {
		return domain.ConsumerGroup{}, domain.Errorf(domain.ReasonAlreadyExists, "consumer group %q already exists", g.Name)
	}
	if err := b.putGroup(ctx, g, own, fmt.Sprintf("once they answer, run `rmqproxy group update %s` with the same options to create it on them too (create would answer that it exists)", g.Name)); err != nil {
		return domain.ConsumerGroup{}, err
	}
	if err := b.putGroupDescription(ctx, g, fmt.Sprintf("consumer group %q was created", g.Name),
		storeAgain("group", g.Name, g.Description)); err != nil {
		return domain.ConsumerGroup{}, err
	}
	return g, nil
}

// UpdateGroup implements [ports.Admin] like CreateGroup.
func (b *Broker) UpdateGroup(ctx context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error) {
	exists, own, err := b.checkGroupPut(ctx, g)
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	if !exists {
		return domain.ConsumerGroup{}, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist; create it with `rmqproxy group create %s`", g.Name, g.Name)
	}
	if err := b.putGroup(ctx, g, own, "once they answer, run the command again"); err != nil {
		return domain.ConsumerGroup{}, err
	}
	if err := b.putGroupDescription(ctx, g, fmt.Sprintf("consumer group %q was updated", g.Name), "once they answer, run the command again"); err != nil {
		return domain.ConsumerGroup{}, err
	}
	return g, nil
}

// DeleteGroup implements [ports.Admin]: DELETE_SUBSCRIPTIONGROUP (with its
// offsets) on every master, then the group's retry topics (see
// [groupRetryTopics]) from every master and NameServer, as upstream's
// `mqadmin deleteSubGroup -c` does, then DELETE_KV_CONFIG of its
// description on every NameServer. Local mode drops a deleted group's
// consumption state, messages waiting for redelivery included; the retry
// topics are that state here, and nothing but this command removes them
// (list leaves them out, topic delete refuses them): left behind, a group
// created again under the name was given the old group's redeliveries.
//
// The dead-letter topic is kept, in both modes: it holds the messages the
// group gave up on, which an operator may still need (upstream deletes it
// too, without a word); the CLI says so. A group no master has any more
// whose retry topics some master or NameServer still has (a delete that
// failed half-way) has them deleted, so that running the command again
// finishes it.
func (b *Broker) DeleteGroup(ctx context.Context, name string) error {
	if domain.IsSystemGroup(name) {
		// list does not show them; the brokers' own tools use them.
		return domain.Errorf(domain.ReasonIllegalConsumerGroup, "consumer group %q is RocketMQ's own; rmqproxy does not delete it", name)
	}
	all, err := b.allGroups(ctx)
	if err != nil {
		return err
	}
	topics, err := b.allTopics(ctx)
	if err != nil {
		return err
	}
	retry := groupRetryTopics(name, topics, all)
	if plain := remoting.RetryGroupTopicPrefix + name; !slices.Contains(retry, plain) {
		// A route no master backs any more: a NameServer that missed an
		// earlier delete. One a master still has was left out above
		// (another group may own it), and is routed like any live topic.
		if _, onMaster := topics[plain]; !onMaster && b.routedByAnyNameServer(ctx, plain) {
			retry = append(retry, plain)
		}
	}
	_, exists := all[name]
	if !exists && len(retry) == 0 {
		return domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist", name)
	}
	if exists {
		err = b.eachMaster(ctx, "once they answer, run the command again", func(m master) error {
			_, err := b.call(ctx, m.addr, remoting.RequestDeleteSubscriptiongroup,
				&remoting.DeleteSubscriptionGroupRequestHeader{RPC: remoting.RPC{BrokerName: m.name}, GroupName: name, CleanOffset: true}, nil)
			return err
		})
		b.meta.forgetGroup(name)
		if err != nil {
			return err
		}
	}
	if err := b.deleteRetryTopics(ctx, name, retry); err != nil {
		return err
	}
	if err := b.storeEntry(ctx, groupKV, name, kvEntry{}); err != nil {
		return descriptionFailed(fmt.Sprintf("consumer group %q was deleted", name), err,
			"it stays there until a group of that name is created again, which replaces it")
	}
	return nil
}

// deleteRetryTopics deletes a deleted group's retry topics from every
// master (DELETE_TOPIC_IN_BROKER) and their routes from every NameServer.
// A failure names the topic and the brokers or NameServers that did not
// take it, and says that the group itself is deleted.
func (b *Broker) deleteRetryTopics(ctx context.Context, group string, topics []string) error {
	what := fmt.Sprintf("consumer group %q was deleted", group)
	again := fmt.Sprintf("once they answer, run `rmqproxy group delete %s` again to delete it", group)
	for _, t := range topics {
		err := b.eachMaster(ctx, again, func(m master) error {
			_, err := b.call(ctx, m.addr, remoting.RequestDeleteTopicInBroker, &remoting.TopicRequestHeader{RPC: remoting.RPC{BrokerName: m.name}, Topic: t}, nil)
			return err
		})
		if err != nil {
			b.meta.forgetDeletedTopic(t)
			msg := domain.MessageOf(err)
			if !strings.HasSuffix(msg, again) { // every broker failed
				msg += "; " + again
			}
			return domain.Wrap(domain.ReasonOf(err), err, fmt.Sprintf("%s, but its retry topic %q (the messages waiting to be delivered again) was not deleted from every broker: %s", what, t, msg))
		}
		err = b.deleteRoute(ctx, t, fmt.Sprintf("%s, and its retry topic %q from the brokers", what, t), again)
		b.meta.forgetDeletedTopic(t)
		if err != nil {
			return err
		}
	}
	return nil
}

// groupRetryTopics returns the retry topics of group among a cluster's
// topics, sorted: %RETRY%group (what a broker creates when a consumer of
// the group registers, and where pushed-back messages wait), and the pop
// retry topics a broker creates per subscribed topic, %RETRY%group+topic
// (unambiguous: '+' is in no group or topic name) and %RETRY%group_topic,
// which counts only when topic exists. Upstream's naming is ambiguous ('_'
// is allowed in group and topic names: %RETRY%a_b is group a_b's and, with
// a topic b, group a's), so a name another group of the cluster could own
// too is left out: deleting a group never deletes another group's retry
// topic.
func groupRetryTopics(group string, topics map[string]remoting.TopicConfig, groups map[string]remoting.SubscriptionGroupConfig) []string {
	owns := func(g, r string) bool {
		rest, ok := strings.CutPrefix(r, remoting.RetryGroupTopicPrefix+g)
		if !ok {
			return false
		}
		if rest == "" || strings.HasPrefix(rest, "+") {
			return true
		}
		t, ok := strings.CutPrefix(rest, "_")
		if !ok {
			return false
		}
		_, exists := topics[t]
		return exists && !strings.HasPrefix(t, remoting.RetryGroupTopicPrefix)
	}
	var out []string
	for r := range topics {
		if !owns(group, r) {
			continue
		}
		shared := false
		if !strings.HasPrefix(r, remoting.RetryGroupTopicPrefix+group+"+") {
			for g := range groups {
				if g != group && owns(g, r) {
					shared = true
					break
				}
			}
		}
		if !shared {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// GroupStats implements [ports.Admin] with GET_CONSUME_STATS on every
// master: per queue (named with its broker, sorted by topic, broker and
// queue id), the broker's end offset and the group's consumer offset. A broker commits a pop consumer's offset when it delivers the
// messages, not when they are acked, and counts what is in flight only in
// its metrics (its pullOffset, upstream's "#Inflight" pullOffset −
// consumerOffset, stays at the consumer offset: measured on 5.5.0), so
// InFlightUnknown is set, AckOffset is the delivered offset and
// Consumable counts the messages never delivered. The group's retry topics
// (where the broker revives what was not acked in time) are rows of their
// own, under the broker's names: what waits there for redelivery is part of
// the backlog. An orderly group's consumer offset moves when messages are
// acked (its pops leave it at the first one not acked), so its rows are
// InFlightInConsumable: AckOffset is the ack offset, and Consumable counts
// the messages in flight too.
func (b *Broker) GroupStats(ctx context.Context, group string) ([]ports.QueueStats, error) {
	all, err := b.allGroups(ctx)
	if err != nil {
		return nil, err
	}
	cfg, ok := all[group]
	if !ok {
		return nil, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist", group)
	}
	var out []ports.QueueStats
	var mu sync.Mutex
	err = b.eachReader(ctx, func(m master) error {
		cs, err := b.consumeStats(ctx, m.name, m.addr, group, "")
		if isCode(err, remoting.ResponseSubscriptionGroupNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for k, o := range cs.OffsetTable {
			mq, err := remoting.ParseMessageQueueKey(k)
			if err != nil {
				continue
			}
			consumed := max(o.ConsumerOffset, 0)
			broker := mq.BrokerName
			if broker == "" {
				broker = m.name
			}
			q := ports.QueueStats{Topic: mq.Topic, Broker: broker, QueueID: mq.QueueID, MaxOffset: o.BrokerOffset,
				AckOffset: consumed, Consumable: max(o.BrokerOffset-consumed, 0), InFlightUnknown: true,
				InFlightInConsumable: cfg.ConsumeMessageOrderly}
			if o.LastTimestamp > 0 { // the store time below the consumer offset
				q.ConsumedUpTo = time.UnixMilli(o.LastTimestamp)
			}
			out = append(out, q)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b ports.QueueStats) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		if c := strings.Compare(a.Broker, b.Broker); c != 0 {
			return c
		}
		return int(a.QueueID - b.QueueID)
	})
	return out, err
}

// ResetOffset implements [ports.Admin] with INVOKE_BROKER_TO_RESET_OFFSET
// to each master holding queues of the topic, as mqadmin resetOffsetByTime
// does against a 5.x broker: the broker (useServerSideResetOffset, on by
// default) searches each queue's offset by store time itself (timestamp 0
// for the first message stored, -1 for the queue's end), records it as the
// group's reset offset (ConsumerOffsetManager.assignResetOffset), which
// its next pop of the queue takes (and a pull consumer's next offset
// query), clears the queue's pop in-flight count and answers the new
// offsets. The old offsets are the group's consumer offsets read before
// (GET_CONSUME_STATS; 0 for a queue the broker keeps none for). What the
// broker keeps apart is not reset: messages in flight (their acks are
// taken, and what is not acked comes back from the group's retry topic)
// and that retry topic (see docs/compatibility.md).
func (b *Broker) ResetOffset(ctx context.Context, req ports.ResetOffsetRequest) ([]ports.OffsetReset, error) {
	groups, err := b.allGroups(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := groups[req.Group]; !ok {
		return nil, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist", req.Group)
	}
	var ts int64
	switch req.Policy {
	case ports.OffsetBeginning:
	case ports.OffsetEnd:
		ts = -1
	case ports.OffsetTimestamp:
		ts = max(req.At.UnixMilli(), 0)
	default:
		return nil, domain.Errorf(domain.ReasonBadRequest, "unknown offset policy %d", req.Policy)
	}
	b.meta.invalidateTopic(req.Topic) // the queues as they are now
	e, err := b.meta.topic(ctx, req.Topic)
	if err != nil {
		return nil, err
	}
	queues := map[string]int{}
	for _, q := range e.route.Queues {
		if q.Permission.Readable() && (req.QueueID < 0 || q.QueueID == req.QueueID) {
			queues[q.BrokerName]++
		}
	}
	if len(queues) == 0 {
		perBroker := map[string]int{}
		for _, q := range e.route.Queues {
			perBroker[q.BrokerName]++
		}
		var counts []string
		for name, n := range perBroker {
			counts = append(counts, fmt.Sprintf("%s %d", name, n))
		}
		slices.Sort(counts)
		return nil, domain.Errorf(domain.ReasonBadRequest, "topic %q has no readable queue %d (queues per broker: %s)", req.Topic, req.QueueID, strings.Join(counts, ", "))
	}
	names := slices.Sorted(maps.Keys(queues))
	var out []ports.OffsetReset
	for _, name := range names {
		addr, err := e.addr(name)
		if err != nil {
			return out, err
		}
		rs, err := b.resetOnBroker(ctx, name, addr, req, ts)
		if err != nil {
			return out, fmt.Errorf("broker %s: %w", name, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// resetOnBroker resets the group's offsets on one master's queues of the
// topic and returns them, sorted by queue id.
func (b *Broker) resetOnBroker(ctx context.Context, name, addr string, req ports.ResetOffsetRequest, ts int64) ([]ports.OffsetReset, error) {
	old := map[int32]int64{}
	cs, err := b.consumeStats(ctx, name, addr, req.Group, req.Topic)
	switch {
	case isCode(err, remoting.ResponseSubscriptionGroupNotExist), isCode(err, remoting.ResponseConsumerNotOnline):
	case err != nil:
		return nil, mapError(err)
	default:
		for k, o := range cs.OffsetTable {
			if mq, err := remoting.ParseMessageQueueKey(k); err == nil && mq.Topic == req.Topic {
				old[mq.QueueID] = max(o.ConsumerOffset, 0)
			}
		}
	}
	h := &remoting.ResetOffsetRequestHeader{RPC: remoting.RPC{BrokerName: name}, Topic: req.Topic, Group: req.Group, QueueID: max(req.QueueID, -1),
		Timestamp: ts, Force: true}
	resp, err := b.call(ctx, addr, remoting.RequestInvokeBrokerToResetOffset, h, nil)
	if err != nil {
		return nil, mapError(err)
	}
	var body remoting.ResetOffsetBody
	if err := remoting.DecodeJSONBody(resp.Body, &body); err != nil {
		return nil, domain.Wrap(domain.ReasonBrokerError, err, "the broker's answer to the offset reset could not be decoded")
	}
	var out []ports.OffsetReset
	for k, off := range body.OffsetTable {
		mq, err := remoting.ParseMessageQueueKey(k)
		if err != nil || mq.Topic != req.Topic || (req.QueueID >= 0 && mq.QueueID != req.QueueID) {
			continue
		}
		out = append(out, ports.OffsetReset{Broker: name, QueueID: mq.QueueID, OldOffset: old[mq.QueueID], NewOffset: off})
	}
	slices.SortFunc(out, func(a, b ports.OffsetReset) int { return int(a.QueueID - b.QueueID) })
	b.log.InfoContext(ctx, "consumer offsets reset on a broker", "broker", name, "consumer_group", req.Group, "topic", req.Topic, "queues", len(out))
	return out, nil
}

// consumeStats reads GET_CONSUME_STATS of a group (of one topic, or of
// every topic with topic "") from one master. The call's error is
// returned as it came, for the caller to tell a group the broker does not
// know from a failure.
func (b *Broker) consumeStats(ctx context.Context, name, addr, group, topic string) (*remoting.ConsumeStats, error) {
	resp, err := b.call(ctx, addr, remoting.RequestGetConsumeStats,
		&remoting.GetConsumeStatsRequestHeader{RPC: remoting.RPC{BrokerName: name}, ConsumerGroup: group, Topic: topic}, nil)
	if err != nil {
		return nil, err
	}
	var cs remoting.ConsumeStats
	if err := remoting.DecodeJSONBody(resp.Body, &cs); err != nil {
		return nil, domain.Wrap(domain.ReasonBrokerError, err, "the broker's consume stats could not be decoded")
	}
	return &cs, nil
}
