package cluster

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
)

// mapError turns a failed broker or NameServer call into a domain error.
// It is the one place where broker answers get their meaning, chosen so
// that the gRPC adapter gives clients the code the Apache proxy gives for
// the same broker answer (its ResponseBuilder): TOPIC_NOT_EXIST →
// TOPIC_NOT_FOUND, SYSTEM_BUSY → TOO_MANY_REQUESTS, REQUEST_CODE_NOT_SUPPORTED →
// NOT_IMPLEMENTED, SUBSCRIPTION_GROUP_NOT_EXIST → CONSUMER_GROUP_NOT_FOUND, a
// timeout → PROXY_TIMEOUT, any other code → INTERNAL_SERVER_ERROR with the
// broker's remark. Unlike the Apache proxy, a timer under flow control
// (SYSTEM_ERROR "timer message is under flow control ...") is
// TOO_MANY_REQUESTS, as the overload it is, and a delivery time beyond the
// timer's reach (MESSAGE_ILLEGAL "timer message illegal ...") is
// ILLEGAL_DELIVERY_TIME, whichever request stored the message (a send, a
// batch send, the commit of a delay transaction), and a batch larger than
// the broker's maxMessageSize (SYSTEM_ERROR "...message body size
// exceeded...") or a message whose body is (MESSAGE_ILLEGAL "the message
// is illegal, maybe msg body or properties length not matched ...") is
// MESSAGE_BODY_TOO_LARGE. A broker that cannot be
// reached is UNAVAILABLE (which clients retry after a back-off) rather
// than upstream's internal error.
// Domain errors pass through; a cancellation stays a context error.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	var re *remoting.ResponseError
	if errors.As(err, &re) {
		return mapResponse(re)
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Kind {
		case client.KindTimeout:
			return domain.Wrap(domain.ReasonTimeout, err, "the broker did not answer in time")
		case client.KindCanceled:
			return errors.Join(context.Canceled, err)
		case client.KindDial, client.KindConnection:
			return domain.Wrap(domain.ReasonUnavailable, err, "the broker cannot be reached now; retry")
		case client.KindClosed:
			return domain.Wrap(domain.ReasonUnavailable, err, "rmqproxy is shutting down")
		case client.KindEncode:
			if errors.Is(err, remoting.ErrFrameTooLarge) {
				// Only a send carries that much: its body.
				return domain.Wrap(domain.ReasonBodyTooLarge, err, "the message is too large for a RocketMQ broker: its request would exceed the "+
					"16 MiB frame a broker reads (messaging.limits.maxBodySize should stay well below it)")
			}
		}
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return domain.Wrap(domain.ReasonTimeout, err, "the broker did not answer in time")
	}
	return err
}

// Remarks a 5.x broker starts its answer with when its timer refuses to
// store a delay message (SendMessageProcessor for a send or a batch send,
// EndTransactionProcessor for the commit of a delay transaction: the same
// text for both). Other requests that store a message answer otherwise: a
// CONSUMER_SEND_MSG_BACK with the store status's name, a RECALL_MESSAGE
// with "recall failed, execute error".
const (
	// timerCongested: WHEEL_TIMER_FLOW_CONTROL (SYSTEM_ERROR), more messages
	// due in the delivery time's slot than its timerCongestNumEachSlot.
	timerCongested = "timer message is under flow control"
	// timerRefusal: WHEEL_TIMER_MSG_ILLEGAL (MESSAGE_ILLEGAL), a delivery
	// time beyond its timerMaxDelaySec (3 days by default).
	timerRefusal = "timer message illegal"
	// batchTooLarge: a batch whose messages take more than its
	// maxMessageSize together; its MessageExtEncoder throws, and the
	// broker answers SYSTEM_ERROR with the exception's text (RocketMQ
	// 5.5.0: "java.lang.RuntimeException: message body size exceeded,
	// ..."), having stored nothing.
	batchTooLarge = "message body size exceeded"
	// noPropertyFilter: a broker with enablePropertyFilter=false (its
	// default) refusing a PULL_MESSAGE with a SQL92 filter (SYSTEM_ERROR,
	// "The broker does not support consumer to filter message by SQL92").
	// Its pops evaluate SQL92 filters all the same.
	noPropertyFilter = "The broker does not support consumer to filter message by"
	// messageTooLarge: MESSAGE_ILLEGAL or PROPERTIES_SIZE_EXCEEDED of its
	// store, a message whose body is larger than its maxMessageSize or
	// whose properties take more than 32 KiB (SendMessageProcessor:
	// "the message is illegal, maybe msg body or properties length not
	// matched. msg body length limit ...B, msg properties length limit
	// 32KB."). rmqproxy refuses larger properties before they reach a
	// broker (domain.MaxStoredPropertiesLen): it is the body.
	messageTooLarge = "the message is illegal, maybe msg body or properties length not matched"
)

// isBatchTooLarge reports whether err is a broker's refusal of a batch
// larger than its maxMessageSize (see batchTooLarge).
func isBatchTooLarge(err error) bool {
	var re *remoting.ResponseError
	return errors.As(err, &re) && re.Code == remoting.ResponseSystemError && strings.Contains(re.Remark, batchTooLarge)
}

func mapResponse(re *remoting.ResponseError) error {
	msg := re.Remark
	if msg == "" {
		msg = re.Code.String()
	}
	switch re.Code {
	case remoting.ResponseTopicNotExist:
		return domain.Wrap(domain.ReasonTopicNotFound, re, msg)
	case remoting.ResponseSystemBusy, remoting.ResponsePollingFull, remoting.ResponseFlowControl:
		return domain.Wrap(domain.ReasonTooManyRequests, re, msg)
	case remoting.ResponseSystemError:
		if strings.HasPrefix(re.Remark, timerCongested) {
			// A 5.x broker's timer wheel holds more messages due in the
			// delivery time's slot than timerCongestNumEachSlot allows
			// (WHEEL_TIMER_FLOW_CONTROL, answered to a send or to the
			// commit of a delay transaction): a passing overload, which
			// the clients retry with back-off.
			return domain.Wrap(domain.ReasonTooManyRequests, re, "the broker's timer is congested at this delivery time "+
				"(more messages are due in its slot than its timerCongestNumEachSlot allows): retry later or choose another delivery time; the broker said: "+msg)
		}
		if strings.HasPrefix(re.Remark, noPropertyFilter) {
			// Not a fault that passes: the broker is set up not to do it.
			return domain.Wrap(domain.ReasonNotImplemented, re, "the broker does not evaluate SQL92 filters of pulls: set enablePropertyFilter=true "+
				"in its broker.conf (receives are served without it) or pull with a tag filter; the broker said: "+msg)
		}
		if strings.Contains(re.Remark, batchTooLarge) {
			// The client's batch is too large; an internal error (which
			// the clients retry) is what upstream answers.
			return domain.Wrap(domain.ReasonBodyTooLarge, re, "the messages of this request are larger together than the broker's maxMessageSize "+
				"(a RocketMQ broker bounds a batch as one message): send fewer or smaller messages per request; the broker said: "+msg)
		}
	case remoting.ResponseMessageIllegal:
		if strings.HasPrefix(re.Remark, timerRefusal) {
			// The client chose the delivery time; rmqproxy refuses it
			// itself when messaging.limits.maxDelay is within the brokers'
			// limit.
			return domain.Wrap(domain.ReasonIllegalDeliveryTime, re, "the delivery time lies further ahead than the broker's timer accepts (its timerMaxDelaySec): "+
				msg+"; messaging.limits.maxDelay should not exceed the brokers' timerMaxDelaySec")
		}
		if strings.HasPrefix(re.Remark, messageTooLarge) {
			// The client's body is too large for the broker (upstream
			// answers an internal error, a fault of the server): rmqproxy's
			// own limit lets through more than the broker's.
			return domain.Wrap(domain.ReasonBodyTooLarge, re, "the message body is larger than the broker accepts (its maxMessageSize); "+
				"messaging.limits.maxBodySize should not exceed the brokers' maxMessageSize; the broker said: "+msg)
		}
	case remoting.ResponseGoAway:
		// A 5.3.1+ broker (or proxy) in its shutdown grace period answers
		// every request so, without acting on it.
		return domain.Wrap(domain.ReasonUnavailable, re, "the broker is shutting down (GO_AWAY); retry")
	case remoting.ResponseRequestCodeNotSupported:
		return domain.Wrap(domain.ReasonNotImplemented, re, msg)
	case remoting.ResponseSubscriptionGroupNotExist:
		return domain.Wrap(domain.ReasonConsumerGroupNotFound, re, msg)
	case remoting.ResponseFlushDiskTimeout:
		return domain.Wrap(domain.ReasonPersistenceTimeout, re, msg)
	case remoting.ResponseFlushSlaveTimeout:
		// Each of the three is a broker that stored the message but could
		// not make it as durable as configured; the Apache proxy gives each
		// its own code (MASTER_PERSISTENCE_TIMEOUT, SLAVE_PERSISTENCE_TIMEOUT,
		// HA_NOT_AVAILABLE), and so do the clients' exceptions.
		return domain.Wrap(domain.ReasonReplicaPersistenceTimeout, re, msg)
	case remoting.ResponseSlaveNotAvailable:
		return domain.Wrap(domain.ReasonReplicaUnavailable, re, msg)
	case remoting.ResponseNoMessage:
		// An ack or a change of the invisible time whose queue offset is
		// outside its queue; the broker sets no remark, so the one every
		// response starts with ("not set any response code") came along.
		// The code stays upstream's: the Go push consumer retries a failed
		// change, as with the Apache proxy.
		return domain.Wrap(domain.ReasonBrokerError, re, "the broker holds no message at the receipt handle's queue offset (NO_MESSAGE): "+
			"the message was removed, or the handle belongs to another topic than the request names")
	case remoting.ResponseNoPermission:
		if permissionRefusal(re.Remark) {
			// A permission an operator set on the topic, the group or the
			// broker (perm without read or write, consumeEnable false,
			// brokerPermission): FORBIDDEN, what the Apache proxy answers
			// when its route says the topic is not readable or writable
			// ("no readable queue"); for the broker's own refusal it
			// answers INTERNAL_SERVER_ERROR.
			return domain.Wrap(domain.ReasonForbidden, re, "the broker refused it: "+msg+
				" (a permission of the topic, the consumer group or the broker, set by an operator)")
		}
		// A broker's authentication failing (wrong or missing credentials
		// of rmqproxy itself) or its authorization refusing rmqproxy's
		// user a permission: the client cannot fix either, so the code
		// stays upstream's.
		if resource, ok := deniedResource(re.Remark); ok {
			req := "a request"
			if re.Request != 0 {
				req = re.Request.String()
			}
			return domain.Wrap(domain.ReasonBrokerError, re, "the broker refused rmqproxy's broker user (cluster.acl.accessKey) "+
				req+", which needs "+brokerAction(re.Request)+" on "+resource+
				": grant it to that user in the broker's ACL (docs/security.md lists what rmqproxy needs); the broker said: "+msg)
		}
		return domain.Wrap(domain.ReasonBrokerError, re, "the broker denied rmqproxy's request (NO_PERMISSION): "+msg+
			"; if the broker authenticates requests, cluster.acl.accessKey and cluster.acl.secretKey must be a user of the broker")
	}
	return domain.Wrap(domain.ReasonBrokerError, re, msg)
}

// permissionRefusal reports whether the remark of a NO_PERMISSION answer
// is a 5.x broker's refusal for a permission of the topic, the group or
// the broker itself rather than its authentication or authorization
// (whose remarks are the auth exception's message): "the topic[T] peeking
// message is forbidden", "the broker[ip] pop message is forbidden",
// "Sending message to topic[T] is forbidden.", "the consumer group[G] is
// forbidden for topic[T]", "subscription group no permission, G" (Pop,
// Pull, Send and ConsumerSendMsgBack processors of RocketMQ 5.5.0).
func permissionRefusal(remark string) bool {
	return strings.Contains(remark, " is forbidden") || strings.HasPrefix(remark, "subscription group no permission")
}

// deniedResource returns the resource named in the remark of an ACL 2.0
// broker's authorization refusal ("User:u has no permission to access
// Topic:t from 1.2.3.4, no matched policies.").
func deniedResource(remark string) (string, bool) {
	_, rest, ok := strings.Cut(remark, " has no permission to access ")
	if !ok {
		return "", false
	}
	resource, _, ok := strings.Cut(rest, " from ")
	return resource, ok && resource != ""
}

// brokerAction names the ACL 2.0 action(s) a broker requires for a request
// rmqproxy sends (RocketMQ 5.5's RocketMQAction annotations and
// DefaultAuthorizationContextBuilder; "X or Y": either is enough).
func brokerAction(code remoting.RequestCode) string {
	switch code {
	case remoting.RequestSendMessageV2, remoting.RequestSendBatchMessage, remoting.RequestEndTransaction, remoting.RequestRecallMessage:
		return "Pub"
	case remoting.RequestPopMessage, remoting.RequestAckMessage, remoting.RequestChangeMessageInvisibletime,
		remoting.RequestConsumerSendMsgBack, remoting.RequestPullMessage, remoting.RequestHeartBeat, remoting.RequestUnregisterClient:
		return "Sub"
	case remoting.RequestUpdateConsumerOffset:
		return "Sub or Update"
	case remoting.RequestQueryConsumerOffset, remoting.RequestQueryMessage:
		return "Sub or Get"
	case remoting.RequestViewMessageById, remoting.RequestGetTopicConfig, remoting.RequestGetSubscriptiongroupConfig,
		remoting.RequestGetMaxOffset, remoting.RequestGetMinOffset, remoting.RequestSearchOffsetByTimestamp,
		remoting.RequestGetConsumeStats:
		return "Get"
	case remoting.RequestUpdateAndCreateTopic:
		return "Create"
	case remoting.RequestDeleteTopicInBroker, remoting.RequestDeleteSubscriptiongroup:
		return "Delete"
	}
	return "a permission"
}

// noMessageAtOffset reports whether err is a broker's answer to a
// VIEW_MESSAGE_BY_ID at commit-log offset off when its commit log holds
// nothing there (beyond its end: a made-up offset; or in a file already
// removed): SYSTEM_ERROR with the remark "can not find message by the
// offset, N" (5.x brokers, QueryMessageProcessor.viewMessageById). Any
// other answer (NO_PERMISSION: rmqproxy's broker user lacks Get; another
// SYSTEM_ERROR) is the broker's, for mapError.
func noMessageAtOffset(err error, off int64) bool {
	var re *remoting.ResponseError
	return errors.As(err, &re) && re.Code == remoting.ResponseSystemError &&
		re.Remark == "can not find message by the offset, "+strconv.FormatInt(off, 10)
}

// isCode reports whether err is a broker answer with code c.
func isCode(err error, c remoting.ResponseCode) bool {
	var re *remoting.ResponseError
	return errors.As(err, &re) && re.Code == c
}

// isResponse reports whether err is a broker's answer (any code).
func isResponse(err error) bool {
	var re *remoting.ResponseError
	return errors.As(err, &re)
}

// transportFailure reports whether err says the broker could not be
// reached or did not answer (as opposed to an answer), or that it is
// shutting down (GO_AWAY): either way requests should go elsewhere.
func transportFailure(err error) bool {
	if isCode(err, remoting.ResponseGoAway) {
		return true
	}
	var ce *client.Error
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.Kind {
	case client.KindDial, client.KindConnection, client.KindTimeout:
		return true
	}
	return false
}

// notStored reports whether a failed send certainly stored nothing and
// may succeed on another broker, so that it may be retried there without
// a duplicate: the request never reached the broker (no connection could
// be made, or the call ended before its request was queued for writing:
// while it waited for a connection or an in-flight slot, the connection
// broke or cluster.requestTimeout passed), or the broker answered that it
// refused the message (busy, not writable, not serving, shutting down:
// GO_AWAY is answered instead of processing the request; its timer
// congested at the delivery time: the broker checks that before it
// stores, and every broker has a timer wheel of its own). A request that
// may have been written is never retried elsewhere, whatever the failure:
// the broker may have stored it. A request not sent because rmqproxy is
// closing, or because it could not be encoded, would fail the same way
// on any broker.
func notStored(err error) bool {
	var ce *client.Error
	if errors.As(err, &ce) {
		return !ce.MaybeDelivered() && ce.Retryable()
	}
	var re *remoting.ResponseError
	if errors.As(err, &re) {
		switch re.Code {
		case remoting.ResponseSystemBusy, remoting.ResponseServiceNotAvailable, remoting.ResponseNoPermission, remoting.ResponseGoAway:
			return true
		case remoting.ResponseSystemError:
			return strings.HasPrefix(re.Remark, timerCongested)
		}
	}
	return false
}
