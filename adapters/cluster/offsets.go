package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// queueBroker returns the broker address of a queue of a topic.
func (b *Broker) queueBroker(ctx context.Context, q domain.QueueRef) (string, error) {
	e, err := b.meta.topic(ctx, q.Topic)
	if err != nil {
		return "", err
	}
	return e.addr(q.BrokerName)
}

// offsetQueue returns the broker address of the queue a pull or offset
// call names, once the topic's route has that queue: a broker answers
// GET_MIN_OFFSET, GET_MAX_OFFSET and SEARCH_OFFSET_BY_TIMESTAMP with 0 for a
// queue id it does not have, commits an offset for it, and refuses a pull
// of it with SYSTEM_ERROR, where local mode answers BAD_REQUEST. A queue
// missing from a cached route makes the route be read once more (the
// topic may have more queues now, which a client heard of from another
// rmqproxy).
func (b *Broker) offsetQueue(ctx context.Context, q domain.QueueRef) (string, error) {
	addr, _, err := b.routeQueue(ctx, q)
	return addr, err
}

// routeQueue is offsetQueue that also returns the queue's permission.
func (b *Broker) routeQueue(ctx context.Context, q domain.QueueRef) (string, domain.Permission, error) {
	for reread := false; ; reread = true {
		e, err := b.meta.topic(ctx, q.Topic)
		if err != nil {
			return "", 0, err
		}
		addr, err := e.addr(q.BrokerName)
		if err == nil {
			if rq, ok := e.queue(q.BrokerName, q.QueueID); ok {
				return addr, rq.Permission, nil
			}
		}
		if reread {
			if err == nil {
				err = domain.Errorf(domain.ReasonBadRequest, "broker %q has no queue %d of topic %q (query the route again)", q.BrokerName, q.QueueID, q.Topic)
			}
			return "", 0, err
		}
		b.meta.invalidateTopic(q.Topic)
	}
}

// Pull implements [ports.Offsets] with PULL_MESSAGE (suspended for the
// polling time at the broker, subscription in the request).
//
// A broker answers a suspended pull at once when a message comes, else at
// its first look at its suspended pulls after the suspend time: it looks
// every 5 s (PullRequestHoldService with longPollingEnable, the default),
// so up to 5 s late. The pull waits for the answer only until its poll
// time ends (a second at least, when the deadline allows) and then
// answers that nothing was found, from the offset asked (the broker holds
// only a pull that found nothing there; the answer it sends later is
// dropped, and a pull changes nothing at the broker). A poll of 2 s took
// up to 7 s, and one whose deadline left no room for the 5 s on top asked
// for no suspend at all: it came back at once, and a client pulling at
// the end of a queue with such a deadline pulled in a tight loop where
// local mode waits.
func (b *Broker) Pull(ctx context.Context, req ports.PullRequest) (ports.PullResult, error) {
	q := req.Queue
	addr, perm, err := b.routeQueue(ctx, q)
	if err != nil {
		return ports.PullResult{}, err
	}
	if !perm.Readable() {
		// As local mode answers; the broker's NO_PERMISSION would read as
		// rmqproxy's own credentials failing.
		return ports.PullResult{}, domain.Errorf(domain.ReasonForbidden, "topic %q is not readable on broker %q (permission %d)", q.Topic, q.BrokerName, perm)
	}
	f, expType, exp := remotingExpression(req.Filter)
	poll, timeout := b.pollBudget(ctx, req.PollTimeout)
	flags := remoting.PullSubscription
	if poll > 0 {
		// The answer to a pull that finds messages comes at once: it is
		// waited for at least a second (or cluster.requestTimeout when
		// shorter), so that a very short poll does not give up on a
		// broker a little slow to read them.
		flags |= remoting.PullSuspend
		grace := pollReserve(timeout) / 2
		timeout = min(max(poll+grace, min(b.cfg.RequestTimeout, time.Second)), timeout-grace)
	}
	h := remoting.PullMessageRequestHeader{RPC: remoting.RPC{BrokerName: q.BrokerName}, ConsumerGroup: req.Group, Topic: q.Topic,
		QueueID: q.QueueID, QueueOffset: req.Offset, MaxMsgNums: max(req.BatchSize, 1), SysFlag: flags,
		SuspendTimeoutMillis: poll.Milliseconds(), Subscription: exp, SubVersion: b.clock.Now().UnixMilli(), ExpressionType: expType}
	pr := remoting.NewRequestWithRoom(remoting.RequestPullMessage, nil)
	pr.Fields = h.AppendFields(pr.Fields) // h stays on the stack, as in Pop
	resp, err := b.poll(ctx, addr, pr, timeout, nil)
	if err != nil {
		if poll > 0 && ctx.Err() == nil && heldPastPoll(err) {
			// Held at the broker for the whole poll time: nothing came.
			return ports.PullResult{NextOffset: req.Offset, Messages: []domain.StoredMessage{}}, nil
		}
		if ctx.Err() == nil {
			b.failed(q.BrokerName, err)
		}
		return ports.PullResult{}, mapError(err)
	}
	var ph remoting.PullMessageResponseHeader
	code := remoting.ResponseCode(resp.Code)
	switch code {
	case remoting.ResponseSuccess, remoting.ResponsePullNotFound, remoting.ResponsePullRetryImmediately, remoting.ResponsePullOffsetMoved:
		if err := ph.DecodeFields(resp.Fields); err != nil { // not decodeHeader: its interface moved ph to the heap
			return ports.PullResult{}, headerError(err)
		}
	default:
		return ports.PullResult{}, mapError(expect(remoting.RequestPullMessage, resp))
	}
	out := ports.PullResult{NextOffset: ph.NextBeginOffset, MinOffset: ph.MinOffset, MaxOffset: ph.MaxOffset}
	switch code {
	case remoting.ResponsePullOffsetMoved:
		return ports.PullResult{}, domain.Errorf(domain.ReasonIllegalOffset,
			"offset %d is out of range of queue %s: it holds offsets [%d, %d)", req.Offset, q, ph.MinOffset, ph.MaxOffset)
	case remoting.ResponsePullNotFound, remoting.ResponsePullRetryImmediately:
		if req.Offset > ph.MaxOffset {
			return ports.PullResult{}, domain.Errorf(domain.ReasonIllegalOffset,
				"offset %d is beyond the end of queue %s (%d)", req.Offset, q, ph.MaxOffset)
		}
		return out, nil
	}
	raw, err := remoting.DecodeMessages(resp.Body)
	if err != nil {
		return ports.PullResult{}, domain.Wrap(domain.ReasonBrokerError, err, "the broker's pull answer could not be decoded")
	}
	var hosts hostName
	for i := range raw {
		sm := storedMessageOf(&raw[i], q.Topic, q.BrokerName, &hosts)
		if f.Match(&sm.Message) {
			out.Messages = append(out.Messages, sm)
		}
	}
	return out, nil
}

// heldPastPoll reports whether err says that a suspended pull, sent to
// the broker, was not answered within its poll time.
func heldPastPoll(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Timeout() && ce.MaybeDelivered()
}

// queueOffset asks a queue's minimum or maximum offset.
func (b *Broker) queueOffset(ctx context.Context, addr string, q domain.QueueRef, maxOffset bool) (int64, error) {
	rpc := remoting.RPC{BrokerName: q.BrokerName}
	code, h := remoting.RequestGetMinOffset, remoting.GetMinOffsetRequestHeader(rpc, q.Topic, q.QueueID)
	if maxOffset {
		code, h = remoting.RequestGetMaxOffset, remoting.GetMaxOffsetRequestHeader(rpc, q.Topic, q.QueueID, false)
	}
	resp, err := b.call(ctx, addr, code, h, nil)
	return b.offsetAnswer(q.BrokerName, resp, err)
}

// offsetAnswer reads the offset in a broker's answer to an offset request
// (resp and err as b.call returned them); a failed call counts against
// the broker.
func (b *Broker) offsetAnswer(brokerName string, resp *remoting.Command, err error) (int64, error) {
	if err != nil {
		b.failed(brokerName, err)
		return 0, mapError(err)
	}
	var oh remoting.OffsetResponseHeader
	if err := decodeHeader(resp, &oh); err != nil {
		return 0, err
	}
	return oh.Offset, nil
}

// UpdateOffset implements [ports.Offsets]: UPDATE_CONSUMER_OFFSET, after
// checking the offset against the queue's end.
func (b *Broker) UpdateOffset(ctx context.Context, group string, q domain.QueueRef, offset int64) error {
	addr, err := b.offsetQueue(ctx, q)
	if err != nil {
		return err
	}
	maxOff, err := b.queueOffset(ctx, addr, q, true)
	if err != nil {
		return err
	}
	if offset < 0 || offset > maxOff {
		return domain.Errorf(domain.ReasonIllegalOffset, "offset %d is out of range of queue %s: [0, %d]", offset, q, maxOff)
	}
	_, err = b.call(ctx, addr, remoting.RequestUpdateConsumerOffset, &remoting.UpdateConsumerOffsetRequestHeader{
		RPC: remoting.RPC{BrokerName: q.BrokerName}, ConsumerGroup: group, Topic: q.Topic, QueueID: q.QueueID, CommitOffset: offset}, nil)
	if err != nil {
		b.failed(q.BrokerName, err)
		return mapError(err)
	}
	return nil
}

// GetOffset implements [ports.Offsets]: QUERY_CONSUMER_OFFSET, asking the
// broker not to answer 0 for a group that never committed.
func (b *Broker) GetOffset(ctx context.Context, group string, q domain.QueueRef) (int64, error) {
	addr, err := b.offsetQueue(ctx, q)
	if err != nil {
		return 0, err
	}
	no := false
	resp, err := b.call(ctx, addr, remoting.RequestQueryConsumerOffset, &remoting.QueryConsumerOffsetRequestHeader{
		RPC: remoting.RPC{BrokerName: q.BrokerName}, ConsumerGroup: group, Topic: q.Topic, QueueID: q.QueueID, SetZeroIfNotFound: &no}, nil)
	if isCode(err, remoting.ResponseQueryNotFound) {
		return 0, domain.Errorf(domain.ReasonOffsetNotFound, "consumer group %q has committed no offset for queue %s", group, q)
	}
	return b.offsetAnswer(q.BrokerName, resp, err)
}

// QueryOffset implements [ports.Offsets]: GET_MIN_OFFSET, GET_MAX_OFFSET or
// SEARCH_OFFSET_BY_TIMESTAMP.
func (b *Broker) QueryOffset(ctx context.Context, q domain.QueueRef, p ports.OffsetPolicy, at time.Time) (int64, error) {
	addr, err := b.offsetQueue(ctx, q)
	if err != nil {
		return 0, err
	}
	switch p {
	case ports.OffsetBeginning:
		return b.queueOffset(ctx, addr, q, false)
	case ports.OffsetEnd:
		return b.queueOffset(ctx, addr, q, true)
	}
	resp, err := b.call(ctx, addr, remoting.RequestSearchOffsetByTimestamp, &remoting.SearchOffsetRequestHeader{
		RPC: remoting.RPC{BrokerName: q.BrokerName}, Topic: q.Topic, QueueID: q.QueueID, Timestamp: at.UnixMilli(), BoundaryType: remoting.BoundaryLower}, nil)
	return b.offsetAnswer(q.BrokerName, resp, err)
}
