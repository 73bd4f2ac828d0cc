package application

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// fakeBroker is the broker side of the application's unit tests: it hands
// out the messages queued in pending, records pops and invisible-time
// changes, and issues a new handle per change. Methods a test does not need
// panic through the embedded nil interface.
type fakeBroker struct {
	ports.Broker
	clock *clocktest.Clock

	mu        sync.Mutex
	pending   []domain.StoredMessage
	pops      []ports.PopRequest
	popLeft   []time.Duration // how long each pop's context had left, -1 for none
	changes   []ports.ChangeInvisibleRequest
	acks      []ports.AckRequest
	batches   []int // entries of each AckBatch / ChangeInvisibleBatch call
	changeErr error // returned by ChangeInvisible when set
	// ackErrs are returned by the next acks, one each, in order.
	ackErrs []error
	// forwardErr is returned by ForwardToDeadLetter.
	forwardErr error
	forwards   []ports.AckRequest
	nextStart  int64
	route      ports.Route
	routeErr   error // returned by Route when set
	groups     map[string]domain.ConsumerGroup
	// onlyListedGroups makes ConsumerGroup answer CONSUMER_GROUP_NOT_FOUND
	// for a group not in groups (otherwise every group exists).
	onlyListedGroups bool
	// beforePop, when set, runs at the start of each Pop, as if during
	// its long poll.
	beforePop func()
}

func newFakeBroker(clock *clocktest.Clock) *fakeBroker {
	return &fakeBroker{clock: clock, nextStart: 1000, groups: map[string]domain.ConsumerGroup{}}
}

func (b *fakeBroker) handle(q int32, offset int64, invisible time.Duration) domain.ReceiptHandle {
	b.nextStart++
	return domain.ReceiptHandle{StartOffset: b.nextStart, RetrieveTime: b.clock.Now().UnixMilli(), InvisibleTime: invisible.Milliseconds(),
		BrokerName: "b", QueueID: q, QueueOffset: offset, CommitLogOffset: offset * 100}
}

// add queues a message for the next pop.
func (b *fakeBroker) add(topic, id, tag string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, domain.StoredMessage{
		Message:    domain.Message{Topic: topic, ID: id, Tag: tag, Body: []byte("x")},
		BrokerName: "b", QueueOffset: int64(len(b.pending)), DeliveryAttempt: 1,
	})
}

func (b *fakeBroker) Route(context.Context, string) (ports.Route, error) { return b.route, b.routeErr }

func (b *fakeBroker) Pop(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
	if b.beforePop != nil {
		b.beforePop()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pops = append(b.pops, req)
	left := time.Duration(-1)
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	b.popLeft = append(b.popLeft, left)
	var out, kept []domain.StoredMessage
	for _, m := range b.pending {
		if int32(len(out)) < req.MaxMessages && req.Filter.Match(&m.Message) {
			m.ReceiptHandle = b.handle(m.QueueID, m.QueueOffset, req.InvisibleTime).String()
			out = append(out, m)
		} else {
			kept = append(kept, m)
		}
	}
	b.pending = kept
	return out, nil
}

func (b *fakeBroker) Ack(_ context.Context, req ports.AckRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.acks = append(b.acks, req)
	if len(b.ackErrs) > 0 {
		err := b.ackErrs[0]
		b.ackErrs = b.ackErrs[1:]
		return err
	}
	return nil
}

func (b *fakeBroker) ChangeInvisible(_ context.Context, req ports.ChangeInvisibleRequest) (domain.ReceiptHandle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.changes = append(b.changes, req)
	if b.changeErr != nil {
		return domain.ReceiptHandle{}, b.changeErr
	}
	return b.handle(req.Handle.QueueID, req.Handle.QueueOffset, req.InvisibleTime), nil
}

func (b *fakeBroker) AckBatch(ctx context.Context, reqs []ports.AckRequest) []error {
	b.mu.Lock()
	b.batches = append(b.batches, len(reqs))
	b.mu.Unlock()
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		errs[i] = b.Ack(ctx, r)
	}
	return errs
}

func (b *fakeBroker) ChangeInvisibleBatch(ctx context.Context, reqs []ports.ChangeInvisibleRequest) ([]domain.ReceiptHandle, []error) {
	b.mu.Lock()
	b.batches = append(b.batches, len(reqs))
	b.mu.Unlock()
	hs, errs := make([]domain.ReceiptHandle, len(reqs)), make([]error, len(reqs))
	for i, r := range reqs {
		hs[i], errs[i] = b.ChangeInvisible(ctx, r)
	}
	return hs, errs
}

func (b *fakeBroker) ForwardToDeadLetter(_ context.Context, req ports.AckRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forwards = append(b.forwards, req)
	return b.forwardErr
}

func (b *fakeBroker) Topic(_ context.Context, name string) (domain.Topic, error) {
	return domain.Topic{Name: name, Type: domain.MessageTypeNormal}, nil
}

func (b *fakeBroker) ConsumerGroup(_ context.Context, name string) (domain.ConsumerGroup, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if g, ok := b.groups[name]; ok {
		return g, nil
	}
	if b.onlyListedGroups {
		return domain.ConsumerGroup{}, domain.Errorf(domain.ReasonConsumerGroupNotFound, "group %q does not exist", name)
	}
	return domain.NewConsumerGroup(name), nil
}

func (b *fakeBroker) changesSnapshot() []ports.ChangeInvisibleRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]ports.ChangeInvisibleRequest(nil), b.changes...)
}

// newTestMessaging returns use cases over a fake broker with a clock the
// test moves.
func newTestMessaging(cfg Config) (*Messaging, *fakeBroker, *clocktest.Clock) {
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	b := newFakeBroker(clock)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewSessions(cfg, clock, log)
	r := NewRenewer(cfg, b, b, clock, log)
	return NewMessaging(MessagingParams{Config: cfg, Broker: b, Meta: b, Clock: clock, Log: log, Sessions: s, Renewer: r}), b, clock
}

func asClient(ctx context.Context, clientID string) context.Context {
	return ports.WithRequestInfo(ctx, ports.RequestInfo{ClientID: clientID, ClientVersion: "5.1.4", Protocol: "grpc"})
}

// openChannel is a ClientChannel a test can close.
type openChannel struct{ done chan struct{} }

func newOpenChannel() *openChannel                                     { return &openChannel{done: make(chan struct{})} }
func (c *openChannel) Done() <-chan struct{}                           { return c.done }
func (c *openChannel) Send(context.Context, ports.ClientCommand) error { return nil }
func (c *openChannel) TrySend(ports.ClientCommand) error               { return nil }
func (c *openChannel) close()                                          { close(c.done) }
func (c *openChannel) End()                                            { c.close() }
