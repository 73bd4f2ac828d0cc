package localbroker

import (
	"context"
	"time"
)

// Long polling. A poller is one waiting read (Pop, Pull), registered with
// every queue it reads before it first looks, so that no wake-up between
// its look and its wait is lost: a wake-up leaves a token in its channel.
// Pollers wait per queue: a new message wakes the pollers of its queue; an
// expiry (a message visible again) wakes that group's pop pollers of the
// queue, and an ack or a dead-letter move only its FIFO pop pollers (a
// message group may be unblocked). Nothing else of the topic is woken.

type poller struct {
	ch    chan struct{} // capacity 1
	keys  []queueKey
	group string // "" for pull
	fifo  bool
}

// registerLocked registers a poller with queues qids of topic.
func (e *Engine) registerLocked(topic string, qids []int32, group string, fifo bool) *poller {
	p := &poller{ch: make(chan struct{}, 1), group: group, fifo: fifo, keys: make([]queueKey, len(qids))}
	for i, qid := range qids {
		k := queueKey{topic, qid}
		p.keys[i] = k
		m := e.waiters[k]
		if m == nil {
			m = map[*poller]struct{}{}
			e.waiters[k] = m
		}
		m[p] = struct{}{}
	}
	return p
}

func (e *Engine) unregisterLocked(p *poller) {
	if p == nil {
		return
	}
	for _, k := range p.keys {
		if m := e.waiters[k]; m != nil {
			delete(m, p)
			if len(m) == 0 {
				delete(e.waiters, k)
			}
		}
	}
}

// unregister unregisters *pp if set (deferred by the readers).
func (e *Engine) unregister(pp **poller) {
	if *pp == nil {
		return
	}
	e.mu.Lock()
	e.unregisterLocked(*pp)
	e.mu.Unlock()
}

func (p *poller) wake() {
	select {
	case p.ch <- struct{}{}:
	default:
	}
}

// wakeLocked wakes the pollers of queue k: every one when group is empty
// (new messages), else the pop pollers of group, only the FIFO ones when
// fifoOnly.
func (e *Engine) wakeLocked(k queueKey, group string, fifoOnly bool) {
	for p := range e.waiters[k] {
		if group == "" || (p.group == group && (p.fifo || !fifoOnly)) {
			p.wake()
		}
	}
}

// wakeTopicLocked wakes every poller of a topic (it was deleted).
func (e *Engine) wakeTopicLocked(topic string) {
	for k, m := range e.waiters {
		if k.topic == topic {
			for p := range m {
				p.wake()
			}
		}
	}
}

// longPoll is the waiting half of a long-polling read (Pop, Pull): the
// poll time left and its timer, created on the first wait.
type longPoll struct {
	remaining time.Duration // 0 once the poll time ran out
	timer     *time.Timer
}

func (lp *longPoll) release() {
	if lp.timer != nil {
		lp.timer.Stop()
	}
}

// wait waits until a message may have arrived for p or the poll time ran
// out (then the caller looks once more), and reports false when the caller
// should stop looking: no poll time left, ctx done, or the engine stopping.
func (e *Engine) wait(ctx context.Context, lp *longPoll, p *poller) bool {
	if lp.remaining <= 0 || ctx.Err() != nil {
		return false
	}
	if lp.timer == nil {
		lp.timer = time.NewTimer(lp.remaining)
	}
	select {
	case <-p.ch:
		return true
	case <-lp.timer.C:
		lp.remaining = 0 // one last look, then give up
		return true
	case <-ctx.Done():
		return false
	case <-e.stop:
		return false
	}
}
