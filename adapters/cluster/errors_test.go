package cluster

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestNoMessageSaysWhat: a broker answers an ack or a change of the
// invisible time whose queue offset is outside its queue with NO_MESSAGE
// and the remark every response starts with, "not set any response
// code", which rmqproxy passed on to the client as the whole message.
// The code stays upstream's (INTERNAL_SERVER_ERROR: the Go push consumer
// retries a failed change, as with the Apache proxy); the message says
// what the broker found.
func TestNoMessageSaysWhat(t *testing.T) {
	err := mapError(&remoting.ResponseError{Code: remoting.ResponseNoMessage, Remark: "not set any response code"})
	if !domain.HasReason(err, domain.ReasonBrokerError) {
		t.Fatalf("reason: %v", err)
	}
	msg := domain.MessageOf(err)
	if strings.Contains(msg, "not set any response code") || !strings.Contains(msg, "no message at the receipt handle's queue offset") {
		t.Fatalf("message %q", msg)
	}
}
