package application

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// recordingChannel records the commands it takes, or refuses them all.
type recordingChannel struct {
	openChannel
	refuse error
	mu     sync.Mutex
	got    []string
}

func (c *recordingChannel) Send(_ context.Context, cmd ports.ClientCommand) error {
	if c.refuse != nil {
		return c.refuse
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, cmd.RecoverTransaction.TransactionID)
	return nil
}

func (c *recordingChannel) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// TestCheckBacksPassOverRefusingProducers: check-backs are dispatched by
// workers, never in the broker's call, and a producer whose channel refuses
// (a stalled client) is passed over for the next one.
func TestCheckBacksPassOverRefusingProducers(t *testing.T) {
	m, _, _ := newTestMessaging(DefaultConfig())
	stalled := &recordingChannel{openChannel: *newOpenChannel(), refuse: errors.New("stalled")}
	healthy := &recordingChannel{openChannel: *newOpenChannel()}
	for id, ch := range map[string]ports.ClientChannel{"a-stalled": stalled, "b-healthy": healthy} {
		s := ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"tx"}}}
		if _, err := m.UpdateSettings(asClient(t.Context(), id), s, ch); err != nil {
			t.Fatal(err)
		}
	}
	const n = 50
	for i := range n {
		m.relayTransactionCheck(t.Context(), ports.TransactionCheck{Message: domain.StoredMessage{
			Message: domain.Message{Topic: "tx", ID: "m"}, TransactionID: string(rune('A' + i))}})
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitfor.Condition(t, 30*time.Second, 10*time.Millisecond, func() error {
		if got := healthy.count(); got < n {
			return fmt.Errorf("the healthy producer got %d of %d check-backs", got, n)
		}
		return nil
	})
}
