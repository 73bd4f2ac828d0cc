package application

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// ReceiveRequest is a consumer's request for messages.
type ReceiveRequest struct {
	Group      string
	Topic      string
	BrokerName string // the broker the client targets; empty for any
	// QueueID is the queue of the client's assignment, -1 for any. It is
	// honoured for push consumers of orderly groups, whose queues are shared
	// out by QueryAssignment; others receive from any queue, as upstream.
	QueueID   int32
	Filter    filter.Expression
	BatchSize int32
	// InvisibleTime is the simple consumer's requested invisible duration.
	InvisibleTime time.Duration
	// AutoRenew is set by push consumers: the proxy then chooses the
	// invisible time and renews it until the message is acked.
	AutoRenew bool
	// LongPollingTimeout, when not nil, is the polling time the client asks
	// for; otherwise it is derived from the request deadline.
	LongPollingTimeout *time.Duration
	AttemptID          string
}

// pollReserve is kept between the end of long polling and the client's
// deadline so that an empty answer reaches the client before it gives up.
const pollReserve = 100 * time.Millisecond

// reservingAnswerTime returns the context of a long-polling broker call:
// ctx ending pollReserve before its deadline, if it has one, which leaves
// the answer time to reach the client. cancel releases it.
func reservingAnswerTime(ctx context.Context) (_ context.Context, cancel context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-pollReserve))
	}
	return ctx, func() {}
}

// ReceiveMessage pops messages for a consumer group, long-polling until
// messages come or the polling time ends. An empty result is a
// ReasonMessageNotFound error, as clients expect. ctx carries the client's
// deadline.
func (m *Messaging) ReceiveMessage(ctx context.Context, req ReceiveRequest) ([]domain.StoredMessage, error) {
	info := ports.RequestInfoFrom(ctx)
	settings, known, err := m.sessions.owned(info.ClientID, userOf(ctx))
	if err != nil {
		return nil, m.foreignClient(ctx, "ReceiveMessage", err, func() []domain.AccessRequest { return consumerAccess(ctx, req.Group, req.Topic) })
	}
	if !known {
		// Unknown client, typically after a restart: the request names its
		// group, topic and filter, which is all a receive needs, and the
		// group's stored settings do the rest until the client re-sends its
		// own.
		settings = provisionalConsumer(req)
	}
	polling, err := m.pollingTime(ctx, req, settings, info.ClientVersion)
	if err != nil {
		return nil, err
	}
	if err := domain.ValidateTopicName(req.Topic); err != nil {
		return nil, err
	}
	if err := domain.ValidateGroupName(req.Group); err != nil {
		return nil, err
	}
	autoRenew := req.AutoRenew && m.cfg.Consumer.AutoRenew
	invisible := req.InvisibleTime
	if autoRenew {
		invisible = m.cfg.Consumer.DefaultInvisibleTime
	} else if err := m.checkInvisibleTime(invisible, m.cfg.Consumer.MinInvisibleTime); err != nil {
		return nil, err
	}
	f, err := m.cfg.compileFilter(req.Filter)
	if err != nil {
		return nil, err
	}
	if req.BatchSize < 1 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "batch size must be at least 1, got %d", req.BatchSize)
	}
	batch := min(req.BatchSize, m.cfg.Consumer.MaxBatchSize)
	group, err := m.meta.ConsumerGroup(ctx, req.Group)
	groupFound := err == nil
	if domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
		// The broker has the last word: a RocketMQ broker may create the
		// group on its first pop (autoCreateSubscriptionGroup), and
		// answers CONSUMER_GROUP_NOT_FOUND itself otherwise.
		group, err = domain.NewConsumerGroup(req.Group), nil
	}
	if err != nil {
		return nil, err
	}
	if !known {
		if settings, err = m.sessions.putProvisional(info.ClientID, settings.fromCaller(ctx), false); err != nil {
			return nil, m.foreignClient(ctx, "ReceiveMessage", err, func() []domain.AccessRequest { return consumerAccess(ctx, req.Group, req.Topic) })
		}
	}
	if groupFound && !settings.GroupExists && settings.Subscription != nil && settings.Subscription.Group == req.Group {
		m.sessions.groupExists(info.ClientID, req.Group)
	}
	// Whether the client's settings name this group now: a switch to
	// another group during the poll releases what the poll popped (see
	// holdForRenewal). A receive for a group its settings never named
	// (no official client sends one; the Apache proxy serves it) is served.
	member := m.sessions.consumesFor(info.ClientID, req.Group)
	queueID := int32(-1)
	if req.AutoRenew && group.Orderly && req.QueueID >= 0 {
		queueID = req.QueueID
	}
	if batch, polling, err = m.awaitReceiveRoom(ctx, req.Group, req.Topic, batch, polling); err != nil {
		return nil, err
	}
	// The broker's long poll ends after PollTimeout; the context bounds
	// only how long its answer may take after that. Ending the context with
	// the polling time instead would abandon an answer that arrives a
	// little late (a loaded broker in cluster mode), and the messages it
	// popped would stay invisible for the whole invisible time, then come
	// again as a second delivery attempt.
	popCtx, cancel := reservingAnswerTime(ctx)
	defer cancel()
	msgs, err := m.broker.Pop(popCtx, ports.PopRequest{
		Group:         req.Group,
		Topic:         req.Topic,
		BrokerName:    req.BrokerName,
		QueueID:       queueID,
		MaxMessages:   batch,
		InvisibleTime: invisible,
		PollTimeout:   polling,
		Filter:        f,
		FIFO:          group.Orderly,
		// Simple consumers get runs of a message group, as from the Apache
		// proxy; push consumers one message per group (docs/compatibility.md).
		FIFORuns:  group.Orderly && !req.AutoRenew,
		AttemptID: req.AttemptID,
	})
	if err != nil {
		if ctx.Err() == nil && popCtx.Err() != nil {
			m.log.LogAttrs(ctx, slog.LevelDebug, "the receive's time ended before the broker answered its pop; a late answer is released",
				slog.String("consumer_group", req.Group), slog.String("topic", req.Topic), slog.Any("error", err))
			err = nil // polling time over: no message
		} else {
			return nil, err
		}
	}
	msgs = m.dropExhausted(ctx, req.Group, group.MaxDeliveryAttempts, msgs)
	m.chargeReceived(ctx, req.Group, req.Topic, msgs)
	if len(msgs) == 0 {
		return nil, domain.Errorf(domain.ReasonMessageNotFound, "no new message")
	}
	if autoRenew {
		return m.holdForRenewal(ctx, req.Group, member, msgs)
	}
	return msgs, nil
}

// awaitReceiveRoom waits out the receive rate limits of group and topic
// within the polling time, so that a throttled consumer (receive or pull)
// is slowed down rather than told to poll again; it returns the batch cut to
// the room the limits leave and the polling time left.
func (m *Messaging) awaitReceiveRoom(ctx context.Context, group, topic string, batch int32, polling time.Duration) (int32, time.Duration, error) {
	if m.traffic == nil {
		return batch, polling, nil
	}
	room, waited, err := m.traffic.AwaitReceive(ctx, group, topic, polling)
	if err != nil {
		return 0, 0, err
	}
	if room > 0 {
		batch = min(batch, room)
	}
	return batch, max(polling-waited, 0), nil
}

// chargeReceived charges delivered messages to the receive rate limits.
func (m *Messaging) chargeReceived(ctx context.Context, group, topic string, msgs []domain.StoredMessage) {
	if m.traffic == nil || len(msgs) == 0 {
		return
	}
	var bytes int64
	for i := range msgs {
		bytes += int64(len(msgs[i].Body))
	}
	m.traffic.ChargeReceive(ctx, group, topic, len(msgs), bytes)
}

// holdForRenewal starts renewing the deliveries of an auto-renewing
// receive, which the proxy keeps invisible for as long as the client is
// registered (its session, not its Telemetry stream, which renewal does not
// need: the Go client reopens a broken stream only at its five-minute
// settings sync, and refusing it meanwhile dead-lettered its messages
// unread). The session exists when the pop starts (ReceiveMessage registers
// an unknown client first), so only a client that terminated or expired
// during the long poll is refused, as the Apache proxy refuses a client
// without a channel: its messages are released. So are those of a client
// whose settings named the group when the receive started (member) and
// switched it to another group, or made it a producer, meanwhile.
func (m *Messaging) holdForRenewal(ctx context.Context, group string, member bool, msgs []domain.StoredMessage) ([]domain.StoredMessage, error) {
	clientID := ports.RequestInfoFrom(ctx).ClientID
	for i := range msgs {
		if h, err := domain.ParseReceiptHandle(msgs[i].ReceiptHandle); err == nil {
			m.renewer.track(clientID, group, &msgs[i], h)
		}
	}
	// Checked after tracking: a client removed (or switched to another
	// group) from now on has what it holds released by clientGone (or
	// UpdateSettings), one removed or switched before is seen here.
	if !m.sessions.known(clientID) {
		m.Release(ctx, group, msgs)
		return nil, domain.Errorf(domain.ReasonMessageNotFound, "The client [%s] is disconnected.", clientID)
	}
	if member && !m.sessions.consumesFor(clientID, group) {
		m.Release(ctx, group, msgs)
		return nil, domain.Errorf(domain.ReasonMessageNotFound, "The client [%s] left consumer group %s.", clientID, group)
	}
	return msgs, nil
}

// provisionalRequestTimeout stands for a client's request timeout until
// it declares its own; it is the official clients' default.
const provisionalRequestTimeout = 3 * time.Second

// provisionalConsumer infers a consumer's settings from one of its
// receives: push consumers ask for auto-renewal, simple consumers do not.
func provisionalConsumer(req ReceiveRequest) ClientSettings {
	ct := ClientTypeSimpleConsumer
	if req.AutoRenew {
		ct = ClientTypePushConsumer
	}
	return ClientSettings{
		ClientType:     ct,
		RequestTimeout: provisionalRequestTimeout,
		Subscription:   &SubscriptionSettings{Group: req.Group, Entries: []SubscriptionEntry{{Topic: req.Topic, Filter: req.Filter}}},
	}
}

// pollingTime decides how long a receive may wait, as the Apache proxy
// does: the client's long-polling timeout, or its remaining deadline minus
// half its request timeout, clamped to the configured bounds and to the
// deadline.
func (m *Messaging) pollingTime(ctx context.Context, req ReceiveRequest, s ClientSettings, clientVersion string) (time.Duration, error) {
	c := m.cfg.Consumer
	remaining := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		remaining = dl.Sub(m.clock.Now())
	}
	var polling time.Duration
	switch {
	case req.LongPollingTimeout != nil:
		polling = *req.LongPollingTimeout
	case remaining >= 0:
		polling = remaining - s.RequestTimeout/2
	default:
		polling = c.MaxLongPolling
	}
	polling = max(polling, c.MinLongPolling)
	polling = min(polling, c.MaxLongPolling)
	if remaining >= 0 && polling > remaining {
		if remaining < c.MinLongPolling {
			// Clients older than 5.0.3 do not know ILLEGAL_POLLING_TIME.
			reason := domain.ReasonIllegalPollingTime
			if compareVersions(clientVersion, "5.0.3") < 0 {
				reason = domain.ReasonBadRequest
			}
			return 0, domain.Errorf(reason, "The deadline time remaining is not enough for polling, please check network condition")
		}
		polling = remaining
	}
	return polling, nil
}

// unlimitedInvisibleTime bounds an invisible time when
// consumer.maxInvisibleTime is 0 (no limit): brokers keep a delivery's
// deadline in nanoseconds since 1970, which end in 2262, and a longer one
// wrapped into the past (the message was visible again at once).
const unlimitedInvisibleTime = 100 * 365 * 24 * time.Hour

// checkInvisibleTime enforces [min, consumer.maxInvisibleTime] with the
// Apache proxy's messages; like upstream it compares whole milliseconds.
func (m *Messaging) checkInvisibleTime(d, minimum time.Duration) error {
	maximum := m.cfg.Consumer.MaxInvisibleTime
	if maximum <= 0 {
		maximum = unlimitedInvisibleTime
	}
	if d.Milliseconds() < minimum.Milliseconds() {
		return domain.Errorf(domain.ReasonIllegalInvisibleTime, "the invisibleTime is too small. min is %d", minimum.Milliseconds())
	}
	if d.Milliseconds() > maximum.Milliseconds() {
		return domain.Errorf(domain.ReasonIllegalInvisibleTime, "the invisibleTime is too large. max is %d", maximum.Milliseconds())
	}
	return nil
}

// dropExhausted forwards messages delivered more often than the group
// allows to the dead-letter queue and returns the others.
func (m *Messaging) dropExhausted(ctx context.Context, group string, maxAttempts int32, msgs []domain.StoredMessage) []domain.StoredMessage {
	if maxAttempts <= 0 {
		return msgs
	}
	kept := msgs[:0]
	for _, msg := range msgs {
		if msg.DeliveryAttempt <= maxAttempts {
			kept = append(kept, msg)
			continue
		}
		h, err := domain.ParseReceiptHandle(msg.ReceiptHandle)
		if err == nil {
			err = m.broker.ForwardToDeadLetter(ctx, ports.AckRequest{Group: group, Topic: msg.Topic, MessageID: msg.ID, Handle: h})
		}
		var refused *ports.ForwardRefusedError
		if errors.As(err, &refused) && refused.Err == nil {
			err = nil // nothing to move: the broker has it no more
		}
		if err != nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "forwarding an exhausted message to the dead-letter queue failed; it will be retried",
				slog.String("consumer_group", group), slog.String("msg_id", msg.ID), slog.Any("error", err))
		}
	}
	return kept
}

// Release makes received messages that could not be handed to the client
// visible again soon (after consumer.invisibleTimeOnClear). One whose
// invisible time has ended, or ends by then, is left as it is: it becomes
// visible no later anyway, and a RocketMQ broker asked to change an
// expired checkpoint revives the old one and the new one, delivering the
// message twice.
func (m *Messaging) Release(ctx context.Context, group string, msgs []domain.StoredMessage) {
	info := ports.RequestInfoFrom(ctx)
	reqs := make([]ports.ChangeInvisibleRequest, 0, len(msgs))
	cleared := m.clock.Now().Add(m.cfg.Consumer.InvisibleTimeOnClear)
	for _, msg := range msgs {
		h, err := domain.ParseReceiptHandle(msg.ReceiptHandle)
		if err != nil {
			continue
		}
		h, _ = m.renewer.take(info.ClientID, group, msg.ID, h)
		if h.Expired(cleared) {
			continue
		}
		reqs = append(reqs, ports.ChangeInvisibleRequest{
			AckRequest:    ports.AckRequest{Group: group, Topic: msg.Topic, MessageID: msg.ID, Handle: h},
			InvisibleTime: m.cfg.Consumer.InvisibleTimeOnClear,
			Release:       true,
		})
	}
	if len(reqs) == 0 {
		return
	}
	_, errs := m.broker.ChangeInvisibleBatch(context.WithoutCancel(ctx), reqs)
	for i, err := range errs {
		if err != nil && !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
			m.log.LogAttrs(ctx, slog.LevelWarn, "releasing an undelivered message failed; it becomes visible when its invisible time ends",
				slog.String("consumer_group", group), slog.String("msg_id", reqs[i].MessageID), slog.Any("error", err))
		}
	}
}
