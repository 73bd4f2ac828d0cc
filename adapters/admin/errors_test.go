package admin_test

import (
	"net/http"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/domain"
)

func TestStatusOfCoversEveryReason(t *testing.T) {
	codes := map[string]domain.Reason{}
	for _, r := range domain.Reasons() {
		t.Run(r.String(), func(t *testing.T) {
			status, code := admin.StatusOf(r)
			if status < 400 || status > 599 || code == "" {
				t.Fatalf("StatusOf(%v) = %d %q", r, status, code)
			}
			if r != domain.ReasonInternal && code == "INTERNAL" {
				t.Fatalf("%v is missing from the table (falls back to INTERNAL)", r)
			}
			if other, dup := codes[code]; dup {
				t.Fatalf("%v and %v share code %s", r, other, code)
			}
			codes[code] = r
			if back, ok := admin.ReasonOfCode(code); !ok || back != r {
				t.Fatalf("ReasonOfCode(%s) = %v %v, want %v", code, back, ok, r)
			}
		})
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		reason domain.Reason
		status int
		code   string
	}{
		{domain.ReasonInternal, http.StatusInternalServerError, "INTERNAL"},
		{domain.ReasonBadRequest, http.StatusBadRequest, "BAD_REQUEST"},
		{domain.ReasonIllegalTopic, http.StatusBadRequest, "ILLEGAL_TOPIC"},
		{domain.ReasonIllegalConsumerGroup, http.StatusBadRequest, "ILLEGAL_CONSUMER_GROUP"},
		{domain.ReasonUnauthorized, http.StatusUnauthorized, "UNAUTHORIZED"},
		{domain.ReasonForbidden, http.StatusForbidden, "FORBIDDEN"},
		{domain.ReasonNotFound, http.StatusNotFound, "NOT_FOUND"},
		{domain.ReasonTopicNotFound, http.StatusNotFound, "TOPIC_NOT_FOUND"},
		{domain.ReasonConsumerGroupNotFound, http.StatusNotFound, "CONSUMER_GROUP_NOT_FOUND"},
		{domain.ReasonAlreadyExists, http.StatusConflict, "ALREADY_EXISTS"},
		{domain.ReasonBodyTooLarge, http.StatusRequestEntityTooLarge, "MESSAGE_BODY_TOO_LARGE"},
		{domain.ReasonTooManyRequests, http.StatusTooManyRequests, "TOO_MANY_REQUESTS"},
		{domain.ReasonNotImplemented, http.StatusNotImplemented, "NOT_IMPLEMENTED"},
		{domain.ReasonUnavailable, http.StatusServiceUnavailable, "UNAVAILABLE"},
		{domain.ReasonTimeout, http.StatusGatewayTimeout, "PROXY_TIMEOUT"},
		{domain.Reason(250), http.StatusInternalServerError, "INTERNAL"}, // unknown reasons are internal
	}
	for _, tt := range tests {
		t.Run(tt.reason.String(), func(t *testing.T) {
			if status, code := admin.StatusOf(tt.reason); status != tt.status || code != tt.code {
				t.Fatalf("got %d %s, want %d %s", status, code, tt.status, tt.code)
			}
		})
	}
	if _, ok := admin.ReasonOfCode("NO_SUCH_CODE"); ok {
		t.Fatal("unknown code resolved")
	}
}
