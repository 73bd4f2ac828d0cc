package application

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// EndTransaction commits or rolls back a half message, as the producer
// decided (on its own or answering a check-back).
func (m *Messaging) EndTransaction(ctx context.Context, req ports.EndTransactionRequest) error {
	if err := domain.ValidateTopicName(req.Topic); err != nil {
		return err
	}
	if domain.IsBlank(req.TransactionID) {
		return domain.Errorf(domain.ReasonInvalidTransactionID, "transaction id cannot be empty")
	}
	if m.transactions == nil {
		return domain.Errorf(domain.ReasonNotImplemented, "transactions are not supported by this broker")
	}
	if req.Resolution == ports.ResolutionUnknown {
		return nil // nothing to do: the broker checks back later
	}
	return m.transactions.EndTransaction(ctx, req)
}

// Check-back dispatch: the broker hands check-backs to relayTransactionCheck
// from its own goroutine, which must never wait for a client. They queue,
// by topic (a topic is its transactional producers' group), for the
// topic's dispatcher, which gives each to a producer's command channel; a
// channel that does not take it in time (checkSendTimeout; at once for a
// stalled client) is passed over for the next producer. Each topic with
// check-backs waiting has one dispatcher of its own, so a producer that
// reads its stream slowly delays only its own topic's check-backs, never
// another's; there are at most as many dispatchers as places.
//
// The queue has checkQueueLength places in all. One topic may take them
// all while no other needs any, but when they are all taken a check-back
// of a topic holding fewer than the longest lane takes the place of that
// lane's newest check-back: so one topic's backlog (a tenant with many
// unresolved transactions) cannot keep other topics' check-backs out. A
// check-back that gets no place, or loses its place, or finds no producer
// of its topic connected, is dropped, and the broker asks again after its
// check interval.
//
// Only a check-back written to a producer's stream is reported to the
// broker as handed (TransactionCheck.Handed, called by the channel's
// writer through ClientCommand.Written), so a dropped one, also one a
// channel took but whose stream ended before writing it, does not use up
// one of the message's checks where the broker counts only handed
// check-backs (local mode). The dispatchers do not wait for the write.
const (
	checkQueueLength = 1024
	// checkSendTimeout bounds one hand-over to a client's channel (see
	// Config.CheckSendTimeout).
	checkSendTimeout = 3 * time.Second
)

// checkQueue holds the check-backs waiting for dispatch, in one lane per
// topic, and runs the lanes' dispatchers.
type checkQueue struct {
	mu    sync.Mutex
	lanes map[string]*checkLane
	total int // check-backs in all lanes
	// run is set while Run runs: it starts a lane's dispatcher; nil before
	// Run (check-backs wait) and after it.
	run func(topic string, l *checkLane)
	wg  sync.WaitGroup // the running dispatchers
}

// checkLane is one topic's waiting check-backs, oldest first.
type checkLane struct {
	waiting []ports.TransactionCheck
	running bool // its dispatcher runs
}

// push queues c in its topic's lane, taking the newest check-back of the
// longest lane when every place is taken and that lane is longer than c's
// would be. It reports false when c was dropped instead; a check-back that
// lost its place is dropped too, and counted in evicted.
func (q *checkQueue) push(c ports.TransactionCheck) (queued bool, evicted int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lanes == nil {
		q.lanes = map[string]*checkLane{}
	}
	topic := c.Message.Topic
	l := q.lanes[topic]
	mine := 0
	if l != nil {
		mine = len(l.waiting)
	}
	if q.total >= checkQueueLength {
		var longest *checkLane
		for _, o := range q.lanes {
			if longest == nil || len(o.waiting) > len(longest.waiting) {
				longest = o
			}
		}
		if longest == nil || longest == l || len(longest.waiting) <= mine+1 {
			return false, 0
		}
		last := len(longest.waiting) - 1
		longest.waiting[last] = ports.TransactionCheck{}
		longest.waiting = longest.waiting[:last]
		q.total--
		evicted = 1
	}
	if l == nil {
		l = &checkLane{}
		q.lanes[topic] = l
	}
	l.waiting = append(l.waiting, c)
	q.total++
	if q.run != nil {
		q.startLocked(topic, l)
	}
	return true, evicted
}

// startLocked starts the dispatcher of topic's lane l unless it runs;
// q.run must be set.
func (q *checkQueue) startLocked(topic string, l *checkLane) {
	if l.running {
		return
	}
	l.running = true
	q.wg.Add(1)
	go q.run(topic, l)
}

// pop takes the oldest check-back of topic's lane l; when it is empty (or
// dispatch stopped) it ends the lane's dispatcher and reports false.
func (q *checkQueue) pop(topic string, l *checkLane) (ports.TransactionCheck, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(l.waiting) == 0 || q.run == nil {
		l.running = false
		if len(l.waiting) == 0 && q.lanes[topic] == l {
			delete(q.lanes, topic)
		}
		return ports.TransactionCheck{}, false
	}
	c := l.waiting[0]
	l.waiting[0] = ports.TransactionCheck{}
	l.waiting = l.waiting[1:]
	q.total--
	return c, true
}

// queued returns the number of check-backs waiting.
func (q *checkQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.total
}

// relayTransactionCheck queues a broker's check-back of an orphaned
// transaction for its topic's dispatcher; it never blocks. Without a
// connected producer of the topic it drops the check-back at once rather
// than let it take a place in the queue.
func (m *Messaging) relayTransactionCheck(ctx context.Context, c ports.TransactionCheck) {
	if !m.sessions.hasProducerOf(c.Message.Topic) {
		m.log.LogAttrs(ctx, slog.LevelDebug, "no producer connected to resolve an orphaned transaction; the broker will ask again",
			slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID))
		return
	}
	queued, evicted := m.checks.push(c)
	drops := evicted
	if !queued {
		drops++
	}
	for range drops {
		if dropped, ok := m.checkDrops.add(m.clock.Now()); ok {
			m.log.LogAttrs(ctx, slog.LevelWarn, "too many transaction check-backs waiting for producers; dropped, the broker will ask again",
				slog.Int("dropped", dropped), slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID))
		}
	}
}

// dropLog counts dropped check-backs for a warning at most every
// dropLogEvery: a backlog drops thousands a second, one line each would
// flood the log.
type dropLog struct {
	mu      sync.Mutex
	last    time.Time
	dropped int
}

const dropLogEvery = time.Minute

// add counts one drop at now and reports whether to log, with the number
// of drops the line stands for (this one and those not logged before it).
func (d *dropLog) add(now time.Time) (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropped++
	if !d.last.IsZero() && now.Sub(d.last) < dropLogEvery {
		return 0, false
	}
	n := d.dropped
	d.last, d.dropped = now, 0
	return n, true
}

// dispatchChecks runs a dispatcher for every topic with check-backs
// waiting, and for every topic whose check-backs come later, until ctx
// ends; it returns once they have all stopped. Check-backs still waiting
// then stay queued.
func (m *Messaging) dispatchChecks(ctx context.Context) {
	q := &m.checks
	q.mu.Lock()
	q.run = func(topic string, l *checkLane) {
		defer q.wg.Done()
		for {
			c, ok := q.pop(topic, l)
			if !ok {
				return
			}
			m.deliverCheck(ctx, c)
		}
	}
	for topic, l := range q.lanes {
		if len(l.waiting) > 0 {
			q.startLocked(topic, l)
		}
	}
	q.mu.Unlock()
	<-ctx.Done()
	q.mu.Lock()
	q.run = nil
	q.mu.Unlock()
	q.wg.Wait()
}

// deliverCheck gives a check-back to a producer of its topic that has a
// live Telemetry stream on this proxy, taking producers in turn: first
// without waiting, to the first whose queue has room; only when none has,
// to the first that makes room within checkSendTimeout (a stalled client
// refuses at once). The channel tells the broker once it has written it
// (Handed). The producer answers with EndTransaction. Without such a
// producer the broker asks again after its check interval.
func (m *Messaging) deliverCheck(ctx context.Context, c ports.TransactionCheck) {
	producers := m.sessions.producersOf(c.Message.Topic)
	if len(producers) == 0 {
		m.log.LogAttrs(ctx, slog.LevelDebug, "no producer connected to resolve an orphaned transaction; the broker will ask again",
			slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID))
		return
	}
	first := nextTurn(&m.checkTurns, c.Message.Topic)
	msg := c.Message
	cmd := ports.ClientCommand{RecoverTransaction: &msg, Written: c.Handed}
	allowed := make([]bool, len(producers))
	var err error
	for i := range uint64(len(producers)) {
		k := (first + i) % uint64(len(producers))
		p := producers[k]
		if err = m.mayResolve(ctx, p, c.Message.Topic); err != nil {
			continue
		}
		allowed[k] = true
		if err = p.channel.TrySend(cmd); err == nil {
			return
		}
	}
	for i := range uint64(len(producers)) {
		k := (first + i) % uint64(len(producers))
		if !allowed[k] {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, m.cfg.checkSendTimeout())
		err = producers[k].channel.Send(sctx, cmd)
		cancel()
		if err == nil {
			return
		}
	}
	m.log.LogAttrs(ctx, slog.LevelDebug, "no producer took a transaction check-back; the broker will ask again",
		slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID), slog.Int("producers", len(producers)), slog.Any("error", err))
}

// mayResolve authorizes a check-back of topic for producer p as its
// EndTransaction would be (Pub on the topic, from its address), under the
// policy in force now: its settings were authorized when they came, but
// a check-back carries a whole message of the topic, and the producer's
// access may have been revoked since (an ACL entry removed; a deleted or
// disabled user's stream is ended, see [Security.WatchRevocation]). A
// denial is audited (operation RecoverOrphanedTransaction).
func (m *Messaging) mayResolve(ctx context.Context, p producer, topic string) error {
	if m.security == nil || !m.security.Enabled() || p.settings.User == "" {
		return nil
	}
	addr := p.settings.RemoteAddr.Addr()
	if addr.IsValid() {
		addr = addr.Unmap()
	}
	ctx = ports.WithRequestInfo(ctx, ports.RequestInfo{ClientID: p.clientID, RemoteAddr: p.settings.RemoteAddr, Protocol: "grpc"})
	a := domain.AccessRequests{SourceIP: addr}
	a.AddTopic(topic, domain.ActionPub)
	return m.security.Authorize(ctx, Principal{User: domain.User{Name: p.settings.User}}, "RecoverOrphanedTransaction", a.List)
}

// RecallMessage cancels a delay message that has not been delivered yet.
func (m *Messaging) RecallMessage(ctx context.Context, topic, handle string) (string, error) {
	if err := domain.ValidateTopicName(topic); err != nil {
		return "", err
	}
	if m.recaller == nil {
		return "", domain.Errorf(domain.ReasonNotImplemented, "recalling messages is not supported by this broker")
	}
	if m.cfg.Limits.TopicMessageTypeCheck {
		t, err := m.meta.Topic(ctx, topic)
		if err != nil {
			return "", err
		}
		if t.Type != domain.MessageTypeDelay && t.Type != domain.MessageTypeMixed {
			return "", domain.Errorf(domain.ReasonMessageTypeConflict, "topic %q is %s; only messages of DELAY (or MIXED) topics can be recalled", topic, t.Type)
		}
	}
	if domain.IsBlank(handle) {
		return "", domain.Errorf(domain.ReasonBadRequest, "recall handle cannot be blank: pass the recall handle of the send receipt")
	}
	return m.recaller.Recall(ctx, topic, handle)
}
