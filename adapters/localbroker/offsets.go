package localbroker

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

var _ ports.Offsets = (*Engine)(nil)

// Pull consumers read a queue from an offset and commit their position per
// (group, topic, queue) with offset-commit records; the committed offsets
// live in memory, are checkpointed by snapshots and rebuilt by replay. They
// are independent of the pop state of the same group.

// pullQueueLocked resolves a queue reference for pull and offset calls.
func (e *Engine) pullQueueLocked(ctx context.Context, q domain.QueueRef, forRead bool) (*topicMeta, error) {
	t, err := e.topicLocked(ctx, q.Topic, true)
	if err != nil {
		return nil, err
	}
	if err := e.checkQueueRefLocked(t, q.BrokerName, q.QueueID); err != nil {
		return nil, err
	}
	if forRead && !t.Permission.Readable() {
		return nil, domain.Errorf(domain.ReasonForbidden, "topic %q is not readable (permission %d)", t.Name, t.Permission)
	}
	return t, nil
}

// offsetRangeLocked returns the smallest queue offset whose message is still
// stored and the offset the next message will get (visible entries only).
func (e *Engine) offsetRangeLocked(topic string, qid int32) (minOff, maxOff int64, err error) {
	qi := e.queues[queueKey{topic, qid}]
	if qi == nil {
		return 0, 0, nil
	}
	minOff, err = e.minOffsetLocked(qi)
	return minOff, qi.visible, err
}

// minOffsetLocked finds, by binary search, the first entry whose message
// retention kept. Commit-log offsets grow along a queue (every entry points
// into the record appended when the entry was), so one search suffices,
// and its answer holds until retention moves the log's start again (later
// entries are all kept): it is cached, so that pulls and offset queries
// read consume-queue entries under the engine lock once per queue after
// each retention run, not every time.
func (e *Engine) minOffsetLocked(qi *queueIndex) (int64, error) {
	start := e.clog.StartOffset()
	if start == 0 || qi.visible == 0 {
		return 0, nil
	}
	if qi.minStart == start {
		return qi.minOff, nil
	}
	var ferr error
	i := sort.Search(int(qi.visible), func(i int) bool {
		ent, err := qi.cq.Get(int64(i))
		if err != nil {
			ferr = err
			return true
		}
		return ent.CommitLogOffset >= start
	})
	if ferr != nil {
		return 0, e.queueReadError(ferr)
	}
	qi.minStart, qi.minOff = start, int64(i)
	return int64(i), nil
}

func illegalOffset(q domain.QueueRef, off, minOff, maxOff int64) error {
	return domain.Errorf(domain.ReasonIllegalOffset, "offset %d is outside the range of queue %s#%d, which holds offsets [%d, %d] (%d is where the next message goes)",
		off, q.Topic, q.QueueID, minOff, maxOff, maxOff)
}

// Pull reads messages of one queue from an offset; see [ports.Offsets].
func (e *Engine) Pull(ctx context.Context, req ports.PullRequest) (ports.PullResult, error) {
	if req.BatchSize <= 0 {
		return ports.PullResult{}, domain.Errorf(domain.ReasonBadRequest, "batch size must be positive, got %d", req.BatchSize)
	}
	if req.PollTimeout < 0 {
		return ports.PullResult{}, domain.Errorf(domain.ReasonIllegalPollingTime, "poll timeout must not be negative, got %v", req.PollTimeout)
	}
	if req.Filter == nil {
		req.Filter = filter.All
	}
	lp := longPoll{remaining: req.PollTimeout}
	defer lp.release()
	var p *poller
	defer e.unregister(&p)
	off := req.Offset
	first := true
	// A filter that matches little makes a pull scan: it goes on past
	// maxScanPerQueue entries only while its poll time lasts, so that one
	// call never walks a whole backlog.
	scanUntil := time.Now().Add(req.PollTimeout)
	for {
		e.mu.Lock()
		if err := e.checkOpenLocked(); err != nil {
			e.mu.Unlock()
			return ports.PullResult{}, err
		}
		t, err := e.pullQueueLocked(ctx, req.Queue, true)
		if err != nil {
			e.mu.Unlock()
			return ports.PullResult{}, err
		}
		if _, err := e.groupLocked(ctx, req.Group, true); err != nil {
			e.mu.Unlock()
			return ports.PullResult{}, err
		}
		e.promoteLocked()
		minOff, maxOff, err := e.offsetRangeLocked(t.Name, req.Queue.QueueID)
		if err != nil {
			e.mu.Unlock()
			return ports.PullResult{}, err
		}
		if first && (off < minOff || off > maxOff) {
			e.mu.Unlock()
			return ports.PullResult{}, illegalOffset(req.Queue, off, minOff, maxOff)
		}
		first = false
		off = max(off, minOff)
		res := ports.PullResult{NextOffset: off, MinOffset: minOff, MaxOffset: maxOff}
		if p == nil && req.PollTimeout > 0 {
			p = e.registerLocked(t.Name, []int32{req.Queue.QueueID}, "", false, false)
		}
		if off < maxOff {
			cq, start := e.queues[queueKey{t.Name, req.Queue.QueueID}].cq, e.clog.StartOffset()
			e.mu.Unlock()
			msgs, next, err := e.pull(t.Name, req.Queue.QueueID, cq, start, off, maxOff, &req)
			if errors.Is(err, consumequeue.ErrClosed) {
				continue // the topic was deleted meanwhile
			}
			if err != nil {
				return ports.PullResult{}, err
			}
			off = next
			if len(msgs) > 0 || ctx.Err() != nil || !time.Now().Before(scanUntil) {
				// Found, given up, or (everything scanned filtered out)
				// the poll time spent: the client pulls again from next,
				// as after a RocketMQ broker's NO_MATCHED_MESSAGE.
				res.Messages, res.NextOffset = msgs, next
				return res, nil
			}
			continue // everything scanned was filtered out: look further while the poll time lasts
		}
		e.mu.Unlock()
		if p == nil || !e.wait(ctx, &lp, p) {
			res.Messages = []domain.StoredMessage{}
			return res, nil
		}
	}
}

// pull reads up to req.BatchSize matching messages from off (below
// maxOff), examining at most maxScanPerQueue entries; it returns them and
// the offset after the last entry examined. It needs no engine lock.
func (e *Engine) pull(topic string, qid int32, cq *consumequeue.Queue, start, off, maxOff int64, req *ports.PullRequest) ([]domain.StoredMessage, int64, error) {
	var out []domain.StoredMessage
	next := off
	for scanned := 0; next < maxOff && len(out) < int(req.BatchSize) && scanned < maxScanPerQueue; scanned++ {
		ent, err := cq.Get(next)
		if errors.Is(err, consumequeue.ErrClosed) {
			return nil, 0, err
		}
		if err != nil {
			return nil, 0, e.queueReadError(err)
		}
		qoff := next
		next++
		if ent.CommitLogOffset < start {
			continue // deleted by retention
		}
		m, gone, err := e.readMessage(topic, ent)
		if err != nil {
			return nil, 0, err
		}
		if gone || !matches(req.Filter, &m) {
			continue
		}
		out = append(out, e.storedMessage(topic, qid, qoff, ent, &m, nextAttempt(0, m.PriorAttempts)))
	}
	return out, next, nil
}

// matches reports whether f selects m as a broker's filter does: a
// committed transactional message is matched as the transactional message
// consumers get (storedMessage), whose TRAN_MSG and __transactionId__ a
// SQL92 filter reads as a broker keeps them, although its record no
// longer marks it transactional.
func matches(f filter.Filter, m *record.Message) bool {
	if m.TxnOrigin > 0 && !m.Transactional {
		c := m.Message
		c.Transactional = true
		return f.Match(&c)
	}
	return f.Match(&m.Message)
}

// storedMessage builds what consumers get for the message of an entry.
func (e *Engine) storedMessage(topic string, qid int32, qoff int64, ent consumequeue.Entry, m *record.Message, attempt int32) domain.StoredMessage {
	sm := domain.StoredMessage{Message: m.Message, BrokerName: e.cfg.BrokerName, QueueID: qid, QueueOffset: qoff,
		CommitLogOffset: ent.CommitLogOffset, StoredAt: m.StoredAt, StoreHost: e.cfg.StoreHost,
		DeliveryAttempt: attempt, DeadLetter: m.DeadLetter}
	sm.Topic = topic
	if m.TxnOrigin > 0 {
		// A committed transactional message is delivered as one
		// (TRANSACTION), as a RocketMQ broker's: its commit stores the
		// half message's properties, TRAN_MSG=true among them, and
		// proxies read the type from those.
		sm.TransactionID = e.transactionID(m.TxnOrigin)
		sm.Transactional = true
	}
	return sm
}

// UpdateOffset commits a group's position in a queue; durable before it
// returns.
func (e *Engine) UpdateOffset(ctx context.Context, group string, q domain.QueueRef, offset int64) error {
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	t, err := e.pullQueueLocked(ctx, q, false)
	if err == nil {
		_, err = e.groupLocked(ctx, group, true)
	}
	if err != nil {
		e.mu.Unlock()
		return err
	}
	e.promoteLocked()
	minOff, maxOff, err := e.offsetRangeLocked(t.Name, q.QueueID)
	if err == nil && (offset < 0 || offset > maxOff) {
		err = illegalOffset(q, offset, minOff, maxOff)
	}
	if err != nil {
		e.mu.Unlock()
		return err
	}
	rec := record.OffsetCommit{Group: group, Topic: t.Name, QueueID: q.QueueID, Offset: offset}
	_, end, err := e.appendApplyLocked(record.TypeOffsetCommit, func(dst []byte) []byte { return record.AppendOffsetCommit(dst, &rec) }, true)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.waitDurable(ctx, end, "the offset commit")
}

// GetOffset returns a group's committed position in a queue. It creates
// nothing: a group it does not know, where groups are auto-created, has
// committed no offset (as a broker answers QUERY_CONSUMER_OFFSET for any
// group, creating none), and is ReasonConsumerGroupNotFound otherwise.
func (e *Engine) GetOffset(ctx context.Context, group string, q domain.QueueRef) (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkOpenLocked(); err != nil {
		return 0, err
	}
	t, err := e.pullQueueLocked(ctx, q, false)
	if err != nil {
		return 0, err
	}
	_, err = e.groupLocked(ctx, group, false)
	if err != nil && !(e.cfg.AutoCreateGroups && domain.HasReason(err, domain.ReasonConsumerGroupNotFound)) {
		return 0, err
	}
	off, ok := e.offsets[consKey{group, t.Name, q.QueueID}]
	if !ok {
		return 0, domain.Errorf(domain.ReasonOffsetNotFound, "consumer group %q has not committed an offset for queue %s#%d; query the queue's offsets to choose where to start", group, t.Name, q.QueueID)
	}
	return off, nil
}

// QueryOffset finds an offset of a queue by policy: the first still stored,
// the next to be written, or the first message stored at or after at
// (binary search over the store times of the index; store times grow along
// a queue as long as the clock does not step back). The search reads
// entries without the engine lock, as Pull does: entries never change while
// the queue exists (retention deletes segments, not entries), and a queue
// closed meanwhile (its topic deleted) makes it look again.
func (e *Engine) QueryOffset(ctx context.Context, q domain.QueueRef, p ports.OffsetPolicy, at time.Time) (int64, error) {
	for {
		s, err := e.planOffsetQuery(ctx, q, p)
		if err != nil || s.cq == nil {
			return s.found, err
		}
		off, err := e.searchStoreTime(s.topic, s.cq, s.minOff, s.maxOff, at.UnixMilli())
		if errors.Is(err, consumequeue.ErrClosed) {
			continue // the topic was deleted meanwhile
		}
		return off, err
	}
}

// offsetQuery is what QueryOffset learns under the engine lock: the
// answer (found) when the policy needs no search, else the queue to search
// by store time and its offset range.
type offsetQuery struct {
	found          int64
	topic          string
	cq             *consumequeue.Queue
	minOff, maxOff int64
}

func (e *Engine) planOffsetQuery(ctx context.Context, q domain.QueueRef, p ports.OffsetPolicy) (offsetQuery, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkOpenLocked(); err != nil {
		return offsetQuery{}, err
	}
	t, err := e.pullQueueLocked(ctx, q, false)
	if err != nil {
		return offsetQuery{}, err
	}
	e.promoteLocked()
	minOff, maxOff, err := e.offsetRangeLocked(t.Name, q.QueueID)
	if err != nil {
		return offsetQuery{}, err
	}
	switch p {
	case ports.OffsetBeginning:
		return offsetQuery{found: minOff}, nil
	case ports.OffsetEnd:
		return offsetQuery{found: maxOff}, nil
	case ports.OffsetTimestamp:
	default:
		return offsetQuery{}, domain.Errorf(domain.ReasonBadRequest, "unknown offset policy %d", p)
	}
	qi := e.queues[queueKey{t.Name, q.QueueID}]
	if qi == nil {
		return offsetQuery{}, nil
	}
	return offsetQuery{topic: t.Name, cq: qi.cq, minOff: minOff, maxOff: maxOff}, nil
}

// searchStoreTime returns the first offset in [minOff, maxOff) of cq whose
// entry was stored at or after ms (maxOff when none was). It needs no
// engine lock.
func (e *Engine) searchStoreTime(topic string, cq *consumequeue.Queue, minOff, maxOff, ms int64) (int64, error) {
	if hook := e.readHook.Load(); hook != nil {
		(*hook)(topic)
	}
	var ferr error
	i := sort.Search(int(maxOff-minOff), func(i int) bool {
		ent, err := cq.Get(minOff + int64(i))
		if err != nil {
			ferr = err
			return true
		}
		return ent.StoredAtMs >= ms
	})
	if errors.Is(ferr, consumequeue.ErrClosed) {
		return 0, ferr
	}
	if ferr != nil {
		return 0, e.queueReadError(ferr)
	}
	return minOff + int64(i), nil
}
