package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// retryableCodes are the codes the official clients retry (or back off
// and retry) and that a broker outage may produce through rmqproxy.
var retryableCodes = map[v2.Code]bool{
	v2.Code_TOO_MANY_REQUESTS: true, v2.Code_PROXY_TIMEOUT: true, v2.Code_INTERNAL_SERVER_ERROR: true,
	v2.Code_MASTER_PERSISTENCE_TIMEOUT: true, v2.Code_HA_NOT_AVAILABLE: true,
}

// TestTwoBrokersFailover runs a producer and a consumer through rmqproxy in
// front of a cluster of two brokers: sends spread over both; one broker is
// killed (SIGKILL) in the middle of the run, and meanwhile every send
// either succeeds on the other broker or fails, within its deadline, with
// a code the clients retry; after the broker restarts, every acknowledged
// send has been consumed.
func TestTwoBrokersFailover(t *testing.T) {
	brokers := testenv.AddClusterBrokers(t, 2)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	cfg.Cluster.RequestTimeout = 2 * time.Second
	cfg.Cluster.DialTimeout = time.Second
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "failover"), testenv.Name(t, "g-failover")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 4)
	pr := testenv.NewProducer(t, p, topic)
	c := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})

	var (
		mu           sync.Mutex
		acked        = map[string]bool{}   // sends answered OK
		received     = map[string]string{} // message id → broker it came from
		failures     = map[string]int{}    // send error text → count
		recvFailures = map[string]int{}    // receive error text → count
		sentOK       atomic.Int64          // sends answered OK
		phase        atomic.Int32          // 0 before the kill, 1 while down, 2 after the restart
		okDown       atomic.Int64          // sends answered OK while a broker is down
		l            = newLoad()
	)
	const sendTimeout = 10 * time.Second
	// Two producers at about 50 sends a second each, two consumers: the
	// consumers keep up, so the drain at the end is short.
	for w := range 2 {
		l.paced(20*time.Millisecond, func(i int) bool {
			ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
			start := time.Now()
			r, err := pr.Send(ctx, &rmq.Message{Topic: topic, Body: []byte(fmt.Sprintf("w%d-%d", w, i))})
			took := time.Since(start)
			cancel()
			mu.Lock()
			switch {
			case err == nil:
				acked[r[0].MessageID] = true
				sentOK.Add(1)
				if phase.Load() == 1 {
					okDown.Add(1)
				}
			default:
				var st *rmq.ErrRpcStatus
				if errors.As(err, &st) && !retryableCodes[v2.Code(st.GetCode())] {
					t.Errorf("send failed with a code clients do not retry: %v", err)
				}
				if took > sendTimeout+2*time.Second {
					t.Errorf("a send returned %v after it started, past its %v deadline: %v", took, sendTimeout, err)
				}
				failures[firstLine(err.Error())]++
			}
			mu.Unlock()
			return true
		})
	}
	for range 2 {
		l.loop(func() bool {
			ms, err := c.Receive(context.Background(), 32, 20*time.Second)
			if err != nil && !testenv.IsNoMessage(err) {
				mu.Lock()
				recvFailures[firstLine(err.Error())]++
				mu.Unlock()
			}
			for _, m := range ms {
				mu.Lock()
				received[m.GetMessageId()] = brokerOf(m.GetReceiptHandle())
				mu.Unlock()
				_ = c.Ack(context.Background(), m)
			}
			return true
		})
	}
	defer l.end()

	testenv.WaitFor(t, 60*time.Second, sendsAnsweredOK(&sentOK, 300))
	// Sends spread over both brokers.
	testenv.WaitFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		per := countValues(received)
		if per[brokers[0].Name] == 0 || per[brokers[1].Name] == 0 {
			return fmt.Errorf("received per broker: %v", per)
		}
		return nil
	})

	if err := brokers[1].Kill(); err != nil {
		t.Fatal(err)
	}
	phase.Store(1)
	before := sentOK.Load()
	testenv.WaitFor(t, 90*time.Second, sendsAnsweredOK(&sentOK, before+300))
	if okDown.Load() == 0 {
		t.Fatal("no send succeeded while a broker was down")
	}

	logPer := func(when string) {
		mu.Lock()
		defer mu.Unlock()
		per := countValues(received)
		t.Logf("%s: %d acked, received per broker %v, send failures %v, receive failures %v", when, len(acked), per, failures, recvFailures)
	}
	logPer("before the restart")
	if err := brokers[1].Restart(); err != nil {
		t.Fatal(err)
	}
	phase.Store(2)
	before = sentOK.Load()
	testenv.WaitFor(t, 90*time.Second, sendsAnsweredOK(&sentOK, before+300))
	l.end()
	logPer("after the restart")

	// Every acknowledged send is consumed, including those the killed
	// broker held.
	drainAcked(t, 120*time.Second, c, 32, 20*time.Second, &mu, acked, received, func(m *rmq.MessageView) string { return brokerOf(m.GetReceiptHandle()) })
	mu.Lock()
	defer mu.Unlock()
	per := countValues(received)
	t.Logf("%d sends answered OK (%d while a broker was down), consumed per broker %v, send failures %v", len(acked), okDown.Load(), per, failures)
}

// brokerOf reads the broker name out of a receipt handle.
func brokerOf(handle string) string {
	if f := strings.Fields(handle); len(f) >= 6 {
		return f[5]
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}
