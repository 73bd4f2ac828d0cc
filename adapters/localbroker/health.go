package localbroker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/domain"
)

// This file holds the engine's answers to storage trouble: the failed
// state, the disk-full and back-pressure errors clients get, readiness, and
// rate-limited logging of failures that repeat.

// storageError maps the commit log's retryable and permanent failures to
// domain errors (nil for other errors).
func storageError(err error, what string) error {
	switch {
	case errors.Is(err, commitlog.ErrBusy):
		return domain.Wrap(domain.ReasonTooManyRequests, err, what+": more than local.maxPendingBytes wait to be written to the commit log (the disk is slower than the load); retry")
	case errors.Is(err, commitlog.ErrDiskFull):
		return domain.Wrap(domain.ReasonUnavailable, err, what+": the disk holding local.dataDir is full; messages are refused until space is freed (acknowledgements and receives go on while the reserve, local.diskReserve, lasts); retry later")
	case errors.Is(err, commitlog.ErrFailed):
		return domain.Wrap(domain.ReasonUnavailable, err, what+": the local broker stopped writing after a storage failure; restart rmqproxy (it recovers from the commit log)")
	}
	return nil
}

// failLocked puts the engine in the failed state after applying an appended
// record failed (which validation before appending should make impossible):
// live state may now differ from what replay builds, so every later write is
// refused until a restart replays the log. It returns the error callers get.
func (e *Engine) failLocked(cause error) error {
	if e.failed == nil {
		e.failed = cause
		e.failedAt.Store(&cause)
		e.log.Error("the local broker stopped writing: applying a stored record failed; restart rmqproxy to recover from the commit log", "error", cause)
	}
	return e.failedError()
}

func (e *Engine) failedError() error {
	return domain.Wrap(domain.ReasonUnavailable, e.failed, "the local broker stopped writing after an internal failure; restart rmqproxy (it recovers from the commit log)")
}

// Phases of the engine's life, for readiness (read without the engine lock).
const (
	phaseNew int32 = iota
	phaseRecovering
	phaseOpen
	phaseClosed
)

// Ready reports whether the engine serves normally: nil, or an error that
// says why not — starting, recovering the commit log, closed, stopped
// writing after a storage failure, the disk full, or the disk past
// local.diskHighWater. It does not take the engine lock and does no I/O
// but one statfs.
func (e *Engine) Ready(ctx context.Context) error {
	switch e.phase.Load() {
	case phaseNew:
		return errors.New("the local broker has not started")
	case phaseRecovering:
		return fmt.Errorf("the local broker is recovering its data directory: %s", e.recovery.String())
	case phaseClosed:
		return errors.New("the local broker is closed")
	}
	if p := e.failedAt.Load(); p != nil {
		return fmt.Errorf("the local broker stopped writing after a failure; restart rmqproxy: %w", *p)
	}
	clog := e.clogRef.Load()
	if clog == nil {
		return errors.New("the local broker is not open")
	}
	if p := e.damaged.Load(); p != nil {
		return fmt.Errorf("an index (consume queue or timer bucket) is damaged; restart rmqproxy to rebuild it from the commit log: %w", *p)
	}
	if err := clog.Failure(); err != nil {
		return fmt.Errorf("the commit log stopped writing after a storage failure; restart rmqproxy: %w", err)
	}
	if full, err := clog.DiskFull(); full {
		return fmt.Errorf("the disk holding local.dataDir (%s) is full: messages are refused until space is freed: %w", e.cfg.DataDir, err)
	}
	if e.cfg.DiskHighWater > 0 && e.cfg.DiskHighWater < 1 {
		used, size, err := diskUsage(e.cfg.DataDir)
		if err == nil && size > 0 && float64(used)/float64(size) > e.cfg.DiskHighWater {
			return fmt.Errorf("the disk holding local.dataDir (%s) is %.1f%% full, past local.diskHighWater (%.1f%%); free space before it fills up",
				e.cfg.DataDir, 100*float64(used)/float64(size), 100*e.cfg.DiskHighWater)
		}
	}
	return nil
}

// recoveryProgress says, to readiness, which step of recovery runs and how
// far it got: a start that rebuilds the indexes of a large directory reads
// the whole commit log, and readiness said "records replayed: 0" all along.
type recoveryProgress struct {
	step atomic.Int32
	read atomic.Int64 // queues checked, or commit-log records read
	at   atomic.Int64 // commit-log offset of the last record read
	end  atomic.Int64 // queues to check, or the commit log's extent on disk
}

// Steps of recovery.
const (
	stepSnapshot int32 = iota
	stepQueues
	stepTimers
	stepRebuild
	stepReplay
)

// begin starts a step, its counters at zero.
func (p *recoveryProgress) begin(step int32) {
	p.read.Store(0)
	p.at.Store(0)
	p.end.Store(0)
	p.step.Store(step)
}

func (p *recoveryProgress) String() string {
	read, at, end := p.read.Load(), p.at.Load(), p.end.Load()
	pos := func() string {
		if end <= 0 {
			return ""
		}
		return fmt.Sprintf(", at byte %d of about %d (%.0f%%)", at, end, 100*float64(min(at, end))/float64(end))
	}
	switch p.step.Load() {
	case stepQueues:
		return fmt.Sprintf("checking the consume queues (%d of %d)", read, end)
	case stepTimers:
		return "checking the timer index (delay messages)"
	case stepRebuild:
		return fmt.Sprintf("rebuilding indexes from the whole commit log (records read: %d%s)", read, pos())
	case stepReplay:
		return fmt.Sprintf("replaying the commit log after the snapshot (records read: %d%s)", read, pos())
	}
	return "loading the snapshot"
}

// logExtent is the end of the last commit-log segment file in dir (its
// base offset plus its size, preallocated zeros included), for the
// progress readiness reports; 0 when it cannot tell.
func logExtent(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var end int64
	for _, ent := range ents {
		base, err := strconv.ParseInt(ent.Name(), 10, 64)
		if err != nil || len(ent.Name()) != 20 {
			continue
		}
		if fi, err := ent.Info(); err == nil {
			end = max(end, base+fi.Size())
		}
	}
	return end
}

// warnLimited logs a warning at most once a minute per key.
func (e *Engine) warnLimited(key, msg string, args ...any) {
	e.logLimited(e.log.Warn, key, msg, args...)
}

// errorLimited logs an error (someone must act) at most once a minute per key.
func (e *Engine) errorLimited(key, msg string, args ...any) {
	e.logLimited(e.log.Error, key, msg, args...)
}

func (e *Engine) logLimited(level func(string, ...any), key, msg string, args ...any) {
	ok, suppressed := e.limited.Allow(key, time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, "repeats_suppressed", suppressed)
	}
	level(msg, args...)
}

// waitRoom waits, before a send takes the engine lock, until the commit
// log's pending bytes leave room for the messages (local.maxPendingBytes),
// for at most as long as ctx allows: then the send gets TOO_MANY_REQUESTS.
func (e *Engine) waitRoom(ctx context.Context, msgs []domain.Message) error {
	clog := e.clogRef.Load()
	if clog == nil {
		return nil // not open: the caller reports that
	}
	size := 64
	for i := range msgs {
		m := &msgs[i]
		size += 128 + len(m.Body) + len(m.ID) + len(m.Tag) + len(m.Group) + len(m.TraceContext)
		for k, v := range m.Properties {
			size += len(k) + len(v) + 4
		}
		for _, k := range m.Keys {
			size += len(k) + 2
		}
	}
	if err := clog.WaitRoom(ctx, size); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return domain.Wrap(domain.ReasonTooManyRequests, err, "the send waited for room in the commit log until its deadline: more than local.maxPendingBytes wait to be written (the disk is slower than the load); retry")
		}
		return ioError(err, "the send")
	}
	return nil
}
