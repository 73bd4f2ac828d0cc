package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/cluster/internal/coalesce"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Concurrent sends of single normal messages to one topic on one broker
// are coalesced like a group commit (package coalesce), as acks are: up to
// sendFlights send requests per broker and topic are in flight at once
// (2: in the benchmark 4 formed fewer batches and 1 was no faster),
// each sent as soon as it comes, as SEND_MESSAGE_V2; the messages that
// come while all are in flight wait, and when a request returns, those
// waiting by then go together in one SEND_BATCH_MESSAGE to the queue the
// first of them was given. A broker stores a batch under one lock, one
// commit-log append and one flush wait, and answers once: on the 5.5.0
// broker a message sent in batches of four cost about a third of the CPU
// of one sent alone. A lone send is never delayed.
//
// Only what a batch keeps exactly is coalesced: a normal message (no
// message group, delivery time or transaction) sent on its own, with its
// own properties in the batch record. What a batch cannot keep per
// message is the born time: the broker stores the batch's (the first
// message's) for all; each message's own stays in its BORN_TIMESTAMP
// property, which rmqproxy shows to consumers (see storedMessage). A
// message sent without a born time has no such property and is sent
// alone.
const (
	sendFlights         = 2
	maxCoalescedSends   = 256
	maxCoalescedSendLen = 1 << 20 // bytes of batch records
)

// sendKey names a send line: messages of one line can share a request.
type sendKey struct {
	broker, topic string
	compressed    bool // the batch's system flag is its first message's
}

// pendingSend is a message waiting in a send line.
type pendingSend struct {
	msg      *domain.Message
	props    string    // its formatted properties
	deadline time.Time // its caller's; zero: none
}

// sendResult is what a coalesced request answered for one message.
type sendResult struct {
	// receipts holds the message's receipt: a one-receipt part of the
	// request's (capped: appending to it copies), which Send returns as
	// it is.
	receipts []domain.SendReceipt
	err      error // the broker's or the connection's, raw (see mapError)
	// alone: the broker refused the batch as such (MESSAGE_ILLEGAL: too
	// large for its maxMessageSize, ...); the message is to be sent alone,
	// so that it gets an answer of its own.
	alone bool
}

type sendLines = coalesce.Lines[sendKey, pendingSend, sendResult]

var sendLimits = coalesce.Limits[pendingSend]{Flights: sendFlights, MaxItems: maxCoalescedSends, MaxWeight: maxCoalescedSendLen,
	Weight: func(p pendingSend) int { return 22 + len(p.msg.Body) + len(p.props) }} // its batch record's bytes

// coalescible reports whether msgs may share a request with other sends.
func (b *Broker) coalescible(msgs []domain.Message) bool {
	if !b.cfg.CoalesceSends || len(msgs) != 1 {
		return false
	}
	m := &msgs[0]
	// A message without a born time gets this host's clock as the one the
	// broker stores (see sendRequest): in a batch it would get the first
	// message's, which may be another client's from any time.
	return m.Type() == domain.MessageTypeNormal && m.ReconsumeTimes == 0 && !m.BornAt.IsZero()
}

// sendCoalesced sends m (props: its formatted properties) to queue q
// through the line of q's broker and topic and returns its receipt (in a
// slice of one). A
// message that waited goes to the queue of the first message of its
// request. A caller that gives up while its message waits gets ctx's
// error; nothing was sent.
func (b *Broker) sendCoalesced(ctx context.Context, e *topicEntry, q domain.QueueRef, m *domain.Message, props string) ([]domain.SendReceipt, error) {
	item := pendingSend{msg: m, props: props}
	if d, ok := ctx.Deadline(); ok {
		item.deadline = d
	}
	key := sendKey{broker: q.BrokerName, topic: q.Topic, compressed: m.Compressed}
	res, err := b.sendLines.Line(key).Do(ctx, item, func(items []pendingSend, out []sendResult) {
		if len(items) == 1 {
			// Alone (it is this caller's own: a request's first item is
			// its sender's): as without the line.
			out[0].receipts, out[0].err = b.sendAlone(ctx, e, q, items[0])
			return
		}
		b.sendBatchOf(ctx, e, q, items, out)
	})
	switch {
	case err != nil:
		return nil, err
	case res.alone:
		return b.sendAlone(ctx, e, q, item)
	case res.err != nil:
		return nil, res.err
	}
	return res.receipts, nil
}

// sendAlone sends it in a SEND_MESSAGE_V2 of its own to q and returns its
// receipt, in a slice of one.
func (b *Broker) sendAlone(ctx context.Context, e *topicEntry, q domain.QueueRef, it pendingSend) ([]domain.SendReceipt, error) {
	return b.sendTo(ctx, e, q, []domain.Message{*it.msg}, it.msg.Body, remoting.RequestSendMessageV2, it.props, b.cfg.RequestTimeout)
}

// sendBatchOf sends items, messages of several callers, in one
// SEND_BATCH_MESSAGE to q, and sets their results in out. The request
// waits for the latest of the callers' deadlines, at most
// cluster.requestTimeout.
func (b *Broker) sendBatchOf(ctx context.Context, e *topicEntry, q domain.QueueRef, items []pendingSend, out []sendResult) {
	msgs := make([]domain.Message, len(items))
	size, latest, bounded := 0, time.Time{}, true
	for i, it := range items {
		msgs[i] = *it.msg
		size += sendLimits.Weight(it)
		if it.deadline.IsZero() {
			bounded = false
		} else if it.deadline.After(latest) {
			latest = it.deadline
		}
	}
	body := make([]byte, 0, size)
	for _, it := range items {
		var err error
		if body, err = remoting.AppendBatchRecord(body, 0, it.msg.Body, it.props); err != nil {
			for i := range out {
				out[i].alone = true
			}
			return
		}
	}
	// Bounded by the client's reused timer (see invoke), not a context
	// with a deadline and a timer of its own per batch.
	timeout := b.cfg.RequestTimeout
	if bounded {
		timeout = min(timeout, time.Until(latest))
	}
	receipts, err := b.sendTo(context.WithoutCancel(ctx), e, q, msgs, body, remoting.RequestSendBatchMessage, "", timeout)
	for i := range out {
		switch {
		case err == nil:
			out[i].receipts = receipts[i : i+1 : i+1]
		case refusedAsBatch(err):
			out[i].alone = true
		default:
			out[i].err = err
		}
	}
}

// refusedAsBatch reports whether a broker refused a batch for what it is
// (too large for its maxMessageSize, a request it does not serve) rather
// than for its topic or its state: each message then gets its own answer.
func refusedAsBatch(err error) bool {
	var re *remoting.ResponseError
	return isBatchTooLarge(err) || errors.As(err, &re) && (re.Code == remoting.ResponseMessageIllegal || re.Code == remoting.ResponseRequestCodeNotSupported)
}
