package e2e_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestRetryDelaysBeyondTheLongestInvisibleTime: a group whose retry
// policy waits longer than consumer.maxInvisibleTime (a customized delay
// of an hour, an exponential backoff starting at 30 minutes, against a
// maximum of 4 s here; 12 h by default, which an exponential backoff with
// a 24 h cap passes after a few attempts). A push consumer's nack asks for
// the delay the settings announce, and a ChangeInvisibleDuration longer
// than the maximum is refused (ILLEGAL_INVISIBLE_TIME, as upstream), which
// the Go client retries every second without end: the failed message was
// not delivered again until consumer.renewMaxTime (3 h) ended the
// proxy's renewals. The settings announce the delays capped at the
// maximum, so the message comes again after it.
func TestRetryDelaysBeyondTheLongestInvisibleTime(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	const longest = 4 * time.Second
	cfg.Messaging.Consumer.MaxInvisibleTime = longest
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "long-retry")
	customized, exponential := testenv.Name(t, "g-long-customized"), testenv.Name(t, "g-long-exponential")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: customized, MaxDeliveryAttempts: 3,
		RetryPolicy: &domain.RetryPolicy{Delays: []time.Duration{time.Hour}}})
	p.CreateGroup(t, application.GroupSpec{Name: exponential, MaxDeliveryAttempts: 3,
		RetryPolicy: &domain.RetryPolicy{Initial: 30 * time.Minute, Max: 2 * time.Hour, Multiplier: 2}})
	type delivery struct {
		attempt int32
		at      time.Time
	}
	var mu sync.Mutex
	got := map[string][]delivery{}
	for _, g := range []string{customized, exponential} {
		pc := testenv.StartPushConsumer(t, p, g, topic, func(m *rmq.MessageView) rmq.ConsumerResult {
			mu.Lock()
			defer mu.Unlock()
			got[g] = append(got[g], delivery{m.GetDeliveryAttempt(), testenv.WallNow()})
			return rmq.FAILURE
		})
		t.Cleanup(func() { _ = pc.GracefulStop() })
	}
	pr := testenv.NewProducer(t, p, topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("fails")}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range []string{customized, exponential} {
			if len(got[g]) < 2 {
				return fmt.Errorf("group %s: deliveries %v, want the failed message again after at most %v", g, got[g], longest)
			}
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for _, g := range []string{customized, exponential} {
		d := got[g]
		if d[0].attempt != 1 || d[1].attempt != 2 {
			t.Errorf("group %s: delivery attempts %d, %d; want 1, 2", g, d[0].attempt, d[1].attempt)
		}
		// The nack left after the consume, so the wait is at least the
		// capped delay (less the clock's rounding).
		if w := d[1].at.Sub(d[0].at); w < longest-100*time.Millisecond {
			t.Errorf("group %s: delivered again after %v, before the %v delay", g, w, longest)
		}
	}
}
