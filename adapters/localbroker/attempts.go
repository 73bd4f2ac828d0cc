package localbroker

import (
	"context"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Receive attempts of FIFO pops.
//
// A consumer whose receive failed with a timeout may have lost an answer
// the proxy did give: its messages are then in flight to nobody, and
// their message groups wait for their invisible time (a push consumer's,
// which the proxy renews while the client lives, up to
// messaging.consumer.renewMaxTime). The official clients' push consumers
// retry such a receive with the same attempt id, and a RocketMQ broker's
// orderly pop does not block a queue for the pop that holds it when the
// attempt id is the same (ConsumerOrderInfoManager.checkBlock): the retry
// gets those messages again. The local broker keeps, in memory, what each
// FIFO pop with an attempt id delivered until its invisible time ends, and
// a later FIFO pop of the same group, topic and attempt id first makes
// those of its deliveries still in flight visible again, so that it hands
// them out anew, in order, as the same delivery (their delivery attempt
// kept: a broker keeps its consumed counts for the same attempt id). What
// a restart forgets only costs the wait.

// attemptKey names the pops of one receive attempt.
type attemptKey struct{ group, topic, id string }

// attemptDelivery is one message a pop with an attempt id delivered.
type attemptDelivery struct {
	msgID   string
	handle  domain.ReceiptHandle
	attempt int32
}

// attemptPop is what the latest pop of an attempt delivered.
type attemptPop struct {
	deadline   time.Time // when its deliveries are visible again anyway
	deliveries []attemptDelivery
}

// maxAttemptPops bounds the attempts remembered. Beyond it the expired
// ones are dropped (at most once a second), and then any one, so that the
// latest pops (those a retry may follow) are remembered.
const maxAttemptPops = 1 << 13

// attemptTable is the engine's memory of receive attempts.
type attemptTable struct {
	mu    sync.Mutex
	pops  map[attemptKey]attemptPop
	swept time.Time
}

// take removes and returns what the pop of k delivered, if it is
// remembered and its invisible time has not ended.
func (t *attemptTable) take(k attemptKey, now time.Time) (attemptPop, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.pops[k]
	if ok {
		delete(t.pops, k)
	}
	return p, ok && now.Before(p.deadline)
}

// remember records what the pop of k delivered.
func (t *attemptTable) remember(k attemptKey, now time.Time, p attemptPop) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pops == nil {
		t.pops = map[attemptKey]attemptPop{}
	}
	if len(t.pops) >= maxAttemptPops && now.Sub(t.swept) >= time.Second {
		t.swept = now
		for key, old := range t.pops {
			if !now.Before(old.deadline) {
				delete(t.pops, key)
			}
		}
	}
	for key := range t.pops {
		if len(t.pops) < maxAttemptPops {
			break
		}
		delete(t.pops, key)
	}
	t.pops[k] = p
}

// retryAttemptLocked returns the changes that make visible again the
// deliveries of the earlier pop of req's attempt that are still in flight
// as that pop left them (same delivery attempt: not redelivered since; an
// invisible-time change, the proxy's renewal among them, keeps it). The
// caller holds e.mu.
func (e *Engine) retryAttemptLocked(req *ports.PopRequest, topic string, now time.Time) attemptRetry {
	if !req.FIFO || req.AttemptID == "" {
		return attemptRetry{}
	}
	p, ok := e.attempts.take(attemptKey{req.Group, topic, req.AttemptID}, now)
	if !ok {
		return attemptRetry{}
	}
	var out attemptRetry
	for _, ad := range p.deliveries {
		c := e.cons[consKey{req.Group, topic, ad.handle.QueueID}]
		if c == nil {
			continue
		}
		d := c.inflight[ad.handle.QueueOffset]
		if d == nil || !d.inFlight() || d.attempt != ad.attempt {
			continue
		}
		h := ad.handle
		h.StartOffset = d.receipt
		out.reqs = append(out.reqs, ports.ChangeInvisibleRequest{
			AckRequest: ports.AckRequest{Group: req.Group, Topic: topic, MessageID: ad.msgID, Handle: h},
		})
		out.attempts = append(out.attempts, ad.attempt)
	}
	return out
}

// attemptRetry is what retryAttemptLocked found: the changes that make the
// earlier pop's deliveries visible again, and the delivery attempt of each.
type attemptRetry struct {
	reqs     []ports.ChangeInvisibleRequest
	attempts []int32
}

// retryAttempt makes the deliveries retryAttemptLocked found visible again,
// marked to keep their delivery attempt when they are delivered next: a
// broker counts a retry with the same attempt id as the same delivery (the
// consumed counts of its orderly pop carry over for the same attempt id),
// so one at its group's last attempt is handed out again rather than moved
// to the dead-letter queue.
func (e *Engine) retryAttempt(ctx context.Context, r attemptRetry) {
	reqs := r.reqs
	if len(reqs) == 0 {
		return
	}
	_, errs := e.changeInvisibleBatch(ctx, reqs, r.attempts)
	for i, err := range errs {
		if err != nil {
			// Acked or changed meanwhile: nothing to hand out again.
			e.log.DebugContext(ctx, "a retried receive attempt could not take back an earlier delivery", "consumer_group", reqs[i].Group,
				"topic", reqs[i].Topic, "msg_id", reqs[i].MessageID, "error", err)
		}
	}
}

// rememberAttempt records what a FIFO pop with an attempt id delivered.
func (e *Engine) rememberAttempt(req *ports.PopRequest, topic string, now time.Time, msgs []domain.StoredMessage) {
	if !req.FIFO || req.AttemptID == "" || len(msgs) == 0 {
		return
	}
	p := attemptPop{deadline: now.Add(req.InvisibleTime), deliveries: make([]attemptDelivery, 0, len(msgs))}
	for i := range msgs {
		h, err := domain.ParseReceiptHandle(msgs[i].ReceiptHandle)
		if err != nil {
			continue
		}
		p.deliveries = append(p.deliveries, attemptDelivery{msgID: msgs[i].ID, handle: h, attempt: msgs[i].DeliveryAttempt})
	}
	e.attempts.remember(attemptKey{req.Group, topic, req.AttemptID}, now, p)
}
