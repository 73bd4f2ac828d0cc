package localbroker

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

var (
	_ ports.Broker   = (*Engine)(nil)
	_ ports.Metadata = (*Engine)(nil)
	_ ports.Admin    = (*Engine)(nil)
)

// minStorableTime and maxStorableTime are the earliest and latest times
// records can hold (Unix nanoseconds); a time outside would wrap around.
var (
	minStorableTime = time.Unix(0, math.MinInt64)
	maxStorableTime = time.Unix(0, math.MaxInt64-1)
)

// maxScanPerQueue bounds how many new messages one pop examines per queue,
// so a long run of filtered-out messages cannot stall other callers.
const maxScanPerQueue = 1024

func (e *Engine) checkOpenLocked() error {
	if e.state != stateOpen {
		return unavailable()
	}
	return nil
}

// openTopicLocked checks that the engine is open and returns the topic (see
// topicLocked).
func (e *Engine) openTopicLocked(ctx context.Context, name string, create bool) (*topicMeta, error) {
	if err := e.checkOpenLocked(); err != nil {
		return nil, err
	}
	return e.topicLocked(ctx, name, create)
}

// ioError maps a commit-log failure to a domain error.
func ioError(err error, what string) error {
	switch {
	case errors.Is(err, commitlog.ErrClosed):
		return domain.Wrap(domain.ReasonUnavailable, err, "the local broker is shutting down; retry")
	case errors.Is(err, commitlog.ErrTooLarge):
		return domain.Wrap(domain.ReasonBodyTooLarge, err, what+": the record exceeds maxRecordSize; send fewer or smaller messages")
	}
	if de := storageError(err, what); de != nil {
		return de
	}
	return domain.Wrap(domain.ReasonInternal, err, what)
}

// waitDurable waits for the record ending at end to be stored per the flush
// policy. When ctx ends first the record is still stored: the caller just
// stops waiting, as with a RocketMQ flush timeout.
func (e *Engine) waitDurable(ctx context.Context, end int64, what string) error {
	if h := e.hooks.Durable; h != nil {
		if done := h(ctx); done != nil {
			err := e.waitDurableUnobserved(ctx, end, what)
			done(err)
			return err
		}
	}
	return e.waitDurableUnobserved(ctx, end, what)
}

func (e *Engine) waitDurableUnobserved(ctx context.Context, end int64, what string) error {
	if err := e.clog.Wait(ctx, end); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return domain.Wrap(domain.ReasonPersistenceTimeout, err, what+" was written but not confirmed durable before the request ended; it will be stored unless the machine fails now")
		}
		return ioError(err, what+" failed")
	}
	return nil
}

// Route returns the queues of a topic. Every route of one topic definition
// shares its queues (read-only, as ports.Broker says): a send asks for one.
func (e *Engine) Route(ctx context.Context, topic string) (ports.Route, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.openTopicLocked(ctx, topic, true)
	if err != nil {
		return ports.Route{}, err
	}
	if t.route == nil {
		// Built once per topicMeta: a topic change puts a new one in
		// e.topics, none is modified.
		t.route = make([]ports.RouteQueue, t.QueueCount)
		for i := range t.route {
			t.route[i] = ports.RouteQueue{BrokerName: e.cfg.BrokerName, QueueID: int32(i), Permission: t.Permission}
		}
	}
	return ports.Route{Topic: t.Topic, Queues: t.route}, nil
}

// Send stores msgs in queue q atomically (one record, consecutive queue
// offsets) and returns once they are durable per the flush policy.
func (e *Engine) Send(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	if h := e.hooks.Send; h != nil {
		if sctx, done := h(ctx, len(msgs)); done != nil {
			r, err := e.send(sctx, q, msgs)
			done(err)
			return r, err
		}
	}
	return e.send(ctx, q, msgs)
}

func (e *Engine) send(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	if len(msgs) == 0 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "no message to send")
	}
	// One send is one record, and replay must be able to decode every
	// record appended (a record it refuses stops the engine and every
	// later start).
	if len(msgs) > record.MaxBatchMessages {
		return nil, domain.Errorf(domain.ReasonBadRequest, "a send of %d messages: the local broker stores at most %d messages in one send; send them in several", len(msgs), record.MaxBatchMessages)
	}
	now := e.clock.Now()
	txns, timers := 0, 0
	for i := range msgs {
		m := &msgs[i]
		if len(m.Keys) > record.MaxBatchMessages || len(m.Properties) > record.MaxBatchMessages {
			return nil, domain.Errorf(domain.ReasonPropertiesTooLarge, "message %d has %d keys and %d properties: the local broker stores at most %d of each", i, len(m.Keys), len(m.Properties), record.MaxBatchMessages)
		}
		if m.Topic != q.Topic {
			return nil, domain.Errorf(domain.ReasonMessageCorrupted, "message %d is for topic %q but the batch is sent to topic %q; all messages of one send must share the queue's topic", i, m.Topic, q.Topic)
		}
		if m.DeliverAt.After(maxStorableTime) {
			return nil, domain.Errorf(domain.ReasonIllegalDeliveryTime, "delivery time %s of message %d is beyond what the local broker can store (year 2262)", m.DeliverAt.UTC().Format(time.RFC3339), i)
		}
		if !m.DeliverAt.IsZero() && m.DeliverAt.Before(minStorableTime) {
			return nil, domain.Errorf(domain.ReasonIllegalDeliveryTime, "delivery time %s of message %d is before what the local broker can store (year 1677)", m.DeliverAt.UTC().Format(time.RFC3339), i)
		}
		// The protocol's born times run to 9999 (domain.InMessageTimeRange)
		// and validation refused those before 1970.
		if m.BornAt.After(maxStorableTime) {
			return nil, domain.Errorf(domain.ReasonBadRequest, "born time %s of message %d is beyond what the local broker can store (year 2262)", m.BornAt.UTC().Format(time.RFC3339), i)
		}
		switch {
		case m.Transactional:
			txns++
		case m.DeliverAt.After(now.Add(timerTick)):
			timers++
		}
	}
	if txns > 0 && txns < len(msgs) {
		return nil, domain.Errorf(domain.ReasonBadRequest, "%d of the %d messages of this send are transactional; send transactional messages apart from other messages", txns, len(msgs))
	}
	// Half messages and delay messages not yet due are stored deferred: in
	// the log but in no queue until committed or due. A batch is stored in
	// one record, so one such message defers the whole batch (its messages
	// without a future delivery time are due at once).
	deferred := txns > 0 || timers > 0
	if err := e.waitRoom(ctx, msgs); err != nil {
		return nil, err
	}
	e.mu.Lock()
	t, err := e.openTopicLocked(ctx, q.Topic, true)
	if err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if err := e.checkQueueRefLocked(t, q.BrokerName, q.QueueID); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if !t.Permission.Writable() {
		e.mu.Unlock()
		return nil, domain.Errorf(domain.ReasonForbidden, "topic %q is not writable (permission %d)", t.Name, t.Permission)
	}
	// The topic's message type is not checked here: the application does
	// when messaging.limits.topicMessageTypeCheck says so (as a RocketMQ
	// broker stores any type, and the Apache proxy checks per its
	// enableTopicMessageTypeCheck); the engine stores every type alike.
	// The batch's messages go in room the engine keeps (taken while in
	// use), emptied once the record is encoded so that it keeps no body.
	b := record.Batch{Topic: t.Name, QueueID: q.QueueID, QueueOffset: -1, Messages: slices.Grow(e.sendMsgs[:0], len(msgs))[:len(msgs)]}
	e.sendMsgs = nil
	if !deferred {
		// A deferred batch enters no queue (replay does not create one for
		// it either): the queue is created by the first message stored in it.
		b.QueueOffset = e.queueLocked(t.Name, q.QueueID).count
	}
	for i := range msgs {
		b.Messages[i] = record.Message{Message: msgs[i], StoredAt: now}
		if msgs[i].BornAt.IsZero() {
			// A RocketMQ broker records the sender's clock reading (the
			// proxy's, for a client that sent no born time), which
			// consumers get as the born time.
			b.Messages[i].BornAt = now
		}
	}
	first := b.QueueOffset
	var oneLoc [1]record.Location // a one-message send's, without allocating
	locs := oneLoc[:0]
	off, end, err := e.appendApplyCheckedLocked(record.TypeMessageBatch, func(dst []byte) []byte {
		var p []byte
		p, locs = record.AppendBatchLocs(dst, &b, locs)
		return p
	}, func() error { return e.checkCopiesFit(msgs, locs) }, true)
	clear(b.Messages)
	if cap(b.Messages) <= maxReusedSendMessages {
		e.sendMsgs = b.Messages[:0]
	}
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if h := e.hooks.TimerAdded; h != nil && timers > 0 {
		for i := range msgs {
			if m := &msgs[i]; !m.Transactional && m.DeliverAt.After(now.Add(timerTick)) {
				born := m.BornAt
				if born.IsZero() {
					born = now // as stored
				}
				h(t.Name, m.DeliverAt.Sub(born))
			}
		}
	}
	if err := e.waitDurable(ctx, end, "the send"); err != nil {
		return nil, err
	}
	out := make([]domain.SendReceipt, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		origin := off + commitlog.PayloadStart + int64(locs[i].Pos)
		r := domain.SendReceipt{MessageID: m.ID, QueueID: q.QueueID, QueueOffset: first + int64(i)}
		if deferred {
			// Not in the queue yet: the offset is known once the message
			// is committed or due.
			r.QueueOffset = -1
		}
		switch {
		case m.Transactional:
			r.TransactionID = e.transactionID(origin)
		case m.DeliverAt.After(now.Add(timerTick)):
			// Only a message kept for its delivery time can be recalled:
			// one due already is stored as a normal message, without a
			// recall handle, as a RocketMQ broker stores a timer message
			// whose time has come (HookUtils.transformTimerMessage).
			r.RecallHandle = encodeRecallHandle(t.Name, e.cfg.BrokerName, m.DeliverAt.UnixMilli(), m.ID, origin)
		}
		out[i] = r
	}
	return out, nil
}

// checkCopiesFit refuses a send with a message whose copy would not fit in
// one record: the record of its dead-letter move, of its timer firing or of
// its transaction commit adds up to record.CopyHeadroom bytes to it, and an
// append that fails for size later would leave the message stuck (a commit
// refused, a dead-letter move retried for ever, a due timer holding up
// every later one).
func (e *Engine) checkCopiesFit(msgs []domain.Message, locs []record.Location) error {
	for i, loc := range locs {
		if need := int64(loc.Size+record.CopyHeadroom(msgs[i].ID)) + 1; need > e.cfg.MaxRecordSize {
			return domain.Errorf(domain.ReasonBodyTooLarge,
				"message %d of this send takes %d bytes stored; with the %d bytes its dead-letter or delivery copy may add, that exceeds local.maxRecordSize (%d): send a smaller message or raise local.maxRecordSize",
				i, loc.Size, need-1-int64(loc.Size), e.cfg.MaxRecordSize)
		}
	}
	return nil
}

// checkQueueRefLocked checks a queue a client names: broker empty, this
// broker's name, or a name local.brokerName had before in this data
// directory (a client's route from before a rename; see loadBrokerNames),
// and a queue id of t.
func (e *Engine) checkQueueRefLocked(t *topicMeta, broker string, qid int32) error {
	if broker != "" && broker != e.cfg.BrokerName && !e.formerNames[broker] {
		return domain.Errorf(domain.ReasonBadRequest, "queue is on broker %q but this is the local broker %q; query the route again", broker, e.cfg.BrokerName)
	}
	if qid < 0 || qid >= t.QueueCount {
		return domain.Errorf(domain.ReasonBadRequest, "topic %q has queues 0..%d; queue %d does not exist (query the route again)", t.Name, t.QueueCount-1, qid)
	}
	return nil
}

// maxReusedSendMessages bounds the room for a send's messages kept between
// sends (see send).
const maxReusedSendMessages = 1024

// maxReusedEncodeBuf bounds the encoding buffer kept between records, so
// that one large batch does not pin its size.
const maxReusedEncodeBuf = 1 << 20

// appendApplyLocked encodes a record, appends it to the log and applies it
// to the in-memory state, all under mu so that log order equals apply order.
func (e *Engine) appendApplyLocked(typ record.Type, encode func([]byte) []byte, durable bool) (off, end int64, err error) {
	return e.appendApplyCheckedLocked(typ, encode, nil, durable)
}

// appendApplyCheckedLocked is appendApplyLocked with a check that runs once
// the record is encoded and may still refuse it (nothing is appended then).
func (e *Engine) appendApplyCheckedLocked(typ record.Type, encode func([]byte) []byte, check func() error, durable bool) (off, end int64, err error) {
	if e.failed != nil {
		return 0, 0, e.failedError()
	}
	// The commit log copies the record and applying it keeps no reference,
	// so one buffer serves every record (taken while in use, in case an
	// apply ever appends).
	p := encode(e.encodeBuf[:0])
	e.encodeBuf = nil
	defer func() {
		if cap(p) <= maxReusedEncodeBuf {
			e.encodeBuf = p
		}
	}()
	if check != nil {
		if err := check(); err != nil {
			return 0, 0, err
		}
	}
	off, end, err = e.clog.Append(byte(typ), p, durable)
	if err != nil {
		return 0, 0, ioError(err, "cannot append to the commit log")
	}
	if err := e.applyRecordLocked(off, end, typ, p); err != nil {
		return 0, 0, e.failLocked(err)
	}
	return off, end, nil
}

// handleTarget resolves an ack-like request to the delivery it names. done
// is set when the message is already consumed (the request is an
// idempotent retry).
//
// A handle naming another broker is taken only when its receipt id is that
// of the delivery in flight it names: local mode has one broker, and such a
// handle is one this broker issued before local.brokerName was renamed
// (receipt ids never repeat in a data directory). Refusing those made every
// ack after a rename fail and the acked messages come again. So is one
// naming a message consumed already (done), as a handle naming this broker
// is: a client retrying an ack whose answer it lost, with a handle from
// before the rename, is answered OK as a RocketMQ broker answers a retried
// ack whatever broker name the handle carries (it was
// INVALID_RECEIPT_HANDLE).
func (e *Engine) handleTargetLocked(ctx context.Context, req ports.AckRequest, now time.Time) (k consKey, d *delivery, done bool, err error) {
	k, d, done, err = e.handleTargetAnyBrokerLocked(ctx, req, now)
	if h := req.Handle; h.BrokerName != e.cfg.BrokerName && (err != nil || (d == nil && !done)) {
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle belongs to broker %q, not to this local broker %q", h.BrokerName, e.cfg.BrokerName)
	}
	return k, d, done, err
}

// handleTargetAnyBrokerLocked is handleTargetLocked without the check of
// the handle's broker name.
func (e *Engine) handleTargetAnyBrokerLocked(ctx context.Context, req ports.AckRequest, now time.Time) (k consKey, d *delivery, done bool, err error) {
	h := req.Handle
	t, err := e.topicLocked(ctx, req.Topic, false)
	if err != nil {
		return k, nil, false, err
	}
	if _, err := e.groupLocked(ctx, req.Group, false); err != nil {
		return k, nil, false, err
	}
	if h.QueueID < 0 || h.QueueID >= t.QueueCount {
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle names queue %d but topic %q has %d queues", h.QueueID, t.Name, t.QueueCount)
	}
	e.reviveDueLocked(now)
	k = consKey{req.Group, t.Name, h.QueueID}
	c := e.cons[k]
	if c == nil || h.QueueOffset >= c.next {
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "message at queue %d offset %d was never delivered to group %q, or not since an offset reset of the group; pass a handle received by this group since", h.QueueID, h.QueueOffset, req.Group)
	}
	if c.consumed(h.QueueOffset) {
		return k, nil, true, nil
	}
	d = c.inflight[h.QueueOffset]
	switch {
	case d == nil || d.held:
		return k, nil, true, nil
	case d.receipt != h.StartOffset:
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle was superseded by a later delivery or invisible-time change, or by an offset reset of the group; use the newest handle of this message")
	case d.visible:
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle expired: the invisible time passed and the message is visible again; it will be delivered again")
	}
	return k, d, false, nil
}

// Ack marks a delivered message consumed; durable before return.
func (e *Engine) Ack(ctx context.Context, req ports.AckRequest) error {
	return e.AckBatch(ctx, []ports.AckRequest{req})[0]
}

// AckBatch acks several deliveries: one record each, appended under one
// hold of the lock, and one wait for their durability; see [ports.Broker].
func (e *Engine) AckBatch(ctx context.Context, reqs []ports.AckRequest) []error {
	errs := make([]error, len(reqs))
	appended := make([]bool, len(reqs))
	var end int64
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return slices.Repeat([]error{err}, len(reqs))
	}
	now := e.clock.Now()
	for i, req := range reqs {
		k, d, done, err := e.handleTargetLocked(ctx, req, now)
		if err != nil {
			errs[i] = err
			continue
		}
		if done {
			// Acked before (a retry, or a duplicate of a concurrent ack):
			// answered OK only once what made it so is durable, which the
			// first ack may not be yet (its caller may have timed out).
			appended[i], end = true, max(end, e.clog.NextOffset())
			continue
		}
		rec := record.Ack{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: req.Handle.QueueOffset, Receipt: d.receipt}
		_, recEnd, err := e.appendApplyLocked(record.TypeAck, func(dst []byte) []byte { return record.AppendAck(dst, &rec) }, true)
		if err != nil {
			errs[i] = err
			continue
		}
		appended[i], end = true, recEnd
		if h := e.hooks.Ack; h != nil {
			h(k.topic, k.group)
		}
		e.wakeLocked(queueKey{k.topic, k.qid}, k.group, true, 1) // a FIFO message group may be unblocked
	}
	e.mu.Unlock()
	e.waitBatch(ctx, end, "the ack", appended, errs)
	return errs
}

// waitBatch waits once for the records of a batch, which end at or before
// end, and sets the error of every appended entry when that fails.
func (e *Engine) waitBatch(ctx context.Context, end int64, what string, appended []bool, errs []error) {
	if end == 0 {
		return
	}
	if err := e.waitDurable(ctx, end, what); err != nil {
		for i, ok := range appended {
			if ok {
				errs[i] = err
			}
		}
	}
}

// ChangeInvisible sets a new invisible deadline and issues a new handle.
func (e *Engine) ChangeInvisible(ctx context.Context, req ports.ChangeInvisibleRequest) (domain.ReceiptHandle, error) {
	hs, errs := e.ChangeInvisibleBatch(ctx, []ports.ChangeInvisibleRequest{req})
	return hs[0], errs[0]
}

// ChangeInvisibleBatch changes the invisible time of several deliveries
// with one wait for durability; see [ports.Broker].
func (e *Engine) ChangeInvisibleBatch(ctx context.Context, reqs []ports.ChangeInvisibleRequest) ([]domain.ReceiptHandle, []error) {
	return e.changeInvisibleBatch(ctx, reqs, nil)
}

// changeInvisibleBatch is ChangeInvisibleBatch; keep, when not nil, holds
// for each request the delivery attempt of a delivery that a FIFO receive
// retried with its attempt id takes back (see attempts.go): a delivery
// still at that attempt is marked to be handed out again as the same
// delivery (keepAttempt) before it is revived, so that it is neither
// counted as a new attempt nor, at its group's last attempt, moved to the
// dead-letter queue although the consumer never got it.
func (e *Engine) changeInvisibleBatch(ctx context.Context, reqs []ports.ChangeInvisibleRequest, keep []int32) ([]domain.ReceiptHandle, []error) {
	hs := make([]domain.ReceiptHandle, len(reqs))
	errs := make([]error, len(reqs))
	appended := make([]bool, len(reqs))
	var end int64
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return hs, slices.Repeat([]error{err}, len(reqs))
	}
	now := e.clock.Now()
	nowMs := now.UnixMilli()
	for i, req := range reqs {
		if req.InvisibleTime < 0 {
			errs[i] = domain.Errorf(domain.ReasonIllegalInvisibleTime, "invisible time must not be negative, got %v", req.InvisibleTime)
			continue
		}
		k, d, done, err := e.handleTargetLocked(ctx, req.AckRequest, now)
		if err == nil && done {
			err = domain.Errorf(domain.ReasonInvalidReceiptHandle, "the message was already acknowledged; its invisible time cannot change")
		}
		if err != nil {
			errs[i] = err
			continue
		}
		// A renewal keeps the delivery's receipt id: the push consumer
		// acks with the handle it was given, which must stay valid after
		// a restart made the proxy forget its renewals (see
		// ports.ChangeInvisibleRequest.Renewal).
		receipt := d.receipt
		if !req.Renewal {
			if receipt, err = e.nextIDLocked(); err != nil {
				errs[i] = err
				continue
			}
		}
		inv := req.InvisibleTime.Milliseconds()
		rec := record.ChangeInvisible{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: req.Handle.QueueOffset,
			OldReceipt: d.receipt, NewReceipt: receipt, Deadline: time.UnixMilli(nowMs + inv)}
		_, recEnd, err := e.appendApplyLocked(record.TypeChangeInvisible, func(dst []byte) []byte { return record.AppendChangeInvisible(dst, &rec) }, true)
		if err != nil {
			errs[i] = err
			continue
		}
		appended[i], end = true, recEnd
		if keep != nil && d.attempt == keep[i] {
			d.keepAttempt = true // after the change's apply, which clears it
		}
		h := req.Handle
		h.StartOffset, h.RetrieveTime, h.InvisibleTime = receipt, nowMs, inv
		h.BrokerName = e.cfg.BrokerName // (a handle from before a rename names the old one)
		hs[i] = h
	}
	if end > 0 {
		e.reviveDueLocked(now)
		e.kickReviver()
	}
	e.mu.Unlock()
	e.waitBatch(ctx, end, "the invisible-time change", appended, errs)
	for i := range hs {
		if errs[i] != nil {
			hs[i] = domain.ReceiptHandle{}
		}
	}
	return hs, errs
}

// ForwardToDeadLetter moves a delivered message to %DLQ%group.
func (e *Engine) ForwardToDeadLetter(ctx context.Context, req ports.AckRequest) error {
	// The message is read without the engine lock, between two checks of
	// the delivery.
	var pre *popRead
	for {
		e.mu.Lock()
		if err := e.checkOpenLocked(); err != nil {
			e.mu.Unlock()
			return err
		}
		now := e.clock.Now()
		k, d, outlived, done, err := e.forwardTargetLocked(ctx, req, now)
		if err != nil {
			e.mu.Unlock()
			return err
		}
		if done { // consumed before: OK once that is durable (see AckBatch)
			end := e.clog.NextOffset()
			e.mu.Unlock()
			return e.waitDurable(ctx, end, "the dead-letter move")
		}
		if pre == nil {
			qi := e.queues[queueKey{k.topic, k.qid}]
			if qi == nil {
				e.mu.Unlock()
				return domain.Errorf(domain.ReasonInternal, "queue %s#%d has no index", k.topic, k.qid)
			}
			cq, start := qi.cq, e.clog.StartOffset()
			e.mu.Unlock()
			cache := map[int64]*popRead{}
			if err := e.readForPop(k.topic, cq, start, []int64{d.offset}, filter.All, cache); err != nil {
				if errors.Is(err, consumequeue.ErrClosed) {
					return nil // the topic was deleted meanwhile: nothing to move (see forwardTargetLocked)
				}
				return err
			}
			pre = cache[d.offset]
			continue
		}
		if outlived && pre.gone {
			// One that cannot be told from the message the handle was
			// given for (removed by retention, as that one would be):
			// nothing of it to move.
			e.mu.Unlock()
			e.log.InfoContext(ctx, "dead-letter forward of an outlived receipt handle whose message retention removed; nothing to move", "consumer_group", req.Group,
				"topic", req.Topic, "queue_id", k.qid, "queue_offset", d.offset, "msg_id", req.MessageID)
			return nil
		}
		if outlived && req.MessageID != "" && pre.msg.ID != req.MessageID {
			// Not the message the outlived handle was given for (its
			// topic was deleted and created again, or the handle was
			// made up): nothing of it to move, and the caller audits it.
			e.mu.Unlock()
			e.log.InfoContext(ctx, "dead-letter forward of an outlived receipt handle naming another message; nothing to move", "consumer_group", req.Group,
				"topic", req.Topic, "queue_id", k.qid, "queue_offset", d.offset, "msg_id", req.MessageID)
			return &ports.ForwardRefusedError{Reason: ports.ForwardForeignMessage}
		}
		end, err := e.deadLetterEndLocked(ctx, k, d.offset, d.receipt, d.attempt, now, pre)
		e.mu.Unlock()
		if err != nil {
			return err
		}
		return e.waitDurable(ctx, end, "the dead-letter move")
	}
}

// forwardTargetLocked is handleTargetLocked for a dead-letter forward,
// which also takes a handle the message outlived: one whose invisible time
// passed moves the message, visible again, all the same; one a newer
// delivery (or invisible-time change) replaced is done, the delivery in
// flight decides (at an attempt past the group's maximum the message is
// moved when received); outlived says that d was found so, and the caller
// then moves it only if it is the message the request names (a topic
// deleted and created again reuses queue offsets). A forward naming a
// message of a topic that no longer exists is done too, with nothing to
// move, and one never delivered to the group moves nothing either
// (a *ports.ForwardRefusedError, which the caller audits and answers OK):
// a RocketMQ broker copies whatever the handle's commit-log offset holds
// and answers SUCCESS, while the Go client v5.1.4 repeats a refused
// forward every second without end (process_queue.go
// forwardToDeadLetterQueue0 retries any status but OK); see
// docs/compatibility.md. Only a handle of another broker is refused.
func (e *Engine) forwardTargetLocked(ctx context.Context, req ports.AckRequest, now time.Time) (k consKey, d *delivery, outlived, done bool, err error) {
	k, d, done, err = e.handleTargetLocked(ctx, req, now)
	if domain.HasReason(err, domain.ReasonTopicNotFound) {
		e.log.InfoContext(ctx, "dead-letter forward of a message whose topic does not exist; nothing to move", "consumer_group", req.Group,
			"topic", req.Topic, "msg_id", req.MessageID)
		return k, nil, false, true, nil
	}
	if !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		return k, d, false, done, err
	}
	h := req.Handle
	k = consKey{req.Group, req.Topic, h.QueueID}
	if h.BrokerName != e.cfg.BrokerName {
		// Only a handle of this broker from before a rename of
		// local.brokerName: its receipt id is still the delivery's.
		c := e.cons[k]
		if c == nil || c.inflight[h.QueueOffset] == nil || c.inflight[h.QueueOffset].receipt != h.StartOffset {
			return k, d, false, done, err
		}
	}
	if c := e.cons[k]; c != nil && h.QueueOffset < c.next && !c.consumed(h.QueueOffset) {
		cur := c.inflight[h.QueueOffset]
		switch {
		case cur == nil || cur.attempt == 0: // attempt 0: never delivered (passed by FIFO pops)
		case cur.visible && !cur.held:
			return k, cur, true, false, nil
		default:
			return k, nil, false, true, nil // delivered anew (that delivery decides), or acked in a FIFO run
		}
	}
	e.log.InfoContext(ctx, "dead-letter forward of a message never delivered to the group; nothing to move", "consumer_group", req.Group,
		"topic", req.Topic, "queue_id", h.QueueID, "queue_offset", h.QueueOffset, "msg_id", req.MessageID)
	return k, nil, false, false, &ports.ForwardRefusedError{Reason: ports.ForwardForgedHandle}
}

// deadLetterEndLocked appends the dead-letter record of a delivery and
// returns its end; pre is the message read beforehand (nil: read it now).
// It is the one place a message leaves its queue for the dead-letter queue,
// whoever asked (a consumer's forward, a receive finding it past the
// group's maximum, the reviver when its delivery used the last attempt), so
// hooks.DeadLetter is told here, once per message: a repeated forward of a
// message already consumed does not get here. attempts is the count of
// deliveries the copy carries (its consumers' delivery attempts go on from
// it), except for an orderly group's: a RocketMQ broker's orderly pop
// counts a FIFO message's deliveries apart from the message, which keeps
// the reconsume times it was stored with, and its dead-letter copy
// (CONSUMER_SEND_MSG_BACK) takes those plus one, however many deliveries
// it used. ctx is the request's (the reviver's is none), for the log line.
func (e *Engine) deadLetterEndLocked(ctx context.Context, k consKey, off, receipt int64, attempts int32, now time.Time, pre *popRead) (int64, error) {
	if pre == nil {
		qi := e.queues[queueKey{k.topic, k.qid}]
		if qi == nil {
			return 0, domain.Errorf(domain.ReasonInternal, "queue %s#%d has no index", k.topic, k.qid)
		}
		cache := map[int64]*popRead{}
		if err := e.readForPop(k.topic, qi.cq, e.clog.StartOffset(), []int64{off}, filter.All, cache); err != nil {
			return 0, err
		}
		pre = cache[off]
	}
	m := pre.msg
	if pre.gone {
		// Nothing left to copy (retention removed its segment): just
		// consume it. It counts as dead-lettered all the same.
		rec := record.Ack{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: off, Receipt: receipt}
		_, end, err := e.appendApplyLocked(record.TypeAck, func(dst []byte) []byte { return record.AppendAck(dst, &rec) }, true)
		if err == nil {
			e.wakeLocked(queueKey{k.topic, k.qid}, k.group, true, 1) // as an ack: a FIFO message group may be unblocked
			e.log.InfoContext(ctx, "message removed by retention consumed instead of moved to the dead-letter queue", "consumer_group", k.group, "topic", k.topic,
				"queue_id", k.qid, "queue_offset", off)
			if h := e.hooks.DeadLetter; h != nil {
				h(k.topic, k.group)
			}
		}
		return end, err
	}
	dlq, err := e.dlqTopicLocked(k.group)
	if err != nil {
		return 0, err
	}
	dqi := e.queueLocked(dlq.Name, 0)
	cp := m
	cp.Topic = dlq.Name
	cp.StoredAt = now
	origin := k.topic
	if m.DeadLetter != nil {
		origin = m.DeadLetter.Topic
	}
	cp.DeadLetter = &domain.DeadLetterOrigin{Topic: origin, MessageID: m.ID}
	if g := e.groups[k.group]; g != nil && g.Orderly {
		attempts = nextAttempt(0, m.PriorAttempts)
	}
	cp.PriorAttempts = attempts
	rec := record.DeadLetter{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: off, Receipt: receipt,
		Copy: record.Batch{Topic: dlq.Name, QueueID: 0, QueueOffset: dqi.count, Messages: []record.Message{cp}}}
	_, end, err := e.appendApplyLocked(record.TypeDeadLetter, func(dst []byte) []byte {
		p, _ := record.AppendDeadLetter(dst, &rec)
		return p
	}, true)
	if err == nil {
		// Consumed as by an ack: a FIFO message group may be unblocked.
		e.wakeLocked(queueKey{k.topic, k.qid}, k.group, true, 1)
		e.log.InfoContext(ctx, "message moved to the dead-letter queue", "consumer_group", k.group, "topic", k.topic,
			"queue_id", k.qid, "queue_offset", off, "msg_id", m.ID, "dlq_topic", dlq.Name)
		if h := e.hooks.DeadLetter; h != nil {
			h(k.topic, k.group)
		}
	}
	return end, err
}
