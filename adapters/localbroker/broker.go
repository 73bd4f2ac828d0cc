package localbroker

import (
	"context"
	"errors"
	"math"
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

// maxStorableTime is the latest time records can hold (Unix nanoseconds).
var maxStorableTime = time.Unix(0, math.MaxInt64-1)

// maxScanPerQueue bounds how many new messages one pop examines per queue,
// so a long run of filtered-out messages cannot stall other callers.
const maxScanPerQueue = 1024

func (e *Engine) checkOpenLocked() error {
	if e.state != stateOpen {
		return unavailable()
	}
	return nil
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
	if err := e.clog.Wait(ctx, end); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return domain.Wrap(domain.ReasonPersistenceTimeout, err, what+" was written but not confirmed durable before the request ended; it will be stored unless the machine fails now")
		}
		return ioError(err, what+" failed")
	}
	return nil
}

// Route returns the queues of a topic.
func (e *Engine) Route(ctx context.Context, topic string) (ports.Route, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkOpenLocked(); err != nil {
		return ports.Route{}, err
	}
	t, err := e.topicLocked(topic, true)
	if err != nil {
		return ports.Route{}, err
	}
	r := ports.Route{Topic: t.Topic, Queues: make([]ports.RouteQueue, t.QueueCount)}
	for i := range r.Queues {
		r.Queues[i] = ports.RouteQueue{BrokerName: e.cfg.BrokerName, QueueID: int32(i), Permission: t.Permission}
	}
	return r, nil
}

// Send stores msgs in queue q atomically (one record, consecutive queue
// offsets) and returns once they are durable per the flush policy.
func (e *Engine) Send(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	if len(msgs) == 0 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "no message to send")
	}
	now := e.clock.Now()
	txns, timers := 0, 0
	for i := range msgs {
		m := &msgs[i]
		if m.Topic != q.Topic {
			return nil, domain.Errorf(domain.ReasonMessageCorrupted, "message %d is for topic %q but the batch is sent to topic %q; all messages of one send must share the queue's topic", i, m.Topic, q.Topic)
		}
		if m.DeliverAt.After(maxStorableTime) {
			return nil, domain.Errorf(domain.ReasonIllegalDeliveryTime, "delivery time %s of message %d is beyond what the local broker can store (year 2262)", m.DeliverAt.UTC().Format(time.RFC3339), i)
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
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	t, err := e.topicLocked(q.Topic, true)
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
	for i := range msgs {
		if err := domain.CheckMessageType(t.Name, t.Type, &msgs[i]); err != nil {
			e.mu.Unlock()
			return nil, err
		}
	}
	qi := e.queueLocked(t.Name, q.QueueID)
	b := record.Batch{Topic: t.Name, QueueID: q.QueueID, QueueOffset: qi.count, Messages: make([]record.Message, len(msgs))}
	if deferred {
		b.QueueOffset = -1
	}
	for i := range msgs {
		b.Messages[i] = record.Message{Message: msgs[i], StoredAt: now}
	}
	first := qi.count
	var locs []record.Location
	off, end, err := e.appendApplyLocked(record.TypeMessageBatch, func(dst []byte) []byte {
		var p []byte
		p, locs = record.AppendBatch(dst, &b)
		return p
	}, true)
	e.mu.Unlock()
	if err != nil {
		return nil, err
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
		case !m.DeliverAt.IsZero():
			r.RecallHandle = encodeRecallHandle(t.Name, e.cfg.BrokerName, m.DeliverAt.UnixMilli(), m.ID, origin)
		}
		out[i] = r
	}
	return out, nil
}

func (e *Engine) checkQueueRefLocked(t *topicMeta, broker string, qid int32) error {
	if broker != "" && broker != e.cfg.BrokerName {
		return domain.Errorf(domain.ReasonBadRequest, "queue is on broker %q but this is the local broker %q; query the route again", broker, e.cfg.BrokerName)
	}
	if qid < 0 || qid >= t.QueueCount {
		return domain.Errorf(domain.ReasonBadRequest, "topic %q has queues 0..%d; queue %d does not exist (query the route again)", t.Name, t.QueueCount-1, qid)
	}
	return nil
}

// maxReusedEncodeBuf bounds the encoding buffer kept between records, so
// that one large batch does not pin its size.
const maxReusedEncodeBuf = 1 << 20

// appendApplyLocked encodes a record, appends it to the log and applies it
// to the in-memory state, all under mu so that log order equals apply order.
func (e *Engine) appendApplyLocked(typ record.Type, encode func([]byte) []byte, durable bool) (off, end int64, err error) {
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
	off, end, err = e.clog.Append(byte(typ), p, durable)
	if err != nil {
		return 0, 0, ioError(err, "cannot append to the commit log")
	}
	if err := e.applyRecordLocked(off, end, typ, p); err != nil {
		return 0, 0, e.failLocked(err)
	}
	return off, end, nil
}

// readMessageLocked reads the message an index entry points to. gone is set
// when its segment was deleted by retention or the bytes are damaged (the
// message cannot be delivered and is skipped).
func (e *Engine) readMessageLocked(topic string, ent consumequeue.Entry) (m record.Message, gone bool, err error) {
	b, err := e.clog.ReadAt(ent.CommitLogOffset, int(ent.Size))
	if errors.Is(err, commitlog.ErrGone) {
		return m, true, nil
	}
	if err != nil {
		return m, false, domain.Wrap(domain.ReasonInternal, err, "cannot read a stored message")
	}
	if commitlog.Checksum(b) != ent.CRC {
		e.log.Error("stored message is damaged (checksum mismatch); skipping it", "topic", topic, "commit_log_offset", ent.CommitLogOffset)
		return m, true, nil
	}
	m, err = record.DecodeMessage(b, topic)
	if err != nil {
		e.log.Error("stored message cannot be decoded; skipping it", "topic", topic, "commit_log_offset", ent.CommitLogOffset, "error", err)
		return m, true, nil
	}
	return m, false, nil
}

// Pop hands out visible messages; see [ports.Broker].
func (e *Engine) Pop(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
	if req.MaxMessages <= 0 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "maxMessages must be positive, got %d", req.MaxMessages)
	}
	if req.InvisibleTime < 0 {
		return nil, domain.Errorf(domain.ReasonIllegalInvisibleTime, "invisible time must not be negative, got %v", req.InvisibleTime)
	}
	if req.PollTimeout < 0 {
		return nil, domain.Errorf(domain.ReasonIllegalPollingTime, "poll timeout must not be negative, got %v", req.PollTimeout)
	}
	if req.BrokerName != "" && req.BrokerName != e.cfg.BrokerName {
		return nil, domain.Errorf(domain.ReasonBadRequest, "pop asks broker %q but this is the local broker %q", req.BrokerName, e.cfg.BrokerName)
	}
	if req.Filter == nil {
		req.Filter = filter.All
	}
	lp := longPoll{remaining: req.PollTimeout}
	defer lp.release()
	for {
		e.mu.Lock()
		if err := e.checkOpenLocked(); err != nil {
			e.mu.Unlock()
			return nil, err
		}
		t, err := e.topicLocked(req.Topic, true)
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		if _, err := e.groupLocked(req.Group, true); err != nil {
			e.mu.Unlock()
			return nil, err
		}
		if !t.Permission.Readable() {
			e.mu.Unlock()
			return nil, domain.Errorf(domain.ReasonForbidden, "topic %q is not readable (permission %d)", t.Name, t.Permission)
		}
		if req.QueueID >= 0 {
			if err := e.checkQueueRefLocked(t, "", req.QueueID); err != nil {
				e.mu.Unlock()
				return nil, err
			}
		}
		now := e.clock.Now()
		e.promoteLocked()
		e.reviveDueLocked(now)
		msgs, progressed, err := e.popLocked(t, &req, now)
		if err != nil || len(msgs) > 0 {
			e.mu.Unlock()
			return msgs, err
		}
		if progressed {
			e.mu.Unlock()
			continue
		}
		if !e.waitLocked(ctx, &lp, t.Name) {
			return []domain.StoredMessage{}, nil
		}
	}
}

// popLocked pops from the topic's queues for one request. progressed says
// that state changed without a message to return (filtered messages were
// consumed): the caller looks again at once.
func (e *Engine) popLocked(t *topicMeta, req *ports.PopRequest, now time.Time) ([]domain.StoredMessage, bool, error) {
	var qids []int32
	if req.QueueID >= 0 {
		qids = []int32{req.QueueID}
	} else {
		start := int32(e.rr % uint32(t.QueueCount))
		e.rr++
		for i := range t.QueueCount {
			qids = append(qids, (start+i)%t.QueueCount)
		}
	}
	var out []domain.StoredMessage
	progressed := false
	for _, qid := range qids {
		remaining := int(req.MaxMessages) - len(out)
		if remaining <= 0 {
			break
		}
		msgs, prog, err := e.popQueueLocked(t, qid, req, now, remaining)
		if err != nil {
			return out, progressed, err
		}
		out = append(out, msgs...)
		progressed = progressed || prog
	}
	return out, progressed, nil
}

type candidate struct {
	offset int64
	ent    consumequeue.Entry
	msg    record.Message
}

func (e *Engine) popQueueLocked(t *topicMeta, qid int32, req *ports.PopRequest, now time.Time, remaining int) ([]domain.StoredMessage, bool, error) {
	qi := e.queues[queueKey{t.Name, qid}]
	if qi == nil {
		return nil, false, nil
	}
	k := consKey{req.Group, t.Name, qid}
	c := e.cons[k]
	if c == nil {
		c = newConsState()
	}
	if len(c.visible) == 0 && c.next >= qi.visible {
		return nil, false, nil
	}
	receipt, err := e.nextIDLocked()
	if err != nil {
		return nil, false, err
	}
	inv := req.InvisibleTime.Milliseconds()
	rec := record.Pop{Group: req.Group, Topic: t.Name, QueueID: qid, Receipt: receipt, PopTime: time.UnixMilli(now.UnixMilli()),
		Deadline: time.UnixMilli(now.UnixMilli() + inv), Next: c.next}
	var picked []candidate
	// FIFO: groups that got a message in this pop.
	var taken map[string]bool
	if req.FIFO {
		taken = map[string]bool{}
	}
	// Redeliveries first, in offset order. FIFO pops only look at the
	// first visible offset of each group that has nothing in flight.
	cands := c.visible
	if req.FIFO {
		cands = c.fifoCandidates(remaining + maxScanPerQueue)
	}
	for _, off := range cands {
		if len(picked) >= remaining {
			break
		}
		d := c.inflight[off]
		if taken != nil && d.msgGroup != "" {
			taken[d.msgGroup] = true
		}
		ent, err := qi.cq.Get(off)
		if err != nil {
			return nil, false, domain.Wrap(domain.ReasonInternal, err, "cannot read the consume queue")
		}
		m, gone, err := e.readMessageLocked(t.Name, ent)
		if err != nil {
			return nil, false, err
		}
		if gone || !req.Filter.Match(&m.Message) {
			rec.Entries = append(rec.Entries, record.PopEntry{Kind: record.PopConsumed, Offset: off})
			continue
		}
		rec.Entries = append(rec.Entries, record.PopEntry{Kind: record.PopDelivered, Offset: off, Attempt: d.attempt + 1, MsgGroup: m.Group})
		picked = append(picked, candidate{off, ent, m})
	}
	// Then messages never delivered.
	start := e.clog.StartOffset()
	next := c.next
	for scanned := 0; len(picked) < remaining && next < qi.visible && scanned < maxScanPerQueue; scanned++ {
		off := next
		next++
		ent, err := qi.cq.Get(off)
		if err != nil {
			return nil, false, domain.Wrap(domain.ReasonInternal, err, "cannot read the consume queue")
		}
		var m record.Message
		gone := ent.CommitLogOffset < start
		if !gone {
			if m, gone, err = e.readMessageLocked(t.Name, ent); err != nil {
				return nil, false, err
			}
		}
		if gone || !req.Filter.Match(&m.Message) {
			rec.Entries = append(rec.Entries, record.PopEntry{Kind: record.PopConsumed, Offset: off})
			continue
		}
		if taken != nil && m.Group != "" {
			if taken[m.Group] || c.fifoBlocked(m.Group) {
				rec.Entries = append(rec.Entries, record.PopEntry{Kind: record.PopPassed, Offset: off, MsgGroup: m.Group})
				continue
			}
			taken[m.Group] = true
		}
		rec.Entries = append(rec.Entries, record.PopEntry{Kind: record.PopDelivered, Offset: off, Attempt: 1, MsgGroup: m.Group})
		picked = append(picked, candidate{off, ent, m})
	}
	rec.Next = next
	if len(rec.Entries) == 0 {
		return nil, false, nil
	}
	if _, _, err := e.appendApplyLocked(record.TypePop, func(dst []byte) []byte { return record.AppendPop(dst, &rec) }, false); err != nil {
		return nil, false, err
	}
	if len(picked) > 0 {
		e.kickReviver()
	}
	out := make([]domain.StoredMessage, 0, len(picked))
	c = e.cons[k]
	for _, p := range picked {
		h := domain.ReceiptHandle{StartOffset: receipt, RetrieveTime: now.UnixMilli(), InvisibleTime: inv,
			BrokerName: e.cfg.BrokerName, QueueID: qid, QueueOffset: p.offset, CommitLogOffset: p.ent.CommitLogOffset}
		sm := e.storedMessage(t.Name, qid, p.offset, p.ent, &p.msg, c.inflight[p.offset].attempt)
		sm.ReceiptHandle = h.String()
		out = append(out, sm)
	}
	return out, len(picked) == 0, nil
}

// handleTarget resolves an ack-like request to the delivery it names. done
// is set when the message is already consumed (the request is an
// idempotent retry).
func (e *Engine) handleTargetLocked(req ports.AckRequest, now time.Time) (k consKey, d *delivery, done bool, err error) {
	h := req.Handle
	if h.BrokerName != e.cfg.BrokerName {
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle belongs to broker %q, not to this local broker %q", h.BrokerName, e.cfg.BrokerName)
	}
	t, err := e.topicLocked(req.Topic, false)
	if err != nil {
		return k, nil, false, err
	}
	if _, err := e.groupLocked(req.Group, false); err != nil {
		return k, nil, false, err
	}
	if h.QueueID < 0 || h.QueueID >= t.QueueCount {
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle names queue %d but topic %q has %d queues", h.QueueID, t.Name, t.QueueCount)
	}
	e.reviveDueLocked(now)
	k = consKey{req.Group, t.Name, h.QueueID}
	c := e.cons[k]
	if c == nil || h.QueueOffset >= c.next {
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "message at queue %d offset %d was never delivered to group %q; pass a handle received by this group", h.QueueID, h.QueueOffset, req.Group)
	}
	if c.consumed(h.QueueOffset) {
		return k, nil, true, nil
	}
	d = c.inflight[h.QueueOffset]
	switch {
	case d == nil:
		return k, nil, true, nil
	case d.receipt != h.StartOffset:
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle was superseded by a later delivery or invisible-time change; use the newest handle of this message")
	case d.visible:
		return k, nil, false, domain.Errorf(domain.ReasonInvalidReceiptHandle, "receipt handle expired: the invisible time passed and the message is visible again; it will be delivered again")
	}
	return k, d, false, nil
}

// Ack marks a delivered message consumed; durable before return.
func (e *Engine) Ack(ctx context.Context, req ports.AckRequest) error {
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	k, d, done, err := e.handleTargetLocked(req, e.clock.Now())
	if err != nil || done {
		e.mu.Unlock()
		return err
	}
	rec := record.Ack{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: req.Handle.QueueOffset, Receipt: d.receipt}
	_, end, err := e.appendApplyLocked(record.TypeAck, func(dst []byte) []byte { return record.AppendAck(dst, &rec) }, true)
	if err == nil {
		e.wakeLocked(k.topic) // a FIFO message group may be unblocked
	}
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.waitDurable(ctx, end, "the ack")
}

// ChangeInvisible sets a new invisible deadline and issues a new handle.
func (e *Engine) ChangeInvisible(ctx context.Context, req ports.ChangeInvisibleRequest) (domain.ReceiptHandle, error) {
	if req.InvisibleTime < 0 {
		return domain.ReceiptHandle{}, domain.Errorf(domain.ReasonIllegalInvisibleTime, "invisible time must not be negative, got %v", req.InvisibleTime)
	}
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return domain.ReceiptHandle{}, err
	}
	now := e.clock.Now()
	k, d, done, err := e.handleTargetLocked(req.AckRequest, now)
	if err == nil && done {
		err = domain.Errorf(domain.ReasonInvalidReceiptHandle, "the message was already acknowledged; its invisible time cannot change")
	}
	if err != nil {
		e.mu.Unlock()
		return domain.ReceiptHandle{}, err
	}
	receipt, err := e.nextIDLocked()
	if err != nil {
		e.mu.Unlock()
		return domain.ReceiptHandle{}, err
	}
	nowMs := now.UnixMilli()
	inv := req.InvisibleTime.Milliseconds()
	rec := record.ChangeInvisible{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: req.Handle.QueueOffset,
		OldReceipt: d.receipt, NewReceipt: receipt, Deadline: time.UnixMilli(nowMs + inv)}
	_, end, err := e.appendApplyLocked(record.TypeChangeInvisible, func(dst []byte) []byte { return record.AppendChangeInvisible(dst, &rec) }, true)
	if err == nil {
		e.reviveDueLocked(now)
		e.kickReviver()
	}
	e.mu.Unlock()
	if err != nil {
		return domain.ReceiptHandle{}, err
	}
	h := req.Handle
	h.StartOffset, h.RetrieveTime, h.InvisibleTime = receipt, nowMs, inv
	if err := e.waitDurable(ctx, end, "the invisible-time change"); err != nil {
		return domain.ReceiptHandle{}, err
	}
	return h, nil
}

// ForwardToDeadLetter moves a delivered message to %DLQ%group.
func (e *Engine) ForwardToDeadLetter(ctx context.Context, req ports.AckRequest) error {
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	now := e.clock.Now()
	k, d, done, err := e.handleTargetLocked(req, now)
	if err != nil || done {
		e.mu.Unlock()
		return err
	}
	end, err := e.deadLetterEndLocked(k, req.Handle.QueueOffset, d.receipt, now)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.waitDurable(ctx, end, "the dead-letter move")
}

// deadLetterLocked moves one delivery to the group's dead-letter queue
// without waiting for durability (used by the reviver).
func (e *Engine) deadLetterLocked(k consKey, off, receipt int64, now time.Time) error {
	_, err := e.deadLetterEndLocked(k, off, receipt, now)
	return err
}

func (e *Engine) deadLetterEndLocked(k consKey, off, receipt int64, now time.Time) (int64, error) {
	qi := e.queues[queueKey{k.topic, k.qid}]
	if qi == nil {
		return 0, domain.Errorf(domain.ReasonInternal, "queue %s#%d has no index", k.topic, k.qid)
	}
	ent, err := qi.cq.Get(off)
	if err != nil {
		return 0, domain.Wrap(domain.ReasonInternal, err, "cannot read the consume queue")
	}
	m, gone, err := e.readMessageLocked(k.topic, ent)
	if err != nil {
		return 0, err
	}
	if gone {
		// Nothing left to copy: just consume it.
		rec := record.Ack{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: off, Receipt: receipt}
		_, end, err := e.appendApplyLocked(record.TypeAck, func(dst []byte) []byte { return record.AppendAck(dst, &rec) }, true)
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
	rec := record.DeadLetter{Group: k.group, Topic: k.topic, QueueID: k.qid, Offset: off, Receipt: receipt,
		Copy: record.Batch{Topic: dlq.Name, QueueID: 0, QueueOffset: dqi.count, Messages: []record.Message{cp}}}
	_, end, err := e.appendApplyLocked(record.TypeDeadLetter, func(dst []byte) []byte {
		p, _ := record.AppendDeadLetter(dst, &rec)
		return p
	}, true)
	if err == nil {
		e.log.Info("message moved to the dead-letter queue", "consumer_group", k.group, "topic", k.topic,
			"queue_id", k.qid, "queue_offset", off, "msg_id", m.ID, "dlq_topic", dlq.Name)
	}
	return end, err
}
