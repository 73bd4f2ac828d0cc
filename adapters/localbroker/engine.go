package localbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/limitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/atomicfile"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/timerindex"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

type engineState int

const (
	stateNew engineState = iota
	stateOpen
	stateClosed
)

// keptSnapshots is how many snapshot files are kept; retention never deletes
// a segment the oldest of them still needs, so an unreadable newest snapshot
// falls back to the previous one.
const keptSnapshots = 2

// Engine is the embedded broker. It is safe for concurrent use.
//
// Lock order: snapMu, then mu. The commit log's and consume queues' own
// locks are taken under mu, never the other way round.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	clock ports.Clock
	flush commitlog.FlushPolicy

	// snapMu serializes snapshots, retention and topic deletion.
	snapMu sync.Mutex
	// recallMu serializes recalls: a recall reads its message without the
	// engine lock, and only another recall can resolve a timer whose
	// bucket is not loaded meanwhile (see Recall).
	recallMu sync.Mutex
	// attempts remembers what FIFO pops with an attempt id delivered (see
	// attemptTable); it has its own lock.
	attempts attemptTable

	mu            sync.Mutex
	state         engineState
	clog          *commitlog.Log
	topics        map[string]*topicMeta
	groups        map[string]*groupMeta
	queues        map[queueKey]*queueIndex
	cons          map[consKey]*consState
	groupCons     map[string]map[queueKey]*consState    // cons by group
	groupKeys     map[string]map[queueKey]struct{}      // keys of gates and offsets by group
	waiters       map[queueKey]map[*poller]struct{}     // long pollers per queue
	gates         map[consKey]*sync.Mutex               // serialize the pops of a group on a queue
	readHook      atomic.Pointer[func(topic string)]    // tests: called before messages are read
	bucketHook    atomic.Pointer[func(from int64)]      // tests: called after a timer bucket is read
	readFault     atomic.Pointer[func(off int64) error] // tests: fails a deferred message's read
	pendingQueues map[queueKey]*queueIndex              // queues with entries not yet visible
	heap          deadlineHeap
	cow           snapCOW // the capture of consumer states of a snapshot (see touch)
	boot, seq     uint64
	bootSlot      int // slot of the boot file holding boot
	rr            uint32
	snapOffsets   []int64 // offsets of the kept snapshot files, oldest first
	replaying     bool
	lock          *os.File // flock on <dataDir>/LOCK, held while open
	// formerNames are the values local.brokerName had before, in this data
	// directory (meta/brokerNames; set by Start, read-only after).
	formerNames map[string]bool
	// encodeBuf is reused to encode records (the commit log copies them);
	// see appendApplyLocked.
	encodeBuf []byte
	// sendMsgs is room for the messages of the batch a send encodes.
	sendMsgs []record.Message
	// batchDec decodes the message batches applied into room it reuses;
	// see applyRecordLocked.
	batchDec record.MetaDecoder

	// Delay messages: the on-disk timing wheel and its in-memory window.
	// timerWidth and timerLookahead are timerBucketWidth and timerLookahead
	// (tests shrink them).
	timers *timerindex.Index
	tw     timerWindow
	// recallIdx holds the pending timers of the bucket, not loaded, that
	// the latest recall looked in (see recallIndex); nil when none.
	recallIdx      *recallIndex
	timerWidth     time.Duration
	timerLookahead time.Duration
	// snapBuckets lists the timer buckets the newest kept snapshot records;
	// a drained bucket's file is deleted only once no kept snapshot lists it.
	snapBuckets map[int64]bool
	// Transactions: pending half messages by origin, and their check-back
	// schedule.
	txns    map[int64]*txnState
	txnHeap txnHeap
	// txnPre holds the half messages of due transactions read before the
	// transaction goroutine took the lock for a pass (nil outside one).
	txnPre     map[int64]*deferredRead
	txnHandler atomic.Pointer[ports.TransactionCheckHandler]
	// Pull consumers' committed offsets.
	offsets map[consKey]int64
	// topicDeletedAt is the log offset of each topic's latest deletion
	// record: deferred messages stored before it belong to a deleted
	// incarnation of the topic. Deletions retention has removed from the
	// log are forgotten (forgetDeletionsBeforeLocked).
	topicDeletedAt map[string]int64
	storeIP        netip.Addr
	storePort      uint32

	// Auto-creation token bucket (see allowAutoCreateLocked).
	autoTokens float64
	autoLast   time.Time
	// removals are consume-queue files of deleted topics, removed once the
	// deletion record is durable and no snapshot still to be written lists
	// them (see removeQueuesLocked).
	removals []queueRemoval
	// Storage trouble (see health.go): failed is set when applying an
	// appended record failed (under mu); failedAt, phase, replayed and
	// clogRef are read by Ready without the lock.
	failed   error
	failedAt atomic.Pointer[error]
	phase    atomic.Int32
	replayed atomic.Int64
	recovery recoveryProgress
	clogRef  atomic.Pointer[commitlog.Log]
	limited  limitlog.Limiter
	damaged  atomic.Pointer[error] // a consume-queue entry or timer bucket failed its checksum while running
	// syncFault, when set by a test before Start, replaces fdatasync.
	syncFault func(*os.File) error
	// hooks observe storage work (see SetHooks); set before Start.
	hooks Hooks
	// rebuild holds the queues recovery rebuilds from the log, with the
	// entry count the snapshot gives them (see rebuild.go).
	rebuild    map[queueKey]int64
	rebuildErr error
	// rebuildHeld counts the entries appended to rebuilt queues since they
	// were last written (see rebuildAppendLocked).
	rebuildHeld int
	// timerRebuild rebuilds the timer buckets recovery found damaged
	// (timerDamage; see rebuild.go); timerScanFrom is the offset of the
	// first record the rebuild scan met (-1 before it met one).
	timerRebuild  *timerindex.Rebuilder
	timerDamage   []timerindex.Damage
	timerScanFrom int64
	rebuildStart  time.Time
	// shortQueues are queues whose file holds fewer entries than the
	// snapshot recovery started from says (their topic was deleted before
	// a crash, or the file was damaged); replay must delete their topic.
	shortQueues map[queueKey]int64

	stop       chan struct{}
	bgCtx      context.Context // cancelled when stop is closed
	bgCancel   context.CancelFunc
	wg         sync.WaitGroup
	advance    chan struct{}
	reviveKick chan struct{}
	// dlqPre holds the messages of exhausted deliveries the reviver read
	// before it took the lock for a pass (nil outside one); see
	// reviveDueLocked.
	dlqPre    map[dlqKey]*dlqRead
	timerKick chan struct{}
	txnKick   chan struct{}

	// statesVisited counts the consumer states GroupStats and GroupAges
	// looked at (tests: reporting on every group must look at each state
	// once, not at every group's states per group).
	statesVisited int64
}

// New validates cfg and returns an engine that is not open yet; Start opens
// it. Every method fails with ReasonUnavailable until then.
func New(cfg Config, log *slog.Logger, clock ports.Clock) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = ports.SystemClock{}
	}
	e := &Engine{
		cfg:            cfg,
		log:            log.With("component", "localbroker"),
		clock:          clock,
		timerWidth:     timerBucketWidth,
		timerLookahead: timerLookahead,
	}
	if cfg.Flush == "async" {
		e.flush = commitlog.FlushAsync
	}
	if ap, err := netip.ParseAddrPort(cfg.StoreHost); err == nil {
		e.storeIP, e.storePort = ap.Addr(), uint32(ap.Port())
	}
	return e, nil
}

func (e *Engine) dir(parts ...string) string {
	return filepath.Join(append([]string{e.cfg.DataDir}, parts...)...)
}

func (e *Engine) resetMaps() {
	e.topics = map[string]*topicMeta{}
	e.groups = map[string]*groupMeta{}
	e.queues = map[queueKey]*queueIndex{}
	e.cons = map[consKey]*consState{}
	e.groupCons = map[string]map[queueKey]*consState{}
	e.groupKeys = map[string]map[queueKey]struct{}{}
	e.waiters = map[queueKey]map[*poller]struct{}{}
	e.gates = map[consKey]*sync.Mutex{}
	e.pendingQueues = map[queueKey]*queueIndex{}
	e.heap = nil
	e.tw = newTimerWindow()
	e.recallIdx = nil
	e.txns = map[int64]*txnState{}
	e.txnHeap = nil
	e.offsets = map[consKey]int64{}
	e.topicDeletedAt = map[string]int64{}
	e.removals = nil
	e.shortQueues = map[queueKey]int64{}
	e.rebuild = map[queueKey]int64{}
	e.rebuildErr = nil
	e.rebuildHeld = 0
	e.timerRebuild, e.timerDamage, e.timerScanFrom = nil, nil, -1
}

// Start recovers the engine from its data directory: it loads metadata and
// the newest valid snapshot, replays the commit log after it (repairing a
// torn tail), rebuilds the consume queues, and starts the background
// goroutines (reviver, notifier, maintenance). When ctx ends during the
// replay (a SIGTERM while a large directory recovers) recovery stops
// between two records with an error wrapping ctx's, having written
// nothing but the indexes it was rebuilding (rebuilt again next time,
// as after a crash), and unlocks the directory; the commit-log writer has
// not started yet.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state != stateNew {
		return domain.Errorf(domain.ReasonInternal, "local broker engine started twice")
	}
	started := time.Now()
	e.phase.Store(phaseRecovering)
	defer func() {
		if e.state != stateOpen {
			e.phase.Store(phaseNew)
		}
	}()
	for _, d := range []string{e.dir("meta"), e.dir("commitlog"), e.dir("consumequeue"), e.dir("snapshot"), e.dir("timer")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return domain.Wrap(domain.ReasonInternal, err, fmt.Sprintf("cannot create %s under local.dataDir", d))
		}
	}
	if err := atomicfile.SyncDir(e.cfg.DataDir); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot fsync the data directory (local.dataDir)")
	}
	lock, err := lockDataDir(e.cfg.DataDir)
	if err != nil {
		return domain.Wrap(domain.ReasonUnavailable, err, "cannot lock the data directory (local.dataDir)")
	}
	ok := false
	defer func() {
		if !ok {
			_ = lock.Close()
		}
	}()
	// A crash while a snapshot (or the queue format marker, or the list of
	// broker names) was being replaced left its temporary file: nothing
	// reads it.
	for _, d := range []string{e.dir("snapshot"), e.dir("consumequeue"), e.dir("meta")} {
		if removed, err := atomicfile.RemoveLeftovers(d); err != nil {
			e.log.Warn("cannot remove the temporary files of interrupted writes; delete them by hand", "dir", d, "error", err)
		} else if len(removed) > 0 {
			e.log.Info("removed the temporary files of writes a crash interrupted", "dir", d, "files", removed)
		}
	}
	if err := e.loadBoot(); err != nil {
		return err
	}
	if err := e.loadBrokerNames(); err != nil {
		return err
	}
	current, err := e.queueFormatCurrent()
	if err != nil {
		return err
	}
	// A queue found shorter than the snapshot says whose topic the replay
	// did not delete is damaged: recovery runs again, rebuilding it.
	force := map[queueKey]bool{}
	var clog *commitlog.Log
	var snap *snapshot
	var imported bool
	var replayed int
	for attempt := 0; ; attempt++ {
		clog, snap, imported, replayed, err = e.recoverLocked(ctx, current, force)
		var short *shortQueuesError
		if attempt < 2 && errors.Is(err, errSnapshotBeyondLog) {
			continue // the snapshot is removed: recover from an older one
		}
		if attempt < 3 && errors.As(err, &short) {
			e.log.Warn("consume queues are shorter than the snapshot says (damaged or removed); recovering again, rebuilding them from the commit log",
				"queues", short.Error())
			for _, k := range short.keys {
				force[k] = true
			}
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	e.stop = make(chan struct{})
	e.bgCtx, e.bgCancel = context.WithCancel(context.Background())
	e.clog = clog
	e.lock = lock
	ok = true
	e.state = stateOpen
	if err := e.adoptOrphansLocked(imported); err != nil {
		e.state = stateNew
		e.clog = nil
		_ = clog.Close(ctx)
		e.closeQueues()
		// As in Close: the data directory is unlocked only once the
		// commit-log writer has stopped (ctx may have ended first: a
		// cancelled start); otherwise it stays locked until exit.
		select {
		case <-clog.Done():
			ok = false
		default:
		}
		return err
	}
	e.removeQueuesLocked(clog.SyncedOffset())
	e.clogRef.Store(clog)
	e.phase.Store(phaseOpen)
	if full, err := clog.DiskFull(); full {
		e.log.Warn("the disk holding local.dataDir is full: receives and acknowledgements work while the reserve lasts, sends are refused; free space on the file system (or enlarge it) and rmqproxy resumes by itself",
			"data_dir", e.cfg.DataDir, "error", err)
	}
	e.reviveDueLocked(e.clock.Now())
	e.wg.Add(5)
	go e.notifyLoop()
	go e.reviveLoop()
	go e.maintenanceLoop()
	go e.timerLoop()
	go e.txnLoop()
	e.log.InfoContext(ctx, "local broker opened", "data_dir", e.cfg.DataDir, "snapshot_offset", snap.logOffset,
		"records_replayed", replayed, "log_end", clog.NextOffset(), "topics", len(e.topics), "groups", len(e.groups),
		"timer_buckets", e.timers.Len(), "pending_transactions", len(e.txns),
		"flush", e.cfg.Flush, "took", time.Since(started))
	return nil
}

// recoverLocked loads the newest valid snapshot and the definitions, opens
// the consume queues and the timer index, and replays the commit log after
// the snapshot — from its oldest segment when queues must be rebuilt (see
// rebuild.go): those of an older format (current unset), those found
// damaged, and those in force. On a *shortQueuesError every file is closed
// and the caller may recover again with those queues forced.
func (e *Engine) recoverLocked(ctx context.Context, current bool, force map[queueKey]bool) (clog *commitlog.Log, snap *snapshot, imported bool, replayed int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, false, 0, recoveryCancelled(ctx, 0)
	}
	e.resetMaps()
	e.recovery.begin(stepSnapshot)
	if snap, err = e.loadSnapshot(); err != nil {
		return nil, nil, false, 0, err
	}
	if snap.defs {
		e.ignoreLegacyMeta()
	} else if imported, err = e.importLegacyMeta(); err != nil {
		return nil, nil, false, 0, err
	}
	if err := e.openQueues(snap, current, force); err != nil {
		e.closeQueues()
		return nil, nil, false, 0, err
	}
	e.recovery.begin(stepTimers)
	timers, damaged, err := timerindex.Open(e.dir("timer"), e.timerWidth.Milliseconds(), snap.timers)
	if err != nil {
		e.closeQueues()
		return nil, nil, false, 0, domain.Wrap(domain.ReasonInternal, err, "cannot open the timer index (delay messages) in "+e.dir("timer"))
	}
	e.timers = timers
	if len(damaged) > 0 {
		e.startTimerRebuildLocked(damaged)
	}
	e.snapBuckets = map[int64]bool{}
	for _, b := range snap.timers {
		e.snapBuckets[b.Start] = true
	}
	e.restoreLocked(snap)
	e.advance = make(chan struct{}, 1)
	e.reviveKick = make(chan struct{}, 1)
	e.timerKick = make(chan struct{}, 1)
	e.txnKick = make(chan struct{}, 1)
	recovery := commitlog.RecoveryStrict
	if e.cfg.Recovery == "truncate" {
		recovery = commitlog.RecoveryTruncate
	}
	from := snap.logOffset
	e.rebuildStart = time.Now()
	if len(e.rebuild) > 0 {
		from = commitlog.FromStart
		e.log.Warn("rebuilding consume queues from the commit log; recovery reads the whole log once", "queues", len(e.rebuild))
	}
	if e.timerRebuild != nil && len(e.rebuild) == 0 {
		from = e.timerScanStart(snap.logOffset)
	}
	e.recovery.begin(stepReplay)
	if from != snap.logOffset {
		e.recovery.begin(stepRebuild)
	}
	e.recovery.end.Store(logExtent(e.dir("commitlog")))
	rebuilt := false
	e.replaying = true
	// The start is cancelled (SIGTERM during a long recovery) between
	// records: nothing is written but the queues being rebuilt, which
	// the next start rebuilds again, as after a crash.
	cancelled := ctx.Done()
	read := 0
	clog, err = commitlog.Open(commitlog.Options{
		Dir:             e.dir("commitlog"),
		SegmentSize:     e.cfg.SegmentSize,
		Preallocate:     min(e.cfg.Preallocate, e.cfg.SegmentSize),
		MaxRecordSize:   e.cfg.MaxRecordSize,
		Flush:           e.flush,
		FlushInterval:   e.cfg.FlushInterval,
		GroupCommitWait: e.cfg.GroupCommitWait,
		Recovery:        recovery,
		SyncedBefore:    snap.logOffset,
		Logger:          e.log,
		KnownType:       func(b byte) bool { return record.Type(b).Known() },
		MaxPending:      e.cfg.MaxPendingBytes,
		Reserve:         e.cfg.DiskReserve,
		ReserveFile:     e.dir("reserve"),
		ReserveType:     func(b byte) bool { return record.Type(b).ConsumerState() },
		Sync:            e.syncFault,
		OnSync:          e.hooks.Fsync,
		OnAdvance: func(int64) {
			select {
			case e.advance <- struct{}{}:
			default:
			}
		},
	}, from, func(off int64, typ byte, payload []byte) error {
		select {
		case <-cancelled:
			return recoveryCancelled(ctx, read)
		default:
		}
		read++
		e.recovery.read.Add(1)
		e.recovery.at.Store(off)
		if replayHook != nil {
			replayHook()
		}
		if off < snap.logOffset {
			return e.rebuildRecordLocked(off, record.Type(typ), payload)
		}
		if !rebuilt {
			e.recovery.step.Store(stepReplay)
			rebuilt = true
			if err := e.finishRebuildLocked(); err != nil {
				return err
			}
		}
		replayed++
		e.replayed.Add(1)
		return e.applyRecordLocked(off, off+commitlog.FrameSize(len(payload)), record.Type(typ), payload)
	})
	e.replaying = false
	if err == nil && !rebuilt {
		if err = e.finishRebuildLocked(); err != nil {
			clog.Abandon()
		}
	}
	if err != nil {
		if e.timerRebuild != nil {
			e.timerRebuild.Abort()
		}
		e.closeQueues()
		var short *commitlog.ShortLogError
		if errors.As(err, &short) && recovery == commitlog.RecoveryTruncate {
			// A recovery that cut the log before the snapshot's offset
			// was interrupted before it removed the snapshot (see
			// dropSnapshotsBeyond): remove it now and recover from an
			// older one, as that recovery would have.
			if derr := e.dropSnapshotsBeyond(short.End, snap.logOffset); derr != nil {
				return nil, nil, false, 0, derr
			}
		}
		var de *domain.Error
		if errors.As(err, &de) {
			return nil, nil, false, 0, err
		}
		return nil, nil, false, 0, domain.Wrap(domain.ReasonInternal, err, "cannot recover the commit log in "+e.dir("commitlog"))
	}
	if err := e.dropSnapshotsBeyond(clog.NextOffset(), snap.logOffset); err != nil {
		clog.Abandon()
		if e.timerRebuild != nil {
			e.timerRebuild.Abort()
		}
		e.closeQueues()
		return nil, nil, false, 0, err
	}
	if err := e.checkShortQueuesLocked(); err != nil {
		clog.Abandon()
		e.closeQueues()
		return nil, nil, false, 0, err
	}
	// The running engine forgot the deletions retention removed from the
	// log, maybe after the snapshot was taken: so does recovery.
	e.forgetDeletionsBeforeLocked(clog.StartOffset())
	return clog, snap, imported, replayed, nil
}

// replayHook, when set (only by a build with the rmqproxy_testhooks tag,
// see testhooks.go), runs before each record recovery reads.
var replayHook func()

// recoveryCancelled is recovery's error when ctx ended after it read
// records of the commit log.
func recoveryCancelled(ctx context.Context, records int) error {
	return domain.Wrap(domain.ReasonUnavailable, ctx.Err(),
		fmt.Sprintf("recovery of the data directory (local.dataDir) cancelled after reading %d commit-log records; the next start recovers again", records))
}

// errSnapshotBeyondLog says recovery loaded a snapshot that covers records
// the commit log no longer holds (recovery: truncate cut the log before the
// snapshot's offset, while it rebuilt indexes from an earlier segment); the
// snapshot was removed and recovery must run again.
var errSnapshotBeyondLog = errors.New("the snapshot covers records the commit log no longer holds")

// dropSnapshotsBeyond removes the snapshot files whose offset lies beyond
// end, the end of the recovered commit log: only a truncation at a corrupt
// record (recovery: truncate) leaves such files, and they describe records
// that are gone. Kept, a later recovery would load one and replay from its
// offset, which then lies inside records written after the truncation, and
// retention would count it as a kept snapshot. It returns
// errSnapshotBeyondLog when loaded, the offset of the snapshot this
// recovery used, is among them.
func (e *Engine) dropSnapshotsBeyond(end, loaded int64) error {
	var kept []int64
	removed := false
	for _, off := range e.snapOffsets {
		if off <= end {
			kept = append(kept, off)
			continue
		}
		p := e.dir("snapshot", snapshotName(off))
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return domain.Wrap(domain.ReasonInternal, err, fmt.Sprintf("cannot remove snapshot %s, which covers records the truncated commit log (now ending at offset %d) no longer holds; remove it by hand", p, end))
		}
		removed = true
		e.log.Warn("removed a snapshot beyond the end of the truncated commit log (local.recovery: truncate dropped the records it covers)",
			"path", p, "log_end", end)
	}
	if !removed {
		return nil
	}
	if err := atomicfile.SyncDir(e.dir("snapshot")); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot fsync "+e.dir("snapshot"))
	}
	e.snapOffsets = kept
	if loaded > end {
		return errSnapshotBeyondLog
	}
	return nil
}

// loadSnapshot returns the newest valid snapshot (or an empty one).
func (e *Engine) loadSnapshot() (*snapshot, error) {
	dir := e.dir("snapshot")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, domain.Wrap(domain.ReasonInternal, err, "cannot list "+dir)
	}
	var offs []int64
	for _, ent := range ents {
		name := ent.Name()
		if len(name) != 25 || filepath.Ext(name) != ".snap" {
			continue
		}
		off, err := strconv.ParseInt(name[:20], 10, 64)
		if err == nil && off >= 0 {
			offs = append(offs, off)
		}
	}
	slices.Sort(offs)
	e.snapOffsets = offs
	for i := len(offs) - 1; i >= 0; i-- {
		p := filepath.Join(dir, snapshotName(offs[i]))
		b, err := os.ReadFile(p)
		if err == nil {
			var s *snapshot
			if s, err = decodeSnapshot(b); err == nil && s.logOffset == offs[i] {
				return s, nil
			} else if err == nil {
				err = fmt.Errorf("%w: names offset %d but holds %d", errSnapshot, offs[i], s.logOffset)
			}
		}
		e.log.Warn("ignoring unreadable snapshot; falling back to an older one or a full replay", "path", p, "error", err)
	}
	return &snapshot{}, nil
}

func snapshotName(off int64) string { return fmt.Sprintf("%020d.snap", off) }

// openQueues opens the consume-queue files the snapshot knows, checked and
// truncated to the snapshot's entry counts, and removes the others: replay
// rebuilds every entry after the snapshot. Queues of an older format (when
// current is unset), with an entry that fails its checksum, or in force,
// are rebuilt from the log (e.rebuild).
func (e *Engine) openQueues(s *snapshot, current bool, force map[queueKey]bool) error {
	want := map[queueKey]int64{}
	for _, q := range s.queues {
		want[queueKey{q.topic, q.qid}] = q.count
	}
	root := e.dir("consumequeue")
	tdirs, err := os.ReadDir(root)
	if err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot list "+root)
	}
	for _, td := range tdirs {
		if !td.IsDir() {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(root, td.Name()))
		for _, f := range files {
			qid, err := strconv.ParseInt(f.Name(), 10, 32)
			p := filepath.Join(root, td.Name(), f.Name())
			if _, ok := want[queueKey{td.Name(), int32(qid)}]; err != nil || !ok {
				if err := os.Remove(p); err != nil {
					return domain.Wrap(domain.ReasonInternal, err, "cannot remove stale consume queue "+p)
				}
			}
		}
	}
	if !current && len(want) > 0 {
		e.log.Info("consume queues of an older format: rebuilding them from the commit log", "queues", len(want))
	}
	rebuild := func(k queueKey, n int64) error {
		if err := e.removeQueueFile(k); err != nil {
			return err
		}
		e.queueLocked(k.topic, k.qid)
		e.rebuild[k] = n
		return nil
	}
	e.recovery.begin(stepQueues)
	e.recovery.end.Store(int64(len(want)))
	for k, n := range want {
		e.recovery.read.Add(1)
		if !current || force[k] {
			if err := rebuild(k, n); err != nil {
				return err
			}
			continue
		}
		qi, err := e.openQueue(k)
		if err != nil {
			if hint := fileLimitHint(err, len(want)); hint != "" {
				return domain.Wrap(domain.ReasonInternal, err, hint)
			}
			return err
		}
		good, err := qi.cq.Check(n)
		if err != nil {
			return domain.Wrap(domain.ReasonInternal, err, "cannot check consume queue "+qi.cq.Path())
		}
		have := qi.cq.Count()
		if good < min(have, n) {
			e.log.Warn("consume queue entry fails its checksum; rebuilding the queue from the commit log", "path", qi.cq.Path(), "entry", good)
			_ = qi.cq.Close()
			delete(e.queues, k)
			if err := rebuild(k, n); err != nil {
				return err
			}
			continue
		}
		if have < n {
			// Fine if replay deletes the topic (its files went with a
			// deletion the snapshot does not cover yet); see
			// checkShortQueuesLocked.
			e.shortQueues[k] = have
		} else if err := qi.cq.TruncateTo(n); err != nil {
			return domain.Wrap(domain.ReasonInternal, err, "cannot truncate consume queue "+qi.cq.Path())
		}
		qi.count, qi.visible = n, n
	}
	return nil
}

// fileLimitHint says what to do when err is the process running out of
// file descriptors while the engine has that many consume queues ("" for
// other errors).
func fileLimitHint(err error, queues int) string {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
		return ""
	}
	return fmt.Sprintf("the process may open no more files: besides up to a quarter of its limit for the %d consume queues (files closed when not in use and opened again), the local broker holds every commit-log segment open, and each client connection takes one; "+
		"raise the open-file limit of rmqproxy (LimitNOFILE in its systemd unit, ulimit -n, or the container's nofile limit)", queues)
}

func (e *Engine) queuePath(k queueKey) string {
	return e.dir("consumequeue", k.topic, strconv.Itoa(int(k.qid)))
}

// openQueue opens the existing file of a queue the snapshot lists.
func (e *Engine) openQueue(k queueKey) (*queueIndex, error) {
	p := e.queuePath(k)
	cq, err := consumequeue.Open(p)
	if err != nil {
		return nil, domain.Wrap(domain.ReasonInternal, err, "cannot open consume queue "+p)
	}
	qi := &queueIndex{cq: cq}
	e.queues[k] = qi
	return qi, nil
}

// queueLocked returns the index of a queue, creating an empty one on first
// use. A new queue does no I/O: its file is created when its first entries
// are written (see consumequeue.Create), so applying a record never fails on
// a file.
func (e *Engine) queueLocked(topic string, qid int32) *queueIndex {
	k := queueKey{topic, qid}
	if qi, ok := e.queues[k]; ok {
		return qi
	}
	qi := &queueIndex{cq: consumequeue.Create(e.queuePath(k))}
	e.queues[k] = qi
	return qi
}

func (e *Engine) closeQueues() {
	for _, q := range e.queues {
		_ = q.cq.Close()
	}
}

// checkShortQueuesLocked fails recovery with a *shortQueuesError when a
// queue's file held fewer entries than the snapshot says and replay did not
// delete its topic: the file was damaged or removed.
func (e *Engine) checkShortQueuesLocked() error {
	var short shortQueuesError
	for k := range e.shortQueues {
		if e.queues[k] != nil {
			short.keys = append(short.keys, k)
		}
	}
	e.shortQueues = map[queueKey]int64{}
	if len(short.keys) > 0 {
		return &short
	}
	return nil
}

// adoptOrphansLocked runs once recovery is complete. It gives a definition
// to every topic and group that has messages or state but none (a data
// directory of an older version whose topics.json or groups.json was lost):
// the data stays reachable, with a warning saying what was assumed. When
// imported is set (definitions came from an older version's JSON files),
// it then records every definition in the log, waits for that to be
// durable, and renames the JSON files: from then on the log and the
// snapshots define topics and groups. The engine is open (appends work).
func (e *Engine) adoptOrphansLocked(imported bool) error {
	now := e.clock.Now().UTC().Truncate(time.Millisecond)
	queues := map[string]int32{}
	for k := range e.queues {
		queues[k.topic] = max(queues[k.topic], k.qid+1)
	}
	for k := range e.cons {
		queues[k.topic] = max(queues[k.topic], k.qid+1)
	}
	for k := range e.offsets {
		queues[k.topic] = max(queues[k.topic], k.qid+1)
	}
	for _, t := range e.txns {
		queues[t.topic] = max(queues[t.topic], t.qid+1)
	}
	var end int64
	for name, n := range queues {
		if _, ok := e.topics[name]; ok {
			continue
		}
		t := domain.Topic{Name: name, Type: domain.MessageTypeMixed, QueueCount: max(n, 1), Permission: domain.PermReadWrite,
			Description: "recovered from the commit log: its definition was missing", CreatedAt: now, UpdatedAt: now}
		if domain.IsDeadLetterTopic(name) {
			t.Type = domain.MessageTypeNormal
		}
		if err := t.Validate(); err != nil {
			e.log.Warn("the commit log holds messages of a topic without a definition and with an invalid name; they stay unreachable", "topic", name, "error", err)
			continue
		}
		_, pe, err := e.putTopicLocked(t, 0, true)
		if err != nil {
			return err
		}
		end = pe
		e.log.Warn("the commit log holds messages of a topic without a definition (meta/topics.json of an older version lost?); recreated it: check its type and queue count with `rmqproxy topic describe`",
			"topic", name, "type", t.Type.String(), "queues", t.QueueCount)
	}
	groups := map[string]bool{}
	for k := range e.cons {
		groups[k.group] = true
	}
	for k := range e.offsets {
		groups[k.group] = true
	}
	for name := range groups {
		if _, ok := e.groups[name]; ok {
			continue
		}
		if err := domain.ValidateGroupName(name); err != nil {
			continue
		}
		g := domain.NewConsumerGroup(name)
		g.CreatedAt, g.UpdatedAt = now, now
		g.Description = "recovered from the commit log: its definition was missing"
		_, pe, err := e.putGroupLocked(g, 0, true)
		if err != nil {
			return err
		}
		end = pe
		e.log.Warn("the commit log holds consumer state of a group without a definition (meta/groups.json of an older version lost?); recreated it with default settings: check them with `rmqproxy group describe`",
			"consumer_group", name)
	}
	if imported {
		// Record every definition, so that the log and the snapshots hold
		// them from now on (one record per topic or group).
		for _, t := range e.topics {
			if _, pe, err := e.putTopicLocked(t.Topic, t.incarnation, true); err != nil {
				return err
			} else {
				end = pe
			}
		}
		for _, g := range e.groups {
			if _, pe, err := e.putGroupLocked(g.ConsumerGroup, g.incarnation, true); err != nil {
				return err
			} else {
				end = pe
			}
		}
	}
	if end == 0 {
		return nil
	}
	if err := e.clog.Sync(context.Background(), end); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot record topic and group definitions in the commit log")
	}
	if imported {
		for _, name := range []string{topicsFile, groupsFile} {
			p := e.metaPath(name)
			if err := os.Rename(p, p+importedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				e.log.Warn("cannot rename an imported metadata file; it is ignored from now on, delete it", "path", p, "error", err)
			}
		}
		if err := atomicfile.SyncDir(e.dir("meta")); err != nil {
			e.log.Warn("cannot fsync the meta directory", "error", err)
		}
		e.log.Info("topic and group definitions imported from an older version's JSON files into the commit log",
			"topics", len(e.topics), "groups", len(e.groups))
	}
	return nil
}

// dispatchLocked appends a consume-queue entry at queue offset qoff for a
// message whose record ends at logEnd.
func (e *Engine) dispatchLocked(topic string, qid int32, qoff int64, ent consumequeue.Entry, logEnd int64) error {
	qi := e.queueLocked(topic, qid)
	switch {
	case qoff < qi.count:
		return nil // already indexed (idempotent replay)
	case qoff > qi.count:
		return domain.Errorf(domain.ReasonInternal,
			"consume queue %s has %d entries but the commit log holds queue offset %d; delete %s and %s to rebuild the indexes from the commit log",
			qi.cq.Path(), qi.count, qoff, e.dir("consumequeue"), e.dir("snapshot"))
	}
	if _, err := qi.cq.Append(ent); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot index message")
	}
	qi.count++
	if e.replaying {
		qi.visible = qi.count
		return nil
	}
	qi.pend = append(qi.pend, pendEntry{logEnd: logEnd})
	e.pendingQueues[queueKey{topic, qid}] = qi
	return nil
}

// applyRecordLocked applies one commit-log record to the in-memory state.
// Live operations append a record and apply it with this same function, so
// replay reproduces exactly what the live engine did.
func (e *Engine) applyRecordLocked(off, end int64, typ record.Type, p []byte) error {
	if typ != record.TypeMessageBatch {
		return e.applyStateRecordLocked(off, end, typ, p)
	}
	// Every send comes here, in a small stack frame. Indexing needs no
	// bodies, keys or properties: they are not copied. The decoder's room
	// is taken while in use, in case an apply ever applies another batch;
	// nothing applying a batch keeps its messages or locations (strings in
	// them are copies, or the topic's own name).
	d := e.batchDec
	e.batchDec = record.MetaDecoder{}
	b, locs, err := d.Decode(p, e.topicNameLocked)
	if err != nil {
		return undecodable(off, typ, err)
	}
	err = e.dispatchBatchLocked(off, end, &b, p, locs)
	e.batchDec = d
	return err
}

// topicNameLocked returns the name of the topic called name when there is
// one: a string that the engine holds already.
func (e *Engine) topicNameLocked(name []byte) (string, bool) {
	if t, ok := e.topics[string(name)]; ok {
		return t.Name, true
	}
	return "", false
}

func undecodable(off int64, typ record.Type, err error) error {
	return domain.Wrap(domain.ReasonInternal, err, fmt.Sprintf("commit-log record at offset %d (%s) has a valid checksum but cannot be decoded; was it written by a newer rmqproxy?", off, typ))
}

// applyStateRecordLocked applies the records other than message batches.
// Its stack frame is large (a slot for each record type's values): kept
// off the send path, it does not make every send's goroutine grow its
// stack.
func (e *Engine) applyStateRecordLocked(off, end int64, typ record.Type, p []byte) error {
	bad := func(err error) error { return undecodable(off, typ, err) }
	switch typ {
	case record.TypeDispatch:
		d, err := record.DecodeDispatch(p)
		if err != nil {
			return bad(err)
		}
		return e.dispatchLocked(d.Topic, d.QueueID, d.QueueOffset, consumequeue.Entry{
			CommitLogOffset: d.CommitLogOffset, Size: d.Size, CRC: d.CRC, TagHash: d.TagHash, StoredAtMs: d.StoredAt.UnixMilli(),
		}, end)
	case record.TypePop:
		pop, err := record.DecodePop(p)
		if err != nil {
			return bad(err)
		}
		e.applyPopLocked(&pop)
	case record.TypeAck:
		a, err := record.DecodeAckView(p) // the names only look the state up
		if err != nil {
			return bad(err)
		}
		if c := e.cons[consKey{a.Group, a.Topic, a.QueueID}]; c != nil {
			c.ack(a.Offset)
		}
	case record.TypeChangeInvisible:
		ci, err := record.DecodeChangeInvisible(p)
		if err != nil {
			return bad(err)
		}
		if c := e.cons[consKey{ci.Group, ci.Topic, ci.QueueID}]; c != nil {
			c.applyChangeInvisible(&ci)
		}
	case record.TypeDeadLetter:
		d, locs, err := record.DecodeDeadLetter(p)
		if err != nil {
			return bad(err)
		}
		if c := e.cons[consKey{d.Group, d.Topic, d.QueueID}]; c != nil {
			if cur := c.inflight[d.Offset]; cur != nil && cur.run != 0 && cur.inFlight() && len(d.Copy.Messages) > 0 &&
				cur.deadline <= d.Copy.Messages[0].StoredAt.UnixMilli() && !e.exhaustedLocked(cur) {
				// Moved after its invisible time passed, by a forward of
				// its outlived handle: it was visible again then, which
				// released the held messages of its run, but expiries are
				// not logged (replay sees it in flight): release them as
				// that expiry did, so that the move does not consume them.
				// One that used its last attempt was never visible again:
				// the reviver moves it with its run's held messages.
				c.releaseRun(cur)
			}
			c.consume(d.Offset)
		}
		// The copy's batch starts where its first message's length prefix
		// does; locations are relative to the payload already.
		return e.dispatchBatchLocked(off, end, &d.Copy, p, locs)
	case record.TypeResolve:
		r, locs, err := record.DecodeResolve(p)
		if err != nil {
			return bad(err)
		}
		if r.Kind.Timer() {
			e.timerDoneLocked(r.DeliverAt, r.Origin)
		} else {
			e.forgetTxnLocked(r.Origin)
		}
		if r.Copy != nil {
			return e.dispatchBatchLocked(off, end, r.Copy, p, locs)
		}
	case record.TypeTxnCheck:
		c, err := record.DecodeTxnCheck(p)
		if err != nil {
			return bad(err)
		}
		if st := e.txns[c.Origin]; st != nil {
			e.cow.touchTxn(c.Origin, st)
			st.checks, st.lastCheck = c.Checks, c.At.UnixMilli()
			e.scheduleTxnLocked(c.Origin, st)
		}
	case record.TypeOffsetCommit:
		o, err := record.DecodeOffsetCommit(p)
		if err != nil {
			return bad(err)
		}
		e.setOffsetLocked(consKey{o.Group, o.Topic, o.QueueID}, o.Offset)
	case record.TypeConsumerReset:
		r, err := record.DecodeConsumerReset(p)
		if err != nil {
			return bad(err)
		}
		e.applyConsumerResetLocked(&r)
	case record.TypeTopicDeleted:
		d, err := record.DecodeDeleted(p)
		if err != nil {
			return bad(err)
		}
		e.dropTopicStateLocked(d.Name, off, end)
		if t, ok := e.topics[d.Name]; ok && t.incarnation == d.Incarnation {
			delete(e.topics, d.Name)
		}
	case record.TypeGroupDeleted:
		d, err := record.DecodeDeleted(p)
		if err != nil {
			return bad(err)
		}
		e.dropGroupStateLocked(d.Name)
		if g, ok := e.groups[d.Name]; ok && g.incarnation == d.Incarnation {
			delete(e.groups, d.Name)
		}
	case record.TypeTopicPut:
		t, err := record.DecodeTopicPut(p)
		if err != nil {
			return bad(err)
		}
		e.applyTopicPutLocked(&t)
	case record.TypeGroupPut:
		g, err := record.DecodeGroupPut(p)
		if err != nil {
			return bad(err)
		}
		e.applyGroupPutLocked(&g)
	default:
		return bad(fmt.Errorf("unknown record type %d", typ))
	}
	return nil
}

func (e *Engine) dispatchBatchLocked(off, end int64, b *record.Batch, p []byte, locs []record.Location) error {
	if b.QueueOffset < 0 {
		e.deferBatchLocked(off, b, p, locs)
		return nil
	}
	for i, loc := range locs {
		ent := batchEntry(off, p, loc, &b.Messages[i])
		if err := e.dispatchLocked(b.Topic, b.QueueID, b.QueueOffset+int64(i), ent, end); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) applyPopLocked(p *record.Pop) {
	k := consKey{p.Group, p.Topic, p.QueueID}
	c := e.cons[k]
	if c == nil {
		c = newConsState(k, &e.heap)
		e.addConsLocked(c)
	}
	c.applyPop(p)
}

// dropTopicStateLocked drops the state of a deleted topic; off and end are
// the log offset and end of the deletion record. The topic's consume-queue
// files stay until the deletion is durable and covered by every snapshot
// that may be written with them (see removeQueuesLocked): a crash before
// must find them as a snapshot lists them, or find a deletion to replay.
func (e *Engine) dropTopicStateLocked(topic string, off, end int64) {
	rm := queueRemoval{topic: topic, end: end}
	for k, q := range e.queues {
		if k.topic == topic {
			rm.queues = append(rm.queues, q.cq)
			delete(e.queues, k)
			delete(e.pendingQueues, k)
			delete(e.shortQueues, k)
		}
	}
	e.removals = append(e.removals, rm)
	e.dropConsStateLocked(func(k consKey) bool { return k.topic == topic })
	// Half messages are in memory: drop them now. Timers are on disk: the
	// timer service drops those stored before the deletion when they fire.
	for o, t := range e.txns {
		if t.topic == topic {
			e.cow.touchTxn(o, t)
			delete(e.txns, o)
		}
	}
	e.compactTxnHeapLocked()
	e.topicDeletedAt[topic] = off
	e.wakeTopicLocked(topic)
}

// addConsLocked adds a consumer state to e.cons and to its group's index.
func (e *Engine) addConsLocked(c *consState) {
	c.cow = &e.cow
	if e.cow.active {
		c.snapGen = e.cow.gen // not at the capture's log offset: left out
	}
	e.cons[c.key] = c
	byQueue := e.groupCons[c.key.group]
	if byQueue == nil {
		byQueue = map[queueKey]*consState{}
		e.groupCons[c.key.group] = byQueue
	}
	byQueue[queueKey{c.key.topic, c.key.qid}] = c
}

// groupConsLocked returns the consumer states of a group, sorted by topic
// and queue id: those of its index, not a walk of every group's.
func (e *Engine) groupConsLocked(group string) []*consState {
	byQueue := e.groupCons[group]
	e.statesVisited += int64(len(byQueue))
	out := make([]*consState, 0, len(byQueue))
	for _, c := range byQueue {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *consState) int { return cmpKey(a.key, b.key) })
	return out
}

// setOffsetLocked sets a pull consumer's committed offset.
func (e *Engine) setOffsetLocked(k consKey, off int64) {
	e.offsets[k] = off
	e.noteKeyLocked(k)
}

// noteKeyLocked records in the group's index that k has a gate or an
// offset.
func (e *Engine) noteKeyLocked(k consKey) {
	keys := e.groupKeys[k.group]
	if keys == nil {
		keys = map[queueKey]struct{}{}
		e.groupKeys[k.group] = keys
	}
	keys[queueKey{k.topic, k.qid}] = struct{}{}
}

// forgetKeyLocked removes k from the group's index once it has neither a
// gate nor an offset.
func (e *Engine) forgetKeyLocked(k consKey) {
	if _, ok := e.offsets[k]; ok || e.gates[k] != nil {
		return
	}
	keys := e.groupKeys[k.group]
	delete(keys, queueKey{k.topic, k.qid})
	if len(keys) == 0 {
		delete(e.groupKeys, k.group)
	}
}

// dropGroupStateLocked drops what the engine keeps for a deleted group:
// the states, gates and offsets its indexes list (not a walk of every
// group's).
func (e *Engine) dropGroupStateLocked(group string) {
	for qk, c := range e.groupCons[group] {
		c.release()
		delete(e.cons, consKey{group, qk.topic, qk.qid})
	}
	delete(e.groupCons, group)
	for qk := range e.groupKeys[group] {
		k := consKey{group, qk.topic, qk.qid}
		delete(e.gates, k)
		delete(e.offsets, k)
	}
	delete(e.groupKeys, group)
}

// dropConsStateLocked drops what the engine keeps for the groups on the
// queues that drop matches: pop state, pop gates and pull offsets.
func (e *Engine) dropConsStateLocked(drop func(consKey) bool) {
	for k, c := range e.cons {
		if drop(k) {
			c.release()
			delete(e.cons, k)
			byQueue := e.groupCons[k.group]
			delete(byQueue, queueKey{k.topic, k.qid})
			if len(byQueue) == 0 {
				delete(e.groupCons, k.group)
			}
		}
	}
	for k := range e.gates {
		if drop(k) {
			delete(e.gates, k)
			e.forgetKeyLocked(k)
		}
	}
	for k := range e.offsets {
		if drop(k) {
			delete(e.offsets, k)
			e.forgetKeyLocked(k)
		}
	}
}

// queueRemoval is the consume-queue files of a deleted topic, to remove once
// the log is durable up to end.
type queueRemoval struct {
	topic  string
	end    int64
	queues []*consumequeue.Queue
}

// removeQueuesLocked closes and deletes the consume-queue files of topics
// whose deletion record ends at or before upTo, which must be durable: no
// recovery can then need them (a snapshot that lists them is followed by
// the deletion in the log). It runs with snapMu held, or while nothing else
// runs (Start), so that no snapshot is writing these queues meanwhile. A
// new queue of the same name creates its file only after this, so the files
// removed are never its own: flushQueues does not write a queue whose topic
// has a removal pending (with flush: async its entries are visible before
// the deletion is durable), and Snapshot runs this before it writes any
// queue, once the log is durable up to its offset, which every pending
// removal ends before.
func (e *Engine) removeQueuesLocked(upTo int64) {
	keep := e.removals[:0]
	for _, rm := range e.removals {
		if rm.end > upTo {
			keep = append(keep, rm)
			continue
		}
		for _, q := range rm.queues {
			if err := q.Remove(); err != nil {
				e.log.Warn("cannot remove a consume queue of a deleted topic; delete it by hand", "topic", rm.topic, "error", err)
			}
		}
		// The directory goes when it is empty (a later incarnation's
		// files, if any, keep it).
		_ = os.Remove(e.dir("consumequeue", rm.topic))
	}
	e.removals = keep
}

// promoteLocked makes entries whose records are now stored visible and wakes
// the pollers of their topics.
func (e *Engine) promoteLocked() {
	if len(e.pendingQueues) == 0 || e.clog == nil {
		return
	}
	vis := e.clog.VisibleOffset()
	for k, q := range e.pendingQueues {
		if n := q.promote(vis); n > 0 {
			e.wakeLocked(k, "", false, n)
		}
		if len(q.pend) == 0 {
			delete(e.pendingQueues, k)
		}
	}
}

// reviveDueLocked handles every delivery whose invisible time has passed:
// it becomes visible again, or goes to the dead-letter queue when it used
// its group's last delivery attempt. The message of such a delivery is
// read without the engine lock, by the reviver before its pass (dlqPre):
// one it has not read stops the revival there (what is due behind it waits
// for that pass) and kicks the reviver, which reads it and runs again.
// It reports whether it stopped so.
//
// Deliveries that merely become visible again are taken out of the heap
// and revived together, per consumer state, before any dead-letter move
// and at the end: their deadlines need not follow their offsets, and one
// revival at a time inserted each offset into the sorted visible indexes,
// quadratic in the deliveries of a queue (2 s under the engine lock for
// 100,000, as a start after a long downtime revives every delivery in
// flight; BenchmarkReviveMany).
func (e *Engine) reviveDueLocked(now time.Time) (stopped bool) {
	ms := now.UnixMilli()
	var batch map[*consState][]*delivery
	flush := func() {
		for c, ds := range batch {
			c.reviveAll(ds)
			e.wakeLocked(queueKey{c.key.topic, c.key.qid}, c.key.group, false, len(ds))
		}
		clear(batch)
	}
	defer flush()
	for len(e.heap) > 0 && e.heap[0].deadline <= ms {
		d := e.heap[0]
		c := d.cs
		if !e.exhaustedLocked(d) || d.keepAttempt || e.state != stateOpen {
			e.heap.remove(d)
			if batch == nil {
				batch = map[*consState][]*delivery{}
			}
			batch[c] = append(batch[c], d)
			continue
		}
		flush()
		pre := e.dlqPre[dlqKey{c, d.offset}]
		if pre == nil {
			e.kickReviver()
			return true
		}
		err := pre.err
		if err == nil {
			// As through a RocketMQ broker, which redelivers the message
			// once more and whose proxy forwards that delivery: the copy
			// counts it too.
			_, err = e.deadLetterEndLocked(context.Background(), c.key, d.offset, d.receipt, nextAttempt(d.attempt, 0), now, pre.read)
		}
		if err == nil && d.hidx < 0 {
			continue // consumed (or held, in a FIFO run): out of the heap
		}
		e.warnLimited("dead-letter", "cannot move a message to the dead-letter queue; it stays visible", "consumer_group", c.key.group,
			"topic", c.key.topic, "queue_id", c.key.qid, "queue_offset", d.offset, "error", err)
		c.revive(d)
		e.wakeLocked(queueKey{c.key.topic, c.key.qid}, c.key.group, false, 1)
	}
	return false
}

// exhaustedLocked reports whether a delivery used its group's last
// delivery attempt. A dead-letter copy's attempts count on from its prior
// ones (see nextAttempt), as RocketMQ's reconsume times do.
func (e *Engine) exhaustedLocked(d *delivery) bool {
	limit := int32(domain.DefaultMaxDeliveryAttempts)
	if g := e.groups[d.cs.key.group]; g != nil {
		limit = g.MaxDeliveryAttempts
	}
	return d.attempt >= limit
}

// dlqKey names a delivery's message: its consumer state and offset.
type dlqKey struct {
	cs  *consState
	off int64
}

// dlqRead is the message of an exhausted delivery read by the reviver
// without the engine lock, or why it could not be read.
type dlqRead struct {
	read *popRead
	err  error
}

// reviveReadLimit bounds how many due deliveries the reviver looks at, and
// how many exhausted ones it reads, before a pass.
const reviveReadLimit = 4096

// exhaustedDue lists, in deadline order, the due deliveries that used their
// last attempt (at most timerFireBatch of the first reviveReadLimit), with
// what reading their messages without the lock needs.
func (e *Engine) exhaustedDueLocked(nowMs int64) []exhaustedDue {
	var out []exhaustedDue
	visited := 0
	walkHeapInOrder(len(e.heap), e.heap.Less, func(i int) bool {
		d := e.heap[i]
		if d.deadline > nowMs || visited >= reviveReadLimit || len(out) >= timerFireBatch {
			return false
		}
		visited++
		if e.exhaustedLocked(d) && !d.keepAttempt {
			x := exhaustedDue{key: dlqKey{d.cs, d.offset}, topic: d.cs.key.topic, start: e.clog.StartOffset()}
			if qi := e.queues[queueKey{d.cs.key.topic, d.cs.key.qid}]; qi != nil {
				x.cq = qi.cq
			}
			out = append(out, x)
		}
		return true
	})
	return out
}

// exhaustedDue is an exhausted delivery to read before a reviver pass.
type exhaustedDue struct {
	key   dlqKey
	topic string
	cq    *consumequeue.Queue
	start int64
}

// readExhausted reads the messages of exhausted deliveries; it needs no
// engine lock. The map is never nil.
func (e *Engine) readExhausted(due []exhaustedDue) map[dlqKey]*dlqRead {
	out := make(map[dlqKey]*dlqRead, len(due))
	for _, x := range due {
		if x.cq == nil {
			out[x.key] = &dlqRead{err: domain.Errorf(domain.ReasonInternal, "queue %s#%d has no index", x.topic, x.key.cs.key.qid)}
			continue
		}
		cache := map[int64]*popRead{}
		err := e.readForPop(x.topic, x.cq, x.start, []int64{x.key.off}, filter.All, cache)
		out[x.key] = &dlqRead{read: cache[x.key.off], err: err}
	}
	return out
}

// nextDeadline returns the earliest pending deadline.
func (e *Engine) nextDeadlineLocked() (int64, bool) {
	if len(e.heap) == 0 {
		return 0, false
	}
	return e.heap[0].deadline, true
}

func (e *Engine) notifyLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case <-e.advance:
			e.mu.Lock()
			e.promoteLocked()
			if e.tw.waitLog {
				e.tw.waitLog = false
				kick(e.timerKick)
			}
			e.mu.Unlock()
		}
	}
}

func (e *Engine) kickReviver() {
	select {
	case e.reviveKick <- struct{}{}:
	default:
	}
}

// revivePass reads the messages of the exhausted deliveries that are due
// without the engine lock, then revives (or dead-letters) what is due under
// it. It returns how long until the next deadline, and whether it stopped
// at an exhausted delivery it had not read (see reviveDueLocked).
func (e *Engine) revivePass() (wait time.Duration, stopped bool) {
	e.mu.Lock()
	due := e.exhaustedDueLocked(e.clock.Now().UnixMilli())
	e.mu.Unlock()
	pre := e.readExhausted(due)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock.Now()
	e.dlqPre = pre
	stopped = e.reviveDueLocked(now)
	e.dlqPre = nil
	wait = time.Hour
	if d, ok := e.nextDeadlineLocked(); ok {
		wait = max(time.UnixMilli(d).Sub(now), time.Millisecond)
	}
	return wait, stopped
}

// reviveLoopPaused, when set (tests), makes the background reviver skip
// its passes, so that a test drives them (revivePass) at the points it
// chooses.
var reviveLoopPaused atomic.Bool

func (e *Engine) reviveLoop() {
	defer e.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait, stopped := time.Hour, false
		if !reviveLoopPaused.Load() {
			wait, stopped = e.revivePass()
		}
		if stopped {
			select {
			case <-e.stop:
				return
			default:
				continue // an exhausted delivery came due after the read: read it
			}
		}
		timer.Reset(wait)
		select {
		case <-e.stop:
			return
		case <-e.reviveKick:
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

// flushQueueTick is how often visible consume-queue entries are written to
// their files (not fsynced: snapshots fsync them).
const flushQueueTick = time.Second

func (e *Engine) maintenanceLoop() {
	defer e.wg.Done()
	flush := time.NewTicker(flushQueueTick)
	defer flush.Stop()
	snap := time.NewTicker(e.cfg.SnapshotInterval)
	defer snap.Stop()
	ctx := e.bgCtx
	for {
		select {
		case <-e.stop:
			return
		case <-flush.C:
			e.flushQueues()
			e.dropIdleRecallIndex()
		case <-snap.C:
			if err := e.Snapshot(ctx); err != nil && ctx.Err() == nil {
				e.warnLimited("snapshot", "periodic snapshot failed; will retry", "error", err)
			}
			// Retention runs even when the snapshot failed (a full disk):
			// deleting old segments may be what makes room.
			if err := e.applyRetention(); err != nil {
				e.warnLimited("retention", "retention failed; will retry", "error", err)
			}
		}
	}
}

// flushQueues writes visible consume-queue entries and buffered timer-index
// entries to their files.
func (e *Engine) flushQueues() {
	type job struct {
		q  *consumequeue.Queue
		to int64
	}
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	e.mu.Lock()
	if e.clog != nil {
		e.removeQueuesLocked(e.clog.SyncedOffset())
	}
	// A queue of a topic whose older incarnation's files are still to be
	// removed is not written yet: its file would be created at the path of
	// the old one (truncating it before the deletion is durable), and the
	// removal would then unlink the live file. With flush: async its
	// entries are visible before the deletion is durable; they stay in
	// memory until the next flush after it is.
	removing := make(map[string]bool, len(e.removals))
	for _, rm := range e.removals {
		removing[rm.topic] = true
	}
	jobs := make([]job, 0, len(e.queues))
	for k, q := range e.queues {
		if !removing[k.topic] {
			jobs = append(jobs, job{q.cq, q.visible})
		}
	}
	var buckets []*timerindex.Bucket
	if e.timers != nil {
		for _, b := range e.timers.Buckets() {
			if b.Dirty() {
				buckets = append(buckets, b)
			}
		}
	}
	queues := len(e.queues)
	e.mu.Unlock()
	for _, j := range jobs {
		if err := j.q.Flush(j.to); err != nil && !errors.Is(err, consumequeue.ErrClosed) {
			msg := "cannot write consume queue; will retry"
			if hint := fileLimitHint(err, queues); hint != "" {
				msg += ": " + hint
			}
			e.warnLimited("flush-queue", msg, "path", j.q.Path(), "error", err)
		}
	}
	for _, b := range buckets {
		if err := b.Flush(-1); err != nil && !errors.Is(err, timerindex.ErrRemoved) {
			e.warnLimited("flush-bucket", "cannot write timer index bucket; will retry", "path", b.Path(), "error", err)
		}
	}
}

// Snapshot checkpoints consumer state and queue counts: it makes the commit
// log durable up to the covered offset, writes and fsyncs the consume queues
// up to the covered counts, then atomically writes the snapshot file. It
// runs periodically and at Close; tests call it directly. None is written
// in the failed state: live state may then differ from what replay builds,
// and a snapshot covering the record whose apply failed would make every
// later start skip it instead of recovering from the commit log.
func (e *Engine) Snapshot(ctx context.Context) error {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	e.mu.Lock()
	if e.state != stateOpen {
		e.mu.Unlock()
		return unavailable()
	}
	if e.failed != nil {
		e.mu.Unlock()
		return e.failedError()
	}
	clog := e.clog
	off := clog.NextOffset()
	if n := len(e.snapOffsets); n > 0 && e.snapOffsets[n-1] == off {
		e.mu.Unlock()
		return nil // nothing happened since the last snapshot
	}
	capture := e.beginCaptureLocked(off)
	s := capture.s
	// The files of topics deleted before off go first (their deletion is
	// made durable below, before anything is written): a recreated topic's
	// new file must not be removed after it was written.
	removals := e.removals
	type job struct {
		q  *consumequeue.Queue
		to int64
	}
	jobs := make([]job, 0, len(e.queues))
	for _, sq := range s.queues {
		jobs = append(jobs, job{e.queues[queueKey{sq.topic, sq.qid}].cq, sq.count})
	}
	type bucketJob struct {
		b  *timerindex.Bucket
		to int64
	}
	bjobs := make([]bucketJob, 0, len(s.timers))
	for _, st := range s.timers {
		bjobs = append(bjobs, bucketJob{e.timers.Bucket(st.Start), st.Length})
	}
	e.mu.Unlock()
	capture.finish(e) // the consumer states, in batches under the lock
	s.sortCanonical() // sorted and encoded without the engine lock
	err := e.writeSnapshot(ctx, clog, s, func() error {
		if len(removals) > 0 {
			e.mu.Lock()
			e.removeQueuesLocked(s.logOffset)
			e.mu.Unlock()
		}
		for _, j := range jobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := j.q.Flush(j.to); err != nil {
				return err
			}
			if err := j.q.Sync(); err != nil {
				return err
			}
		}
		for _, j := range bjobs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := j.b.Flush(j.to); err != nil {
				return err
			}
			if err := j.b.Sync(); err != nil {
				return err
			}
		}
		if len(bjobs) > 0 {
			return atomicfile.SyncDir(e.dir("timer"))
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.removeDrainedBuckets(s)
	return nil
}

// removeDrainedBuckets deletes the files of timer buckets whose timers are
// all resolved, once neither kept snapshot lists them (recovery from either
// then deletes them anyway; see timerindex.Open).
func (e *Engine) removeDrainedBuckets(s *snapshot) {
	listed := make(map[int64]bool, len(s.timers))
	for _, b := range s.timers {
		listed[b.Start] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.timers.Buckets() {
		if st := b.State(); st.Adds <= st.Dones && !listed[st.Start] && !e.snapBuckets[st.Start] {
			if err := e.timers.Remove(st.Start); err != nil {
				e.log.Warn("cannot remove a drained timer bucket; will retry", "error", err)
			}
		}
	}
	e.snapBuckets = listed
}

func (e *Engine) writeSnapshot(ctx context.Context, clog *commitlog.Log, s *snapshot, flushQueues func() error) error {
	if err := clog.Sync(ctx, s.logOffset); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "snapshot: cannot make the commit log durable")
	}
	if err := flushQueues(); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "snapshot: cannot write consume queues")
	}
	p := e.dir("snapshot", snapshotName(s.logOffset))
	if err := atomicfile.Write(p, encodeSnapshot(s)); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "snapshot: cannot write "+p)
	}
	e.snapOffsets = append(e.snapOffsets, s.logOffset)
	for len(e.snapOffsets) > keptSnapshots {
		old := e.dir("snapshot", snapshotName(e.snapOffsets[0]))
		if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.log.Warn("cannot remove old snapshot", "path", old, "error", err)
			break
		}
		e.snapOffsets = e.snapOffsets[1:]
	}
	e.log.Debug("snapshot written", "path", p, "log_offset", s.logOffset, "queues", len(s.queues), "states", len(s.states))
	return nil
}

// applyRetention deletes whole commit-log segments older than the retention
// that every kept snapshot has moved past and that hold no pending delay or
// half message.
func (e *Engine) applyRetention() error {
	if e.cfg.Retention <= 0 {
		return nil
	}
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	if len(e.snapOffsets) == 0 {
		return nil
	}
	e.mu.Lock()
	clog := e.clog
	limit := e.snapOffsets[0]
	if pinned, ok := e.pinnedOffsetLocked(); ok {
		limit = min(limit, pinned)
	}
	e.mu.Unlock()
	if clog == nil {
		return nil
	}
	n, err := clog.RemoveBefore(limit, e.clock.Now().Add(-e.cfg.Retention))
	if n > 0 {
		e.log.Info("retention deleted commit-log segments", "segments", n, "log_start", clog.StartOffset())
	}
	e.mu.Lock()
	e.forgetDeletionsBeforeLocked(clog.StartOffset())
	e.mu.Unlock()
	return err
}

// forgetDeletionsBeforeLocked forgets the topic deletions at offsets before
// start, the log's first offset: every deferred message still pending is
// at or after start (it pins its segment), so none was stored before such a
// deletion. topicDeletedAt holds one entry per topic name ever deleted;
// this bounds it by the deletions retention has kept.
func (e *Engine) forgetDeletionsBeforeLocked(start int64) {
	for t, off := range e.topicDeletedAt {
		if off < start {
			delete(e.topicDeletedAt, t)
		}
	}
}

// checkWritableLocked is checkOpenLocked for calls that append records.
// (The failed state joins it.)
func (e *Engine) checkWritableLocked() error {
	return e.checkOpenLocked()
}

func unavailable() error {
	return domain.Errorf(domain.ReasonUnavailable, "the local broker is not running (starting or shutting down); retry")
}

// Close stops the background goroutines, writes a final snapshot, writes and
// fsyncs everything pending, closes the files and, last, unlocks the data
// directory. Waiting senders get their durable answer; new calls fail with
// ReasonUnavailable. ctx bounds the wait: when it ends, Close returns its
// error without waiting for a stuck write, and the data directory stays
// locked until the writer has stopped — in practice until the process
// exits, which releases the lock.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.state != stateOpen {
		e.mu.Unlock()
		return nil
	}
	failed := e.failed != nil
	e.mu.Unlock()
	e.stopGoroutines()
	var snapErr error
	if !failed { // (the next start replays the log instead; see Snapshot)
		snapErr = e.Snapshot(ctx)
	}
	e.snapMu.Lock()
	e.mu.Lock()
	e.state = stateClosed
	e.phase.Store(phaseClosed)
	clog := e.clog
	e.mu.Unlock()
	e.snapMu.Unlock()
	err := clog.Close(ctx)
	e.mu.Lock()
	e.closeQueues()
	// The data directory is unlocked only once the commit-log writer has
	// stopped (after writing and fsyncing what was pending): another
	// process must never open the log while this one may still write it.
	stopped := true
	select {
	case <-clog.Done():
		_ = e.lock.Close()
	default:
		stopped = false
	}
	e.mu.Unlock()
	if !stopped {
		e.log.WarnContext(ctx, "the commit-log writer did not stop in time (shutdown.engineClose); it goes on writing what is pending, and the data directory stays locked until rmqproxy exits",
			"pending_bytes", clog.PendingBytes())
	}
	if err = errors.Join(snapErr, err); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "local broker did not close cleanly")
	}
	e.log.InfoContext(ctx, "local broker closed")
	return nil
}

func (e *Engine) stopGoroutines() {
	e.mu.Lock()
	select {
	case <-e.stop:
	default:
		close(e.stop)
		e.bgCancel()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// crash abandons the engine as kill -9 would: goroutines stop, nothing
// pending is written, no snapshot, consume-queue tails are lost.
func (e *Engine) crash() {
	e.stopGoroutines()
	e.mu.Lock()
	e.state = stateClosed
	e.phase.Store(phaseClosed)
	clog := e.clog
	e.mu.Unlock()
	clog.Abandon()
	e.mu.Lock()
	e.closeQueues()
	_ = e.lock.Close()
	e.mu.Unlock()
}

// Stats are counters of the engine's commit log, for metrics and benchmarks.
type Stats struct {
	LogAppends int64 // records appended since Start
	LogWrites  int64 // write(2) calls
	LogFsyncs  int64 // fdatasync calls; LogFsyncs/LogAppends shows group commit at work
	LogBytes   int64 // bytes written
	LogStart   int64 // first commit-log offset still on disk
	LogEnd     int64 // next commit-log offset
	LogSynced  int64 // commit-log offset up to which the log is fsynced

	TimerBuckets        int // timing-wheel bucket files
	TimersLoaded        int // pending timers of the buckets loaded in memory
	PendingTransactions int // half messages neither committed nor rolled back
	Topics, Groups      int // topics and consumer groups defined
}

// Stats returns the current counters (zero before Start).
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	clog := e.clog
	var buckets, loaded, txns int
	if e.timers != nil {
		buckets, loaded, txns = e.timers.Len(), len(e.tw.live), len(e.txns)
	}
	topics, groups := len(e.topics), len(e.groups)
	e.mu.Unlock()
	if clog == nil {
		return Stats{}
	}
	s := clog.Stats()
	return Stats{LogAppends: s.Appends, LogWrites: s.Writes, LogFsyncs: s.Fsyncs, LogBytes: s.Bytes,
		LogStart: clog.StartOffset(), LogEnd: clog.NextOffset(), LogSynced: clog.SyncedOffset(),
		TimerBuckets: buckets, TimersLoaded: loaded, PendingTransactions: txns, Topics: topics, Groups: groups}
}
