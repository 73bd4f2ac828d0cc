package e2e_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestReceiveOfLargeMessagesFromManyQueues: an official producer sends
// 16 messages of 1.5 MiB (within the 2 MiB the Go client sends at most)
// to a topic of 16 queues, and an official simple consumer receives up to
// 32 at a time. In cluster mode the broker pops one message from each
// queue into one answer of some 24 MiB, more than the 16 MiB frame a
// Remoting client reads by default: rmqproxy dropped its connection to the
// broker (failing every call in flight on it), the consumer was told "no
// new message", and the popped messages stayed invisible for the
// receive's invisible time, after which the next receive popped them again
// in one answer as large: they were never delivered. Every message must
// come within the deadline, well before its invisible time ends. The
// consumer's long-polling time is long, because its receive deadline is
// that time and a few seconds, and a receive that ends when messages are
// found has the rest to take them: some 24 MiB through a race-enabled
// rmqproxy on a loaded machine took longer than 2 s and a few, and the
// messages of the receive the client gave up on stayed invisible.
func TestReceiveOfLargeMessagesFromManyQueues(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "large-receive"), testenv.Name(t, "g-large-receive")
	const n = 16
	p.CreateTopic(t, topic, domain.MessageTypeNormal, n)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pr := testenv.NewProducer(t, p, topic)
	sent := map[string]bool{}
	for i := range n {
		body := bytes.Repeat([]byte{byte('a' + i)}, 1536<<10)
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: body}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sent[string(body[:1])] = true
	}
	sc := testenv.NewSimpleConsumer(t, p, group, 30*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := map[string]bool{}
	testenv.WaitFor(t, 3*time.Minute, func() error {
		ms, err := sc.Receive(t.Context(), 32, 10*time.Minute)
		for _, m := range ms {
			if len(m.GetBody()) != 1536<<10 || !bytes.Equal(m.GetBody(), bytes.Repeat(m.GetBody()[:1], len(m.GetBody()))) {
				t.Fatalf("message %s has a body of %d bytes, not as sent", m.GetMessageId(), len(m.GetBody()))
			}
			got[string(m.GetBody()[:1])] = true
			if err := sc.Ack(t.Context(), m); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
		if len(got) < n {
			return fmt.Errorf("received %d of %d messages (last receive: %d, %v)", len(got), n, len(ms), err)
		}
		return nil
	})
}
