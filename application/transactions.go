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
// from its own goroutine, which must never wait for a client. They queue
// (up to checkQueueLength; beyond, or when no producer of the topic is
// connected, a check-back is dropped and the broker asks again after its
// check interval) for checkWorkers workers, which give each to a producer's
// command channel; a channel that does not take it at once (a stalled
// client) is passed over for the next producer. Only a check-back written
// to a producer's stream is reported to the broker as handed
// (TransactionCheck.Handed, called by the channel's writer through
// ClientCommand.Written), so a dropped one, also one a channel took but
// whose stream ended before writing it, does not use up one of the
// message's checks. The workers do not wait for the write.
const (
	checkQueueLength = 1024
	checkWorkers     = 4
	// checkSendTimeout bounds one hand-over to a client's channel.
	checkSendTimeout = 3 * time.Second
)

// relayTransactionCheck queues a broker's check-back of an orphaned
// transaction for the dispatch workers; it never blocks. Without a
// connected producer of the topic it drops the check-back at once rather
// than let it take a place in the queue.
func (m *Messaging) relayTransactionCheck(ctx context.Context, c ports.TransactionCheck) {
	if !m.sessions.hasProducerOf(c.Message.Topic) {
		m.log.LogAttrs(ctx, slog.LevelDebug, "no producer connected to resolve an orphaned transaction; the broker will ask again",
			slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID))
		return
	}
	select {
	case m.checks <- c:
	default:
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

// dispatchChecks hands queued check-backs to producers until ctx ends.
func (m *Messaging) dispatchChecks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-m.checks:
			m.deliverCheck(ctx, c)
		}
	}
}

// deliverCheck gives a check-back to a producer of its topic that has a
// live Telemetry stream on this proxy, taking producers in turn and passing
// over those whose channel does not take it; the channel tells the broker
// once it has written it (Handed). The producer answers with
// EndTransaction. Without such a producer the broker asks again after its
// check interval.
func (m *Messaging) deliverCheck(ctx context.Context, c ports.TransactionCheck) {
	producers := m.sessions.producersOf(c.Message.Topic)
	if len(producers) == 0 {
		m.log.LogAttrs(ctx, slog.LevelDebug, "no producer connected to resolve an orphaned transaction; the broker will ask again",
			slog.String("topic", c.Message.Topic), slog.String("msg_id", c.Message.ID))
		return
	}
	first := nextTurn(&m.checkTurns, c.Message.Topic)
	msg := c.Message
	var err error
	for i := range uint64(len(producers)) {
		p := producers[(first+i)%uint64(len(producers))]
		if err = m.mayResolve(ctx, p, c.Message.Topic); err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, checkSendTimeout)
		err = p.channel.Send(sctx, ports.ClientCommand{RecoverTransaction: &msg, Written: c.Handed})
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
