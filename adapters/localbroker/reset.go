package localbroker

import (
	"context"
	"errors"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Consumer offset resets (rmqproxy group reset, mqadmin resetOffsetByTime).
//
// A reset replaces a group's pop state on each queue it names with a fresh
// one at the new offset: ack floor and cursor there, nothing acked above
// it, no delivery in flight or visible again, no FIFO run, so nothing
// blocks a message group. It is one consumer-reset record for every queue,
// appended under the engine lock after every check (so that replay applies
// it as it was applied live, and pops and acks are ordered before or after
// it), durable before ResetOffset returns; snapshots keep its effect as
// they keep every consumer state.
//
// Receipt handles of deliveries made before the reset name nothing of the
// new state: one for an offset at or above the new cursor is refused as a
// handle of a message never delivered, one for an offset the group has
// delivered anew since as superseded (receipt ids never repeat), both with
// INVALID_RECEIPT_HANDLE, which consumers treat as a failed ack of that
// delivery; one below the new ack floor (a skipped message) is answered OK
// as an ack of a message consumed already.

// ResetOffset moves a group's position; see [ports.Admin].
func (e *Engine) ResetOffset(ctx context.Context, req ports.ResetOffsetRequest) ([]ports.OffsetReset, error) {
	for {
		plan, err := e.planReset(ctx, req)
		if err != nil {
			return nil, err
		}
		if req.Policy == ports.OffsetTimestamp {
			// Searched without the lock, as QueryOffset does: entries never
			// change while their queue exists.
			err = e.searchResetTimes(req.Topic, plan, req.At.UnixMilli())
			if errors.Is(err, consumequeue.ErrClosed) {
				continue // the topic was deleted meanwhile: look again
			}
			if err != nil {
				return nil, err
			}
		}
		out, retry, err := e.commitReset(ctx, req, plan)
		if retry {
			continue
		}
		return out, err
	}
}

// resetPlan is what ResetOffset learns under the engine lock before it
// searches store times: the incarnations it checked and each queue's range.
type resetPlan struct {
	topicInc, groupInc uint64
	queues             []resetQueue
}

type resetQueue struct {
	qid            int32
	cq             *consumequeue.Queue // nil: the queue holds nothing yet
	minOff, maxOff int64
	found          int64
}

func (e *Engine) planReset(ctx context.Context, req ports.ResetOffsetRequest) (*resetPlan, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkWritableLocked(); err != nil {
		return nil, err
	}
	switch req.Policy {
	case ports.OffsetBeginning, ports.OffsetEnd, ports.OffsetTimestamp:
	default:
		return nil, domain.Errorf(domain.ReasonBadRequest, "unknown offset policy %d", req.Policy)
	}
	g, err := e.groupLocked(ctx, req.Group, false)
	if err != nil {
		return nil, err
	}
	t, err := e.topicLocked(ctx, req.Topic, false)
	if err != nil {
		return nil, err
	}
	if req.QueueID < -1 || req.QueueID >= t.QueueCount {
		return nil, domain.Errorf(domain.ReasonBadRequest, "topic %q has %d queues (ids 0 to %d), not queue %d", t.Name, t.QueueCount, t.QueueCount-1, req.QueueID)
	}
	e.promoteLocked()
	plan := &resetPlan{topicInc: t.incarnation, groupInc: g.incarnation}
	for qid := range t.QueueCount {
		if req.QueueID >= 0 && qid != req.QueueID {
			continue
		}
		minOff, maxOff, err := e.offsetRangeLocked(t.Name, qid)
		if err != nil {
			return nil, err
		}
		q := resetQueue{qid: qid, minOff: minOff, maxOff: maxOff}
		switch req.Policy {
		case ports.OffsetBeginning:
			q.found = minOff
		case ports.OffsetEnd:
			q.found = maxOff
		default:
			if qi := e.queues[queueKey{t.Name, qid}]; qi != nil {
				q.cq = qi.cq
			}
		}
		plan.queues = append(plan.queues, q)
	}
	return plan, nil
}

func (e *Engine) searchResetTimes(topic string, plan *resetPlan, ms int64) error {
	for i := range plan.queues {
		q := &plan.queues[i]
		if q.cq == nil {
			continue
		}
		off, err := e.searchStoreTime(topic, q.cq, q.minOff, q.maxOff, ms)
		if err != nil {
			return err
		}
		q.found = off
	}
	return nil
}

// commitReset appends and applies the reset record of a plan; retry says
// that the topic or group changed since it was planned.
func (e *Engine) commitReset(ctx context.Context, req ports.ResetOffsetRequest, plan *resetPlan) ([]ports.OffsetReset, bool, error) {
	e.mu.Lock()
	if err := e.checkWritableLocked(); err != nil {
		e.mu.Unlock()
		return nil, false, err
	}
	t, g := e.topics[req.Topic], e.groups[req.Group]
	if t == nil || g == nil || t.incarnation != plan.topicInc || g.incarnation != plan.groupInc {
		e.mu.Unlock()
		return nil, true, nil
	}
	rec := record.ConsumerReset{Group: req.Group, Topic: req.Topic, Queues: make([]record.QueueReset, 0, len(plan.queues))}
	out := make([]ports.OffsetReset, 0, len(plan.queues))
	for _, q := range plan.queues {
		old := q.minOff
		if c := e.cons[consKey{req.Group, req.Topic, q.qid}]; c != nil {
			old = max(c.floor, q.minOff)
		}
		rec.Queues = append(rec.Queues, record.QueueReset{QueueID: q.qid, Offset: q.found})
		out = append(out, ports.OffsetReset{QueueID: q.qid, OldOffset: old, NewOffset: q.found})
	}
	_, end, err := e.appendApplyLocked(record.TypeConsumerReset, func(dst []byte) []byte { return record.AppendConsumerReset(dst, &rec) }, true)
	e.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	if err := e.waitDurable(ctx, end, "the offset reset"); err != nil {
		return nil, false, err
	}
	e.log.InfoContext(ctx, "consumer offset reset", "consumer_group", req.Group, "topic", req.Topic, "queues", len(out),
		"policy", int(req.Policy), "at", req.At.UTC().Format(time.RFC3339Nano))
	return out, false, nil
}

// applyConsumerResetLocked applies a consumer-reset record: on each queue
// the group's pop state starts afresh at the offset, and an offset the
// group committed there by pull moves to it.
func (e *Engine) applyConsumerResetLocked(r *record.ConsumerReset) {
	for _, q := range r.Queues {
		k := consKey{r.Group, r.Topic, q.QueueID}
		if c := e.cons[k]; c != nil {
			c.release()
		}
		c := newConsState(k, &e.heap)
		c.floor, c.next = q.Offset, q.Offset
		e.addConsLocked(c) // replaces the old state, in its group's index too
		if _, ok := e.offsets[k]; ok {
			e.setOffsetLocked(k, q.Offset)
		}
	}
	e.wakeTopicLocked(r.Topic)
}
