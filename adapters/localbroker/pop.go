package localbroker

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

// The pop path reads consume-queue entries and message bytes without the
// engine lock. A pop of one queue alternates: under the lock it walks the
// consumer state and lists the offsets whose messages it has not read yet;
// without the lock it reads them into a cache; under the lock again it
// walks once more, with the current state, and when nothing is missing it
// appends the pop record. Entries and message bytes at an offset never
// change, so the cache stays valid for as long as the queue is the same
// one (a deleted and re-created topic gets new queues). Pops of one group
// on one queue are serialized by a gate so that they do not read the same
// messages twice; acks, expiries and sends go on meanwhile.

// maxPassedPerQueue bounds the passed FIFO messages (see walkPop) of one
// consumer state: each costs a delivery (~150 B, also in snapshots) and a
// pop-record entry. At the bound the cursor stops: messages after it wait,
// whatever their message group, until passed ones are delivered. 1,024 (as
// many as one pop examines) lets other groups proceed past a blocked
// group's backlog of that size, for ~150 KB per group and queue.
const maxPassedPerQueue = 1024

// popRead is what a pop learned about the message at one offset.
type popRead struct {
	ent   consumequeue.Entry
	msg   record.Message
	gone  bool // deleted by retention or damaged: consumed without delivery
	match bool // passes the pop's filter
}

// popWalk is the outcome of walking a consumer state for one pop.
type popWalk struct {
	entries []record.PopEntry
	picks   []int64 // offsets delivered, in entries order
	next    int64   // cursor after the pop
	missing []int64 // offsets whose messages must be read before deciding
	// atBound: the cursor stopped at local.maxInflightPerQueue.
	atBound bool
}

// Pop hands out visible messages; see [ports.Broker].
func (e *Engine) Pop(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
	if req.MaxMessages <= 0 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "maxMessages must be positive, got %d", req.MaxMessages)
	}
	if req.InvisibleTime < 0 {
		return nil, domain.Errorf(domain.ReasonIllegalInvisibleTime, "invisible time must not be negative, got %v", req.InvisibleTime)
	}
	if req.PollTimeout < 0 {
		return nil, domain.Errorf(domain.ReasonIllegalPollingTime, "poll timeout must not be negative, got %v", req.PollTimeout)
	}
	// req.BrokerName is not checked: a client naming another broker (its
	// route from before local.brokerName was renamed) is served from this
	// one, as the Apache proxy's local mode and cluster mode fall back to a
	// readable broker of the topic.
	if req.Filter == nil {
		req.Filter = filter.All
	}
	lp := longPoll{remaining: req.PollTimeout}
	defer lp.release()
	var p *poller
	defer e.unregister(&p)
	for {
		e.mu.Lock()
		t, err := e.openTopicLocked(ctx, req.Topic, true)
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		g, err := e.groupLocked(ctx, req.Group, true)
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		if !t.Permission.Readable() {
			e.mu.Unlock()
			return nil, domain.Errorf(domain.ReasonForbidden, "topic %q is not readable (permission %d)", t.Name, t.Permission)
		}
		if req.QueueID >= 0 {
			if err := e.checkQueueRefLocked(t, "", req.QueueID); err != nil {
				e.mu.Unlock()
				return nil, err
			}
		}
		now := e.clock.Now()
		if retry := e.retryAttemptLocked(&req, t.Name, now); len(retry.reqs) > 0 {
			e.mu.Unlock()
			e.retryAttempt(ctx, retry)
			continue
		}
		e.promoteLocked()
		e.reviveDueLocked(now)
		qids := e.popOrderLocked(t, &req)
		gates := make([]*sync.Mutex, len(qids))
		for i, qid := range qids {
			gates[i] = e.gateLocked(consKey{req.Group, t.Name, qid})
		}
		if req.PollTimeout > 0 && (p == nil || len(p.keys) != len(qids)) {
			// Registered before looking, so no wake-up is lost.
			e.unregisterLocked(p)
			p = e.registerLocked(t.Name, qids, req.Group, req.FIFO, req.QueueID < 0)
		}
		e.mu.Unlock()
		msgs, progressed, err := e.popQueues(t.Name, g.incarnation, qids, gates, &req, now)
		if err != nil || len(msgs) > 0 {
			if err == nil {
				e.rememberAttempt(&req, t.Name, now, msgs)
			}
			return msgs, err
		}
		if progressed {
			// Messages were consumed or passed without one to return: look
			// again at once, while the caller still waits (a backlog can
			// take many passes).
			if ctx.Err() != nil {
				return []domain.StoredMessage{}, nil
			}
			continue
		}
		if p == nil || !e.wait(ctx, &lp, p) {
			return []domain.StoredMessage{}, nil
		}
	}
}

// popOrderLocked lists the queues a pop looks at, in the order it does.
func (e *Engine) popOrderLocked(t *topicMeta, req *ports.PopRequest) []int32 {
	if req.QueueID >= 0 {
		return []int32{req.QueueID}
	}
	qids := make([]int32, 0, t.QueueCount)
	start := int32(e.rr % uint32(t.QueueCount))
	e.rr++
	for i := range t.QueueCount {
		qids = append(qids, (start+i)%t.QueueCount)
	}
	return qids
}

func (e *Engine) gateLocked(k consKey) *sync.Mutex {
	g := e.gates[k]
	if g == nil {
		g = &sync.Mutex{}
		e.gates[k] = g
		e.noteKeyLocked(k)
	}
	return g
}

// popQueues pops from the queues in order until the request is full. A
// queue whose gate another pop of the group holds is skipped, and looked at
// (after that pop) only when the others had nothing. progressed says that
// state changed without a message to return (filtered messages were
// consumed), or that the group is no longer incarnation inc: the caller
// looks again at once.
func (e *Engine) popQueues(topic string, inc uint64, qids []int32, gates []*sync.Mutex, req *ports.PopRequest, now time.Time) ([]domain.StoredMessage, bool, error) {
	var out []domain.StoredMessage
	progressed := false
	var skipped []int
	one := func(i int) error {
		msgs, prog, err := e.popQueue(topic, inc, qids[i], req, now, int(req.MaxMessages)-len(out))
		gates[i].Unlock()
		out = append(out, msgs...)
		progressed = progressed || prog
		return err
	}
	for i := range qids {
		if len(out) >= int(req.MaxMessages) {
			break
		}
		if !gates[i].TryLock() {
			skipped = append(skipped, i)
			continue
		}
		if err := one(i); err != nil {
			return out, progressed, err
		}
	}
	for _, i := range skipped {
		if len(out) > 0 || progressed {
			break
		}
		gates[i].Lock()
		if err := one(i); err != nil {
			return out, progressed, err
		}
	}
	return out, progressed, nil
}

// popQueue pops up to remaining messages from one queue for incarnation
// inc of the group; the caller holds the queue's gate for the group.
func (e *Engine) popQueue(topic string, inc uint64, qid int32, req *ports.PopRequest, now time.Time, remaining int) ([]domain.StoredMessage, bool, error) {
	k := consKey{req.Group, topic, qid}
	var qi *queueIndex
	cache := map[int64]*popRead{}
	ahead := max(remaining, 8)
	for {
		e.mu.Lock()
		if err := e.checkOpenLocked(); err != nil {
			e.mu.Unlock()
			return nil, false, err
		}
		cur := e.queues[queueKey{topic, qid}]
		if cur == nil {
			e.mu.Unlock()
			return nil, false, nil
		}
		if g := e.groups[req.Group]; g == nil || g.incarnation != inc {
			// Deleted (or re-created) while the messages were read: a pop
			// record now would give state to a group that no longer has
			// it. The caller looks again with the group as it is now.
			e.mu.Unlock()
			return nil, true, nil
		}
		if cur != qi {
			qi, cache = cur, map[int64]*popRead{}
		}
		c := e.cons[k]
		if c == nil {
			c = newConsState(k, &e.heap) // empty; created for real by the record
		}
		if len(c.visible) == 0 && c.next >= qi.visible {
			e.mu.Unlock()
			return nil, false, nil
		}
		w := walkPop(c, qi, req, remaining, ahead, cache, e.newRoomLocked(c))
		if len(w.missing) == 0 {
			out, err := e.commitPopLocked(k, qi, req, now, w, cache)
			held := 0
			if c := e.cons[k]; w.atBound && c != nil {
				held = len(c.inflight)
			}
			e.mu.Unlock()
			if w.atBound { // one warning a minute, naming the group that hit it
				e.warnLimited("inflight-bound",
					"a consumer group holds local.maxInflightPerQueue deliveries of a queue unacked: it gets no new messages from the queue until it acks some or their invisible times run out; make its consumers ack (or raise the setting)",
					"group", req.Group, "topic", topic, "queue", qid, "unacked", held, "max", e.cfg.MaxInflightPerQueue)
			}
			return out, err == nil && len(out) == 0 && len(w.entries) > 0, err
		}
		start := e.clog.StartOffset()
		e.mu.Unlock()
		if err := e.readForPop(topic, qi.cq, start, w.missing, req.Filter, cache); err != nil {
			if errors.Is(err, consumequeue.ErrClosed) {
				continue // the queue went away (topic deleted): look again
			}
			return nil, false, err
		}
		ahead = min(2*ahead, maxScanPerQueue)
	}
}

// readForPop reads the messages at offs into cache, without the engine lock.
func (e *Engine) readForPop(topic string, cq *consumequeue.Queue, start int64, offs []int64, f filter.Filter, cache map[int64]*popRead) error {
	if hook := e.readHook.Load(); hook != nil {
		(*hook)(topic)
	}
	reads := make([]popRead, len(offs)) // one allocation, not one per message
	var buf []byte                      // the records' bytes, decoded into copies
	room := new([consumequeue.EntrySize]byte)
	for i, off := range offs {
		ent, err := cq.GetInto(room, off)
		if err != nil {
			if errors.Is(err, consumequeue.ErrClosed) {
				return err
			}
			return e.queueReadError(err)
		}
		r := &reads[i]
		r.ent, r.gone = ent, ent.CommitLogOffset < start
		if !r.gone {
			if r.msg, r.gone, err = e.readMessageInto(&buf, topic, ent); err != nil {
				return err
			}
		}
		r.match = !r.gone && matches(f, &r.msg)
		cache[off] = r
	}
	return nil
}

// readMessage reads the message an index entry points to; it needs no
// engine lock. gone is set when its segment was deleted by retention or the
// bytes are damaged (the message cannot be delivered and is skipped).
func (e *Engine) readMessage(topic string, ent consumequeue.Entry) (m record.Message, gone bool, err error) {
	return e.readMessageInto(nil, topic, ent)
}

// readMessageInto is readMessage reading the record into *buf (kept for the
// next read; nil: a new buffer). The message does not alias it:
// record.DecodeMessage copies what it returns.
func (e *Engine) readMessageInto(buf *[]byte, topic string, ent consumequeue.Entry) (m record.Message, gone bool, err error) {
	if ent.Size == 0 {
		return m, true, nil // a placeholder of a rebuilt queue (consumequeue.Gone)
	}
	var dst []byte
	if buf != nil {
		dst = *buf
	}
	b, err := e.clog.ReadAtInto(dst, ent.CommitLogOffset, int(ent.Size))
	if buf != nil && err == nil {
		*buf = b
	}
	if errors.Is(err, commitlog.ErrGone) {
		return m, true, nil
	}
	if err != nil {
		return m, false, domain.Wrap(domain.ReasonInternal, err, "cannot read a stored message")
	}
	if commitlog.Checksum(b) != ent.CRC {
		e.log.Error("stored message is damaged (checksum mismatch); skipping it", "topic", topic, "commit_log_offset", ent.CommitLogOffset)
		return m, true, nil
	}
	m, err = record.DecodeMessage(b, topic)
	if err != nil {
		e.log.Error("stored message cannot be decoded; skipping it", "topic", topic, "commit_log_offset", ent.CommitLogOffset, "error", err)
		return m, true, nil
	}
	return m, false, nil
}

// walkPop decides what a pop of up to remaining messages does with the
// current state c (under the engine lock). Offsets whose messages are not in
// cache are listed in missing, up to ahead of them; the decision is final
// only when none is missing.
//
// Redeliveries (visible deliveries) go first, in offset order, then
// messages never delivered, from the cursor. A FIFO pop skips the message
// groups with a delivery in flight and hands out one message per group, or
// with FIFORuns a run: the visible messages of a group, then its new ones,
// in order, as long as every earlier message of the group is in this pop.
// A new message of a group that must wait is passed (recorded as a visible
// delivery never made), unless the state has maxPassedPerQueue passed
// messages: the cursor then stops before it, and what follows waits
// (head-of-line) until passed messages are delivered.
// newRoomLocked is how many new deliveries (and passed FIFO messages) the
// consumer state may take before it holds local.maxInflightPerQueue.
func (e *Engine) newRoomLocked(c *consState) int {
	if e.cfg.MaxInflightPerQueue <= 0 {
		return math.MaxInt
	}
	return e.cfg.MaxInflightPerQueue - len(c.inflight)
}

// walkPop plans a pop of up to remaining messages from c: first messages
// visible again, then new ones from the cursor on, at most room of them
// (see newRoomLocked).
func walkPop(c *consState, qi *queueIndex, req *ports.PopRequest, remaining, ahead int, cache map[int64]*popRead, room int) popWalk {
	var w popWalk
	look := func(off int64) *popRead {
		r := cache[off]
		if r == nil {
			w.missing = appendRoom(w.missing, ahead, off)
		}
		return r
	}
	full := func() bool { return len(w.picks) >= remaining || len(w.missing) >= ahead }
	cands := c.visible
	var handled map[string]int // FIFO: visible offsets of each group this pop dealt with
	var taken map[string]int   // FIFO: messages of each group this pop delivers
	perGroup := remaining
	if req.FIFO {
		if !req.FIFORuns {
			perGroup = 1
		}
		cands = c.fifoCandidates(remaining+ahead, perGroup)
		handled, taken = map[string]int{}, map[string]int{}
	}
	unpassed := 0 // passed messages this pop delivers or consumes
	for _, off := range cands {
		if full() {
			break
		}
		r := look(off)
		if r == nil {
			continue
		}
		d := c.inflight[off]
		if handled != nil && d.msgGroup != "" {
			handled[d.msgGroup]++
		}
		if d.attempt == 0 {
			unpassed++
		}
		if r.gone || !r.match {
			w.entries = appendRoom(w.entries, remaining, record.PopEntry{Kind: record.PopConsumed, Offset: off})
			continue
		}
		attempt := nextAttempt(d.attempt, r.msg.PriorAttempts)
		if d.keepAttempt && d.attempt > 0 {
			attempt = d.attempt // a FIFO receive retried with its attempt id (see attempts.go)
		}
		w.entries = appendRoom(w.entries, remaining, record.PopEntry{Kind: record.PopDelivered, Offset: off, Attempt: attempt, MsgGroup: r.msg.Group})
		w.picks = appendRoom(w.picks, remaining, off)
		if taken != nil {
			taken[r.msg.Group]++
		}
	}
	var waiting map[string]bool // FIFO: groups whose new messages this pop passes
	// FIFO: new messages this pop may pass, and passes. Near the bound it
	// reads no further ahead than it may go: the message at which the
	// cursor stops is read (it may be deliverable), those after it are not.
	canPass, passed := maxPassedPerQueue-c.passed+unpassed, 0
	unread := 0 // new messages listed as missing
	next := c.next
	added := 0 // new entries of c.inflight: deliveries and passed messages
	for scanned := 0; next < qi.visible && scanned < maxScanPerQueue && !full(); scanned++ {
		if added >= room {
			w.atBound = true
			break
		}
		off := next
		next++
		r := look(off)
		if r == nil {
			if unread++; req.FIFO && unread > canPass-passed {
				break
			}
			continue
		}
		if r.gone || !r.match {
			w.entries = appendRoom(w.entries, remaining, record.PopEntry{Kind: record.PopConsumed, Offset: off})
			continue
		}
		if g := r.msg.Group; req.FIFO && g != "" {
			if waiting[g] || c.busy[g] > 0 || handled[g] < len(c.grouped[g]) || taken[g] >= perGroup {
				if passed >= canPass {
					next = off // the bound: the cursor stops here
					break
				}
				passed++
				added++
				if waiting == nil {
					waiting = map[string]bool{}
				}
				waiting[g] = true
				w.entries = appendRoom(w.entries, remaining, record.PopEntry{Kind: record.PopPassed, Offset: off, MsgGroup: g})
				continue
			}
		}
		w.entries = appendRoom(w.entries, remaining, record.PopEntry{Kind: record.PopDelivered, Offset: off, Attempt: nextAttempt(0, r.msg.PriorAttempts), MsgGroup: r.msg.Group})
		w.picks = appendRoom(w.picks, remaining, off)
		added++
		if taken != nil {
			taken[r.msg.Group]++
		}
	}
	w.next = next
	return w
}

// appendRoom appends v to s, making s with room for n elements (at most
// maxWalkRoom) first if it has none: a walk's lists take one allocation
// each rather than one per doubling.
func appendRoom[T any](s []T, n int, v T) []T {
	if s == nil {
		s = make([]T, 0, min(max(n, 1), maxWalkRoom))
	}
	return append(s, v)
}

// maxWalkRoom bounds the room appendRoom makes.
const maxWalkRoom = 64

// nextAttempt is the delivery attempt after attempt (0: not delivered to
// the group yet) of a message. A first delivery counts on from the
// deliveries the message had before it was stored here (prior, a
// dead-letter copy's: see [record.Message]), as a RocketMQ broker's
// reconsume times do; the count stays at its maximum rather than overflow.
func nextAttempt(attempt, prior int32) int32 {
	if attempt == 0 {
		attempt = prior
	}
	if attempt == math.MaxInt32 {
		return attempt
	}
	return attempt + 1
}

// fifoCandidates returns, in offset order, up to limit visible offsets a
// FIFO pop may deliver: the first perGroup of each message group with
// nothing in flight, and those without a group.
func (c *consState) fifoCandidates(limit, perGroup int) []int64 {
	out := make([]int64, 0, min(limit, len(c.visible)))
	for g, offs := range c.grouped {
		if c.busy[g] == 0 {
			out = append(out, offs[:min(limit, perGroup, len(offs))]...)
		}
	}
	out = append(out, c.free[:min(limit, len(c.free))]...)
	slices.Sort(out)
	return out[:min(limit, len(out))]
}

// commitPopLocked appends the pop record of a complete walk and builds the
// messages it hands out.
func (e *Engine) commitPopLocked(k consKey, qi *queueIndex, req *ports.PopRequest, now time.Time, w popWalk, cache map[int64]*popRead) ([]domain.StoredMessage, error) {
	if len(w.entries) == 0 {
		return nil, nil
	}
	receipt, err := e.nextIDLocked()
	if err != nil {
		return nil, err
	}
	inv := req.InvisibleTime.Milliseconds()
	rec := record.Pop{Group: k.group, Topic: k.topic, QueueID: k.qid, Receipt: receipt, PopTime: time.UnixMilli(now.UnixMilli()),
		Deadline: time.UnixMilli(now.UnixMilli() + inv), Next: w.next, Entries: w.entries, Orderly: req.FIFO && req.FIFORuns}
	if _, _, err := e.appendApplyLocked(record.TypePop, func(dst []byte) []byte { return record.AppendPop(dst, &rec) }, false); err != nil {
		return nil, err
	}
	if len(w.picks) == 0 {
		return nil, nil
	}
	e.kickReviver()
	c := e.cons[k]
	out := make([]domain.StoredMessage, 0, len(w.picks))
	for _, off := range w.picks {
		r := cache[off]
		h := domain.ReceiptHandle{StartOffset: receipt, RetrieveTime: now.UnixMilli(), InvisibleTime: inv,
			BrokerName: e.cfg.BrokerName, QueueID: k.qid, QueueOffset: off, CommitLogOffset: r.ent.CommitLogOffset}
		sm := e.storedMessage(k.topic, k.qid, off, r.ent, &r.msg, c.inflight[off].attempt)
		sm.ReceiptHandle = h.String()
		out = append(out, sm)
	}
	return out, nil
}
