package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"

	"github.com/rmqproxy/rmqproxy/domain"
)

// httpError is how one domain reason appears on the wire.
type httpError struct {
	status int
	code   string
}

// reasons is the one table from domain reasons to HTTP. Codes follow the
// names of apache.rocketmq.v2.Code where one exists.
var reasons = map[domain.Reason]httpError{
	domain.ReasonInternal:                  {http.StatusInternalServerError, "INTERNAL"},
	domain.ReasonBadRequest:                {http.StatusBadRequest, "BAD_REQUEST"},
	domain.ReasonIllegalAccessPoint:        {http.StatusBadRequest, "ILLEGAL_ACCESS_POINT"},
	domain.ReasonIllegalTopic:              {http.StatusBadRequest, "ILLEGAL_TOPIC"},
	domain.ReasonIllegalConsumerGroup:      {http.StatusBadRequest, "ILLEGAL_CONSUMER_GROUP"},
	domain.ReasonIllegalMessageTag:         {http.StatusBadRequest, "ILLEGAL_MESSAGE_TAG"},
	domain.ReasonIllegalMessageKey:         {http.StatusBadRequest, "ILLEGAL_MESSAGE_KEY"},
	domain.ReasonIllegalMessageGroup:       {http.StatusBadRequest, "ILLEGAL_MESSAGE_GROUP"},
	domain.ReasonIllegalPropertyKey:        {http.StatusBadRequest, "ILLEGAL_MESSAGE_PROPERTY_KEY"},
	domain.ReasonInvalidTransactionID:      {http.StatusBadRequest, "INVALID_TRANSACTION_ID"},
	domain.ReasonIllegalMessageID:          {http.StatusBadRequest, "ILLEGAL_MESSAGE_ID"},
	domain.ReasonIllegalFilterExpression:   {http.StatusBadRequest, "ILLEGAL_FILTER_EXPRESSION"},
	domain.ReasonIllegalInvisibleTime:      {http.StatusBadRequest, "ILLEGAL_INVISIBLE_TIME"},
	domain.ReasonIllegalDeliveryTime:       {http.StatusBadRequest, "ILLEGAL_DELIVERY_TIMESTAMP"},
	domain.ReasonInvalidReceiptHandle:      {http.StatusBadRequest, "INVALID_RECEIPT_HANDLE"},
	domain.ReasonMessageTypeConflict:       {http.StatusBadRequest, "MESSAGE_PROPERTY_CONFLICT_WITH_TYPE"},
	domain.ReasonUnrecognizedClientType:    {http.StatusBadRequest, "UNRECOGNIZED_CLIENT_TYPE"},
	domain.ReasonMessageCorrupted:          {http.StatusBadRequest, "MESSAGE_CORRUPTED"},
	domain.ReasonClientIDRequired:          {http.StatusBadRequest, "CLIENT_ID_REQUIRED"},
	domain.ReasonIllegalPollingTime:        {http.StatusBadRequest, "ILLEGAL_POLLING_TIME"},
	domain.ReasonIllegalOffset:             {http.StatusBadRequest, "ILLEGAL_OFFSET"},
	domain.ReasonUnauthorized:              {http.StatusUnauthorized, "UNAUTHORIZED"},
	domain.ReasonForbidden:                 {http.StatusForbidden, "FORBIDDEN"},
	domain.ReasonNotFound:                  {http.StatusNotFound, "NOT_FOUND"},
	domain.ReasonMessageNotFound:           {http.StatusNotFound, "MESSAGE_NOT_FOUND"},
	domain.ReasonTopicNotFound:             {http.StatusNotFound, "TOPIC_NOT_FOUND"},
	domain.ReasonConsumerGroupNotFound:     {http.StatusNotFound, "CONSUMER_GROUP_NOT_FOUND"},
	domain.ReasonOffsetNotFound:            {http.StatusNotFound, "OFFSET_NOT_FOUND"},
	domain.ReasonBodyTooLarge:              {http.StatusRequestEntityTooLarge, "MESSAGE_BODY_TOO_LARGE"},
	domain.ReasonBodyEmpty:                 {http.StatusBadRequest, "MESSAGE_BODY_EMPTY"},
	domain.ReasonPropertiesTooLarge:        {http.StatusRequestEntityTooLarge, "MESSAGE_PROPERTIES_TOO_LARGE"},
	domain.ReasonTooManyRequests:           {http.StatusTooManyRequests, "TOO_MANY_REQUESTS"},
	domain.ReasonNotImplemented:            {http.StatusNotImplemented, "NOT_IMPLEMENTED"},
	domain.ReasonTimeout:                   {http.StatusGatewayTimeout, "PROXY_TIMEOUT"},
	domain.ReasonPersistenceTimeout:        {http.StatusGatewayTimeout, "MASTER_PERSISTENCE_TIMEOUT"},
	domain.ReasonUnavailable:               {http.StatusServiceUnavailable, "UNAVAILABLE"},
	domain.ReasonAlreadyExists:             {http.StatusConflict, "ALREADY_EXISTS"},
	domain.ReasonBrokerError:               {http.StatusBadGateway, "BROKER_ERROR"},
	domain.ReasonReplicaPersistenceTimeout: {http.StatusGatewayTimeout, "SLAVE_PERSISTENCE_TIMEOUT"},
	domain.ReasonReplicaUnavailable:        {http.StatusServiceUnavailable, "HA_NOT_AVAILABLE"},
}

// StatusOf maps a domain reason to its HTTP status and error code. It is the
// only place where that mapping is decided; the client reverses it with
// [ReasonOfCode]. A reason missing from the table (one added to domain but
// not here, which a test catches) is an internal error.
func StatusOf(r domain.Reason) (status int, code string) {
	if e, ok := reasons[r]; ok {
		return e.status, e.code
	}
	return http.StatusInternalServerError, "INTERNAL"
}

// ReasonOfCode returns the reason whose code is code, as [StatusOf] maps
// it, and false for a code no reason has.
func ReasonOfCode(code string) (domain.Reason, bool) {
	for _, r := range domain.Reasons() {
		if _, c := StatusOf(r); c == code {
			return r, true
		}
	}
	return domain.ReasonInternal, false
}

// ErrorBody is the JSON body of every failed request.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// ErrorID is set on internal errors: the same id is logged with the
	// full error by the server (key error_id).
	ErrorID string `json:"errorId,omitempty"`
}

// writeError answers a failed request. Domain errors show their
// client-facing message; anything else (and ReasonInternal) is logged with a
// fresh id and answered with that id only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	reason := domain.ReasonOf(err)
	status, code := StatusOf(reason)
	body := ErrorBody{Code: code, Message: domain.MessageOf(err)}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		s.log.DebugContext(ctx, "admin request cancelled", "method", r.Method, "path", r.URL.Path)
		status, body.Code = 499, "CANCELLED" // nginx's "client closed request"
		body.Message = "request cancelled"
	case reason == domain.ReasonInternal:
		id := newErrorID()
		body.ErrorID = id
		body.Message = "internal error (id " + id + "); the rmqproxy log has the details under error_id=" + id
		s.log.ErrorContext(ctx, "admin request failed", "error_id", id, "method", r.Method, "path", r.URL.Path, "error", err)
	case status >= 500:
		s.log.WarnContext(ctx, "admin request failed", "method", r.Method, "path", r.URL.Path, "code", code, "error", err)
	default:
		s.log.LogAttrs(ctx, slog.LevelDebug, "admin request rejected", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("code", code), slog.String("error", err.Error()))
	}
	writeJSON(w, status, body)
}

func newErrorID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
