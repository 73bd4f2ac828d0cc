package localbroker

import (
	"context"
	"time"
)

// Long polling. A poller is one waiting read (Pop, Pull), registered with
// every queue it reads before it first looks, so that no wake-up between
// its look and its wait is lost: a wake-up leaves a token in its channel.
// Pollers wait per queue, and a consumer group's pop pollers compete for a
// message, so a queue's new messages wake every pull poller but, of each
// group, only as many pop pollers as there are new messages (as a RocketMQ
// broker wakes one waiting pop per arrival); an expiry (a message visible
// again) wakes one of that group's pop pollers of the queue, and an ack or
// a dead-letter move one of its FIFO pop pollers (a message group may be
// unblocked). Pop pollers that read any queue of the topic and those that
// read this one queue are counted apart, as a RocketMQ broker wakes one of
// each per arrival: one reading any queue may take another queue's message
// instead, and the message must not then wait out the poll time of one
// that reads only its queue (a group may mix FIFO push consumers, which
// pop each assigned queue, with simple consumers, which pop any queue).
// Nothing else of the topic is woken. A poller that leaves
// with a wake-up it did not look after (its caller gave up, or it was
// returning anyway) passes it on to another poller of its group
// (leaveLocked), so a wake-up is never lost with it.

type poller struct {
	ch    chan struct{} // capacity 1
	keys  []queueKey
	group string // "" for pull
	fifo  bool
	// anyQueue: a pop poller reading every queue of the topic (not one
	// queue it asked for).
	anyQueue bool
	// wokeFor is the queue of the last wake-up wakeLocked gave this pop
	// poller: the one its token, while pending, stands for.
	wokeFor queueKey
}

// registerLocked registers a poller with queues qids of topic; anyQueue
// says that they are all of the topic's queues, not one asked for.
func (e *Engine) registerLocked(topic string, qids []int32, group string, fifo, anyQueue bool) *poller {
	p := &poller{ch: make(chan struct{}, 1), group: group, fifo: fifo, anyQueue: anyQueue, keys: make([]queueKey, len(qids))}
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

// unregister makes *pp, if set, leave (deferred by the readers).
func (e *Engine) unregister(pp **poller) {
	if *pp == nil {
		return
	}
	e.mu.Lock()
	e.leaveLocked(*pp)
	e.mu.Unlock()
}

// leaveLocked unregisters p for good. A pop poller woken since it last
// looked passes the wake-up on to one other poller of its group that reads
// the queue it was woken for (pollers of a group may read different
// queues), else one of its other queues: the message that woke it may
// still be there.
func (e *Engine) leaveLocked(p *poller) {
	e.unregisterLocked(p)
	select {
	case <-p.ch:
	default:
		return
	}
	if p.group == "" {
		return // pull pollers are each woken
	}
	if e.wakeLocked(p.wokeFor, p.group, p.fifo, 1) > 0 {
		return
	}
	for _, k := range p.keys {
		if k != p.wokeFor && e.wakeLocked(k, p.group, p.fifo, 1) > 0 {
			return
		}
	}
}

func (p *poller) wake() {
	select {
	case p.ch <- struct{}{}:
	default:
	}
}

// wakeLocked wakes pollers of queue k for n messages that can now be
// taken, and reports how many pop pollers it woke. New messages (group
// empty) wake every pull poller and, of each consumer group, up to n of its
// pop pollers; otherwise up to n pop pollers of group are woken, only FIFO
// ones when fifoOnly. Pop pollers reading any queue and those reading only
// k get up to n each. A pop poller already woken (it will look) is passed
// over, so that each message has a poller of its own to look for it.
func (e *Engine) wakeLocked(k queueKey, group string, fifoOnly bool, n int) int {
	type groupWakes struct {
		group    string
		anyQueue bool
		n        int
	}
	var buf [4]groupWakes
	woken, total := buf[:0], 0
	for p := range e.waiters[k] {
		if p.group == "" {
			if group == "" {
				p.wake()
			}
			continue
		}
		if (group != "" && p.group != group) || (fifoOnly && !p.fifo) || len(p.ch) > 0 {
			continue
		}
		i := 0
		for i < len(woken) && (woken[i].group != p.group || woken[i].anyQueue != p.anyQueue) {
			i++
		}
		if i == len(woken) {
			woken = append(woken, groupWakes{group: p.group, anyQueue: p.anyQueue})
		}
		if woken[i].n < n {
			woken[i].n++
			total++
			p.wokeFor = k
			p.wake()
		}
	}
	return total
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
