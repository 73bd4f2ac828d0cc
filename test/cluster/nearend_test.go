package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/cluster"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// offsetClock is this host's clock moved by an offset the test sets.
type offsetClock struct{ by atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.by.Load())) }

// TestReleaseNearTheHandlesEndDeliversOnce: a release (the proxy making a
// message it cannot hand on visible again in a second) decided while the
// handle had 2 s left, which reaches the broker only after the broker
// revived the pop's checkpoint (a request that took its time, or a host
// clock behind the broker's: the test sets the adapter's clock 2 s before
// the handle's end once the broker has redelivered the message). A
// RocketMQ 5.5.0 broker applies it all the same: it wrote a new checkpoint
// of 1 s, which it revived too, delivering the message a third time after
// its redelivery had been acked. The cluster adapter does not send a
// release whose handle ends within cluster.requestTimeout: the message is
// delivered once more, by the broker's revival, and then no more.
func TestReleaseNearTheHandlesEndDeliversOnce(t *testing.T) {
	t.Parallel() // see TestMain
	f := startNearEnd(t, "release-near-end")
	id := f.send(t)
	first, h := f.attempt(t, id, 1)
	// Not acked: the broker revives the pop's checkpoint and delivers the
	// message again, which is acked.
	_, h2 := f.attempt(t, id, 2)
	revivedAfter := time.Since(h.NextVisibleTime())
	f.ack(t, id, h2)
	t.Logf("redelivered %v after the first handle's end", revivedAfter)

	// The release of the first delivery, decided 2 s before its end.
	f.clock.by.Store(int64(h.NextVisibleTime().Add(-2 * time.Second).Sub(time.Now())))
	_, errs := f.b.ChangeInvisibleBatch(t.Context(), []ports.ChangeInvisibleRequest{{InvisibleTime: time.Second, Release: true,
		AckRequest: ports.AckRequest{Group: f.group, Topic: f.topic, MessageID: first.ID, Handle: h}}})
	f.clock.by.Store(0)
	// A checkpoint the release wrote would be revived about as long after
	// its second as the first one was: the wait is twice that, and more.
	f.noMore(t, time.Second+2*revivedAfter+5*time.Second, fmt.Sprintf("the release's error: %v", errs[0]))
	if !errors.Is(errs[0], ports.ErrHandleExpiring) {
		t.Fatalf("the release of a handle ending within cluster.requestTimeout: %v, want ErrHandleExpiring", errs[0])
	}
}

// TestForwardOfAnExpiredHandleMovesTheMessageOnce: a dead-letter forward
// whose receipt handle's invisible time had ended was sent to a RocketMQ
// 5.5.0 broker as any other: it copied the message into the group's
// dead-letter queue (CONSUMER_SEND_MSG_BACK), and the ack that followed
// came after the broker had revived the pop's checkpoint, so the message
// was delivered again as well; forwarded again, it was in the dead-letter
// queue twice (seen: 2 messages there). The cluster adapter moves nothing
// for such a handle and answers OK: the redelivery, forwarded with its own
// handle, puts it there once, and it is not delivered to the group again.
// A second message shows the other order: a forward that reaches the
// adapter after the handle's end by the host's clock (set past it here)
// but before the broker revived the checkpoint moves nothing either, and
// the message is not lost: the broker delivers it again, and that
// delivery's forward moves it.
func TestForwardOfAnExpiredHandleMovesTheMessageOnce(t *testing.T) {
	t.Parallel() // see TestMain
	f := startNearEnd(t, "forward-expired")
	dlq := domain.DeadLetterTopic(f.group)

	late := f.send(t)
	_, h := f.attempt(t, late, 1)
	// Not acked: the broker revives the pop's checkpoint and delivers the
	// message again; that delivery is forwarded, with its valid handle,
	// and then the first one, long expired.
	f.invisible = time.Minute // the forward of h2 must not come after its end
	_, h2 := f.attempt(t, late, 2)
	revivedAfter := time.Since(h.NextVisibleTime())
	f.forward(t, late, h2)
	f.forward(t, late, h)
	f.noMore(t, 2*time.Second+2*revivedAfter+5*time.Second, "after the forwards of both deliveries")
	f.dlqHolds(t, dlq, h.BrokerName, 1)

	early := f.send(t)
	f.invisible = 0
	_, h = f.attempt(t, early, 1)
	f.clock.by.Store(int64(time.Until(h.NextVisibleTime()) + time.Millisecond))
	f.forward(t, early, h)
	f.clock.by.Store(0)
	f.invisible = time.Minute
	_, h2 = f.attempt(t, early, 2)
	f.forward(t, early, h2)
	f.noMore(t, 2*time.Second+2*revivedAfter+5*time.Second, "after the forward of the redelivery")
	f.dlqHolds(t, dlq, h.BrokerName, 2)
}

// forward forwards delivery h of message id to the dead-letter queue.
func (f *nearEnd) forward(t *testing.T, id string, h domain.ReceiptHandle) {
	t.Helper()
	if err := f.b.ForwardToDeadLetter(t.Context(), ports.AckRequest{Group: f.group, Topic: f.topic, MessageID: id, Handle: h}); err != nil {
		t.Fatalf("dead-letter forward: %v", err)
	}
}

// dlqHolds fails the test unless the dead-letter topic dlq (one queue, on
// broker) holds n messages.
func (f *nearEnd) dlqHolds(t *testing.T, dlq, broker string, n int64) {
	t.Helper()
	testenv.WaitForRoute(t, f.p, dlq)
	var got int64
	testenv.WaitFor(t, 30*time.Second, func() error {
		var err error
		got, err = f.b.QueryOffset(t.Context(), domain.QueueRef{Topic: dlq, BrokerName: broker}, ports.OffsetEnd, time.Time{})
		return err
	})
	if got != n {
		t.Fatalf("%s holds %d messages, want %d", dlq, got, n)
	}
}

// nearEnd is a topic and group of a broker of their own, with a cluster
// adapter on it whose clock the test may move.
type nearEnd struct {
	p            *testenv.Proxy
	b            *cluster.Broker
	clock        *offsetClock
	topic, group string
	producer     rmq.Producer
	invisible    time.Duration // of the pops; 0: 2 s
}

// startNearEnd starts it, with topic name and group g-name.
func startNearEnd(t *testing.T, name string) *nearEnd {
	cfg, _ := testenv.ClusterConfig(t)
	f := &nearEnd{p: testenv.Start(t, cfg), clock: &offsetClock{},
		topic: testenv.Name(t, name), group: testenv.Name(t, "g-"+name)}
	f.p.CreateTopic(t, f.topic, domain.MessageTypeNormal, 1)
	f.p.CreateGroup(t, application.GroupSpec{Name: f.group})
	f.producer = testenv.NewProducer(t, f.p, f.topic)
	var err error
	if f.b, err = cluster.New(cfg.Cluster, nil, f.clock); err != nil {
		t.Fatal(err)
	}
	if err := f.b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.b.Close(context.Background()) })
	return f
}

// send sends a message and returns its id.
func (f *nearEnd) send(t *testing.T) string {
	receipts, err := f.producer.Send(t.Context(), &rmq.Message{Topic: f.topic, Body: []byte("near the end")})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return receipts[0].MessageID
}

// pop pops one message (invisible for f.invisible, 2 s if 0), waiting
// up to poll for it.
func (f *nearEnd) pop(t *testing.T, poll time.Duration) []domain.StoredMessage {
	ctx, cancel := context.WithTimeout(t.Context(), poll+10*time.Second)
	defer cancel()
	invisible := 2 * time.Second
	if f.invisible > 0 {
		invisible = f.invisible
	}
	msgs, err := f.b.Pop(ctx, ports.PopRequest{Group: f.group, Topic: f.topic, QueueID: -1, MaxMessages: 1,
		InvisibleTime: invisible, PollTimeout: poll, Filter: filter.All})
	if err != nil {
		t.Logf("pop: %v", err)
	}
	return msgs
}

// attempt returns delivery n of message id, once a pop hands it out.
func (f *nearEnd) attempt(t *testing.T, id string, n int32) (domain.StoredMessage, domain.ReceiptHandle) {
	var got domain.StoredMessage
	testenv.WaitFor(t, 90*time.Second, func() error {
		for _, m := range f.pop(t, 3*time.Second) {
			if m.ID != id || m.DeliveryAttempt != n {
				t.Fatalf("popped %s attempt %d, want %s attempt %d", m.ID, m.DeliveryAttempt, id, n)
			}
			got = m
			return nil
		}
		return fmt.Errorf("delivery %d of %s not popped yet", n, id)
	})
	h, err := domain.ParseReceiptHandle(got.ReceiptHandle)
	if err != nil {
		t.Fatal(err)
	}
	return got, h
}

func (f *nearEnd) ack(t *testing.T, id string, h domain.ReceiptHandle) {
	if err := f.b.Ack(t.Context(), ports.AckRequest{Group: f.group, Topic: f.topic, MessageID: id, Handle: h}); err != nil {
		t.Fatalf("ack: %v", err)
	}
}

// noMore pops for window and fails the test, saying why, on any message.
func (f *nearEnd) noMore(t *testing.T, window time.Duration, why string) {
	for end := time.Now().Add(window); time.Until(end) > 0; {
		for _, m := range f.pop(t, min(time.Until(end), 5*time.Second)) {
			t.Fatalf("delivered once more after the ack: %s attempt %d (%s)", m.ID, m.DeliveryAttempt, why)
		}
	}
}
