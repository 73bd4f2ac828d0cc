package localbroker

import (
	"context"
	"errors"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// LookupMessage finds the stored message of topic whose id (the producer's
// UNIQ_KEY) is messageID. The engine keeps no index by message id, so it
// scans the topic's queues, newest messages first, reading each message:
// an operator's tool, bounded by ctx. Messages removed by retention are not
// found.
func (e *Engine) LookupMessage(ctx context.Context, topic, messageID string) (domain.StoredMessage, error) {
	type span struct {
		qid      int32
		cq       *consumequeue.Queue
		min, max int64
	}
	e.mu.Lock()
	t, err := e.openTopicLocked(ctx, topic, false)
	if err != nil {
		e.mu.Unlock()
		return domain.StoredMessage{}, err
	}
	var spans []span
	for qid := range t.QueueCount {
		qi := e.queues[queueKey{topic, qid}]
		if qi == nil {
			continue
		}
		lo, hi, err := e.offsetRangeLocked(topic, qid)
		if err != nil {
			e.mu.Unlock()
			return domain.StoredMessage{}, err
		}
		spans = append(spans, span{qid: qid, cq: qi.cq, min: lo, max: hi})
	}
	start := e.clog.StartOffset()
	e.mu.Unlock()
	for _, s := range spans {
		for off := s.max - 1; off >= s.min; off-- {
			if err := ctx.Err(); err != nil {
				return domain.StoredMessage{}, domain.Wrap(domain.ReasonTimeout, err, "looking for message "+messageID+" in topic "+topic+" took too long")
			}
			ent, err := s.cq.Get(off)
			if errors.Is(err, consumequeue.ErrClosed) {
				return domain.StoredMessage{}, topicNotFound(topic) // deleted meanwhile
			}
			if err != nil {
				return domain.StoredMessage{}, e.queueReadError(err)
			}
			if ent.CommitLogOffset < start {
				break // older entries are gone too
			}
			m, gone, err := e.readMessage(topic, ent)
			if err != nil {
				return domain.StoredMessage{}, err
			}
			if !gone && m.ID == messageID {
				return e.storedMessage(topic, s.qid, off, ent, &m, 1), nil
			}
		}
	}
	return domain.StoredMessage{}, domain.Errorf(domain.ReasonMessageNotFound, "topic %s has no stored message with id %s", topic, messageID)
}

var _ ports.MessageLookup = (*Engine)(nil)
