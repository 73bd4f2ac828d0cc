package domain

import (
	"errors"
	"fmt"
)

// Reason classifies a failure so that each protocol adapter can map it to its
// own precise code. The reasons mirror the distinctions RocketMQ clients can
// observe; adding a reason means adding it to every adapter's mapping table.
type Reason uint8

// Reasons, grouped roughly as the RocketMQ status codes are.
const (
	ReasonInternal Reason = iota // a bug or an unexpected failure; never the client's fault
	ReasonBadRequest
	ReasonIllegalAccessPoint
	ReasonIllegalTopic
	ReasonIllegalConsumerGroup
	ReasonIllegalMessageTag
	ReasonIllegalMessageKey
	ReasonIllegalMessageGroup
	ReasonIllegalPropertyKey
	ReasonInvalidTransactionID
	ReasonIllegalMessageID
	ReasonIllegalFilterExpression
	ReasonIllegalInvisibleTime
	ReasonIllegalDeliveryTime
	ReasonInvalidReceiptHandle
	ReasonMessageTypeConflict
	ReasonUnrecognizedClientType
	ReasonMessageCorrupted
	ReasonClientIDRequired
	ReasonIllegalPollingTime
	ReasonIllegalOffset
	ReasonUnauthorized
	ReasonForbidden
	ReasonNotFound
	ReasonMessageNotFound
	ReasonTopicNotFound
	ReasonConsumerGroupNotFound
	ReasonOffsetNotFound
	ReasonBodyTooLarge
	ReasonBodyEmpty
	ReasonPropertiesTooLarge
	ReasonTooManyRequests
	ReasonNotImplemented
	ReasonTimeout
	ReasonPersistenceTimeout
	ReasonUnavailable // the backend cannot serve now (shutting down, disk full); retriable
	ReasonAlreadyExists
	// ReasonBrokerError: a RocketMQ broker refused the request with an
	// answer no other reason describes; Msg carries the broker's remark.
	ReasonBrokerError
	// ReasonReplicaPersistenceTimeout: stored, but the broker's replicas
	// did not confirm it in time (a RocketMQ broker's FLUSH_SLAVE_TIMEOUT).
	ReasonReplicaPersistenceTimeout
	// ReasonReplicaUnavailable: stored, but no replica the broker must
	// copy it to is available (a RocketMQ broker's SLAVE_NOT_AVAILABLE).
	ReasonReplicaUnavailable
	reasonCount
)

var reasonNames = [...]string{
	ReasonInternal:                  "internal error",
	ReasonBadRequest:                "bad request",
	ReasonIllegalAccessPoint:        "illegal access point",
	ReasonIllegalTopic:              "illegal topic",
	ReasonIllegalConsumerGroup:      "illegal consumer group",
	ReasonIllegalMessageTag:         "illegal message tag",
	ReasonIllegalMessageKey:         "illegal message key",
	ReasonIllegalMessageGroup:       "illegal message group",
	ReasonIllegalPropertyKey:        "illegal message property key",
	ReasonInvalidTransactionID:      "invalid transaction id",
	ReasonIllegalMessageID:          "illegal message id",
	ReasonIllegalFilterExpression:   "illegal filter expression",
	ReasonIllegalInvisibleTime:      "illegal invisible time",
	ReasonIllegalDeliveryTime:       "illegal delivery time",
	ReasonInvalidReceiptHandle:      "invalid receipt handle",
	ReasonMessageTypeConflict:       "message type conflicts with topic",
	ReasonUnrecognizedClientType:    "unrecognized client type",
	ReasonMessageCorrupted:          "message corrupted",
	ReasonClientIDRequired:          "client id required",
	ReasonIllegalPollingTime:        "illegal polling time",
	ReasonIllegalOffset:             "illegal offset",
	ReasonUnauthorized:              "unauthorized",
	ReasonForbidden:                 "forbidden",
	ReasonNotFound:                  "not found",
	ReasonMessageNotFound:           "message not found",
	ReasonTopicNotFound:             "topic not found",
	ReasonConsumerGroupNotFound:     "consumer group not found",
	ReasonOffsetNotFound:            "offset not found",
	ReasonBodyTooLarge:              "message body too large",
	ReasonBodyEmpty:                 "message body empty",
	ReasonPropertiesTooLarge:        "message properties too large",
	ReasonTooManyRequests:           "too many requests",
	ReasonNotImplemented:            "not implemented",
	ReasonTimeout:                   "timeout",
	ReasonPersistenceTimeout:        "persistence timeout",
	ReasonUnavailable:               "unavailable",
	ReasonAlreadyExists:             "already exists",
	ReasonBrokerError:               "broker error",
	ReasonReplicaPersistenceTimeout: "replica persistence timeout",
	ReasonReplicaUnavailable:        "replica unavailable",
}

// Reasons lists every defined reason; adapters table-test their mapping with it.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonCount)
	for r := Reason(0); r < reasonCount; r++ {
		out = append(out, r)
	}
	return out
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Error is the one error type of rmqproxy's domain. Msg is written for the
// client: it says what was wrong and, where the user can fix it, how.
type Error struct {
	Reason Reason
	Msg    string
	Err    error // optional cause, never shown to clients
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason.String() + ": " + e.Msg + ": " + e.Err.Error()
	}
	return e.Reason.String() + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is a *Error with the same reason, so that
// errors.Is(err, &Error{Reason: ReasonTopicNotFound}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason && t.Msg == "" && t.Err == nil
}

// Errorf builds an *Error with a formatted client-facing message.
func Errorf(reason Reason, format string, a ...any) error {
	return &Error{Reason: reason, Msg: fmt.Sprintf(format, a...)}
}

// Wrap builds an *Error that keeps cause for logs while showing msg to clients.
func Wrap(reason Reason, cause error, msg string) error {
	return &Error{Reason: reason, Msg: msg, Err: cause}
}

// ReasonOf returns the reason of the first *Error in err's chain, and
// ReasonInternal for any other error.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonInternal
}

// MessageOf returns the client-facing message of err: the Msg of its *Error,
// or "" when err carries no domain error (the adapter then writes its own
// short internal-error text; internal details never reach a client).
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return ""
}

// HasReason reports whether err carries a domain error with reason r.
func HasReason(err error, r Reason) bool {
	var e *Error
	return errors.As(err, &e) && e.Reason == r
}
