package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// AckBatch implements [ports.Broker]. With cluster.batchAck on, the
// deliveries of one broker go in one BATCH_ACK_MESSAGE, where those of one
// pop checkpoint are one BatchAck (the broker then writes one ack record
// for them, not one each); the brokers' requests run side by side. A
// delivery of an orderly pop, a broker with a single delivery, or a
// handle whose offset cannot be one of its checkpoint's is acked as by
// [Broker.Ack], as every delivery is with batchAck off.
//
// A broker answers a whole BATCH_ACK_MESSAGE with one code, so a batch
// the broker refuses is retried one ACK_MESSAGE per delivery: each then
// gets the broker's own answer. A broker that refuses every request
// (overloaded, shutting down: see brokerRefusesAll) is not asked again. (Brokers skip, rather than refuse, a
// batched offset outside the queue's range, which a single ACK_MESSAGE
// answers with NO_MESSAGE; docs/compatibility.md.)
func (b *Broker) AckBatch(ctx context.Context, reqs []ports.AckRequest) []error {
	if len(reqs) == 1 { // the common case: a client acks one message per request
		return []error{b.Ack(ctx, reqs[0])}
	}
	errs := make([]error, len(reqs))
	var singles []int
	byBroker := map[string][]int{}
	var brokers []string // byBroker's keys in first-seen order
	for i, r := range reqs {
		if errs[i] = b.expiredAck(r); errs[i] != nil {
			continue
		}
		if !b.cfg.BatchAck || len(reqs) == 1 || !batchable(r.Handle) {
			singles = append(singles, i)
			continue
		}
		name := r.Handle.BrokerName
		if _, ok := byBroker[name]; !ok {
			brokers = append(brokers, name)
		}
		byBroker[name] = append(byBroker[name], i)
	}
	var batches [][]int
	for _, name := range brokers {
		if idx := byBroker[name]; len(idx) > 1 {
			batches = append(batches, idx)
		} else {
			singles = append(singles, idx[0])
		}
	}
	each(len(singles)+len(batches), func(k int) {
		if k < len(singles) {
			i := singles[k]
			errs[i] = b.Ack(ctx, reqs[i])
			return
		}
		idx := batches[k-len(singles)]
		name := reqs[idx[0]].Handle.BrokerName
		addr, err := b.meta.brokerAddr(ctx, name)
		if err != nil {
			for _, i := range idx {
				errs[i] = err
			}
			return
		}
		batch := make([]ports.AckRequest, len(idx))
		for j, i := range idx {
			batch[j] = reqs[i]
		}
		batchErrs := make([]error, len(idx))
		b.ackOnBroker(ctx, name, addr, batch, batchErrs)
		for j, err := range batchErrs {
			errs[idx[j]] = err
		}
	})
	return errs
}

// Ack implements [ports.Broker]: ACK_MESSAGE to the handle's broker, with
// the handle as the checkpoint and the retry topic when the message came
// from one. With cluster.batchAck on, acks that arrive while a broker has
// ackFlightsPerBroker of them in flight wait and go together in one
// BATCH_ACK_MESSAGE (see ackline.go).
func (b *Broker) Ack(ctx context.Context, req ports.AckRequest) error {
	if err := b.expiredAck(req); err != nil {
		return err
	}
	addr, err := b.handleBroker(ctx, req.Handle)
	if err != nil {
		return err
	}
	err = b.ackTo(ctx, addr, req)
	if moved := b.movedBroker(ctx, req.Handle.BrokerName, addr, err); moved != "" {
		err = b.ackTo(ctx, moved, req)
	}
	return err
}

// ackTo acks req at the broker at addr.
func (b *Broker) ackTo(ctx context.Context, addr string, req ports.AckRequest) error {
	if b.cfg.BatchAck && batchable(req.Handle) {
		return b.coalescedAck(ctx, req.Handle.BrokerName, addr, req)
	}
	return b.ackAt(ctx, addr, req)
}

// ackAt sends one ACK_MESSAGE to the broker at addr.
func (b *Broker) ackAt(ctx context.Context, addr string, req ports.AckRequest) error {
	h := req.Handle
	ah := remoting.AckMessageRequestHeader{RPC: remoting.RPC{BrokerName: h.BrokerName},
		ConsumerGroup: req.Group, Topic: realTopic(req.Topic, req.Group, h), QueueID: h.QueueID, ExtraInfo: h.String(), Offset: h.QueueOffset}
	r := remoting.NewRequestWithRoom(remoting.RequestAckMessage, nil)
	r.Fields = ah.AppendFields(r.Fields) // (through call's remoting.Header, ah would escape)
	resp, err := b.invoke(ctx, addr, r)
	if err == nil {
		err = expect(remoting.RequestAckMessage, resp)
	}
	if err != nil {
		b.failed(h.BrokerName, err)
		return mapError(err)
	}
	return nil
}

// batchable reports whether a delivery may be acked in a BatchAck: not of
// an orderly pop (the broker acks those one offset at a time, under the
// queue's order lock, whose failures it answers for the whole batch), and
// with its offset within its checkpoint's span.
func batchable(h domain.ReceiptHandle) bool {
	if h.ReviveQueueID == remoting.OrderlyReviveQid {
		return false
	}
	return remoting.InBatchAckSpan(h.StartOffset, h.QueueOffset)
}

// ackKey identifies one pop checkpoint of one group and topic.
type ackKey struct {
	group, topic string
	retry        domain.ReceiptTopicType
	queueID      int32
	startOffset  int64
	popTime      int64
}

// ackOnBroker acks reqs, all batchable deliveries of the broker name at
// addr: one ACK_MESSAGE for one, else one BATCH_ACK_MESSAGE. It sets each
// request's error in errs (as long as reqs, nil when called).
func (b *Broker) ackOnBroker(ctx context.Context, name, addr string, reqs []ports.AckRequest, errs []error) {
	if len(reqs) == 1 {
		errs[0] = b.ackAt(ctx, addr, reqs[0])
		return
	}
	fail := func(err error) {
		for i := range errs {
			errs[i] = err
		}
	}
	body := remoting.BatchAckMessageRequestBody{BrokerName: name}
	at := map[ackKey]int{}
	for _, r := range reqs {
		h := r.Handle
		k := ackKey{group: r.Group, topic: r.Topic, retry: h.TopicType, queueID: h.QueueID, startOffset: h.StartOffset, popTime: h.RetrieveTime}
		j, ok := at[k]
		if !ok {
			j = len(body.Acks)
			at[k] = j
			body.Acks = append(body.Acks, remoting.BatchAck{ConsumerGroup: r.Group, Topic: r.Topic,
				Retry: retryFlag(h.TopicType), StartOffset: h.StartOffset, QueueID: h.QueueID,
				ReviveQueueID: h.ReviveQueueID, PopTime: h.RetrieveTime, InvisibleTime: h.InvisibleTime})
		}
		body.Acks[j].Ack(h.QueueOffset) // cannot fail: batchable checked the span
	}
	enc, err := remoting.EncodeJSONBody(body)
	if err != nil {
		fail(domain.Wrap(domain.ReasonInternal, err, "encoding a batch ack"))
		return
	}
	_, err = b.call(ctx, addr, remoting.RequestBatchAckMessage, nil, enc)
	switch {
	case err == nil:
		return
	case isResponse(err) && !brokerRefusesAll(err):
		// The broker refused the batch as a whole (an older broker without
		// BATCH_ACK_MESSAGE, an ACL that does not allow it, ...): ask once
		// per delivery, so each gets its own answer.
		if b.batchRefusals.first(name, b.clock.Now()) {
			b.log.WarnContext(ctx, "a broker refused BATCH_ACK_MESSAGE; its deliveries are acked one ACK_MESSAGE each (set cluster.batchAck to false to skip the attempt)",
				"broker", name, "error", err)
		}
		each(len(reqs), func(i int) { errs[i] = b.ackAt(ctx, addr, reqs[i]) })
		return
	}
	b.failed(name, err)
	fail(mapError(err))
}

// brokerRefusesAll reports whether a broker's answer refuses any request
// now, not the request it answers: it is overloaded (SYSTEM_BUSY, its
// queue for the request's kind full; FLOW_CONTROL) or shutting down
// (GO_AWAY). Asking again once per delivery of a batch so answered would
// multiply the requests to a broker that just said it cannot take them.
func brokerRefusesAll(err error) bool {
	return isCode(err, remoting.ResponseSystemBusy) || isCode(err, remoting.ResponseFlowControl) || isCode(err, remoting.ResponseGoAway)
}

// retryFlag is the checkpoint retry flag of a receipt handle's topic type.
func retryFlag(t domain.ReceiptTopicType) string {
	switch t {
	case domain.ReceiptTopicRetryV1:
		return remoting.RetryFlagRetryV1
	case domain.ReceiptTopicRetryV2:
		return remoting.RetryFlagRetryV2
	}
	return remoting.RetryFlagNormal
}

// refusals remembers, per broker, when a refusal was last logged.
type refusals struct {
	mu     sync.Mutex
	logged map[string]time.Time
}

// first reports whether a refusal by broker at now is the first in a
// minute (and so is to be logged).
func (r *refusals) first(broker string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if last, ok := r.logged[broker]; ok && now.Sub(last) < time.Minute {
		return false
	}
	if r.logged == nil {
		r.logged = map[string]time.Time{}
	}
	r.logged[broker] = now
	return true
}

// expiredAck refuses an ack whose handle's invisible time has ended, as
// the Apache proxy does (ConsumerProcessor.ackMessage): the broker may
// have delivered the message again, or revives its checkpoint whatever
// the ack does, so the consumer is told that its ack may not take.
//
// An orderly pop's handle is the broker's to judge: the broker keeps no
// checkpoint to revive, and takes the ack only while the handle's pop is
// the queue's latest (ConsumerOrderInfoManager.commitAndNext), whatever
// time the handle shows. Renewals keep a FIFO message's pop time, so a
// push consumer's ack with the handle it received takes after the
// rmqproxy instance that renewed it is gone (restarted, killed, or the
// client moved to another one), where one refused left the message's
// queue blocked until the renewed invisible time ended, and then
// delivered it again.
func (b *Broker) expiredAck(req ports.AckRequest) error {
	if req.Handle.ReviveQueueID != remoting.OrderlyReviveQid && req.Handle.Expired(b.clock.Now()) {
		return domain.Errorf(domain.ReasonInvalidReceiptHandle,
			"receipt handle is expired: the message became visible again and may have been delivered anew; ack or change it within its invisible duration")
	}
	return nil
}
