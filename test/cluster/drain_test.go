package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// drainAcked receives (up to batch per call, each call waiting up to wait)
// and acks through c until every message id of acked is in received,
// recording each message received as from(m); it fails t when within
// passes first. mu guards acked and received.
func drainAcked[V any](t *testing.T, within time.Duration, c rmq.SimpleConsumer, batch int32, wait time.Duration,
	mu *sync.Mutex, acked map[string]V, received map[string]string, from func(*rmq.MessageView) string) {
	t.Helper()
	testenv.WaitFor(t, within, func() error {
		mu.Lock()
		missing := 0
		for id := range acked {
			if _, ok := received[id]; !ok {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			return nil
		}
		ms, _ := c.Receive(context.Background(), batch, wait)
		for _, m := range ms {
			mu.Lock()
			received[m.GetMessageId()] = from(m)
			mu.Unlock()
			_ = c.Ack(context.Background(), m)
		}
		return fmt.Errorf("%d acknowledged sends not consumed yet", missing)
	})
}
