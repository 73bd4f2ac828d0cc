package ports

import (
	"context"
	"errors"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

// Broker stores and delivers messages. It is implemented by the embedded
// engine (local mode) and by the Remoting client of a RocketMQ cluster
// (cluster mode). All methods honour ctx's deadline and cancellation.
type Broker interface {
	// Route returns the queues of a topic, sorted by broker name then queue
	// id. A missing topic is a ReasonTopicNotFound error. The queues may be
	// shared with other callers (brokers cache them): read them, never
	// modify them.
	Route(ctx context.Context, topic string) (Route, error)

	// Send stores msgs, which all belong to queue q's topic, in queue q, in
	// order, and returns one receipt per message. It returns only once the
	// messages are as durable as the broker's flush policy promises: with
	// synchronous flush, they survive a crash of the process or the machine.
	// Either all messages are stored or none is.
	Send(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error)

	// Pop hands out up to req.MaxMessages visible messages to req.Group and
	// makes them invisible for req.InvisibleTime. When none is visible it
	// waits up to req.PollTimeout for one (long polling), returning an empty
	// slice, not an error, when none came. ctx bounds the whole call, the
	// broker's answer included; it usually ends well after the polling
	// time, so that a broker that popped messages late in its poll gets its
	// answer through. Every returned message carries a receipt handle and
	// its delivery attempt.
	Pop(ctx context.Context, req PopRequest) ([]domain.StoredMessage, error)

	// Ack marks a delivered message consumed by the group; it is never
	// delivered to that group again. A handle superseded by a later change
	// or delivery is a ReasonInvalidReceiptHandle error, and so is one
	// whose invisible time has ended, unless the broker still holds the
	// delivery under it (the local broker, for a delivery the proxy
	// renewed: see [ChangeInvisibleRequest.Renewal]).
	Ack(ctx context.Context, req AckRequest) error

	// AckBatch acks several deliveries (of any groups and topics) at once,
	// sharing the wait for durability; it returns one error per request, in
	// order (nil for success).
	AckBatch(ctx context.Context, reqs []AckRequest) []error

	// ChangeInvisible sets when a delivered message becomes visible again,
	// counting from now, and returns the handle that replaces req.Handle.
	//
	// A broker that may apply a change after the handle's invisible time
	// has ended, and then deliver the message twice (a RocketMQ broker
	// revives the old checkpoint and the new one), checks the handle when
	// it sends the change: one already expired, or a release (see
	// [ChangeInvisibleRequest.Release]) of one that expires within the
	// time the request may take, is not sent and fails with an error
	// wrapping [ErrHandleExpiring] (ReasonInvalidReceiptHandle).
	ChangeInvisible(ctx context.Context, req ChangeInvisibleRequest) (domain.ReceiptHandle, error)

	// ChangeInvisibleBatch changes several deliveries at once, sharing the
	// wait for durability; it returns one handle and one error per request,
	// in order (the handle is valid where the error is nil).
	ChangeInvisibleBatch(ctx context.Context, reqs []ChangeInvisibleRequest) ([]domain.ReceiptHandle, []error)

	// ForwardToDeadLetter moves a delivered message to the group's
	// dead-letter queue (%DLQ%group) and acks the original. A forward
	// whose handle names no message the request may move (one never
	// delivered to the group, or a message of another topic) moves
	// nothing and returns a *ForwardRefusedError. A broker that delivers
	// the message again whatever it moves (a RocketMQ broker, once the
	// handle's invisible time has ended) moves nothing either and returns
	// nil: that delivery decides.
	ForwardToDeadLetter(ctx context.Context, req AckRequest) error
}

// Route is the set of queues of one topic.
type Route struct {
	Topic  domain.Topic
	Queues []RouteQueue
}

// RouteQueue is one queue of a route.
type RouteQueue struct {
	BrokerName string
	QueueID    int32
	Permission domain.Permission
}

// WritableQueues returns the writable queues of the route in route order.
func (r Route) WritableQueues() []RouteQueue {
	out := make([]RouteQueue, 0, len(r.Queues))
	for _, q := range r.Queues {
		if q.Permission.Writable() {
			out = append(out, q)
		}
	}
	return out
}

// PopRequest asks a broker for messages for a consumer group.
type PopRequest struct {
	Group string
	Topic string
	// BrokerName selects the broker; empty, or one without a readable
	// queue of the topic, means any (as the Apache proxy).
	BrokerName string
	// QueueID selects the queue; -1 lets the broker choose among all
	// readable queues of the topic.
	QueueID       int32
	MaxMessages   int32
	InvisibleTime time.Duration
	// PollTimeout is how long to wait for a message when none is visible.
	PollTimeout time.Duration
	// Filter selects the messages the group wants; messages that do not
	// match are consumed silently (never delivered to this group).
	Filter filter.Filter
	// FIFO asks for ordered delivery: within a message group, a message is
	// not delivered while an earlier one is in flight or not yet acked.
	FIFO bool
	// FIFORuns lets a FIFO pop hand out a run of a message group: up to
	// MaxMessages consecutive messages of it, in order (otherwise one
	// message per group). An ack of a later message of a run is final only
	// once the earlier ones are acked; if one of them becomes visible again
	// first, the run is delivered again from it.
	FIFORuns bool
	// AttemptID lets a broker recognise a retried pop request.
	AttemptID string
}

// AckRequest identifies one delivery of a message to a group.
type AckRequest struct {
	Group     string
	Topic     string
	MessageID string
	Handle    domain.ReceiptHandle
}

// ChangeInvisibleRequest changes the invisible time of one delivery.
type ChangeInvisibleRequest struct {
	AckRequest
	InvisibleTime time.Duration
	// Release marks a change the proxy makes on its own to let the
	// message be delivered again soon (a message it could not hand to the
	// client, one a departed client held, one held past
	// consumer.renewMaxTime): the message becomes visible when its handle
	// expires anyway, so leaving the change out costs at most that wait,
	// while a change the broker applies too late delivers it twice.
	// Client requests and renewals are not releases.
	Release bool
	// Renewal marks the proxy's own renewal of a delivery it holds for a
	// push consumer, which keeps the handle it was given and acks with it
	// (the proxy puts the latest handle in its place while it knows the
	// renewals). A broker that can keeps that handle valid for the
	// delivery (the local broker keeps its receipt id), so that the
	// consumer's ack still takes after the proxy forgot its renewals (a
	// restart): otherwise the message stayed invisible for the renewed
	// time, its FIFO message group with it, and then came again.
	Renewal bool
}

// ErrHandleExpiring is wrapped by the error of a change that was not sent
// because the handle's invisible time had ended, or, for a release, ends
// before the broker could be relied on to apply it (see
// [Broker.ChangeInvisible]).
var ErrHandleExpiring = errors.New("the receipt handle's invisible time ends before the broker could apply the change")

// Reasons of a [ForwardRefusedError], as the audit log records them.
const (
	// ForwardForgedHandle: the handle names no delivery of the request's
	// topic to its group (made up, or not this group's).
	ForwardForgedHandle = "forged_handle"
	// ForwardForeignMessage: the handle names a message, but not one of
	// the request's topic (or not the message the request names).
	ForwardForeignMessage = "foreign_message"
)

// ForwardRefusedError is what [Broker.ForwardToDeadLetter] returns when
// it moved nothing because the receipt handle does not name a message the
// request (its group and topic, all the client was authorized for) may
// move. The caller records Reason in the audit log and answers the client
// Err: nil (the forward is answered as done, since a client repeats a
// refused forward without end, as a RocketMQ broker answers it), or the
// error the client gets (a handle naming nothing the broker can show).
type ForwardRefusedError struct {
	Reason string // ForwardForgedHandle or ForwardForeignMessage
	Err    error  // the answer to the client; nil: OK
}

func (e *ForwardRefusedError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return "dead-letter forward moved nothing: the receipt handle names no message of the request (" + e.Reason + ")"
}

// Unwrap returns Err.
func (e *ForwardRefusedError) Unwrap() error { return e.Err }
