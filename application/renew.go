package application

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// renewSteps are the successive invisible times granted by auto-renewal,
// as the Apache proxy's RenewStrategyPolicy; the last one repeats.
var renewSteps = []time.Duration{time.Minute, 3 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}

// maxRenewFailures is how often a renewal may fail before it is given up.
const maxRenewFailures = 3

type holderKey struct {
	clientID string
	group    string
}

// deliveryKey names one delivery a holder keeps: its message id and where
// it was stored. A message id alone does not do: two stored copies of one
// message (a producer's retried send) share it and may be held at once,
// and each must be renewed until it is acked.
type deliveryKey struct {
	messageID   string
	brokerName  string
	queueID     int32
	queueOffset int64
}

// deliveryOf returns the key of the delivery of messageID that h (or any
// renewal of it, see [sameDelivery]) identifies.
func deliveryOf(messageID string, h domain.ReceiptHandle) deliveryKey {
	return deliveryKey{messageID: messageID, brokerName: h.BrokerName, queueID: h.QueueID, queueOffset: h.QueueOffset}
}

// heldMessage is one delivery a push consumer holds and the proxy renews.
type heldMessage struct {
	mu        sync.Mutex // held during a renewal and by whoever takes the message over
	topic     string
	handle    domain.ReceiptHandle // the latest handle at the broker
	attempt   int32
	first     time.Time
	renewals  int
	failures  int
	forgotten bool
}

// Renewer keeps the deliveries of auto-renewing consumers (push consumers)
// invisible until they are acked, as the Apache proxy does: the client acks
// with the handle it received, and the proxy substitutes the latest handle
// it obtained by renewing.
type Renewer struct {
	broker ports.Broker
	meta   ports.Metadata
	clock  ports.Clock
	cfg    ConsumerConfig
	log    *slog.Logger

	mu   sync.Mutex
	held map[holderKey]map[deliveryKey]*heldMessage
}

// NewRenewer returns an empty renewal table.
func NewRenewer(cfg Config, broker ports.Broker, meta ports.Metadata, clock ports.Clock, log *slog.Logger) *Renewer {
	return &Renewer{broker: broker, meta: meta, clock: clock, cfg: cfg.Consumer, log: log, held: map[holderKey]map[deliveryKey]*heldMessage{}}
}

// track starts renewing a delivery held by clientID in group.
func (r *Renewer) track(clientID, group string, m *domain.StoredMessage, h domain.ReceiptHandle) {
	k := holderKey{clientID, group}
	r.mu.Lock()
	defer r.mu.Unlock()
	deliveries := r.held[k]
	if deliveries == nil {
		deliveries = map[deliveryKey]*heldMessage{}
		r.held[k] = deliveries
	}
	deliveries[deliveryOf(m.ID, h)] = &heldMessage{topic: m.Topic, handle: h, attempt: m.DeliveryAttempt, first: r.clock.Now()}
}

// take stops renewing the delivery that h identifies and returns the handle
// to use at the broker instead of h: the latest renewed one if the proxy
// renewed it, h itself otherwise. taken is the delivery it took (nil for
// none), for giveBack.
func (r *Renewer) take(clientID, group, messageID string, h domain.ReceiptHandle) (_ domain.ReceiptHandle, taken *heldMessage) {
	k, d := holderKey{clientID, group}, deliveryOf(messageID, h)
	r.mu.Lock()
	hm := r.held[k][d]
	r.mu.Unlock()
	if hm == nil {
		return h, nil
	}
	// A renewal in progress holds hm.mu and writes hm.handle: wait for it
	// so its new handle is used (a broker call, bounded by the broker's own
	// timeout). hm.mu before r.mu, as renewed takes them.
	hm.mu.Lock()
	defer hm.mu.Unlock()
	if hm.forgotten || !sameDelivery(hm.handle, h) {
		return h, nil
	}
	hm.forgotten = true
	r.mu.Lock()
	if r.held[k][d] == hm {
		delete(r.held[k], d)
		if len(r.held[k]) == 0 {
			delete(r.held, k)
		}
	}
	r.mu.Unlock()
	return hm.handle, hm
}

// giveBack renews again a delivery that take took for an ack the broker
// did not carry out: the official push consumers try a failed ack again
// a second later with the handle they received, and only this table
// knows the latest handle (a retry naming the superseded one would leave
// the message to come again). A delivery tracked again since is left as
// it is.
func (r *Renewer) giveBack(clientID, group, messageID string, hm *heldMessage) {
	if hm == nil {
		return
	}
	hm.mu.Lock()
	defer hm.mu.Unlock()
	k, d := holderKey{clientID, group}, deliveryOf(messageID, hm.handle)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !hm.forgotten || r.held[k][d] != nil {
		return
	}
	hm.forgotten = false
	if r.held[k] == nil {
		r.held[k] = map[deliveryKey]*heldMessage{}
	}
	r.held[k][d] = hm
}

// sameDelivery reports whether two handles name the same message at the
// same broker (they may be different renewals of it).
func sameDelivery(a, b domain.ReceiptHandle) bool {
	return a.BrokerName == b.BrokerName && a.QueueID == b.QueueID && a.QueueOffset == b.QueueOffset
}

// release makes every delivery a departed client held visible again soon,
// with one broker call for all of them.
func (r *Renewer) release(ctx context.Context, clientID, group string) {
	k := holderKey{clientID, group}
	r.mu.Lock()
	deliveries := r.held[k]
	delete(r.held, k)
	r.mu.Unlock()
	var reqs []ports.ChangeInvisibleRequest
	var locked []*heldMessage
	cleared := r.clock.Now().Add(r.cfg.InvisibleTimeOnClear)
	for d, hm := range deliveries {
		hm.mu.Lock()
		if hm.forgotten {
			hm.mu.Unlock()
			continue
		}
		hm.forgotten = true
		if hm.handle.Expired(cleared) {
			// Visible again by then anyway; changing an expired
			// checkpoint makes a RocketMQ broker deliver it twice.
			hm.mu.Unlock()
			continue
		}
		locked = append(locked, hm)
		reqs = append(reqs, ports.ChangeInvisibleRequest{
			AckRequest:    ports.AckRequest{Group: group, Topic: hm.topic, MessageID: d.messageID, Handle: hm.handle},
			InvisibleTime: r.cfg.InvisibleTimeOnClear,
			Release:       true,
		})
	}
	defer func() {
		for _, hm := range locked {
			hm.mu.Unlock()
		}
	}()
	if len(reqs) == 0 {
		return
	}
	_, errs := r.broker.ChangeInvisibleBatch(ctx, reqs)
	for i, err := range errs {
		if err != nil && !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
			r.log.LogAttrs(ctx, slog.LevelWarn, "release of a departed client's message failed; it becomes visible when its invisible time ends",
				slog.String("client_id", clientID), slog.String("consumer_group", group), slog.String("msg_id", reqs[i].MessageID), slog.Any("error", err))
		}
	}
}

const (
	// renewBatch is how many renewals share one broker call (and one wait
	// for durability).
	renewBatch = 64
	// renewWorkers bounds the broker calls for renewals in progress at once.
	renewWorkers = 4
)

// renewItem is one held delivery considered for renewal.
type renewItem struct {
	k      holderKey
	d      deliveryKey
	hm     *heldMessage
	giveUp bool
}

// renewDue renews every held delivery that would become visible within
// the renew-ahead window: in batches of renewBatch, on at most renewWorkers
// goroutines, which it waits for.
func (r *Renewer) renewDue(ctx context.Context) {
	now := r.clock.Now()
	var due []renewItem
	r.mu.Lock()
	for k, deliveries := range r.held {
		for d, hm := range deliveries {
			due = append(due, renewItem{k: k, d: d, hm: hm})
		}
	}
	r.mu.Unlock()
	if len(due) == 0 {
		return
	}
	batches := make(chan []renewItem)
	var wg sync.WaitGroup
	for range min(renewWorkers, (len(due)+renewBatch-1)/renewBatch) {
		wg.Go(func() {
			for b := range batches {
				r.renewBatch(ctx, now, b)
			}
		})
	}
	for len(due) > 0 && ctx.Err() == nil {
		n := min(renewBatch, len(due))
		batches <- due[:n]
		due = due[n:]
	}
	close(batches)
	wg.Wait()
}

// renewBatch renews the due deliveries of items with one broker call,
// holding each one's lock meanwhile.
func (r *Renewer) renewBatch(ctx context.Context, now time.Time, items []renewItem) {
	var reqs []ports.ChangeInvisibleRequest
	var todo []renewItem
	for _, it := range items {
		hm := it.hm
		hm.mu.Lock()
		if hm.forgotten || hm.handle.NextVisibleTime().Sub(now) > r.cfg.RenewAhead {
			hm.mu.Unlock()
			continue
		}
		if hm.handle.Expired(now) {
			// Too late: the message is visible again, and a RocketMQ
			// broker asked to change an expired checkpoint revives the
			// old one and the new one, delivering the message twice. (The
			// broker adapter checks again when it sends the change.)
			r.renewed(ctx, it, domain.ReceiptHandle{}, errRenewedTooLate)
			hm.mu.Unlock()
			continue
		}
		req := ports.ChangeInvisibleRequest{AckRequest: ports.AckRequest{Group: it.k.group, Topic: hm.topic, MessageID: it.d.messageID, Handle: hm.handle}}
		it.giveUp = now.Sub(hm.first) >= r.cfg.RenewMaxTime
		if it.giveUp {
			// Held too long: let the message be retried after the group's
			// backoff. Left out near its end, it is retried at that end.
			req.Release = true
			req.InvisibleTime = time.Second
			if g, err := r.meta.ConsumerGroup(ctx, it.k.group); err == nil {
				req.InvisibleTime = g.RetryPolicy.Capped(r.cfg.MaxInvisibleTime).Delay(hm.attempt)
			}
		} else {
			req.InvisibleTime = renewSteps[min(hm.renewals, len(renewSteps)-1)]
			req.Renewal = true
		}
		reqs = append(reqs, req)
		todo = append(todo, it)
	}
	if len(reqs) == 0 {
		return
	}
	hs, errs := r.broker.ChangeInvisibleBatch(ctx, reqs)
	for i, it := range todo {
		r.renewed(ctx, it, hs[i], errs[i])
		it.hm.mu.Unlock()
	}
}

// errRenewedTooLate is the outcome of a renewal not sent because the
// handle had expired.
var errRenewedTooLate = domain.Wrap(domain.ReasonInvalidReceiptHandle, ports.ErrHandleExpiring, "the receipt handle expired before its renewal")

// renewed records the outcome of one renewal; the caller holds it.hm.mu.
func (r *Renewer) renewed(ctx context.Context, it renewItem, h domain.ReceiptHandle, err error) {
	k, id, hm := it.k, it.d.messageID, it.hm
	switch {
	case err == nil && !it.giveUp:
		hm.handle = h
		hm.renewals++
		hm.failures = 0
		return
	case err == nil || it.giveUp && errors.Is(err, ports.ErrHandleExpiring):
		r.log.LogAttrs(ctx, slog.LevelInfo, "message held longer than consumer.renewMaxTime; it will be retried",
			slog.String("client_id", k.clientID), slog.String("consumer_group", k.group), slog.String("msg_id", id))
	case errors.Is(err, ports.ErrHandleExpiring):
		// Not sent: the handle's invisible time had ended when the
		// renewal was due to go out (see ports.Broker).
		r.log.LogAttrs(ctx, slog.LevelWarn, "a held message's invisible time ended before its renewal could be sent (rmqproxy was too busy to renew it in time); it is delivered again",
			slog.String("client_id", k.clientID), slog.String("consumer_group", k.group), slog.String("msg_id", id))
	case domain.HasReason(err, domain.ReasonInvalidReceiptHandle):
		// Acked, expired or redelivered meanwhile: nothing left to renew.
	default:
		hm.failures++
		if hm.failures < maxRenewFailures {
			return
		}
		r.log.LogAttrs(ctx, slog.LevelWarn, "renewal of a held message failed repeatedly; it will become visible again",
			slog.String("client_id", k.clientID), slog.String("consumer_group", k.group), slog.String("msg_id", id), slog.Any("error", err))
	}
	hm.forgotten = true
	r.mu.Lock()
	if r.held[k][it.d] == hm {
		delete(r.held[k], it.d)
		if len(r.held[k]) == 0 {
			delete(r.held, k)
		}
	}
	r.mu.Unlock()
}

// run renews due deliveries every renew period until ctx ends.
func (r *Renewer) run(ctx context.Context) {
	everyPeriod(ctx, r.cfg.RenewPeriod, r.renewDue)
}

// everyPeriod calls f every period, the first time one period from now,
// until ctx ends.
func everyPeriod(ctx context.Context, period time.Duration, f func(context.Context)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}
