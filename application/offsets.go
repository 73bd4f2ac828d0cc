package application

import (
	"context"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// PullRequest asks for the messages of one queue from an offset.
type PullRequest struct {
	Group     string
	Queue     domain.QueueRef
	Offset    int64
	BatchSize int32
	Filter    filter.Expression
	// LongPollingTimeout, when not nil, is how long to wait for a message;
	// otherwise the proxy's maximum long-polling time bounded by the deadline.
	LongPollingTimeout *time.Duration
}

// checkQueue validates the queue a pull or offset request names and, when
// the operation belongs to a consumer group (withGroup), the group.
func (m *Messaging) checkQueue(withGroup bool, group string, q domain.QueueRef) error {
	if err := domain.ValidateTopicName(q.Topic); err != nil {
		return err
	}
	if withGroup {
		if err := domain.ValidateGroupName(group); err != nil {
			return err
		}
	}
	if q.QueueID < 0 {
		return domain.Errorf(domain.ReasonBadRequest, "queue id %d is negative: name the queue from the topic's route", q.QueueID)
	}
	if m.offsets == nil {
		return domain.Errorf(domain.ReasonNotImplemented, "pull and offset operations are not supported by this broker")
	}
	return nil
}

// PullMessage reads messages of one queue from an offset for a pull
// consumer, waiting up to the polling time when none is there yet.
func (m *Messaging) PullMessage(ctx context.Context, req PullRequest) (ports.PullResult, error) {
	if err := m.checkQueue(true, req.Group, req.Queue); err != nil {
		return ports.PullResult{}, err
	}
	if req.BatchSize < 1 {
		return ports.PullResult{}, domain.Errorf(domain.ReasonBadRequest, "batch size must be at least 1, got %d", req.BatchSize)
	}
	if req.Offset < 0 {
		return ports.PullResult{}, domain.Errorf(domain.ReasonIllegalOffset, "offset %d is negative", req.Offset)
	}
	f, err := m.cfg.compileFilter(req.Filter)
	if err != nil {
		return ports.PullResult{}, err
	}
	polling := m.cfg.Consumer.MaxLongPolling
	if req.LongPollingTimeout != nil {
		polling = min(max(*req.LongPollingTimeout, 0), m.cfg.Consumer.MaxLongPolling)
	}
	// A pull is a receive for the rate limits (the group's, the topic's, ...).
	batch, polling, err := m.awaitReceiveRoom(ctx, req.Group, req.Queue.Topic, min(req.BatchSize, m.cfg.Consumer.MaxBatchSize), polling)
	if err != nil {
		return ports.PullResult{}, err
	}
	pollCtx, cancel := reservingAnswerTime(ctx)
	defer cancel()
	res, err := m.offsets.Pull(pollCtx, ports.PullRequest{
		Group:       req.Group,
		Queue:       req.Queue,
		Offset:      req.Offset,
		BatchSize:   batch,
		Filter:      f,
		PollTimeout: polling,
	})
	if err == nil {
		m.chargeReceived(ctx, req.Group, req.Queue.Topic, res.Messages)
	}
	return res, err
}

// UpdateOffset commits a pull consumer group's position in a queue.
func (m *Messaging) UpdateOffset(ctx context.Context, group string, q domain.QueueRef, offset int64) error {
	if err := m.checkQueue(true, group, q); err != nil {
		return err
	}
	if offset < 0 {
		return domain.Errorf(domain.ReasonIllegalOffset, "offset %d is negative", offset)
	}
	return m.offsets.UpdateOffset(ctx, group, q, offset)
}

// GetOffset returns a pull consumer group's committed position in a queue.
func (m *Messaging) GetOffset(ctx context.Context, group string, q domain.QueueRef) (int64, error) {
	if err := m.checkQueue(true, group, q); err != nil {
		return 0, err
	}
	return m.offsets.GetOffset(ctx, group, q)
}

// QueryOffset finds an offset in a queue: its beginning, its end, or the
// first message stored at or after a time.
func (m *Messaging) QueryOffset(ctx context.Context, q domain.QueueRef, p ports.OffsetPolicy, at time.Time) (int64, error) {
	if err := m.checkQueue(false, "", q); err != nil {
		return 0, err
	}
	if p == ports.OffsetTimestamp && at.IsZero() {
		return 0, domain.Errorf(domain.ReasonBadRequest, "a TIMESTAMP offset query needs a timestamp")
	}
	return m.offsets.QueryOffset(ctx, q, p, at)
}
