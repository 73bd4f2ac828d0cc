package cluster

import (
	"context"
	"slices"
	"sync"

	"github.com/rmqproxy/rmqproxy/ports"
)

// Concurrent acks to one broker are coalesced like a group commit: up to
// ackFlightsPerBroker ack requests are in flight to a broker at once, each
// sent as soon as it comes; an ack that comes while all are in flight
// waits, and when a request returns, every ack waiting by then goes in the
// next one BATCH_ACK_MESSAGE (at most maxCoalescedAcks). Nothing waits
// when a broker is not that busy, so a lone ack costs what it did. A push
// consumer acks the messages of one receive from its consumption threads
// at the same time (the official clients run 20), so those acks share a
// request and, being of one pop checkpoint, one ack record on the broker.
const (
	ackFlightsPerBroker = 4
	maxCoalescedAcks    = 1024
)

// ackLines holds the ackLine of every broker that acks went to; brokers are
// named by the cluster (a handle naming another is refused before).
type ackLines struct {
	mu    sync.Mutex
	lines map[string]*ackLine
}

func (l *ackLines) line(broker string) *ackLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines == nil {
		l.lines = map[string]*ackLine{}
	}
	line := l.lines[broker]
	if line == nil {
		line = &ackLine{broker: broker}
		l.lines[broker] = line
	}
	return line
}

// ackLine coalesces the acks of one broker.
type ackLine struct {
	broker   string
	mu       sync.Mutex
	inFlight int          // requests in flight (≤ ackFlightsPerBroker)
	waiting  []*ackWaiter // acks waiting for one to return
}

// ackWaiter is one ack on its way through an ackLine.
type ackWaiter struct {
	req  ports.AckRequest
	done chan error        // its result (buffered: whoever sends it never waits)
	lead chan []*ackWaiter // a batch it is to send, itself included (buffered)
}

// ack acks req (a batchable delivery of the line's broker, at addr) and
// returns its result. An ack whose caller gives up while it waits is
// dropped; once it is in a request, the request goes on and ack returns
// with its result.
func (l *ackLine) ack(ctx context.Context, b *Broker, addr string, req ports.AckRequest) error {
	w := &ackWaiter{req: req, done: make(chan error, 1), lead: make(chan []*ackWaiter, 1)}
	l.mu.Lock()
	if l.inFlight < ackFlightsPerBroker {
		l.inFlight++
		l.mu.Unlock()
		l.send(ctx, b, addr, []*ackWaiter{w})
		return <-w.done
	}
	l.waiting = append(l.waiting, w)
	l.mu.Unlock()
	if ok, err := l.await(ctx, b, addr, w, ctx.Done()); ok {
		return err
	}
	l.mu.Lock()
	if i := slices.Index(l.waiting, w); i >= 0 {
		l.waiting = slices.Delete(l.waiting, i, i+1)
		l.mu.Unlock()
		return ctx.Err()
	}
	l.mu.Unlock()
	// Taken into a request already, or given one to send: see it through.
	_, err := l.await(ctx, b, addr, w, nil)
	return err
}

// await waits for w's result, sending the batch w is given to send if it
// comes first, or until giveUp is closed (then ok is false).
func (l *ackLine) await(ctx context.Context, b *Broker, addr string, w *ackWaiter, giveUp <-chan struct{}) (ok bool, err error) {
	select {
	case err := <-w.done:
		return true, err
	case batch := <-w.lead:
		l.send(ctx, b, addr, batch)
		return true, <-w.done
	case <-giveUp:
		return false, nil
	}
}

// send sends one request for batch, gives each waiter its result, and then
// hands the flight to the acks that waited meanwhile (the first of them
// sends them all) or ends it. The request has a deadline of its own
// (cluster.requestTimeout): it carries the acks of several callers.
func (l *ackLine) send(ctx context.Context, b *Broker, addr string, batch []*ackWaiter) {
	reqs := make([]ports.AckRequest, len(batch))
	for i, w := range batch {
		reqs[i] = w.req
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.RequestTimeout)
	errs := b.ackOnBroker(sctx, l.broker, addr, reqs)
	cancel()
	for i, w := range batch {
		w.done <- errs[i]
	}
	l.mu.Lock()
	if len(l.waiting) == 0 {
		l.inFlight--
		l.mu.Unlock()
		return
	}
	n := min(len(l.waiting), maxCoalescedAcks)
	next := slices.Clone(l.waiting[:n])
	l.waiting = slices.Delete(l.waiting, 0, n)
	l.mu.Unlock()
	next[0].lead <- next
}
