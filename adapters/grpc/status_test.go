package grpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
)

func TestCodeOfEveryReason(t *testing.T) {
	want := map[domain.Reason]v2.Code{
		domain.ReasonInternal:                v2.Code_INTERNAL_SERVER_ERROR,
		domain.ReasonBadRequest:              v2.Code_BAD_REQUEST,
		domain.ReasonIllegalAccessPoint:      v2.Code_ILLEGAL_ACCESS_POINT,
		domain.ReasonIllegalTopic:            v2.Code_ILLEGAL_TOPIC,
		domain.ReasonIllegalConsumerGroup:    v2.Code_ILLEGAL_CONSUMER_GROUP,
		domain.ReasonIllegalMessageTag:       v2.Code_ILLEGAL_MESSAGE_TAG,
		domain.ReasonIllegalMessageKey:       v2.Code_ILLEGAL_MESSAGE_KEY,
		domain.ReasonIllegalMessageGroup:     v2.Code_ILLEGAL_MESSAGE_GROUP,
		domain.ReasonIllegalPropertyKey:      v2.Code_ILLEGAL_MESSAGE_PROPERTY_KEY,
		domain.ReasonInvalidTransactionID:    v2.Code_INVALID_TRANSACTION_ID,
		domain.ReasonIllegalMessageID:        v2.Code_ILLEGAL_MESSAGE_ID,
		domain.ReasonIllegalFilterExpression: v2.Code_ILLEGAL_FILTER_EXPRESSION,
		domain.ReasonIllegalInvisibleTime:    v2.Code_ILLEGAL_INVISIBLE_TIME,
		domain.ReasonIllegalDeliveryTime:     v2.Code_ILLEGAL_DELIVERY_TIME,
		domain.ReasonInvalidReceiptHandle:    v2.Code_INVALID_RECEIPT_HANDLE,
		domain.ReasonMessageTypeConflict:     v2.Code_MESSAGE_PROPERTY_CONFLICT_WITH_TYPE,
		domain.ReasonUnrecognizedClientType:  v2.Code_UNRECOGNIZED_CLIENT_TYPE,
		domain.ReasonMessageCorrupted:        v2.Code_MESSAGE_CORRUPTED,
		domain.ReasonClientIDRequired:        v2.Code_CLIENT_ID_REQUIRED,
		domain.ReasonIllegalPollingTime:      v2.Code_ILLEGAL_POLLING_TIME,
		domain.ReasonIllegalOffset:           v2.Code_ILLEGAL_OFFSET,
		domain.ReasonUnauthorized:            v2.Code_UNAUTHORIZED,
		domain.ReasonForbidden:               v2.Code_FORBIDDEN,
		domain.ReasonNotFound:                v2.Code_NOT_FOUND,
		domain.ReasonMessageNotFound:         v2.Code_MESSAGE_NOT_FOUND,
		domain.ReasonTopicNotFound:           v2.Code_TOPIC_NOT_FOUND,
		domain.ReasonConsumerGroupNotFound:   v2.Code_CONSUMER_GROUP_NOT_FOUND,
		domain.ReasonOffsetNotFound:          v2.Code_OFFSET_NOT_FOUND,
		domain.ReasonBodyTooLarge:            v2.Code_MESSAGE_BODY_TOO_LARGE,
		domain.ReasonBodyEmpty:               v2.Code_MESSAGE_BODY_EMPTY,
		domain.ReasonPropertiesTooLarge:      v2.Code_MESSAGE_PROPERTIES_TOO_LARGE,
		domain.ReasonTooManyRequests:         v2.Code_TOO_MANY_REQUESTS,
		domain.ReasonNotImplemented:          v2.Code_NOT_IMPLEMENTED,
		domain.ReasonTimeout:                 v2.Code_PROXY_TIMEOUT,
		domain.ReasonPersistenceTimeout:      v2.Code_MASTER_PERSISTENCE_TIMEOUT,
		domain.ReasonUnavailable:             v2.Code_TOO_MANY_REQUESTS,
		domain.ReasonAlreadyExists:           v2.Code_BAD_REQUEST,
		domain.ReasonBrokerError:             v2.Code_INTERNAL_SERVER_ERROR,
		// As the Apache proxy answers a broker's FLUSH_SLAVE_TIMEOUT and
		// SLAVE_NOT_AVAILABLE.
		domain.ReasonReplicaPersistenceTimeout: v2.Code_SLAVE_PERSISTENCE_TIMEOUT,
		domain.ReasonReplicaUnavailable:        v2.Code_HA_NOT_AVAILABLE,
	}
	for _, r := range domain.Reasons() {
		w, ok := want[r]
		if !ok {
			t.Errorf("reason %v has no expected code in this table: add it", r)
			continue
		}
		if got := codeOf(r); got != w {
			t.Errorf("codeOf(%v) = %v, want %v", r, got, w)
		}
	}
}

func TestStatusOfHidesInternals(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	st := (&Service{log: log}).statusOf(context.Background(), fmt.Errorf("open segment: %w", errors.New("/secret/path: permission denied")))
	if st.Code != v2.Code_INTERNAL_SERVER_ERROR || strings.Contains(st.Message, "secret") || !strings.Contains(st.Message, "id ") {
		t.Fatalf("status %v leaks or lacks an id", st)
	}
	id := strings.TrimPrefix(st.Message, "internal error, id ")
	if !strings.Contains(logged.String(), id) || !strings.Contains(logged.String(), "/secret/path") {
		t.Fatalf("log %q does not hold the id %s and the cause", logged.String(), id)
	}
	st = (&Service{log: slog.New(slog.NewTextHandler(io.Discard, nil))}).statusOf(context.Background(), domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", "x"))
	if st.Code != v2.Code_TOPIC_NOT_FOUND || st.Message != `topic "x" does not exist` {
		t.Fatalf("domain error status %v", st)
	}
}

// TestStatusOfLogsABrokerRefusal: a broker answer rmqproxy passes on as
// INTERNAL_SERVER_ERROR (a broker refusing rmqproxy's own user, an answer
// no other code describes) reached the client only: an operator whose
// clients all failed so found nothing in rmqproxy's log. It is logged at
// WARN with what the client was told and the broker's answer.
func TestStatusOfLogsABrokerRefusal(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	cause := errors.New("remoting: NO_PERMISSION: User:proxy has no permission to access Topic:t")
	st := (&Service{log: log}).statusOf(context.Background(), domain.Wrap(domain.ReasonBrokerError, cause, "the broker refused rmqproxy's broker user"))
	if st.Code != v2.Code_INTERNAL_SERVER_ERROR || st.Message != "the broker refused rmqproxy's broker user" {
		t.Fatalf("status %v", st)
	}
	if out := logged.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "rmqproxy's broker user") || !strings.Contains(out, "User:proxy has no permission") {
		t.Fatalf("log %q lacks a WARN with the message and the broker's answer", out)
	}
}

// TestBrokerRefusalsAreLoggedOncePerInterval: every request a broker
// refused (rmqproxy's broker user lacking a permission: every receive of
// a group, every send to a topic) was logged at WARN, at the request rate.
// Each refusal is logged once per interval; the next line of it says how
// many were left out. Another refusal has a line of its own.
func TestBrokerRefusalsAreLoggedOncePerInterval(t *testing.T) {
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	s := &Service{log: log}
	refusal := func(topic string) error {
		cause := errors.New("remoting: NO_PERMISSION: User:proxy has no permission to access Topic:" + topic)
		return domain.Wrap(domain.ReasonBrokerError, cause, "the broker refused rmqproxy's broker user on Topic:"+topic)
	}
	for range 100 {
		if st := s.statusOf(context.Background(), refusal("a")); st.Code != v2.Code_INTERNAL_SERVER_ERROR {
			t.Fatalf("status %v", st)
		}
	}
	s.statusOf(context.Background(), refusal("b"))
	out := logged.String()
	if n := strings.Count(out, "level=WARN"); n != 2 || !strings.Contains(out, "Topic:a") || !strings.Contains(out, "Topic:b") {
		t.Fatalf("101 refusals of two resources logged %d WARN lines, want one each:\n%s", n, out)
	}
}
