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
	ackErrs  []error
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

func (b *allocBroker) AckBatch(context.Context, []ports.AckRequest) []error { return b.ackErrs }

// TestAckMessageAllocs pins what the ack use case itself allocates per ack
// of one entry (as the official clients send them): its result and the
// broker request, in one allocation.
func TestAckMessageAllocs(t *testing.T) {
	cfg := DefaultConfig()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := fixedClock{time.Unix(1_700_000_000, 0)}
	s := NewSessions(cfg, clock, log)
	b := &allocBroker{ackErrs: make([]error, 1)}
	m := NewMessaging(MessagingParams{Config: cfg, Broker: b, Clock: clock, Log: log, Sessions: s, Renewer: NewRenewer(cfg, b, nil, clock, log)})
	h := domain.ReceiptHandle{StartOffset: 1, RetrieveTime: clock.t.UnixMilli(), InvisibleTime: 30_000, BrokerName: "b", QueueID: 2, QueueOffset: 3, CommitLogOffset: 4}
	entries := []AckEntry{{MessageID: "id", ReceiptHandle: h.String()}}
	ctx := context.Background()
	var results []error
	var err error
	allocs := testing.AllocsPerRun(100, func() { results, err = m.AckMessage(ctx, "g", "t", entries) })
	if err != nil || len(results) != 1 || results[0] != nil {
		t.Fatalf("AckMessage = %v, %v", results, err)
	}
	if allocs > 1 {
		t.Fatalf("AckMessage: %v allocations per ack of one entry, want at most 1", allocs)
	}
}
