package grpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// codeOf maps a domain reason to the apache.rocketmq.v2.Code a client sees.
// It is the only place where that mapping is made.
func codeOf(r domain.Reason) v2.Code {
	switch r {
	case domain.ReasonBadRequest, domain.ReasonAlreadyExists:
		return v2.Code_BAD_REQUEST
	case domain.ReasonIllegalAccessPoint:
		return v2.Code_ILLEGAL_ACCESS_POINT
	case domain.ReasonIllegalTopic:
		return v2.Code_ILLEGAL_TOPIC
	case domain.ReasonIllegalConsumerGroup:
		return v2.Code_ILLEGAL_CONSUMER_GROUP
	case domain.ReasonIllegalMessageTag:
		return v2.Code_ILLEGAL_MESSAGE_TAG
	case domain.ReasonIllegalMessageKey:
		return v2.Code_ILLEGAL_MESSAGE_KEY
	case domain.ReasonIllegalMessageGroup:
		return v2.Code_ILLEGAL_MESSAGE_GROUP
	case domain.ReasonIllegalPropertyKey:
		return v2.Code_ILLEGAL_MESSAGE_PROPERTY_KEY
	case domain.ReasonInvalidTransactionID:
		return v2.Code_INVALID_TRANSACTION_ID
	case domain.ReasonIllegalMessageID:
		return v2.Code_ILLEGAL_MESSAGE_ID
	case domain.ReasonIllegalFilterExpression:
		return v2.Code_ILLEGAL_FILTER_EXPRESSION
	case domain.ReasonIllegalInvisibleTime:
		return v2.Code_ILLEGAL_INVISIBLE_TIME
	case domain.ReasonIllegalDeliveryTime:
		return v2.Code_ILLEGAL_DELIVERY_TIME
	case domain.ReasonInvalidReceiptHandle:
		return v2.Code_INVALID_RECEIPT_HANDLE
	case domain.ReasonMessageTypeConflict:
		return v2.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE
	case domain.ReasonUnrecognizedClientType:
		return v2.Code_UNRECOGNIZED_CLIENT_TYPE
	case domain.ReasonMessageCorrupted:
		return v2.Code_MESSAGE_CORRUPTED
	case domain.ReasonClientIDRequired:
		return v2.Code_CLIENT_ID_REQUIRED
	case domain.ReasonIllegalPollingTime:
		return v2.Code_ILLEGAL_POLLING_TIME
	case domain.ReasonIllegalOffset:
		return v2.Code_ILLEGAL_OFFSET
	case domain.ReasonUnauthorized:
		return v2.Code_UNAUTHORIZED
	case domain.ReasonForbidden:
		return v2.Code_FORBIDDEN
	case domain.ReasonNotFound:
		return v2.Code_NOT_FOUND
	case domain.ReasonMessageNotFound:
		return v2.Code_MESSAGE_NOT_FOUND
	case domain.ReasonTopicNotFound:
		return v2.Code_TOPIC_NOT_FOUND
	case domain.ReasonConsumerGroupNotFound:
		return v2.Code_CONSUMER_GROUP_NOT_FOUND
	case domain.ReasonOffsetNotFound:
		return v2.Code_OFFSET_NOT_FOUND
	case domain.ReasonBodyTooLarge:
		return v2.Code_MESSAGE_BODY_TOO_LARGE
	case domain.ReasonBodyEmpty:
		return v2.Code_MESSAGE_BODY_EMPTY
	case domain.ReasonPropertiesTooLarge:
		return v2.Code_MESSAGE_PROPERTIES_TOO_LARGE
	case domain.ReasonTooManyRequests, domain.ReasonUnavailable:
		// Unavailable (shutting down, disk trouble) is answered like
		// throttling: every official client backs off and retries.
		return v2.Code_TOO_MANY_REQUESTS
	case domain.ReasonNotImplemented:
		return v2.Code_NOT_IMPLEMENTED
	case domain.ReasonTimeout:
		return v2.Code_PROXY_TIMEOUT
	case domain.ReasonPersistenceTimeout:
		return v2.Code_MASTER_PERSISTENCE_TIMEOUT
	case domain.ReasonReplicaPersistenceTimeout:
		return v2.Code_SLAVE_PERSISTENCE_TIMEOUT
	case domain.ReasonReplicaUnavailable:
		return v2.Code_HA_NOT_AVAILABLE
	case domain.ReasonBrokerError:
		// The Apache proxy answers any broker code it has no mapping for
		// with INTERNAL_SERVER_ERROR and the broker's remark.
		return v2.Code_INTERNAL_SERVER_ERROR
	default:
		return v2.Code_INTERNAL_SERVER_ERROR
	}
}

// statusOf turns an error into the status a client sees. A broker's
// answer passed on as INTERNAL_SERVER_ERROR (ReasonBrokerError) is logged
// at WARN, once a minute per answer (see [Service.logRefusal]). Errors
// without a domain reason are internal: the client gets a short id, and
// the same id is logged with the full error chain. A request the client
// gave up on (it cancelled, or its deadline passed) is not a server fault:
// it is answered without an error log.
func (s *Service) statusOf(ctx context.Context, err error) *v2.Status {
	log := s.log
	var de *domain.Error
	switch {
	case err == nil:
		return okStatus()
	case errors.As(err, &de) && de.Reason == domain.ReasonBrokerError:
		s.logRefusal(ctx, de, err)
		return &v2.Status{Code: codeOf(de.Reason), Message: de.Msg}
	case errors.As(err, &de) && de.Reason != domain.ReasonInternal:
		if de.Reason == domain.ReasonTooManyRequests {
			s.logThrottled(ctx, de.Msg)
		}
		return &v2.Status{Code: codeOf(de.Reason), Message: de.Msg}
	case clientGaveUp(ctx, err) && errors.Is(err, context.Canceled):
		log.LogAttrs(ctx, slog.LevelDebug, "the client cancelled the request", slog.Any("error", err))
		return &v2.Status{Code: v2.Code_BAD_REQUEST, Message: "the client cancelled the request"}
	case errors.Is(err, context.DeadlineExceeded):
		return &v2.Status{Code: v2.Code_PROXY_TIMEOUT, Message: "the request deadline passed before the broker answered"}
	default:
		id := errorID()
		log.LogAttrs(ctx, slog.LevelError, "internal error", slog.String("error_id", id), slog.Any("error", err))
		return &v2.Status{Code: v2.Code_INTERNAL_SERVER_ERROR, Message: "internal error, id " + id}
	}
}

// logRefusal logs a broker's answer passed on to the client as
// INTERNAL_SERVER_ERROR: the client gets the broker's words, and the
// operator, who may have to act (grant rmqproxy's broker user a
// permission, look at the broker), gets them too, with the broker's code.
// A refusal repeats at the request rate (every receive of a group whose
// permission is missing), so each (the message, which names the broker's
// code and the resource it refused) is logged once a minute, with the
// count of those left out since.
func (s *Service) logRefusal(ctx context.Context, de *domain.Error, err error) {
	ok, suppressed := s.brokerRefusals.Allow(de.Msg, time.Now())
	if !ok {
		return
	}
	attrs := []slog.Attr{slog.String("message", de.Msg), slog.Any("error", err)}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("repeats_suppressed", suppressed))
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "a broker refused a request; the client is answered INTERNAL_SERVER_ERROR (logged once a minute per refusal)", attrs...)
}

// logThrottled logs a request refused with TOO_MANY_REQUESTS (limit is the
// refusal's message, which names the limit), with the client, its user and
// address and the RPC, so that the operator of a proxy shared by many
// teams can tell who rmqproxy_throttled_requests_total counts. Refusals
// come at the request rate, so each limit (its message with the numbers
// left out) is logged once a minute, with the count of those left out.
func (s *Service) logThrottled(ctx context.Context, limit string) {
	key := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '#'
		}
		return r
	}, limit)
	ok, suppressed := s.throttles.Allow(key, time.Now())
	if !ok {
		return
	}
	attrs := []slog.Attr{slog.String("limit", limit), slog.String("client_id", ports.RequestInfoFrom(ctx).ClientID)}
	if m, ok := grpclib.Method(ctx); ok {
		attrs = append(attrs, slog.String("rpc", m))
	}
	if p, ok := application.PrincipalFrom(ctx); ok {
		attrs = append(attrs, slog.String("user", p.User.Name))
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("remote_addr", p.Addr.String()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("repeats_suppressed", suppressed))
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "a request was refused with TOO_MANY_REQUESTS (logged once a minute per limit)", attrs...)
}

// clientGaveUp reports whether err is the end of ctx (the client cancelled
// or its deadline passed), rather than a failure of the server.
func clientGaveUp(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

func okStatus() *v2.Status { return &v2.Status{Code: v2.Code_OK, Message: "OK"} }

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
