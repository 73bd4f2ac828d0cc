package localbroker

import (
	"container/heap"
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

var _ ports.Transactions = (*Engine)(nil)

// Transactional (half) messages.
//
// A half message is stored in a deferred batch record and kept, until it is
// resolved, in an in-memory map by origin (the commit-log offset of its
// encoding), which snapshots checkpoint and replay rebuilds. Its transaction
// id is the RocketMQ offset message id of the origin (store host and
// offset), so it is unique and survives restarts. A commit appends a resolve
// record holding a copy of the message for its queue (visible at once, or a
// timer when it is also a delay message not yet due); a rollback appends a
// resolve record without copy. Check-backs are txn-check records: counts and
// times survive restarts.
//
// A check-back counts (towards transactionCheckMax) only once it reached a
// producer: the handler calls the check's Handed function once it was
// written to a producer's command stream, and only then does the engine append
// the txn-check record. A check-back no producer took (none connected, as
// right after a restart; the application's dispatch queue full; every
// channel refusing) changes nothing durable and is tried again one
// transactionCheckInterval later. A half message whose check-backs never
// reach a producer is ended by its age instead: local.retention after it
// was stored transactionCheckMaxAction applies (as the Apache broker skips
// half messages older than its file reserved time), so that it does not
// keep its commit-log segment for ever.

// txnState is a pending half message.
type txnState struct {
	topic     string
	qid       int32
	size      int32
	crc       uint32
	msgID     string
	storedAt  int64 // Unix ms
	recovery  int64 // ms the producer asked to wait before the first check
	checks    int32 // check-backs so far
	lastCheck int64 // Unix ms of the latest check-back, 0 before the first
	// readFailures counts the failed reads of the half message in a row
	// (in memory only): its next try waits retryWait(readFailures).
	readFailures int32
	// snapGen is the snapshot capture that copied this state or that
	// started after it was added (see snapCOW.touchTxn).
	snapGen uint64
}

type txnItem struct {
	at     int64 // Unix ms
	origin int64
	checks int32 // the state's check count when scheduled (stale otherwise)
}

type txnHeap []txnItem

func (h txnHeap) Len() int { return len(h) }
func (h txnHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].origin < h[j].origin)
}
func (h txnHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *txnHeap) Push(x any)   { *h = append(*h, x.(txnItem)) }
func (h *txnHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// nextTxnAction is when the broker next acts on a pending half message: the
// first check-back once its immunity time (firstCheckDelay) passed from its
// store time, then one every transactionCheckInterval after the last one
// that reached a producer; after transactionCheckMax such check-backs, one
// interval later, transactionCheckMaxAction applies (keep: never). A
// check-back that reached no producer is retried one interval later (an
// in-memory schedule entry, see txnPassLocked).
func (e *Engine) nextTxnAction(st *txnState) (int64, bool) {
	if st.checks == 0 {
		return st.storedAt + e.firstCheckDelay(st.recovery), true
	}
	if st.checks >= e.cfg.TransactionCheckMax && e.cfg.TransactionCheckMaxAction == "keep" {
		return 0, false
	}
	return st.lastCheck + e.cfg.TransactionCheckInterval.Milliseconds(), true
}

// firstCheckDelay is how long after its store a half message is first
// checked back, in ms: as a RocketMQ broker's immunity time
// (TransactionalMessageServiceImpl.check), the producer's recovery
// duration in whole seconds (the CHECK_IMMUNITY_TIME_IN_SECONDS the Apache
// proxy writes, truncated by Durations.toSeconds), shorter or longer than
// transactionTimeout, or transactionTimeout when it gave none or less than
// a second (the proxy then writes no property). A broker checks at its
// next check pass after that (one every transactionCheckInterval); local
// mode checks as soon as it is due, the earliest a broker may.
func (e *Engine) firstCheckDelay(recoveryMs int64) int64 {
	if s := recoveryMs / 1000 * 1000; s > 0 {
		return s
	}
	return e.cfg.TransactionTimeout.Milliseconds()
}

func (e *Engine) scheduleTxnLocked(origin int64, st *txnState) {
	if at, ok := e.nextTxnAction(st); ok {
		heap.Push(&e.txnHeap, txnItem{at: at, origin: origin, checks: st.checks})
		if !e.replaying && e.txnKick != nil {
			kick(e.txnKick)
		}
	}
}

// txnHeapSlack is how many entries of resolved transactions the check-back
// schedule may hold beyond twice the pending ones before it is rebuilt:
// such entries are otherwise dropped only when they come due, which a
// producer's recovery time can put an hour away.
const txnHeapSlack = 1024

// forgetTxnLocked drops a resolved or discarded transaction; its schedule
// entry goes stale.
func (e *Engine) forgetTxnLocked(origin int64) {
	if st := e.txns[origin]; st != nil {
		e.cow.touchTxn(origin, st)
	}
	delete(e.txns, origin)
	e.compactTxnHeapLocked()
}

// compactTxnHeapLocked rebuilds the check-back schedule without its stale
// entries once they outnumber the pending transactions by txnHeapSlack
// (amortized O(1) per resolution).
func (e *Engine) compactTxnHeapLocked() {
	if len(e.txnHeap) <= 2*len(e.txns)+txnHeapSlack {
		return
	}
	live := make(txnHeap, 0, len(e.txns))
	for _, it := range e.txnHeap {
		if st := e.txns[it.origin]; st != nil && st.checks == it.checks {
			live = append(live, it)
		}
	}
	heap.Init(&live)
	e.txnHeap = live
}

func (e *Engine) addTxnLocked(origin int64, st *txnState) {
	if old := e.txns[origin]; old != nil {
		e.cow.touchTxn(origin, old)
	}
	if e.cow.active {
		st.snapGen = e.cow.gen // not at the capture's log offset: left out
	}
	e.txns[origin] = st
	e.scheduleTxnLocked(origin, st)
}

// transactionID is the id of the transaction whose half message is at origin.
func (e *Engine) transactionID(origin int64) string {
	return domain.OffsetMessageID(e.storeIP, e.storePort, origin)
}

// SetTransactionCheckHandler registers the check-back handler; it may be
// called before Start. The engine calls it from its own goroutine, never
// under its locks.
func (e *Engine) SetTransactionCheckHandler(h ports.TransactionCheckHandler) {
	if h == nil {
		e.txnHandler.Store(nil)
		return
	}
	e.txnHandler.Store(&h)
}

// EndTransaction commits or rolls back a half message; see
// [ports.Transactions]. It returns once the resolution is durable.
func (e *Engine) EndTransaction(ctx context.Context, req ports.EndTransactionRequest) error {
	invalid := func(format string, a ...any) error {
		return domain.Errorf(domain.ReasonInvalidTransactionID, format, a...)
	}
	id, err := domain.ParseMessageID(req.TransactionID, true)
	if err != nil || id.CommitLogOffset <= 0 {
		return invalid("transaction id %q is malformed; pass the transaction id of the send receipt (or of the check-back) unchanged", truncateID(req.TransactionID))
	}
	origin := id.CommitLogOffset
	// A commit reads the half message first, without the engine lock (an
	// origin names one half message for good, so the read stays valid).
	var pre *deferredRead
	if req.Resolution == ports.ResolutionCommit {
		e.mu.Lock()
		st, err := e.lookupTxnLocked(origin, req)
		e.mu.Unlock()
		if err != nil {
			return err
		}
		m, err := e.readDeferred(origin, st.size, st.crc, st.topic)
		pre = &deferredRead{m: m, err: err}
	}
	e.mu.Lock()
	st, err := e.lookupTxnLocked(origin, req)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	var end int64
	switch req.Resolution {
	case ports.ResolutionCommit:
		end, err = e.commitTxnLocked(origin, st, e.clock.Now(), pre)
	case ports.ResolutionRollback:
		end, err = e.resolveTxnLocked(origin, record.ResolveTxnRollback)
	default:
		e.mu.Unlock()
		return nil // undecided: checked back later
	}
	e.mu.Unlock()
	if err != nil {
		var re *deferredReadError
		if errors.As(err, &re) {
			e.halfUnreadable(st, origin, re, "the producer is told to retry the commit")
		}
		return err
	}
	if err := e.waitDurable(ctx, end, "the end of the transaction"); err != nil {
		return err
	}
	e.log.DebugContext(ctx, "transaction ended", "topic", req.Topic, "msg_id", st.msgID, "resolution", req.Resolution.String(), "from_check", req.FromCheck)
	return nil
}

// lookupTxnLocked finds the pending transaction an EndTransaction names.
func (e *Engine) lookupTxnLocked(origin int64, req ports.EndTransactionRequest) (*txnState, error) {
	invalid := func(format string, a ...any) error {
		return domain.Errorf(domain.ReasonInvalidTransactionID, format, a...)
	}
	if err := e.checkOpenLocked(); err != nil {
		return nil, err
	}
	st := e.txns[origin]
	switch {
	case st == nil:
		return nil, invalid("transaction %s is unknown or already resolved (committed, rolled back, or discarded after %d unanswered check-backs)", req.TransactionID, e.cfg.TransactionCheckMax)
	case st.topic != req.Topic:
		return nil, invalid("transaction %s belongs to topic %q, not %q", req.TransactionID, st.topic, req.Topic)
	}
	// The request's message id is not checked: the transaction id names
	// the transaction, as with the Apache proxy (which passes the message
	// id to the broker, which only logs it) and in cluster mode.
	return st, nil
}

func truncateID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (e *Engine) resolveTxnLocked(origin int64, kind record.ResolveKind) (int64, error) {
	rec := record.Resolve{Kind: kind, Origin: origin}
	_, end, err := e.appendApplyLocked(record.TypeResolve, func(dst []byte) []byte {
		p, _ := record.AppendResolve(dst, &rec)
		return p
	}, true)
	return end, err
}

// deferredRead is a deferred message read before taking the engine lock.
type deferredRead struct {
	m   record.Message
	err error
}

// commitTxnLocked appends a commit: a copy of the half message for its
// queue, or a timer when it is also a delay message that is not due. pre
// is the half message read beforehand (nil: read it now).
func (e *Engine) commitTxnLocked(origin int64, st *txnState, now time.Time, pre *deferredRead) (int64, error) {
	t, ok := e.topics[st.topic]
	if !ok || st.qid >= t.QueueCount {
		return 0, domain.Errorf(domain.ReasonInvalidTransactionID, "the topic %q of the transaction no longer exists", st.topic)
	}
	if pre == nil {
		m, err := e.readDeferredLocked(origin, st.size, st.crc, st.topic)
		pre = &deferredRead{m: m, err: err}
	}
	m, err := pre.m, pre.err
	if errors.Is(err, errNotStored) {
		return 0, domain.Wrap(domain.ReasonUnavailable, err, "the half message is not stored yet; retry")
	}
	if errors.Is(err, commitlog.ErrGone) {
		// Really gone: its segment was removed (a pending half message
		// pins its segment, so only an older version or a manual removal
		// gets here). Retrying cannot bring it back.
		e.log.Error("half message discarded: its commit-log segment was removed", "topic", st.topic, "msg_id", st.msgID, "commit_log_offset", origin, "error", err)
		if _, derr := e.resolveTxnLocked(origin, record.ResolveTxnDrop); derr != nil {
			return 0, derr
		}
		return 0, domain.Wrap(domain.ReasonInternal, err, "the half message of the transaction is gone (its commit-log segment was removed) and was discarded")
	}
	if err != nil {
		// Possibly transient (EIO, a bad read): keep it; the producer
		// retries the commit (and check-backs go on meanwhile).
		return 0, domain.Wrap(domain.ReasonUnavailable, e.unreadable(origin, err), "the half message of the transaction cannot be read now; it is kept: retry the commit")
	}
	m.Transactional = false
	m.TxnOrigin = origin
	m.StoredAt = now
	b := &record.Batch{Topic: st.topic, QueueID: st.qid, QueueOffset: -1, Messages: []record.Message{m}}
	if !m.DeliverAt.After(now.Add(timerTick)) {
		b.QueueOffset = e.queueLocked(st.topic, st.qid).count
	}
	rec := record.Resolve{Kind: record.ResolveTxnCommit, Origin: origin, Copy: b}
	_, end, err := e.appendApplyLocked(record.TypeResolve, func(dst []byte) []byte {
		p, _ := record.AppendResolve(dst, &rec)
		return p
	}, true)
	if h := e.hooks.TimerAdded; h != nil && err == nil && b.QueueOffset < 0 {
		h(st.topic, m.DeliverAt.Sub(m.BornAt)) // a delay message committed: it enters the timing wheel now
	}
	return end, err
}

// txnPassLocked checks back, or applies transactionCheckMaxAction to, up to
// timerFireBatch due half messages. It returns the check-backs to hand to
// the handler and when it wants to run again. Nobody waits for the records
// it appends (resolutions by transactionCheckMaxAction, drops).
func (e *Engine) txnPassLocked(now time.Time) (checks []ports.TransactionCheck, wake time.Time) {
	nowMs := now.UnixMilli()
	for n := 0; len(e.txnHeap) > 0 && e.txnHeap[0].at <= nowMs; {
		if n >= timerFireBatch {
			return checks, now
		}
		it := heap.Pop(&e.txnHeap).(txnItem)
		st := e.txns[it.origin]
		if st == nil || st.checks != it.checks {
			continue
		}
		n++
		var err error
		switch {
		case st.checks >= e.cfg.TransactionCheckMax:
			err = e.txnMaxActionLocked(it.origin, st, now, false)
		case e.txnExpiredLocked(st, nowMs):
			err = e.txnMaxActionLocked(it.origin, st, now, true)
		default:
			var c *ports.TransactionCheck
			c, err = e.txnCheckLocked(it.origin, st)
			if c != nil {
				checks = append(checks, *c)
				// Asked again one interval later unless a producer takes
				// it: counting it (countTxnCheck) schedules the next check
				// and makes this entry stale.
				heap.Push(&e.txnHeap, txnItem{at: nowMs + e.cfg.TransactionCheckInterval.Milliseconds(), origin: it.origin, checks: st.checks})
			}
		}
		if err != nil {
			var re *deferredReadError
			if errors.As(err, &re) {
				// This half message's own trouble: keep it, read it
				// again later, and go on with the ones after it.
				e.retryTxnLocked(it, st, nowMs, re)
				continue
			}
			heap.Push(&e.txnHeap, it)
			if errors.Is(err, errNotPreRead) {
				return checks, now // read it without the lock first: run again at once
			}
			if errors.Is(err, errNotStored) {
				return checks, now.Add(10 * time.Millisecond)
			}
			e.warnLimited("txn-check", "cannot check back a transaction; will retry", "topic", st.topic, "msg_id", st.msgID, "error", err)
			return checks, now.Add(time.Second)
		}
	}
	wake = now.Add(time.Hour)
	if len(e.txnHeap) > 0 {
		wake = time.UnixMilli(e.txnHeap[0].at)
	}
	return checks, wake
}

// retryTxnLocked schedules another try of a due half message that could not
// be read, after a wait that doubles with each failure (timerRetryMin to
// timerRetryMax), and logs the failure (at most once a minute).
func (e *Engine) retryTxnLocked(it txnItem, st *txnState, nowMs int64, re *deferredReadError) {
	st.readFailures++
	wait := retryWait(st.readFailures)
	heap.Push(&e.txnHeap, txnItem{at: nowMs + wait.Milliseconds(), origin: it.origin, checks: st.checks})
	e.halfUnreadable(st, it.origin, re, "later half messages are checked meanwhile", "attempts", st.readFailures, "retry_in", wait)
}

// halfUnreadable logs (at most once a minute) that the half message at
// origin could not be read and is kept.
func (e *Engine) halfUnreadable(st *txnState, origin int64, re *deferredReadError, meanwhile string, args ...any) {
	e.errorLimited("txn-read", "cannot read a half message; it is kept and read again later ("+meanwhile+"). "+
		"A transient I/O error clears by itself; if it lasts, check the disk holding the file (kernel log, SMART) and, if the file is damaged, "+
		"stop rmqproxy and restore it from a backup",
		append([]any{"topic", st.topic, "msg_id", st.msgID, "commit_log_offset", origin, "file", re.path, "error", re.err}, args...)...)
}

// txnExpiredLocked reports whether a pending half message is older than
// local.retention (0: never), which ends it unless
// transactionCheckMaxAction is keep.
func (e *Engine) txnExpiredLocked(st *txnState, nowMs int64) bool {
	r := e.cfg.Retention.Milliseconds()
	return r > 0 && e.cfg.TransactionCheckMaxAction != "keep" && nowMs-st.storedAt >= r
}

// txnMaxActionLocked applies transactionCheckMaxAction to a half message
// that had its last check-back, or that expired (older than local.retention).
func (e *Engine) txnMaxActionLocked(origin int64, st *txnState, now time.Time, expired bool) error {
	why := "after the last check-back"
	if expired {
		why = "local.retention after it was stored"
	}
	switch e.cfg.TransactionCheckMaxAction {
	case "commit":
		m, err := e.passReadLocked(e.txnPre, origin, st.size, st.crc, st.topic)
		if errors.Is(err, errNotPreRead) {
			return err
		}
		e.log.Warn("transaction still unresolved "+why+"; committing it (transactionCheckMaxAction: commit)",
			"topic", st.topic, "msg_id", st.msgID, "checks", st.checks)
		_, err = e.commitTxnLocked(origin, st, now, &deferredRead{m: m, err: err})
		if domain.HasReason(err, domain.ReasonInvalidTransactionID) {
			_, err = e.resolveTxnLocked(origin, record.ResolveTxnDrop)
		}
		if errors.Is(err, commitlog.ErrGone) {
			return nil // discarded
		}
		return err
	default:
		e.log.Warn("transaction still unresolved "+why+"; discarding the half message (transactionCheckMaxAction: rollback)",
			"topic", st.topic, "msg_id", st.msgID, "checks", st.checks)
		_, err := e.resolveTxnLocked(origin, record.ResolveTxnRollback)
		return err
	}
}

// txnCheckLocked builds what the handler gets for a check-back; nothing is
// recorded until a producer takes it (see countTxnCheck).
func (e *Engine) txnCheckLocked(origin int64, st *txnState) (*ports.TransactionCheck, error) {
	m, err := e.passReadLocked(e.txnPre, origin, st.size, st.crc, st.topic)
	if errors.Is(err, errNotStored) || errors.Is(err, errNotPreRead) {
		return nil, err
	}
	if errors.Is(err, commitlog.ErrGone) {
		e.log.Error("half message discarded: its commit-log segment was removed", "topic", st.topic, "msg_id", st.msgID, "commit_log_offset", origin, "error", err)
		_, err := e.resolveTxnLocked(origin, record.ResolveTxnDrop)
		return nil, err
	}
	if err != nil {
		return nil, e.unreadable(origin, err) // kept: read again later
	}
	st.readFailures = 0
	// Delivery attempt 1, as a broker's proxy writes for the message of
	// a check-back too (its reconsume times + 1).
	sm := domain.StoredMessage{Message: m.Message, BrokerName: e.cfg.BrokerName, QueueID: st.qid, QueueOffset: -1,
		CommitLogOffset: origin, StoredAt: m.StoredAt, StoreHost: e.cfg.StoreHost, TransactionID: e.transactionID(origin), DeliveryAttempt: 1}
	var handed atomic.Bool
	return &ports.TransactionCheck{Message: sm, Checks: st.checks + 1, Handed: func() {
		if !handed.Swap(true) {
			e.countTxnCheck(origin)
		}
	}}, nil
}

// countTxnCheck counts a check-back a producer took: it appends a
// txn-check record (count + 1, now), which schedules the next check-back
// one interval later. Nobody waits for the record: a crash that loses it
// costs the message one more check-back, never one less. A transaction
// resolved meanwhile (the producer answered at once) is left alone.
func (e *Engine) countTxnCheck(origin int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != stateOpen {
		return
	}
	st := e.txns[origin]
	if st == nil {
		return
	}
	rec := record.TxnCheck{Origin: origin, Checks: st.checks + 1, At: time.UnixMilli(e.clock.Now().UnixMilli())}
	if _, _, err := e.appendApplyLocked(record.TypeTxnCheck, func(dst []byte) []byte { return record.AppendTxnCheck(dst, &rec) }, false); err != nil {
		e.warnLimited("txn-check", "cannot count a check-back a producer took; the transaction gets one more", "topic", st.topic, "msg_id", st.msgID, "error", err)
		return
	}
	if rec.Checks >= e.cfg.TransactionCheckMax && e.cfg.TransactionCheckMaxAction == "keep" {
		e.log.Warn("last check-back of a transaction; it stays pending until the producer resolves it (transactionCheckMaxAction: keep) and keeps its commit-log segment",
			"topic", st.topic, "msg_id", st.msgID, "checks", rec.Checks)
	}
}

// txnLoop runs check-backs: it reads the due half messages without the
// engine lock, builds the check-backs (and applies transactionCheckMaxAction)
// under it, then calls the handler without any engine lock (the handler
// returns at once: the application queues check-backs for its own dispatch
// workers; Handed is called once one is written to a producer's stream). A transaction that
// came due after the read ends the pass; the next one reads it first (see
// passReadLocked). A pass handles at most timerFireBatch transactions, and
// each at most once per transactionCheckInterval.
func (e *Engine) txnLoop() {
	defer e.wg.Done()
	e.runLoop(e.txnKick, func() time.Duration {
		e.mu.Lock()
		if e.state != stateOpen {
			e.mu.Unlock()
			return time.Hour
		}
		due := e.dueTxnsLocked(e.clock.Now().UnixMilli(), timerFireBatch)
		e.mu.Unlock()
		pre := e.preRead(due)
		e.mu.Lock()
		if e.state != stateOpen {
			e.mu.Unlock()
			return time.Hour
		}
		now := e.clock.Now()
		e.txnPre = pre
		checks, wake := e.txnPassLocked(now)
		e.txnPre = nil
		e.mu.Unlock()
		e.deliverChecks(e.bgCtx, checks)
		return wake.Sub(now)
	})
}

// dueTxnsLocked lists up to limit pending transactions due at nowMs, the
// first ones a pass pops.
func (e *Engine) dueTxnsLocked(nowMs int64, limit int) []deferredRef {
	h := e.txnHeap
	var out []deferredRef
	walkHeapInOrder(len(h), h.Less, func(i int) bool {
		it := h[i]
		if it.at > nowMs || len(out) >= limit {
			return false
		}
		st := e.txns[it.origin]
		if st == nil || st.checks != it.checks {
			return true // stale
		}
		if st.checks < e.cfg.TransactionCheckMax || e.cfg.TransactionCheckMaxAction == "commit" { // the others read nothing (an expired one with rollback is read in vain)
			out = append(out, deferredRef{origin: it.origin, size: st.size, crc: st.crc, topic: st.topic})
		}
		return true
	})
	return out
}

// deliverChecks hands check-backs to the registered handler. Without one
// they reach no producer and do not count.
func (e *Engine) deliverChecks(ctx context.Context, checks []ports.TransactionCheck) {
	if len(checks) == 0 {
		return
	}
	hp := e.txnHandler.Load()
	for _, c := range checks {
		if hp == nil {
			e.log.DebugContext(ctx, "no transaction check handler registered; the check-back reaches no producer and does not count",
				"topic", c.Message.Topic, "msg_id", c.Message.ID)
			continue
		}
		(*hp)(ctx, c)
	}
}
