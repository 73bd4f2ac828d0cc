package application

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// allocBroker answers a send's route lookup and send with what it holds,
// allocating nothing, as the local broker does for the route.
type allocBroker struct {
	ports.Broker
	route    ports.Route
	receipts []domain.SendReceipt
}

func (b *allocBroker) Route(context.Context, string) (ports.Route, error) { return b.route, nil }
func (b *allocBroker) Send(context.Context, domain.QueueRef, []domain.Message) ([]domain.SendReceipt, error) {
	return b.receipts, nil
}

// TestSendMessageAllocs pins what the send use case itself allocates per
// send of one message (no keys, properties or traffic rules) over a broker
// whose route lookup allocates nothing: nothing. Issue 7 counts every
// allocation a send costs the server.
func TestSendMessageAllocs(t *testing.T) {
	cfg := DefaultConfig()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := fixedClock{time.Unix(1_700_000_000, 0)}
	s := NewSessions(cfg, clock, log)
	b := &allocBroker{route: ports.Route{Topic: domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 8, Permission: domain.PermReadWrite},
		Queues: make([]ports.RouteQueue, 8)}, receipts: make([]domain.SendReceipt, 1)}
	for i := range b.route.Queues {
		b.route.Queues[i] = ports.RouteQueue{BrokerName: "b", QueueID: int32(i), Permission: domain.PermReadWrite}
	}
	m := NewMessaging(MessagingParams{Config: cfg, Broker: b, Clock: clock, Log: log, Sessions: s})
	ctx := context.Background()
	msgs := []domain.Message{{Topic: "t", ID: "id", Body: make([]byte, 1024), BornAt: clock.t}}
	var err error
	allocs := testing.AllocsPerRun(100, func() { _, err = m.SendMessage(ctx, msgs) })
	if err != nil || allocs != 0 {
		t.Fatalf("SendMessage: %v allocations per send (%v), want 0", allocs, err)
	}
}
