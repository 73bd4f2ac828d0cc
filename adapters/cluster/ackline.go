package cluster

import (
	"context"

	"github.com/rmqproxy/rmqproxy/adapters/cluster/internal/coalesce"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Concurrent acks to one broker are coalesced like a group commit
// (package coalesce): up to ackFlightsPerBroker ack requests are in flight
// to a broker at once, each sent as soon as it comes; an ack that comes
// while all are in flight waits, and when a request returns, every ack
// waiting by then goes in the next one BATCH_ACK_MESSAGE (at most
// maxCoalescedAcks). Nothing waits when a broker is not that busy, so a
// lone ack costs what it did. A push consumer acks the messages of one
// receive from its consumption threads at the same time (the official
// clients run 20), so those acks share a request and, being of one pop
// checkpoint, one ack record on the broker.
const (
	ackFlightsPerBroker = 4
	maxCoalescedAcks    = 1024
)

// ackLines holds the line of every broker that acks went to; brokers are
// named by the cluster (a handle naming another is refused before).
type ackLines = coalesce.Lines[string, ports.AckRequest, error]

var ackLimits = coalesce.Limits[ports.AckRequest]{Flights: ackFlightsPerBroker, MaxItems: maxCoalescedAcks}

// coalescedAck acks req (a batchable delivery of broker, at addr) in the
// broker's line and returns its result. An ack whose caller gives up while
// it waits is dropped; once it is in a request, the request goes on and
// the ack's result is returned. The request has a deadline of its own
// (cluster.requestTimeout): it carries the acks of several callers.
func (b *Broker) coalescedAck(ctx context.Context, broker, addr string, req ports.AckRequest) error {
	res, err := b.ackLines.Line(broker).Do(ctx, req, func(reqs []ports.AckRequest, errs []error) {
		sctx := context.WithoutCancel(ctx)
		if len(reqs) > 1 {
			// One deadline for the batch and, should the broker refuse
			// it, the acks sent one by one after it.
			var cancel context.CancelFunc
			sctx, cancel = context.WithTimeout(sctx, b.cfg.RequestTimeout)
			defer cancel()
		} // (one ACK_MESSAGE: invoke bounds it by cluster.requestTimeout)
		b.ackOnBroker(sctx, broker, addr, reqs, errs)
	})
	if err != nil {
		return err
	}
	return res
}
