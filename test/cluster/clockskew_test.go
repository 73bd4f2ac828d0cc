package cluster_test

import (
	"context"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"go.uber.org/fx"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// skewedClock is a host clock that is off by a fixed amount.
type skewedClock struct{ by time.Duration }

func (c skewedClock) Now() time.Time { return time.Now().Add(c.by) }

// TestLongPollsFollowTheBrokersClock runs rmqproxy with a clock that is
// off from the broker's, and receives through it with the official Go
// simple consumer. A broker times a pop's long poll from the request's
// bornTime (PopLongPollingService: it ends at bornTime + pollTime) and
// answers POLLING_TIMEOUT at once when bornTime + pollTime is more than
// 500 ms in its past (PopMessageRequestHeader.isTimeoutTooMuch); it stamps
// bornTime itself when the request says 0, which is what the Apache proxy
// sends (it never sets it). A proxy that stamps bornTime with its own
// clock made the broker's idea of the poll follow that clock: 10 s behind
// the broker, every pop of a 3 s long poll came back POLLING_TIMEOUT at
// once and nothing was ever delivered (the consumer received in a busy
// loop: 40,000 receives in 30 s); 4 s ahead, every empty long poll lasted
// 4 s longer than the proxy asked, up to the client's deadline.
//
// The proxy runs in this process (a child cannot be given another clock);
// test/cluster runs without the race detector, as the Go client requires.
func TestLongPollsFollowTheBrokersClock(t *testing.T) {
	// The Go client sends no long-polling time: the proxy derives it from
	// the client's deadline, which its skewed clock misjudges here (a host
	// whose clock is off misjudges nothing: the deadline is read on the
	// same clock). Pinning consumer.minLongPolling and maxLongPolling makes
	// it ask the broker for a poll of exactly this long.
	const poll = 1500 * time.Millisecond
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{{"proxy behind the broker", -10 * time.Second}, {"proxy ahead of the broker", 4 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := testenv.ClusterConfig(t)
			cfg.Messaging.Consumer.MinLongPolling, cfg.Messaging.Consumer.MaxLongPolling = poll, poll
			p := testenv.StartInProcess(t, cfg, fx.Decorate(func(ports.Clock) ports.Clock { return skewedClock{tc.skew} }))
			topic, group := testenv.Name(t, "clock-skew"), testenv.Name(t, "g-clock-skew")
			if tc.skew > 0 {
				topic, group = topic+"-ahead", group+"-ahead"
			}
			p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
			p.CreateGroup(t, application.GroupSpec{Name: group})
			producer := testenv.NewProducer(t, p, topic)
			receipts, err := producer.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("skewed")})
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			consumer := testenv.NewSimpleConsumer(t, p, group, 3*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})

			// The message is delivered, within a few receives.
			deadline := time.Now().Add(30 * time.Second)
			var got []*rmq.MessageView
			receives := 0
			for len(got) == 0 && time.Now().Before(deadline) {
				receives++
				got, _ = consumer.Receive(t.Context(), 16, 20*time.Second)
			}
			if len(got) == 0 {
				t.Fatalf("the message sent was not delivered within 30 s (%d receives)", receives)
			}
			if got[0].GetMessageId() != receipts[0].MessageID {
				t.Fatalf("received %s, sent %s", got[0].GetMessageId(), receipts[0].MessageID)
			}
			if err := consumer.Ack(t.Context(), got[0]); err != nil {
				t.Fatalf("ack: %v", err)
			}

			// An empty long poll lasts as long as the proxy asked, not until
			// the client's deadline (6 s). The proxy ahead made it last the
			// poll plus the skew (5.5 s); the bound is halfway, as a loaded
			// machine and a cold broker have added over a second (2.7 s
			// seen).
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			start := time.Now()
			more, err := consumer.Receive(ctx, 16, 20*time.Second)
			took := time.Since(start)
			t.Logf("an empty receive with a %v long poll took %v", poll, took)
			if len(more) > 0 {
				t.Fatalf("received %d messages from an empty queue", len(more))
			}
			if !testenv.IsNoMessage(err) {
				t.Fatalf("an empty receive with a %v long poll ended after %v with %v, not \"no message\"", poll, took, err)
			}
			if took < poll/2 || took > poll+2*time.Second {
				t.Fatalf("an empty receive with a %v long poll took %v (%v)", poll, took, err)
			}
		})
	}
}
