package application

import (
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestSendToAMissingTopicSuggestsItsType: the TOPIC_NOT_FOUND answer to a
// send says how to create the topic with the type the send needs; it
// suggested a NORMAL topic to FIFO, delay and transactional producers,
// whose next send then met MESSAGE_TYPE_CONFLICT.
func TestSendToAMissingTopicSuggestsItsType(t *testing.T) {
	m, b, clock := newTestMessaging(DefaultConfig())
	b.routeErr = domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist; create it with `rmqproxy topic create t`", "t")
	for want, msg := range map[string]domain.Message{
		"`rmqproxy topic create t`":                    {},
		"`rmqproxy topic create t --type FIFO`":        {Group: "g"},
		"`rmqproxy topic create t --type DELAY`":       {DeliverAt: clock.Now().Add(time.Minute)},
		"`rmqproxy topic create t --type TRANSACTION`": {Transactional: true},
	} {
		msg.Topic, msg.ID, msg.Body = "t", "0A0000000000000000000000", []byte("x")
		_, err := m.SendMessage(t.Context(), []domain.Message{msg})
		if domain.ReasonOf(err) != domain.ReasonTopicNotFound || !strings.Contains(err.Error(), want) {
			t.Errorf("%s message: %v, want TOPIC_NOT_FOUND suggesting %s", msg.Type(), err, want)
		}
	}
}
