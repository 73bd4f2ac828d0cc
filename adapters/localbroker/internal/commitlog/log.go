// Package commitlog is the local broker's append-only, segmented commit log
// with group commit.
//
// One log holds every record of the broker (messages and consumer state).
// Segment files live in one directory and are named by the 20-digit,
// zero-padded logical offset of their first byte; the logical offset of a
// record is its byte position in the whole log. A record never spans two
// segments: when it does not fit, the log rolls to a new segment whose base
// is the current end (segments therefore have variable sizes, and logical
// offsets have no holes). See frame.go for the frame layout.
//
// Writes come from one writer goroutine owned by the Log. Appenders get
// their offset synchronously (under a mutex), and the writer drains all
// pending frames, writes them with one write per segment and, when any of
// them asked for durability, calls fdatasync once for the whole group before
// waking every waiter (group commit).
//
// Bounded memory and a full disk: the bytes appended but not yet written
// are bounded by Options.MaxPending (Append fails with [ErrBusy] beyond it;
// [Log.WaitRoom] waits for room). A write that fails with ENOSPC is not a
// failure: the writer truncates the partial write away, keeps the records,
// enters the disk-full state and writes them again once there is room. It
// makes room at once by shrinking a ballast file (Options.Reserve bytes,
// Options.ReserveFile) that it keeps at full size while the disk has space: while
// the disk is full, only record types Options.ReserveType accepts (small
// consumer-state records) are appended; the others fail with [ErrDiskFull].
// The log leaves the disk-full state by itself once it could grow the
// ballast back. Any other write error, and every fdatasync error, is
// permanent: the log refuses every append until it is reopened (a failed
// fsync may have dropped dirty pages; retrying would hide data loss).
//
// Invariants callers rely on:
//   - offsets are assigned in the order Append calls return, and bytes
//     become visible ([Log.VisibleOffset]) and durable in that order;
//   - with FlushSync, VisibleOffset only covers fdatasync'ed bytes, so a
//     reader never sees a record that a crash could still take away;
//   - Open never panics on any file content: a bad tail is truncated, bad
//     data followed by valid records is refused (or truncated on request)
//     with a *CorruptionError.
package commitlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// FlushPolicy says when appended bytes count as durable.
type FlushPolicy int

// Flush policies.
const (
	// FlushSync: a durable append completes after fdatasync.
	FlushSync FlushPolicy = iota
	// FlushAsync: an append completes after write(2); fdatasync runs every
	// FlushInterval. A power failure loses up to one interval of writes;
	// a process crash loses nothing that was written.
	FlushAsync
)

// RecoveryMode says what Open does with a bad record followed by valid ones.
type RecoveryMode int

// Recovery modes.
const (
	RecoveryStrict   RecoveryMode = iota // refuse to open
	RecoveryTruncate                     // truncate at the bad record
)

// Options configure a Log.
type Options struct {
	Dir           string
	SegmentSize   int64
	MaxRecordSize int64
	Flush         FlushPolicy
	FlushInterval time.Duration
	Recovery      RecoveryMode
	Logger        *slog.Logger
	// KnownType reports whether a type byte is valid; frames with another
	// type are treated as corrupt.
	KnownType func(byte) bool
	// OnAdvance is called by the writer goroutine each time VisibleOffset
	// grows. It must not block.
	OnAdvance func(visible int64)
	// MaxPending bounds the bytes appended but not yet written (0: no
	// bound). Appends fail with ErrBusy when it would be exceeded, except
	// that types ReserveType accepts may use up to twice it, and a record
	// always fits when nothing is pending.
	MaxPending int64
	// Reserve is the size of the ballast file ReserveFile, given up to make
	// room for consumer-state records when the disk is full (0: none).
	Reserve int64
	// ReserveFile is the ballast file's path (default Dir/reserve); it
	// should be on the log's file system.
	ReserveFile string
	// ReserveType reports whether records of a type may be appended while
	// the disk is full (nil: none may).
	ReserveType func(byte) bool
	// Sync replaces fdatasync (fault-injection tests).
	Sync func(*os.File) error
	// OnSync, when set, is told the duration and outcome of each fdatasync
	// of a segment (metrics); it runs on the writer and must not block.
	OnSync func(time.Duration, error)
	// DiskRetry is how often a write waiting for disk space is tried again
	// (default one second).
	DiskRetry time.Duration
	// Preallocate, when > 0, keeps zeros written up to this many bytes
	// ahead of the records of the active segment, so that an append
	// overwrites blocks the file has already written instead of growing it:
	// its fdatasync then flushes the data only, not also a new file size
	// (on ext4 a journal commit for every sync). The zeros are written in
	// steps of Preallocate bytes, never past SegmentSize, and the active
	// segment is cut back to its records before the log rolls. Open reads
	// the zeros after the last record as the log's end. 0: segments grow
	// by appending.
	Preallocate int64
	// SyncedBefore tells Open that every record before this offset was
	// fdatasynced (the snapshot recovery starts from covers them): a bad
	// frame there is damage, never a torn write or a power loss's hole,
	// and recovery: strict refuses it wherever it lies. 0: nothing known.
	SyncedBefore int64
	// GroupCommitWait, with FlushSync, is the longest the writer waits
	// for more durable appends before it writes and syncs a group, when the
	// previous group had several (see gather). 0: it never waits.
	GroupCommitWait time.Duration
}

// Errors.
var (
	ErrClosed   = errors.New("commit log closed")
	ErrTooLarge = errors.New("record larger than the maximum record size")
	ErrGone     = errors.New("offset is before the first segment (deleted by retention)")
	// ErrBusy: too many bytes wait to be written (Options.MaxPending).
	ErrBusy = errors.New("too many bytes wait to be written to the commit log")
	// ErrDiskFull: the disk is full and the record's type may not use the
	// reserve.
	ErrDiskFull = errors.New("the disk is full")
	// ErrFailed is wrapped by every error of a log that failed for good
	// (see Failure).
	ErrFailed = errors.New("the log is read-only until it is reopened")
)

// CorruptionError reports a bad record followed by valid data.
type CorruptionError struct {
	Segment string // path of the segment file
	Offset  int64  // logical offset of the bad record
	Reason  string
	Dropped int64 // bytes from Offset to the end of the log
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("commit log is corrupt at offset %d (segment %s, byte %s of the segment: %s) and %d bytes follow, some of them valid records; "+
		"it cannot be replayed past this point. To start anyway and drop everything from offset %d on (messages and acknowledgements stored after it are lost), set local.recovery: truncate; otherwise restore the data directory from a backup",
		e.Offset, e.Segment, segmentPosHint(e), e.Reason, e.Dropped, e.Offset)
}

func segmentPosHint(e *CorruptionError) string {
	base, err := strconv.ParseInt(filepath.Base(e.Segment), 10, 64)
	if err != nil {
		return "?"
	}
	return strconv.FormatInt(e.Offset-base, 10)
}

// Stats are cumulative counters.
type Stats struct {
	Appends int64 // records appended
	Writes  int64 // write(2) calls
	Fsyncs  int64 // fdatasync calls
	Bytes   int64 // bytes written
}

type segment struct {
	base int64
	f    *os.File
	path string
	size atomic.Int64 // bytes of records (grows only for the active segment)
	// fileSize is the file's length: size plus the zeros written ahead of
	// the records (Options.Preallocate). Writer goroutine only after Open.
	fileSize int64
}

type batch struct {
	base int64
	roll bool // create a new segment at base before writing
	buf  []byte
}

// Log is an open commit log.
type Log struct {
	opts Options
	log  *slog.Logger

	// Lock order: mu and segMu are never held together; advMu is a leaf.
	// mu guards offset assignment, pending frames and closing/failure state.
	mu         sync.Mutex
	next       int64 // next offset to assign
	assignBase int64 // base of the segment the next record goes to
	pending    []*batch
	wantSync   bool
	// durableAppends counts the pending appends some caller waits on.
	durableAppends int
	forceSyncTo    int64
	closing        bool
	failure        error
	spare          []*batch     // written batches, reused (with their buffers) by the next
	segMu          sync.RWMutex // guards segs
	segs           []*segment
	written        atomic.Int64
	synced         atomic.Int64
	advMu          sync.Mutex
	advCh          chan struct{}
	kick           chan struct{}
	stop           chan struct{}
	done           chan struct{}
	abandon        atomic.Bool
	closeOnExit    atomic.Bool
	stopOnce       sync.Once
	stats          struct{ appends, writes, fsyncs, bytes atomic.Int64 }
	failed         atomic.Pointer[error]
	// searchWork counts the bytes recovery examined looking for valid
	// records after a bad one (tests check it stays bounded).
	searchWork int64

	// full is set while the disk is full (see the package comment); it is
	// written by the writer goroutine only. reserve is the ballast file's
	// current size (writer goroutine only after Open).
	full     atomic.Bool
	fullErr  atomic.Pointer[error] // the ENOSPC error that set full
	reserve  int64
	waitDisk atomic.Int64 // bytes held back for lack of space
	// stuck is set while records are held back with no room left to
	// make (the reserve is used up): only freed space lets them through.
	stuck atomic.Bool
}

// FromStart, as Open's from, replays the log from its oldest segment on.
const FromStart = -1

// SegmentName is the file name of the segment starting at base.
func SegmentName(base int64) string { return fmt.Sprintf("%020d", base) }

// SegmentBases lists the base offsets of the segment files in dir, in
// order.
func SegmentBases(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("commitlog: list %s: %w", dir, err)
	}
	var bases []int64
	for _, e := range entries {
		name := e.Name()
		if len(name) != 20 || !e.Type().IsRegular() {
			continue
		}
		b, err := strconv.ParseInt(name, 10, 64)
		if err != nil || b < 0 {
			continue
		}
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases, nil
}

// Open opens (creating if needed) the log in opts.Dir, validates every
// record from offset from to the end, calling replay for each valid one in
// order (payload is only valid during the call), repairs a torn tail and
// starts the writer. from must be 0 or an offset at a record boundary that
// was valid before (a snapshot offset).
func Open(opts Options, from int64, replay func(off int64, typ byte, payload []byte) error) (*Log, error) {
	if opts.SegmentSize <= 0 || opts.MaxRecordSize <= 0 || FrameSize(int(opts.MaxRecordSize)) > opts.SegmentSize {
		return nil, fmt.Errorf("commitlog: segment size %d must exceed max record size %d plus %d header bytes", opts.SegmentSize, opts.MaxRecordSize, PayloadStart)
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.KnownType == nil {
		opts.KnownType = func(b byte) bool { return b != 0 }
	}
	if opts.ReserveType == nil {
		opts.ReserveType = func(byte) bool { return false }
	}
	if opts.Sync == nil {
		opts.Sync = fdatasync
	}
	if opts.DiskRetry <= 0 {
		opts.DiskRetry = time.Second
	}
	if opts.ReserveFile == "" {
		opts.ReserveFile = filepath.Join(opts.Dir, "reserve")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("commitlog: create %s: %w", opts.Dir, err)
	}
	l := &Log{
		opts:  opts,
		log:   opts.Logger,
		advCh: make(chan struct{}),
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()
	if err := l.load(from, replay); err != nil {
		return nil, err
	}
	if err := l.growReserve(); err != nil {
		if !isNoSpace(err) {
			return nil, err
		}
		l.setFull(err)
	}
	ok = true
	go l.run()
	return l, nil
}

// load lists the segments, validates the log from from on and leaves the last
// segment open for appending.
func (l *Log) load(from int64, replay func(int64, byte, []byte) error) error {
	bases, err := SegmentBases(l.opts.Dir)
	if err != nil {
		return err
	}
	for _, b := range bases {
		p := filepath.Join(l.opts.Dir, SegmentName(b))
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("commitlog: open segment %s: %w", p, err)
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("commitlog: stat segment %s: %w", p, err)
		}
		s := &segment{base: b, f: f, path: p}
		s.size.Store(st.Size())
		s.fileSize = st.Size()
		l.segs = append(l.segs, s)
	}
	if len(l.segs) == 0 {
		if from != 0 && from != FromStart {
			return fmt.Errorf("commitlog: the snapshot covers the log up to offset %d but %s holds no segment; restore the commit log or remove the snapshot files", from, l.opts.Dir)
		}
		if err := l.createSegment(0); err != nil {
			return err
		}
	}
	if err := l.scan(from, replay); err != nil {
		return err
	}
	last := l.segs[len(l.segs)-1]
	// What survived a process crash may sit in the page cache only: make it
	// durable before anything is served from it.
	if err := l.opts.Sync(last.f); err != nil {
		return fmt.Errorf("commitlog: fdatasync %s: %w", last.path, err)
	}
	end := last.base + last.size.Load()
	l.next, l.assignBase = end, last.base
	l.written.Store(end)
	l.synced.Store(end)
	return nil
}

func (l *Log) createSegment(base int64) error {
	p := filepath.Join(l.opts.Dir, SegmentName(base))
	// Not O_EXCL: an attempt that failed for lack of space may have left the
	// empty file behind.
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("commitlog: create segment %s: %w", p, err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 0 {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("it holds %d bytes", st.Size())
		}
		return fmt.Errorf("commitlog: new segment %s: %w", p, err)
	}
	if err := syncDir(l.opts.Dir); err != nil {
		_ = f.Close()
		return fmt.Errorf("commitlog: fsync directory %s: %w (%w)", l.opts.Dir, err, errSyncFailed)
	}
	l.segMu.Lock()
	l.segs = append(l.segs, &segment{base: base, f: f, path: p})
	l.segMu.Unlock()
	return nil
}

// Append assigns the next offset to a record of type typ and queues it for
// the writer. It returns the record's offset and end (offset + frame size);
// wait for durability with Wait(ctx, end). durable says whether some caller
// will wait for this record to be durable: with FlushSync, a group that holds
// only non-durable records is written but not fsynced (a later fsync covers
// it, at the latest after FlushInterval).
func (l *Log) Append(typ byte, payload []byte, durable bool) (off, end int64, err error) {
	if int64(len(payload))+1 > l.opts.MaxRecordSize {
		return 0, 0, ErrTooLarge
	}
	size := FrameSize(len(payload))
	l.mu.Lock()
	if l.failure != nil {
		err := l.failure
		l.mu.Unlock()
		return 0, 0, err
	}
	if l.closing {
		l.mu.Unlock()
		return 0, 0, ErrClosed
	}
	reserved := l.opts.ReserveType(typ)
	if l.full.Load() && !reserved {
		err := l.diskFullError()
		l.mu.Unlock()
		return 0, 0, err
	}
	if !l.roomLocked(size, reserved) {
		l.mu.Unlock()
		return 0, 0, ErrBusy
	}
	off = l.next
	var b *batch
	if off+size-l.assignBase > l.opts.SegmentSize && off > l.assignBase {
		l.assignBase = off
		b = l.newBatchLocked(off, true)
		l.pending = append(l.pending, b)
	} else if n := len(l.pending); n > 0 {
		b = l.pending[n-1]
	} else {
		b = l.newBatchLocked(off, false)
		l.pending = append(l.pending, b)
	}
	b.buf = appendFrame(b.buf, off, typ, payload)
	l.next = off + size
	if durable {
		l.wantSync = true
		l.durableAppends++
	}
	l.mu.Unlock()
	l.stats.appends.Add(1)
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return off, off + size, nil
}

// newBatchLocked returns an empty batch at base, a spare one when there
// is one (with its buffer's room).
func (l *Log) newBatchLocked(base int64, roll bool) *batch {
	n := len(l.spare)
	if n == 0 {
		return &batch{base: base, roll: roll}
	}
	b := l.spare[n-1]
	l.spare[n-1] = nil
	l.spare = l.spare[:n-1]
	*b = batch{base: base, roll: roll, buf: b.buf[:0]}
	return b
}

// gather waits, at most GroupCommitWait, until as many durable appends are
// pending as the last group held, before the writer takes them: writers
// answered together tend to append again together, and one fdatasync (tens
// of µs of CPU in the kernel each, whatever it covers) then serves all of
// them instead of one for the first and another for the rest. The writer
// calls it only when the last group held more than one durable append, so a
// lone writer never waits; it returns at once when nothing durable is
// pending, and when the log closes or stops.
func (l *Log) gather(t *time.Timer, want int) {
	deadline := time.Now().Add(l.opts.GroupCommitWait)
	for {
		l.mu.Lock()
		n, closing := l.durableAppends, l.closing
		l.mu.Unlock()
		if n == 0 || n >= want || closing {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		t.Reset(left)
		select {
		case <-l.kick:
			t.Stop()
		case <-t.C:
			return
		case <-l.stop:
			t.Stop()
			return
		}
	}
}

// roomLocked reports whether a record of size bytes fits under MaxPending.
func (l *Log) roomLocked(size int64, reserved bool) bool {
	max := l.opts.MaxPending
	if max <= 0 {
		return true
	}
	if reserved {
		max *= 2
	}
	pending := l.next - l.written.Load()
	return pending == 0 || pending+size <= max
}

// WaitRoom waits until a record of size payload bytes (of a type the
// reserve does not accept) would fit under MaxPending, the log fails or
// closes, or ctx is done (then it returns ctx's error). An Append after it
// can still find the room taken by another appender and fail with ErrBusy.
func (l *Log) WaitRoom(ctx context.Context, size int) error {
	frame := FrameSize(size)
	for {
		ch := l.advanceChan()
		l.mu.Lock()
		room, closing := l.roomLocked(frame, false), l.closing
		l.mu.Unlock()
		if err := l.err(); err != nil {
			return err
		}
		if closing {
			return ErrClosed
		}
		if room {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
		}
	}
}

// DiskFull reports whether the log is in the disk-full state, and the
// error that put it there.
func (l *Log) DiskFull() (bool, error) {
	if !l.full.Load() {
		return false, nil
	}
	return true, l.diskFullError()
}

func (l *Log) diskFullError() error {
	if p := l.fullErr.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrDiskFull, *p)
	}
	return ErrDiskFull
}

// Failure returns the error that made the log refuse appends for good, or
// nil.
func (l *Log) Failure() error { return l.err() }

// PendingBytes is how many appended bytes are not written yet.
func (l *Log) PendingBytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - l.written.Load()
}

// NextOffset is the offset the next Append will get.
func (l *Log) NextOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// VisibleOffset is the end of the bytes that count as stored under the flush
// policy: fsynced bytes with FlushSync, written bytes with FlushAsync.
func (l *Log) VisibleOffset() int64 {
	if l.opts.Flush == FlushSync {
		return l.synced.Load()
	}
	return l.written.Load()
}

// SyncedOffset is the end of the fdatasync'ed bytes.
func (l *Log) SyncedOffset() int64 { return l.synced.Load() }

// StartOffset is the first offset still on disk.
func (l *Log) StartOffset() int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if len(l.segs) == 0 {
		return 0
	}
	return l.segs[0].base
}

// Stats returns the cumulative counters.
func (l *Log) Stats() Stats {
	return Stats{Appends: l.stats.appends.Load(), Writes: l.stats.writes.Load(),
		Fsyncs: l.stats.fsyncs.Load(), Bytes: l.stats.bytes.Load()}
}

func (l *Log) advanceChan() chan struct{} {
	l.advMu.Lock()
	defer l.advMu.Unlock()
	return l.advCh
}

func (l *Log) broadcast() {
	l.advMu.Lock()
	close(l.advCh)
	l.advCh = make(chan struct{})
	l.advMu.Unlock()
}

func (l *Log) err() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Wait blocks until the bytes before end are stored as the flush policy
// promises (see VisibleOffset), the log fails, or ctx is done. A ctx that is
// done only stops the waiting: the record is written anyway.
func (l *Log) Wait(ctx context.Context, end int64) error {
	return l.waitFor(ctx, end, l.VisibleOffset, false)
}

// Sync forces an fdatasync covering every byte before end and waits for it.
// While records wait for disk space with the reserve used up (only freed
// space lets them through) it does not wait: it returns an error wrapping
// ErrDiskFull, so that a caller such as the periodic snapshot goes on to
// what may free space (retention).
func (l *Log) Sync(ctx context.Context, end int64) error {
	l.mu.Lock()
	if end > l.forceSyncTo {
		l.forceSyncTo = end
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return l.waitFor(ctx, end, l.synced.Load, true)
}

func (l *Log) waitFor(ctx context.Context, end int64, cur func() int64, notStuck bool) error {
	for {
		ch := l.advanceChan()
		if cur() >= end {
			return nil
		}
		if err := l.err(); err != nil {
			return err
		}
		if notStuck && l.stuck.Load() {
			return fmt.Errorf("%w: %d bytes wait for disk space", l.diskFullError(), l.waitDisk.Load())
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			if cur() >= end {
				return nil
			}
			if err := l.err(); err != nil {
				return err
			}
			return ErrClosed
		}
	}
}

// run is the writer goroutine.
func (l *Log) run() {
	defer close(l.done)
	defer func() {
		if l.closeOnExit.Load() {
			l.closeFiles() // Close stopped waiting for us
		}
	}()
	tick := time.NewTicker(l.opts.FlushInterval)
	defer tick.Stop()
	var held []*batch     // batches waiting for disk space, oldest first
	heldWant := false     // held holds durable appends: sync once they are written
	var retry *time.Timer // while held: when to try again
	var retryC <-chan time.Time
	var lastFullCheck time.Time
	var gatherTimer *time.Timer // gather's, made on first use
	lastGroup := 0              // durable appends the last group held
	for {
		periodic := false
		kick := l.kick
		if held != nil {
			kick = nil // appends do not make room: wait for the retry
		}
		select {
		case <-kick:
		case <-tick.C:
			periodic = true
		case <-retryC:
		case <-l.stop:
		}
		if l.abandon.Load() {
			return
		}
		if !periodic && held == nil && l.opts.GroupCommitWait > 0 && l.opts.Flush == FlushSync && lastGroup > 1 {
			if gatherTimer == nil {
				gatherTimer = time.NewTimer(time.Hour)
				defer gatherTimer.Stop()
			}
			l.gather(gatherTimer, lastGroup)
		}
		l.mu.Lock()
		lastGroup = l.durableAppends
		l.durableAppends = 0
		batches := l.pending
		if held != nil {
			batches = append(held, batches...)
		}
		l.pending = nil
		want := (l.wantSync || heldWant) && l.opts.Flush == FlushSync
		l.wantSync = false
		force := l.forceSyncTo
		closing := l.closing
		l.mu.Unlock()

		n, err := l.writeBatches(batches)
		if err == nil && len(batches) > 0 {
			// All written: the next appends reuse the list's room.
			clear(batches)
			l.mu.Lock()
			if l.pending == nil {
				l.pending = batches[:0]
			}
			l.mu.Unlock()
		}
		held, heldWant = nil, false
		retryC = nil
		if err != nil && isNoSpace(err) && !errors.Is(err, errSyncFailed) {
			held = batches[n:]
			// The durable appends among them were announced by the
			// wantSync this round consumed: the round that writes them
			// must sync.
			heldWant = want
			l.holdForSpace(held, err)
			if l.shrinkReserve() {
				retryC = closedTimeChan // room was made: try again at once
			} else if closing {
				l.fail(fmt.Errorf("closing with the disk full: %d bytes could not be written: %w", l.waitDisk.Load(), err))
				return
			}
			err = nil
		} else if err == nil {
			l.waitDisk.Store(0)
		}
		l.stuck.Store(held != nil && retryC == nil)
		if err == nil {
			w := l.written.Load()
			needSync := w > l.synced.Load() && (want || periodic || closing || force > l.synced.Load() || held != nil || l.unsyncedTooLong(w))
			if needSync {
				err = l.fsyncActive()
				if err == nil {
					l.synced.Store(w)
				}
			}
		}
		if err != nil {
			l.fail(err)
			return
		}
		if held == nil && l.full.Load() && time.Since(lastFullCheck) >= l.opts.DiskRetry {
			lastFullCheck = time.Now()
			l.tryLeaveFull()
		}
		if retryC == nil && (held != nil || l.full.Load()) {
			// Try the held write again, or to leave the disk-full state,
			// after DiskRetry.
			if retry == nil {
				retry = time.NewTimer(l.opts.DiskRetry)
				defer retry.Stop()
			} else {
				retry.Reset(l.opts.DiskRetry)
			}
			retryC = retry.C
		}
		l.broadcast()
		if l.opts.OnAdvance != nil {
			l.opts.OnAdvance(l.VisibleOffset())
		}
		if closing && held == nil {
			l.mu.Lock()
			empty := len(l.pending) == 0
			l.mu.Unlock()
			if empty {
				return
			}
		}
	}
}

// closedTimeChan is always ready: a retry without waiting.
var closedTimeChan = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// errSyncFailed marks an fdatasync (or directory fsync) error: permanent
// whatever its errno. ENOSPC or EDQUOT from fdatasync means writeback of
// pages already written found no space and they may be gone; Linux reports
// such an error once, so a retried fdatasync would succeed and answer them
// as durable. Only a write(2) that found no space is retried.
var errSyncFailed = errors.New("fdatasync failed")

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// holdForSpace notes that held could not be written for lack of space.
func (l *Log) holdForSpace(held []*batch, err error) {
	var n int64
	for _, b := range held {
		n += int64(len(b.buf))
	}
	l.waitDisk.Store(n)
	l.setFull(err)
}

// setFull enters the disk-full state (logged once per episode).
func (l *Log) setFull(err error) {
	l.fullErr.Store(&err)
	if !l.full.Swap(true) {
		l.log.Warn("the disk holding the commit log is full: sends are refused (consumer-state records go on while the reserve lasts) until space is freed; rmqproxy resumes by itself",
			"dir", l.opts.Dir, "error", err, "reserve_left", l.reserve)
	}
}

// tryLeaveFull leaves the disk-full state once the ballast could be grown
// back to its full size.
func (l *Log) tryLeaveFull() {
	if err := l.growReserve(); err != nil {
		l.fullErr.Store(&err)
		return
	}
	l.full.Store(false)
	l.log.Info("disk space is available again: the commit log accepts every record", "dir", l.opts.Dir)
}

// growReserve makes the ballast file Reserve bytes long, with its blocks
// allocated.
func (l *Log) growReserve() error {
	if l.opts.Reserve <= 0 {
		return nil
	}
	p := l.opts.ReserveFile
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("commitlog: open %s: %w", p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("commitlog: stat %s: %w", p, err)
	}
	l.reserve = st.Size()
	if l.reserve >= l.opts.Reserve {
		return nil
	}
	if err := allocate(f, l.reserve, l.opts.Reserve-l.reserve); err != nil {
		// Keep what could not be allocated out of the file size.
		_ = f.Truncate(l.reserve)
		return fmt.Errorf("commitlog: grow %s to %d bytes: %w", p, l.opts.Reserve, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("commitlog: fsync %s: %w", p, err)
	}
	l.reserve = l.opts.Reserve
	return nil
}

// shrinkReserve gives the ballast's space back to the file system, in
// steps of a quarter of the reserve, and reports whether it freed any.
func (l *Log) shrinkReserve() bool {
	if l.reserve <= 0 {
		return false
	}
	step := max(l.opts.Reserve/4, 64<<10)
	to := max(l.reserve-step, 0)
	p := l.opts.ReserveFile
	if err := os.Truncate(p, to); err != nil {
		l.log.Warn("cannot shrink the commit log's reserve file", "path", p, "error", err)
		l.reserve = 0
		return false
	}
	l.reserve = to
	return true
}

func (l *Log) fail(err error) {
	err = fmt.Errorf("commitlog: %w (%w)", err, ErrFailed)
	l.failed.Store(&err)
	l.mu.Lock()
	l.failure = err
	l.mu.Unlock()
	l.log.Error("commit log write failed; refusing further appends", "error", err)
	l.broadcast()
}

func (l *Log) active() *segment {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.segs[len(l.segs)-1]
}

// writeBatches writes batches in order and returns how many it wrote
// completely. A batch that fails is truncated away from its segment (so a
// retry writes it whole) and stays as it was, with its roll if it had one
// and the roll did not happen.
func (l *Log) writeBatches(batches []*batch) (int, error) {
	for i, b := range batches {
		if b.roll {
			// Make the old segment complete before the new one exists:
			// after any crash, only the last segment can have a torn tail.
			if err := l.trimActive(); err != nil {
				return i, err
			}
			if err := l.fsyncActive(); err != nil {
				return i, err
			}
			l.synced.Store(l.written.Load())
			if err := l.createSegment(b.base); err != nil {
				return i, err
			}
			b.roll = false
		}
		if len(b.buf) == 0 {
			continue
		}
		s := l.active()
		if got := s.base + s.size.Load(); got != b.base {
			return i, fmt.Errorf("internal: batch at %d but segment %s ends at %d", b.base, s.path, got)
		}
		pos := b.base - s.base
		if end := pos + int64(len(b.buf)); end > s.fileSize && l.opts.Preallocate > 0 {
			if err := l.zeroAhead(s, end); err != nil {
				return i, fmt.Errorf("write %s: %w", s.path, err)
			}
		}
		n, err := s.f.WriteAt(b.buf, pos)
		l.stats.writes.Add(1)
		l.stats.bytes.Add(int64(n))
		if err != nil {
			if n > 0 {
				if terr := s.f.Truncate(pos); terr != nil {
					// Not retryable: the segment holds a partial batch.
					return i, fmt.Errorf("write %s: %v; then truncate: %w", s.path, err, terr)
				}
				s.fileSize = pos
			}
			return i, fmt.Errorf("write %s: %w", s.path, err)
		}
		s.size.Add(int64(n))
		s.fileSize = max(s.fileSize, pos+int64(n))
		l.written.Store(b.base + int64(n))
		l.mu.Lock()
		if len(l.spare) < 4 && cap(b.buf) <= 8<<20 {
			// Written: only the writer's list of the batches it takes
			// still refers to it, and the writer is done with it.
			l.spare = append(l.spare, b)
		}
		l.mu.Unlock()
	}
	return len(batches), nil
}

// unsyncedTooLong reports whether the bytes written since the last
// fdatasync, up to w, exceed MaxPending: Open relies on that bound (see
// holeWindow).
func (l *Log) unsyncedTooLong(w int64) bool {
	return l.opts.MaxPending > 0 && w-l.synced.Load() > l.opts.MaxPending
}

// holeWindow is how far before the end of the last segment's records a
// power loss can have left a hole: written but not yet synced pages reach
// the disk in any order, and one that did not reads back as zeros (over
// the zeros of Preallocate, or a hole the file system fills with zeros).
// A zero page means no fdatasync completed after it was written, so
// nothing from it on was synced; the window tells that from damage to
// synced records (a lost write): the writer syncs once more than
// MaxPending bytes were written since the last sync, and one round writes
// at most twice MaxPending (the reserve types' share) or one record of up
// to MaxRecordSize (a record always fits when nothing is pending, however
// large), so unsynced bytes never exceed MaxPending plus the larger of
// those. 0: no bound is known (MaxPending 0).
func (l *Log) holeWindow() int64 {
	if l.opts.MaxPending <= 0 {
		return 0
	}
	return l.opts.MaxPending + max(2*l.opts.MaxPending, HeaderSize+l.opts.MaxRecordSize)
}

// zeros is the source of the zeros written ahead of the records.
var zeros = make([]byte, 256<<10)

// zeroAhead writes zeros to s from its end to at least end and, if the
// segment has room, Preallocate bytes further. It writes none while the
// file system has less than four times Preallocate free: near a full disk
// the zeros would take the room the other files of the broker and the
// disk-full handling count on. A disk too full for the zeros is no error:
// the records are then written where the zeros would have gone, growing
// the file, and the disk-full handling of that write applies.
func (l *Log) zeroAhead(s *segment, end int64) error {
	if free, err := freeSpace(s.f); err != nil || free < 4*l.opts.Preallocate {
		return nil
	}
	to := max(end, min(s.fileSize+l.opts.Preallocate, l.opts.SegmentSize))
	for s.fileSize < to {
		n := min(int64(len(zeros)), to-s.fileSize)
		w, err := s.f.WriteAt(zeros[:n], s.fileSize)
		s.fileSize += int64(w)
		if isNoSpace(err) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// trimActive cuts the zeros written ahead of the active segment's records
// away: only the last segment may end in zeros.
func (l *Log) trimActive() error {
	s := l.active()
	if size := s.size.Load(); s.fileSize > size {
		if err := s.f.Truncate(size); err != nil {
			return fmt.Errorf("truncate %s to its records: %w", s.path, err)
		}
		s.fileSize = size
	}
	return nil
}

func (l *Log) fsyncActive() error {
	s := l.active()
	var start time.Time
	if l.opts.OnSync != nil {
		start = time.Now()
	}
	err := l.opts.Sync(s.f)
	if l.opts.OnSync != nil {
		l.opts.OnSync(time.Since(start), err)
	}
	if err != nil {
		return fmt.Errorf("fdatasync %s: %w (%w)", s.path, err, errSyncFailed)
	}
	l.stats.fsyncs.Add(1)
	return nil
}

// ReadAt reads n bytes at logical offset off. The caller must only read
// bytes below VisibleOffset. It returns ErrGone when the segment holding off
// was deleted.
func (l *Log) ReadAt(off int64, n int) ([]byte, error) {
	return l.ReadAtInto(nil, off, n)
}

// ReadAtInto is ReadAt into dst's room when it holds n bytes (the result
// is then dst[:n]), into a new slice otherwise: a reader of many records
// that keeps nothing of them reuses one buffer.
func (l *Log) ReadAtInto(dst []byte, off int64, n int) ([]byte, error) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	s := l.segmentOfLocked(off)
	if s == nil {
		return nil, ErrGone
	}
	if n < 0 || off-s.base+int64(n) > s.size.Load() {
		return nil, fmt.Errorf("commitlog: read of %d bytes at %d beyond the end of segment %s", n, off, s.path)
	}
	var buf []byte
	if cap(dst) >= n {
		buf = dst[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := s.f.ReadAt(buf, off-s.base); err != nil {
		return nil, fmt.Errorf("commitlog: read %s: %w", s.path, err)
	}
	return buf, nil
}

// SegmentPath returns the path of the segment file holding offset off, or
// "" when off is before the first segment (deleted by retention).
func (l *Log) SegmentPath(off int64) string {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if s := l.segmentOfLocked(off); s != nil {
		return s.path
	}
	return ""
}

// segmentOfLocked returns the segment holding off (the last one for an
// offset at or past the end), nil when off is before the first segment.
func (l *Log) segmentOfLocked(off int64) *segment {
	if len(l.segs) == 0 || off < l.segs[0].base {
		return nil
	}
	i, found := slices.BinarySearchFunc(l.segs, off, func(s *segment, off int64) int {
		switch {
		case s.base < off:
			return -1
		case s.base > off:
			return 1
		}
		return 0
	})
	if !found {
		i--
	}
	return l.segs[i]
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Base    int64
	Size    int64
	ModTime time.Time
	Path    string
}

// Segments lists the segments in offset order.
func (l *Log) Segments() []SegmentInfo {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	out := make([]SegmentInfo, 0, len(l.segs))
	for _, s := range l.segs {
		si := SegmentInfo{Base: s.base, Size: s.size.Load(), Path: s.path}
		if st, err := s.f.Stat(); err == nil {
			si.ModTime = st.ModTime()
		}
		out = append(out, si)
	}
	return out
}

// RemoveBefore deletes, oldest first, whole segments that end at or before
// limit and were last written before olderThan. The active segment is never
// deleted. It returns how many segments it removed.
func (l *Log) RemoveBefore(limit int64, olderThan time.Time) (int, error) {
	removed := 0
	for {
		l.segMu.Lock()
		if len(l.segs) < 2 {
			l.segMu.Unlock()
			return removed, nil
		}
		s := l.segs[0]
		st, err := s.f.Stat()
		if err != nil || s.base+s.size.Load() > limit || !st.ModTime().Before(olderThan) {
			l.segMu.Unlock()
			return removed, nil
		}
		l.segs = l.segs[1:]
		l.segMu.Unlock()
		_ = s.f.Close()
		if err := os.Remove(s.path); err != nil {
			return removed, fmt.Errorf("commitlog: remove %s: %w", s.path, err)
		}
		removed++
		if err := syncDir(l.opts.Dir); err != nil {
			return removed, fmt.Errorf("commitlog: fsync directory %s: %w", l.opts.Dir, err)
		}
	}
}

// Close writes and fsyncs every pending record, stops the writer and closes
// the files. Appends after Close fail with ErrClosed. When ctx ends first,
// Close returns ctx's error at once: the writer goes on writing what is
// pending and closes the files when it is done (Done tells when).
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.stopOnce.Do(func() { close(l.stop) })
	select {
	case <-l.done:
	case <-ctx.Done():
		l.closeOnExit.Store(true)
		select {
		case <-l.done: // it stopped meanwhile, maybe before seeing the flag
			l.closeFiles()
		default:
		}
		return ctx.Err()
	}
	err := l.err()
	l.closeFiles()
	return err
}

// Done is closed once the writer goroutine has stopped (after Close or
// Abandon): no write to the log's files happens after it.
func (l *Log) Done() <-chan struct{} { return l.done }

// Abandon stops the writer without writing pending records or fsyncing, and
// closes the files: what a kill -9 leaves behind (for crash tests).
func (l *Log) Abandon() {
	l.abandon.Store(true)
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.closeFiles()
}

func (l *Log) closeFiles() {
	l.segMu.Lock()
	defer l.segMu.Unlock()
	for _, s := range l.segs {
		_ = s.f.Close()
	}
}
