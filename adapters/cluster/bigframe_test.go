package cluster

import (
	"bytes"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestSendLargerThanABrokerFrameIsRefused: with
// messaging.limits.maxBodySize raised above 16 MiB (or 0, no check), a
// message body that makes its SEND_MESSAGE_V2 longer than a broker reads
// (16 MiB, RocketMQ's frameMaxLength, which the fake shares) was written
// all the same: the broker closes the connection on such a frame, failing
// every other call in flight on it, and the client was told
// TOO_MANY_REQUESTS (the connection broke), which it retries, breaking a
// connection each time. It is refused before anything is written, as
// MESSAGE_BODY_TOO_LARGE.
func TestSendLargerThanABrokerFrameIsRefused(t *testing.T) {
	f := &fakeSendBroker{}
	b := startSendBroker(t, f, func(*Config) {})
	m := domain.Message{Topic: "T", Body: bytes.Repeat([]byte("x"), remoting.DefaultMaxFrameSize), ID: "ID-big"}
	_, err := b.Send(t.Context(), domain.QueueRef{Topic: "T", BrokerName: "b1", QueueID: 0}, []domain.Message{m})
	if !domain.HasReason(err, domain.ReasonBodyTooLarge) {
		t.Fatalf("send of a %d-byte body: %v (reason %v), want ReasonBodyTooLarge", len(m.Body), err, domain.ReasonOf(err))
	}
	t.Log(err)
	// The connection is not broken: a message that fits goes through it.
	if _, err := sendOne(t.Context(), b, 1); err != nil {
		t.Fatalf("send after the refused one: %v", err)
	}
}
