package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestSIGKILLOneOfTwoProxies runs one consumer group through two rmqproxy
// instances in front of the same cluster, each with a producer and a
// consumer, and kills one instance with SIGKILL mid-run: every send either
// instance answered OK is consumed, by the group's consumer on the
// surviving instance once the killed one's deliveries become visible
// again.
func TestSIGKILLOneOfTwoProxies(t *testing.T) {
	t.Parallel() // see TestMain
	fast := []string{"--messaging.consumer.minInvisibleTime=1s", "--messaging.consumer.minLongPolling=1s", "--messaging.consumer.maxLongPolling=5s"}
	a := testenv.StartChild(t, t.TempDir(), fast...)
	b := testenv.StartChild(t, t.TempDir(), fast...)
	pa, pb := a.Proxy(t), b.Proxy(t)
	admin := adminOf(t, a)
	topic, group := testenv.Name(t, "ha"), testenv.Name(t, "g-ha")
	if _, err := admin.CreateTopic(t.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal, QueueCount: 4}); err != nil {
		t.Fatal(err)
	}
	testenv.Claim(t, "topic", topic)

	var (
		mu       sync.Mutex
		acked    = map[string]string{} // message id → proxy that answered OK
		received = map[string]string{} // message id → proxy it came through
		l        = newLoad()
		killed   atomic.Bool
		sentOK   atomic.Int64
	)
	produce := func(name string, p *testenv.Proxy) {
		pr := testenv.NewProducer(t, p, topic)
		l.paced(20*time.Millisecond, func(i int) bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r, err := pr.Send(ctx, &rmq.Message{Topic: topic, Body: []byte(fmt.Sprintf("%s-%d", name, i))})
			cancel()
			if err != nil {
				// Not acknowledged: nothing to check; A's proxy may be gone.
				return name != "A" || !killed.Load()
			}
			mu.Lock()
			acked[r[0].MessageID] = name
			mu.Unlock()
			sentOK.Add(1)
			return true
		})
	}
	consume := func(name string, p *testenv.Proxy) rmq.SimpleConsumer {
		c := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
		l.loop(func() bool {
			if name == "A" && killed.Load() {
				return false
			}
			ms, _ := c.Receive(context.Background(), 16, 3*time.Second)
			for _, m := range ms {
				mu.Lock()
				received[m.GetMessageId()] = name
				mu.Unlock()
				_ = c.Ack(context.Background(), m)
			}
			return true
		})
		return c
	}
	produce("A", pa)
	produce("B", pb)
	consume("A", pa)
	cb := consume("B", pb)
	defer l.end()

	testenv.WaitFor(t, 60*time.Second, sendsAnsweredOK(&sentOK, 400))
	testenv.WaitFor(t, 60*time.Second, func() error { // both instances serve the group
		mu.Lock()
		defer mu.Unlock()
		per := countValues(received)
		if per["A"] == 0 || per["B"] == 0 {
			return fmt.Errorf("received through %v", per)
		}
		return nil
	})
	killed.Store(true)
	a.Kill(t)
	before := sentOK.Load()
	testenv.WaitFor(t, 60*time.Second, sendsAnsweredOK(&sentOK, before+200))
	l.end()

	// Everything acknowledged, through either instance, is consumed through
	// B (what A's consumer held comes back after its invisible time).
	drainAcked(t, 90*time.Second, cb, 16, 3*time.Second, &mu, acked, received, func(*rmq.MessageView) string { return "B" })
	mu.Lock()
	defer mu.Unlock()
	t.Logf("sends answered OK per proxy %v; consumed through %v", countValues(acked), countValues(received))
}

func adminOf(t *testing.T, c *testenv.Child) *admin.Client {
	t.Helper()
	ac, err := admin.NewClient(c.AdminAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ac
}

// sendsAnsweredOK is a testenv.WaitFor condition: at least n of the sends
// counted in sent were answered OK.
func sendsAnsweredOK(sent *atomic.Int64, n int64) func() error {
	return func() error {
		if got := sent.Load(); got < n {
			return fmt.Errorf("%d of %d sends answered OK", got, n)
		}
		return nil
	}
}
