package localbroker

import (
	"container/heap"
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/timerindex"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

var _ ports.Recaller = (*Engine)(nil)

// Delay (timer) messages.
//
// A delay message is stored in a deferred batch record (queue offset -1)
// and added to the on-disk timing wheel (internal/timerindex): one file per
// timerBucketWidth of delivery time. Only the buckets of the near future
// (up to timerLookahead ahead, bounded by timerLoadLimit when many are
// overdue) are loaded into memory, as a min-heap by delivery time. The
// timer goroutine sleeps until the earliest loaded delivery time or the
// next bucket to load, and fires due timers: each firing appends one
// resolve record holding a copy of the message for its queue, so the
// origin is marked resolved and the copy indexed atomically; a timer thus
// never fires twice, across crashes too.
const (
	// timerBucketWidth is the span of delivery times one bucket file holds.
	timerBucketWidth = time.Minute
	// timerTick is the timer precision: a delivery time at most this far
	// ahead counts as due (the message is stored as a normal message).
	timerTick = 10 * time.Millisecond
	// timerLookahead is how long before a bucket starts it is loaded.
	timerLookahead = 5 * time.Second
	// timerLoadLimit bounds the timers loaded in memory before further
	// buckets (overdue after a long downtime) are loaded; one bucket is
	// always loaded whole.
	timerLoadLimit = 1 << 17
	// timerFireBatch bounds the timers fired under one hold of the lock.
	timerFireBatch = 1024
	// timerRetryMin and timerRetryMax bound the wait before a due timer
	// that could not be fired (its message could not be read, or its copy
	// not appended) is tried again; the wait doubles with each failure.
	// Later timers fire meanwhile.
	timerRetryMin = time.Second
	timerRetryMax = time.Minute
)

// liveTimer is a pending timer of a loaded bucket.
type liveTimer struct {
	deliverAt int64 // Unix ms
	topic     string
	qid       int32
	size      int32
	crc       uint32
	// retryAt (Unix ms) is when a timer whose firing failed is tried again
	// (0: it never failed); its heap item is at retryAt, not deliverAt.
	retryAt  int64
	failures int32
}

// heapAt is the time of the timer's current heap item.
func (t *liveTimer) heapAt() int64 {
	if t.retryAt != 0 {
		return t.retryAt
	}
	return t.deliverAt
}

type timerItem struct{ at, origin int64 }

type timerHeap []timerItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].origin < h[j].origin)
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// timerWindow is the in-memory part of the timing wheel. Every bucket that
// starts before loadedEnd is loaded: its pending timers are in live and
// heap (heap entries of resolved timers are skipped lazily).
type timerWindow struct {
	loadedEnd int64
	live      map[int64]*liveTimer // by origin
	heap      timerHeap
	topics    map[string]string // interned topic names
	// waitLog is set when a due timer waits for its record to be stored.
	waitLog bool
	// pre holds messages of due timers read before the timer goroutine
	// took the lock for a pass (nil outside such a pass: then a pass reads
	// what it fires under the lock, as tests and recovery may).
	pre map[int64]*deferredRead
	// preload holds the buckets a pass may load, read before the timer
	// goroutine took the lock for it (nil outside such a pass).
	preload map[*timerindex.Bucket]*bucketRead
}

// bucketRead is a timer bucket's entries read without the engine lock, and
// the bucket's length they reach (entries appended later are read from
// there, mostly from memory).
type bucketRead struct {
	entries []timerindex.Entry
	length  int64
	err     error
}

func newTimerWindow() timerWindow {
	return timerWindow{loadedEnd: -1, live: map[int64]*liveTimer{}, topics: map[string]string{}}
}

func (w *timerWindow) add(e *timerindex.Entry) {
	t, ok := w.topics[e.Topic]
	if !ok {
		t = e.Topic
		w.topics[t] = t
	}
	w.live[e.Origin] = &liveTimer{deliverAt: e.DeliverAt, topic: t, qid: e.QueueID, size: e.Size, crc: e.CRC}
	heap.Push(&w.heap, timerItem{at: e.DeliverAt, origin: e.Origin})
}

// deferBatchLocked registers the messages of a deferred batch (offset, and
// p its payload): half messages as pending transactions, the others as
// timers (a message without a delivery time in a deferred batch is due when
// it was stored).
func (e *Engine) deferBatchLocked(off int64, b *record.Batch, p []byte, locs []record.Location) {
	for i, loc := range locs {
		m := &b.Messages[i]
		origin := off + commitlog.PayloadStart + int64(loc.Pos)
		crc := commitlog.Checksum(p[loc.Pos : loc.Pos+loc.Size])
		if m.Transactional {
			e.addTxnLocked(origin, &txnState{topic: b.Topic, qid: b.QueueID, size: int32(loc.Size), crc: crc, msgID: m.ID,
				storedAt: m.StoredAt.UnixMilli(), recovery: max(m.TransactionRecovery.Milliseconds(), 0)})
			continue
		}
		e.addTimerLocked(timerindex.Entry{DeliverAt: timerAt(m), Origin: origin, Size: int32(loc.Size), CRC: crc,
			QueueID: b.QueueID, Topic: b.Topic})
	}
}

// timerAt is the delivery time (Unix ms) of the timer of a delay message m
// of a deferred batch.
func timerAt(m *record.Message) int64 {
	if m.DeliverAt.IsZero() {
		return m.StoredAt.UnixMilli()
	}
	return m.DeliverAt.UnixMilli()
}

func (e *Engine) addTimerLocked(ent timerindex.Entry) {
	b, created := e.timers.Add(ent)
	switch {
	case b.Start() < e.tw.loadedEnd:
		e.tw.add(&ent)
		kick(e.timerKick)
	case created:
		// The timer goroutine may sleep until a later bucket: let it plan
		// again with this one.
		kick(e.timerKick)
	}
}

func (e *Engine) timerDoneLocked(deliverAt, origin int64) {
	e.timers.Done(deliverAt, origin)
	delete(e.tw.live, origin)
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// loadTimersLocked loads the buckets that start before the lookahead
// horizon into the window.
func (e *Engine) loadTimersLocked(nowMs int64) (blocked bool) {
	width := e.timers.Width()
	horizon := e.timers.BucketStart(nowMs+e.timerLookahead.Milliseconds()) + width
	for {
		b, ok := e.timers.Next(max(e.tw.loadedEnd, 0))
		if !ok || b.Start() >= horizon {
			e.tw.loadedEnd = max(e.tw.loadedEnd, horizon)
			return false
		}
		if len(e.tw.live) >= timerLoadLimit {
			e.tw.loadedEnd = max(e.tw.loadedEnd, b.Start())
			return true
		}
		e.loadBucketLocked(b)
		e.tw.loadedEnd = b.Start() + width
	}
}

// bucketsToLoadLocked lists the buckets loadTimersLocked would load at
// nowMs, as far as the window's limit allows by their pending counts.
func (e *Engine) bucketsToLoadLocked(nowMs int64) []*timerindex.Bucket {
	width := e.timers.Width()
	horizon := e.timers.BucketStart(nowMs+e.timerLookahead.Milliseconds()) + width
	live := int64(len(e.tw.live))
	var out []*timerindex.Bucket
	for from := max(e.tw.loadedEnd, 0); live < timerLoadLimit; {
		b, ok := e.timers.Next(from)
		if !ok || b.Start() >= horizon {
			break
		}
		out = append(out, b)
		live += b.Pending()
		from = b.Start() + width
	}
	return out
}

// readBucket reads a bucket's entries from byte from on; it needs no
// engine lock.
func (e *Engine) readBucket(b *timerindex.Bucket, from int64) ([]timerindex.Entry, int64, error) {
	es, n, err := b.EntriesFrom(from)
	if hook := e.bucketHook.Load(); hook != nil {
		(*hook)(from)
	}
	return es, n, err
}

// loadBucketLocked adds a bucket's pending timers to the window: from the
// read that preceded the pass, plus what was appended since (in memory
// unless flushed meanwhile), or, outside a pass, read now.
func (e *Engine) loadBucketLocked(b *timerindex.Bucket) {
	started := time.Now()
	if e.recallIdx != nil && e.recallIdx.bucket == b {
		e.recallIdx = nil // recalls find its timers in the window now
	}
	var entries []timerindex.Entry
	var err error
	if r := e.tw.preload[b]; r != nil && r.err == nil {
		var more []timerindex.Entry
		more, _, err = e.readBucket(b, r.length)
		entries = append(r.entries, more...)
	} else {
		entries, _, err = e.readBucket(b, 0)
	}
	if err != nil {
		// Recovery checked the bucket: it was damaged since. The timers
		// after the damage are intact in the commit log, and a restart
		// rebuilds the bucket from it (timers fired meanwhile have their
		// resolve records: they do not fire again).
		e.timerBucketDamaged(b, err)
	}
	pending := timerindex.Pending(entries)
	for i := range pending {
		e.tw.add(&pending[i])
	}
	e.log.Debug("timer bucket loaded", "path", b.Path(), "pending", len(pending), "entries", len(entries), "took", time.Since(started))
}

// timerPassLocked loads buckets that came near, fires up to timerFireBatch
// due timers, and returns when it wants to run again.
func (e *Engine) timerPassLocked(now time.Time) time.Time {
	nowMs := now.UnixMilli()
	blocked := e.loadTimersLocked(nowMs)
	for fired := 0; len(e.tw.heap) > 0 && e.tw.heap[0].at <= nowMs; {
		if fired >= timerFireBatch {
			return now // more are due: run again at once (after others had the lock)
		}
		it := heap.Pop(&e.tw.heap).(timerItem)
		lt := e.tw.live[it.origin]
		if lt == nil || lt.heapAt() != it.at {
			continue
		}
		fired++ // a failed firing counts too: it cost a read or an append
		if err := e.fireLocked(it.origin, lt, now); err != nil {
			if e.stalledLocked(err) {
				// Every firing would fail the same way (disk full, too
				// many bytes waiting, log failed or closed): try again
				// in a second, in delivery-time order.
				heap.Push(&e.tw.heap, it)
				e.warnLimited("timer-fire", "cannot deliver due delay messages; will retry", "topic", lt.topic, "error", err)
				return now.Add(time.Second)
			}
			if errors.Is(err, errNotPreRead) || errors.Is(err, errNotStored) || errors.As(err, new(*notDueError)) {
				heap.Push(&e.tw.heap, it)
			}
			if errors.Is(err, errNotPreRead) {
				return now // read it without the lock first: run again at once
			}
			var early *notDueError
			if errors.As(err, &early) {
				return early.at // due within this millisecond
			}
			if errors.Is(err, errNotStored) {
				e.tw.waitLog = true // the notifier kicks the timer loop when the log advances
				return now.Add(time.Hour)
			}
			// This timer's own trouble (its message cannot be read, its
			// copy cannot be appended): keep it, try it again later, and
			// fire the timers after it meanwhile.
			e.retryTimerLocked(it.origin, lt, nowMs, err)
		}
	}
	wake := now.Add(time.Hour)
	if len(e.tw.heap) > 0 {
		wake = time.UnixMilli(e.tw.heap[0].at)
	}
	if b, ok := e.timers.Next(max(e.tw.loadedEnd, 0)); ok && !blocked {
		if at := time.UnixMilli(b.Start()).Add(-e.timerLookahead); at.Before(wake) {
			wake = at
		}
	}
	return wake
}

// stalledLocked reports whether a firing failed for a reason every other
// firing would share (the engine or the log refuses appends for now).
func (e *Engine) stalledLocked(err error) bool {
	if e.failed != nil {
		return true
	}
	for _, target := range []error{commitlog.ErrBusy, commitlog.ErrDiskFull, commitlog.ErrFailed, commitlog.ErrClosed} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// retryTimerLocked schedules another try of a due timer whose firing failed
// with err, after a wait that doubles with each failure (timerRetryMin to
// timerRetryMax), and logs the failure (at most once a minute).
func (e *Engine) retryTimerLocked(origin int64, lt *liveTimer, nowMs int64, err error) {
	lt.failures++
	wait := retryWait(lt.failures)
	lt.retryAt = nowMs + wait.Milliseconds()
	heap.Push(&e.tw.heap, timerItem{at: lt.retryAt, origin: origin})
	args := []any{"topic", lt.topic, "queue_id", lt.qid, "commit_log_offset", origin, "attempts", lt.failures, "retry_in", wait, "error", err}
	var re *deferredReadError
	if errors.As(err, &re) {
		e.errorLimited("timer-read", "cannot read a due delay message; it is kept and read again later, and later delay messages are delivered meanwhile. "+
			"A transient I/O error clears by itself; if it lasts, check the disk holding the file (kernel log, SMART) and, if the file is damaged, "+
			"stop rmqproxy and restore it from a backup",
			append(args, "file", re.path)...)
		return
	}
	e.errorLimited("timer-fire-one", "cannot deliver a due delay message; it is kept and tried again later, and later delay messages are delivered meanwhile "+
		"(a record too large for local.maxRecordSize needs that setting raised back)", args...)
}

// retryWait is the wait before another try of a deferred (delay or half)
// message that failed n times (n >= 1): timerRetryMin doubling with each
// failure up to timerRetryMax.
func retryWait(n int32) time.Duration {
	if n > 6 {
		return timerRetryMax
	}
	return min(timerRetryMin<<(n-1), timerRetryMax)
}

// deferredReadError says a deferred (delay or half) message could not be
// read (or failed its checksum) from the segment file path; the message is
// kept and read again later.
type deferredReadError struct {
	path string
	err  error
}

func (e *deferredReadError) Error() string {
	return "read the message from " + e.path + ": " + e.err.Error()
}
func (e *deferredReadError) Unwrap() error { return e.err }

// unreadable wraps the error of a failed read of the deferred message at
// origin in a deferredReadError naming its segment file.
func (e *Engine) unreadable(origin int64, err error) error {
	return &deferredReadError{path: e.clog.SegmentPath(origin), err: err}
}

// fireLocked delivers one due timer: a resolve record with a copy of the
// message for its queue (or, when the message cannot be delivered, a drop).
func (e *Engine) fireLocked(origin int64, lt *liveTimer, now time.Time) error {
	drop := func(level func(string, ...any), why string, args ...any) error {
		level("delay message discarded: "+why, append([]any{"topic", lt.topic, "queue_id", lt.qid, "commit_log_offset", origin}, args...)...)
		rec := record.Resolve{Kind: record.ResolveTimerDrop, Origin: origin, DeliverAt: lt.deliverAt}
		_, _, err := e.appendApplyLocked(record.TypeResolve, func(dst []byte) []byte {
			p, _ := record.AppendResolve(dst, &rec)
			return p
		}, false)
		if h := e.hooks.TimerDone; h != nil && err == nil {
			h(lt.topic)
		}
		return err
	}
	// A deleted topic may have had many pending (a whole day's schedule,
	// perhaps due at once): their discards are logged at most once a
	// minute, with how many were not.
	warnDeleted := func(msg string, args ...any) { e.warnLimited("timer-drop-deleted", msg, args...) }
	t, ok := e.topics[lt.topic]
	if del, deleted := e.topicDeletedAt[lt.topic]; !ok || (deleted && origin < del) {
		return drop(warnDeleted, "its topic was deleted")
	}
	if lt.qid >= t.QueueCount {
		return drop(warnDeleted, "its queue no longer exists")
	}
	m, err := e.passReadLocked(e.tw.pre, origin, lt.size, lt.crc, lt.topic)
	if errors.Is(err, errNotStored) || errors.Is(err, errNotPreRead) {
		return err
	}
	if errors.Is(err, commitlog.ErrGone) {
		// Really gone: retention removed its segment (a pending timer
		// pins its segment, so only an older version or a manual removal
		// gets here). Retrying cannot bring it back.
		return drop(e.log.Error, "its commit-log segment was removed", "error", err)
	}
	if err != nil {
		// Possibly transient (EIO, a bad read): keep it, retry later.
		return e.unreadable(origin, err)
	}
	if now.Before(m.DeliverAt) {
		// Timers hold delivery times in milliseconds; the message has the
		// exact time, and it is never delivered before it.
		return &notDueError{at: m.DeliverAt}
	}
	qi := e.queueLocked(lt.topic, lt.qid)
	m.StoredAt = now
	rec := record.Resolve{Kind: record.ResolveTimerFire, Origin: origin, DeliverAt: lt.deliverAt,
		Copy: &record.Batch{Topic: lt.topic, QueueID: lt.qid, QueueOffset: qi.count, Messages: []record.Message{m}}}
	_, _, err = e.appendApplyLocked(record.TypeResolve, func(dst []byte) []byte {
		p, _ := record.AppendResolve(dst, &rec)
		return p
	}, true)
	if h := e.hooks.TimerDone; h != nil && err == nil {
		h(lt.topic)
	}
	return err
}

// notDueError says a timer's millisecond has come but not its exact time.
type notDueError struct{ at time.Time }

func (e *notDueError) Error() string { return "the delay message is due at " + e.at.String() }

// passReadLocked returns a deferred (delay or half) message for a timer or
// transaction pass: the one read before the pass took the engine lock
// (pre), errNotPreRead when that read did not cover it (it came due, or
// was stored, after it: the pass ends and the next one reads it first, so
// that no disk read happens under the lock), errNotStored when it is still
// not stored. Outside such a pass (pre nil) it reads the message now.
func (e *Engine) passReadLocked(pre map[int64]*deferredRead, origin int64, size int32, crc uint32, topic string) (record.Message, error) {
	r := pre[origin]
	switch {
	case r != nil && !errors.Is(r.err, errNotStored):
		return r.m, r.err
	case pre == nil:
		return e.readDeferredLocked(origin, size, crc, topic)
	case r == nil || origin+int64(size) <= e.clog.VisibleOffset():
		return record.Message{}, errNotPreRead
	default:
		return record.Message{}, errNotStored
	}
}

// preRead reads, without the engine lock, the deferred messages a pass is
// about to need; the map is never nil (see passReadLocked).
func (e *Engine) preRead(due []deferredRef) map[int64]*deferredRead {
	pre := make(map[int64]*deferredRead, len(due))
	for _, d := range due {
		m, err := e.readDeferred(d.origin, d.size, d.crc, d.topic)
		pre[d.origin] = &deferredRead{m: m, err: err}
	}
	return pre
}

// errNotPreRead says a due timer's or transaction's message was not read
// before its pass took the engine lock (see passReadLocked).
var errNotPreRead = errors.New("the message of the timer was not read before the pass")

// errNotStored says a deferred message's record is appended but not yet
// stored per the flush policy (a timer due within one group commit of its
// send): it is delivered once the log advances.
var errNotStored = errors.New("the record of the message is not stored yet")

// readDeferredLocked reads a deferred (delay or half) message at origin
// under the engine lock.
func (e *Engine) readDeferredLocked(origin int64, size int32, crc uint32, topic string) (record.Message, error) {
	return e.readDeferred(origin, size, crc, topic)
}

// readDeferred reads a deferred message; it needs no engine lock.
func (e *Engine) readDeferred(origin int64, size int32, crc uint32, topic string) (record.Message, error) {
	if hook := e.readHook.Load(); hook != nil {
		(*hook)(topic)
	}
	if origin+int64(size) > e.clog.VisibleOffset() {
		return record.Message{}, errNotStored
	}
	if fault := e.readFault.Load(); fault != nil {
		if err := (*fault)(origin); err != nil {
			return record.Message{}, err
		}
	}
	b, err := e.clog.ReadAt(origin, int(size))
	if err != nil {
		return record.Message{}, err
	}
	if commitlog.Checksum(b) != crc {
		return record.Message{}, errors.New("checksum mismatch")
	}
	return record.DecodeMessage(b, topic)
}

// timerLoop runs timer passes. Before a pass it reads, without the engine
// lock, the messages of the timers that are due and the bucket files the
// pass will load, so that firing and loading read nothing under the lock
// (a timer that came due meanwhile ends the pass: the next one reads it
// first; entries appended to a bucket since its read are read from memory,
// or from the file if it was flushed meanwhile).
func (e *Engine) timerLoop() {
	defer e.wg.Done()
	e.runLoop(e.timerKick, func() time.Duration {
		e.mu.Lock()
		if e.state != stateOpen {
			e.mu.Unlock()
			return time.Hour
		}
		nowMs := e.clock.Now().UnixMilli()
		due := e.dueTimersLocked(nowMs, timerFireBatch)
		loads := e.bucketsToLoadLocked(nowMs)
		e.mu.Unlock()
		pre := e.preRead(due)
		preload := make(map[*timerindex.Bucket]*bucketRead, len(loads))
		for _, b := range loads {
			es, n, err := e.readBucket(b, 0)
			preload[b] = &bucketRead{entries: es, length: n, err: err}
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.state != stateOpen {
			return time.Hour
		}
		e.tw.pre, e.tw.preload = pre, preload
		defer func() { e.tw.pre, e.tw.preload = nil, nil }()
		now := e.clock.Now()
		return e.timerPassLocked(now).Sub(now)
	})
}

// deferredRef locates a deferred (delay or half) message, copied under the
// lock for a read without it.
type deferredRef struct {
	origin int64
	size   int32
	crc    uint32
	topic  string
}

// dueTimersLocked lists up to limit loaded timers due at nowMs, the first
// ones a pass pops (the heap's order), so that a pass finds what it fires
// first among them.
func (e *Engine) dueTimersLocked(nowMs int64, limit int) []deferredRef {
	h := e.tw.heap
	var out []deferredRef
	walkHeapInOrder(len(h), h.Less, func(i int) bool {
		it := h[i]
		if it.at > nowMs || len(out) >= limit {
			return false
		}
		if lt := e.tw.live[it.origin]; lt != nil && lt.heapAt() == it.at {
			out = append(out, deferredRef{origin: it.origin, size: lt.size, crc: lt.crc, topic: lt.topic})
		}
		return true
	})
	return out
}

// runLoop calls pass until the engine stops, waiting the duration pass
// returns (or less, when kicked).
func (e *Engine) runLoop(kickCh chan struct{}, pass func() time.Duration) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := pass()
		if wait <= 0 {
			select {
			case <-e.stop:
				return
			default:
				continue
			}
		}
		timer.Reset(wait)
		select {
		case <-e.stop:
			return
		case <-kickCh:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// Recall handles are the base64 (URL alphabet) of "v1 topic brokerName
// deliveryTimeMs messageId origin", upstream's layout plus the commit-log
// offset of the stored message, which finds it in the timing wheel.
const recallHandleVersion = "v1"

func encodeRecallHandle(topic, broker string, deliverAt int64, msgID string, origin int64) string {
	s := strings.Join([]string{recallHandleVersion, topic, broker, strconv.FormatInt(deliverAt, 10), msgID, strconv.FormatInt(origin, 10)}, " ")
	return base64.URLEncoding.EncodeToString([]byte(s))
}

type recallHandle struct {
	topic, broker, msgID string
	deliverAt, origin    int64
}

// decodeRecallHandle parses a recall handle; every failure is a
// ReasonBadRequest error, never a panic.
func decodeRecallHandle(h string) (recallHandle, error) {
	bad := func(why string) (recallHandle, error) {
		return recallHandle{}, domain.Errorf(domain.ReasonBadRequest, "recall handle is malformed (%s); pass the recall handle of the send receipt unchanged", why)
	}
	if len(h) > 2048 {
		return bad("too long")
	}
	raw, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(h); err != nil {
			return bad("not base64")
		}
	}
	f := strings.Split(string(raw), " ")
	if len(f) != 6 || f[0] != recallHandleVersion {
		return bad("unknown layout")
	}
	at, err1 := strconv.ParseInt(f[3], 10, 64)
	origin, err2 := strconv.ParseInt(f[5], 10, 64)
	if err1 != nil || err2 != nil || origin <= 0 || f[1] == "" || f[2] == "" {
		return bad("bad field")
	}
	return recallHandle{topic: f[1], broker: f[2], deliverAt: at, msgID: f[4], origin: origin}, nil
}

// Recall cancels a delay message that has not been delivered; see
// [ports.Recaller].
func (e *Engine) Recall(ctx context.Context, topic, handle string) (string, error) {
	h, err := decodeRecallHandle(handle)
	if err != nil {
		return "", err
	}
	if h.topic != topic {
		return "", domain.Errorf(domain.ReasonBadRequest, "the recall handle belongs to topic %q, not %q", h.topic, topic)
	}
	// The handle's broker name is not checked: local mode has one broker,
	// and local.brokerName is only the name it shows, which an operator
	// may rename while delay messages sent under the old name are pending.
	//
	// Once its delivery time has passed a message is delivered, whether or
	// not its timer fired yet (as upstream, which refuses such a recall).
	passed := func(at int64) bool { return at <= e.clock.Now().UnixMilli() }
	tooLate := func() (string, error) {
		return "", domain.Errorf(domain.ReasonNotFound, "delay message %q of topic %q cannot be recalled: its delivery time has passed", h.msgID, topic)
	}
	// The timer is found by its origin and checked against the handle's
	// topic, delivery time and message id. A handle naming no pending
	// message before its delivery time (recalled already: a client
	// retrying a recall whose answer it lost; or never held) is answered
	// with its message id, as a RocketMQ broker answers every recall
	// before the delivery time: RecallMessageProcessor stores a delete
	// marker per recall without looking for the message, so it cannot
	// tell a second recall from the first. Nothing is delivered for it
	// either way.
	notPending := func() (string, error) {
		if passed(h.deliverAt) { // the timer fired meanwhile
			return tooLate()
		}
		e.log.DebugContext(ctx, "recall of a delay message not pending (recalled already, or not held)", "topic", topic, "msg_id", h.msgID)
		return h.msgID, nil
	}
	if passed(h.deliverAt) {
		return tooLate()
	}
	e.recallMu.Lock()
	defer e.recallMu.Unlock()
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return "", err
	}
	lt, pending, b := e.windowTimerLocked(h.deliverAt, h.origin)
	e.mu.Unlock()
	// The bucket (when not loaded) and the message are read without the
	// engine lock; meanwhile the timer may be loaded and fire.
	if b != nil {
		var err error
		if lt, pending, err = e.bucketTimer(b, h.deliverAt, h.origin); err != nil {
			return "", err
		}
	}
	if !pending || lt.topic != topic {
		return notPending()
	}
	m, err := e.readDeferred(h.origin, lt.size, lt.crc, topic)
	switch {
	case errors.Is(err, errNotStored):
		return "", domain.Wrap(domain.ReasonUnavailable, err, "the delay message is not stored yet; retry the recall")
	case err != nil:
		// The handle's message id cannot be checked against the pending
		// message (a bad read, EIO): answering OK would leave it pending.
		return "", domain.Wrap(domain.ReasonUnavailable, e.unreadable(h.origin, err), "the delay message cannot be read now; it is kept: retry the recall")
	case m.ID != h.msgID:
		return notPending()
	}
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return "", err
	}
	// Still pending? A loaded timer is while it is in the window; one whose
	// bucket is still not loaded cannot have fired, and only a recall could
	// have resolved it (recalls are serialized by recallMu).
	if _, pending, b := e.windowTimerLocked(h.deliverAt, h.origin); !pending && b == nil {
		e.mu.Unlock()
		return notPending()
	}
	if passed(lt.deliverAt) {
		e.mu.Unlock()
		return tooLate()
	}
	rec := record.Resolve{Kind: record.ResolveTimerRecall, Origin: h.origin, DeliverAt: lt.deliverAt}
	_, end, err := e.appendApplyLocked(record.TypeResolve, func(dst []byte) []byte {
		p, _ := record.AppendResolve(dst, &rec)
		return p
	}, true)
	e.mu.Unlock()
	if err != nil {
		return "", err
	}
	if err := e.waitDurable(ctx, end, "the recall"); err != nil {
		return "", err
	}
	e.log.InfoContext(ctx, "delay message recalled", "topic", topic, "msg_id", m.ID)
	return m.ID, nil
}

// windowTimerLocked finds a pending timer in the window when its bucket is
// loaded; else it returns the bucket to look in (nil: there is none, the
// timer is not pending).
func (e *Engine) windowTimerLocked(deliverAt, origin int64) (t liveTimer, pending bool, b *timerindex.Bucket) {
	start := e.timers.BucketStart(deliverAt)
	if start >= e.tw.loadedEnd {
		return liveTimer{}, false, e.timers.Bucket(start)
	}
	if lt := e.tw.live[origin]; lt != nil && lt.deliverAt == deliverAt {
		return *lt, true, nil
	}
	return liveTimer{}, false, nil
}

// bucketTimer finds a pending timer by reading its bucket file; it needs
// no engine lock, and the caller holds recallMu. The pending timers read
// are kept (recallIndex) while the bucket is not loaded, so that the next
// recall in it reads only the entries appended since: a mass recall of
// the messages due in one minute reads their bucket once, not once per
// recall.
func (e *Engine) bucketTimer(b *timerindex.Bucket, deliverAt, origin int64) (liveTimer, bool, error) {
	e.mu.Lock()
	x := e.recallIdx
	e.recallIdx = nil
	e.mu.Unlock()
	if x == nil || x.bucket != b {
		x = newRecallIndex(b)
	}
	entries, length, err := e.readBucket(b, x.length)
	if err != nil && x.length > 0 {
		// Read whole again, as for a first recall in the bucket.
		x = newRecallIndex(b)
		entries, length, err = e.readBucket(b, 0)
	}
	if err != nil && !errors.Is(err, timerindex.ErrCorrupt) {
		return liveTimer{}, false, domain.Wrap(domain.ReasonInternal, err, "cannot read the timer index")
	}
	x.apply(entries)
	lt, ok := x.pending[origin]
	ok = ok && lt.deliverAt == deliverAt
	if err != nil {
		// The timer may be after the damage: do not say it is not pending
		// (and keep nothing of a damaged bucket).
		if ok {
			return lt, true, nil
		}
		e.timerBucketDamaged(b, err)
		return liveTimer{}, false, domain.Wrap(domain.ReasonUnavailable, err, "the timer index is damaged; the delay messages are intact and rmqproxy rebuilds the index when it restarts; retry later")
	}
	x.length = length
	e.mu.Lock()
	x.used = e.clock.Now()
	if b.Start() >= e.tw.loadedEnd && e.timers.Bucket(b.Start()) == b {
		e.recallIdx = x // not loaded meanwhile (loading drops it)
	}
	e.mu.Unlock()
	return lt, ok, nil
}

// recallIndex is the pending timers of one timer bucket that is not
// loaded, as read up to length bytes of its file. Only recalls use it,
// one at a time (recallMu); the engine keeps the latest one while its
// bucket is not loaded, which costs about what the window will when the
// bucket loads, and for at most recallIndexIdle after its last use.
type recallIndex struct {
	bucket  *timerindex.Bucket
	length  int64
	used    time.Time           // the engine clock's time of the recall that kept it
	pending map[int64]liveTimer // by origin
	// early counts done entries read before their add (Pending's rule:
	// a done cancels one add of its origin, wherever it stands).
	early  map[int64]int
	topics map[string]string // interned topic names
}

// recallIndexIdle is how long the engine keeps a recall index no recall
// used: a mass recall comes as a burst, and a lone recall in a large
// bucket must not pin its timers in memory until the bucket loads (hours
// later, perhaps).
const recallIndexIdle = time.Minute

// dropIdleRecallIndex forgets the recall index once recallIndexIdle passed
// since a recall used it (the maintenance goroutine calls it every second).
func (e *Engine) dropIdleRecallIndex() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x := e.recallIdx; x != nil && e.clock.Now().Sub(x.used) >= recallIndexIdle {
		e.recallIdx = nil
	}
}

func newRecallIndex(b *timerindex.Bucket) *recallIndex {
	return &recallIndex{bucket: b, pending: map[int64]liveTimer{}, early: map[int64]int{}, topics: map[string]string{}}
}

// apply takes in entries read from the bucket after those applied before.
func (x *recallIndex) apply(entries []timerindex.Entry) {
	for i := range entries {
		ent := &entries[i]
		switch ent.Kind {
		case timerindex.KindAdd:
			if n := x.early[ent.Origin]; n > 0 {
				if n == 1 {
					delete(x.early, ent.Origin)
				} else {
					x.early[ent.Origin] = n - 1
				}
				continue
			}
			t, ok := x.topics[ent.Topic]
			if !ok {
				t = ent.Topic
				x.topics[t] = t
			}
			x.pending[ent.Origin] = liveTimer{deliverAt: ent.DeliverAt, topic: t, qid: ent.QueueID, size: ent.Size, crc: ent.CRC}
		case timerindex.KindDone:
			if _, ok := x.pending[ent.Origin]; ok {
				delete(x.pending, ent.Origin)
			} else {
				x.early[ent.Origin]++
			}
		}
	}
}

// timerBucketDamaged reports a bucket found damaged while running
// (recovery checked it): timers after the damage are held back until a
// restart rebuilds the bucket from the commit log; readiness says so.
func (e *Engine) timerBucketDamaged(b *timerindex.Bucket, err error) {
	if e.damaged.CompareAndSwap(nil, &err) {
		e.log.Error("a timer index bucket is damaged: delay messages after the damage are held back; restart rmqproxy to rebuild the bucket from the commit log",
			"path", b.Path(), "error", err)
	}
}

// pinnedOffsetLocked is the smallest commit-log offset a pending delay or
// half message is stored at (retention must keep it).
func (e *Engine) pinnedOffsetLocked() (int64, bool) {
	pinned, ok := int64(0), false
	for _, b := range e.timers.Buckets() {
		if st := b.State(); st.Adds > st.Dones && (!ok || st.MinOrigin < pinned) {
			pinned, ok = st.MinOrigin, true
		}
	}
	for o := range e.txns {
		if !ok || o < pinned {
			pinned, ok = o, true
		}
	}
	return pinned, ok
}
