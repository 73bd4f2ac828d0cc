package localbroker

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/atomicfile"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/timerindex"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Consume queues are derived from the commit log, which is the source of
// truth. Recovery checks every entry of every queue the snapshot lists (each
// entry carries a checksum); a queue with a bad entry, a queue of the
// format of an older version, and a queue shorter than the snapshot says
// whose topic the replay does not delete, is rebuilt: recovery then reads
// the log from its oldest segment, re-deriving those queues' entries from
// the records before the snapshot, and replays the records after it as
// usual. A queue offset whose record retention deleted gets a placeholder
// (consumequeue.Gone): its message is gone, as it would be anyway.
//
// Timer buckets are derived from the log the same way. Recovery checks
// every entry of every bucket the snapshot lists (header, checksums, and
// the add and done counts the snapshot recorded); a bucket that is
// missing, short or fails a check is rebuilt by the same scan from the
// oldest segment: each deferred delay message before the snapshot adds its
// timer, each timer resolve record (fire, recall, drop) before it adds a
// done, exactly as the live engine appended them. A pending delay message
// pins its segment and every later one against retention (see
// pinnedOffsetLocked), so the scan meets every pending timer of the
// bucket, and the resolve of every timer that already fired (a timer thus
// never fires twice). A resolve of a timer stored before the first segment
// scanned (retention deleted it after the timer resolved) is not written:
// its add is not in the scan. When no consume queue needs rebuilding, the
// scan starts at the segment of the smallest origin the snapshot records
// for the damaged buckets rather than the oldest one. The rebuilder streams the entries to
// temporary files and renames them over the damaged ones once the scan
// reaches the snapshot (timerindex.Rebuilder); the replay after the
// snapshot then appends to them as usual.

// queueFormatFile marks the consume-queue directory's entry format.
const (
	queueFormatFile = "FORMAT"
	queueFormat     = "2" // 36-byte entries with a checksum
)

// queueFormatCurrent reports whether the consume-queue directory holds the
// current format (or nothing), and marks it as current: entries of another
// format fail their checksums anyway, the marker only says why.
func (e *Engine) queueFormatCurrent() (bool, error) {
	p := e.dir("consumequeue", queueFormatFile)
	b, err := os.ReadFile(p)
	if err == nil && strings.TrimSpace(string(b)) == queueFormat {
		return true, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, domain.Wrap(domain.ReasonInternal, err, "cannot read "+p)
	}
	ents, err := os.ReadDir(e.dir("consumequeue"))
	if err != nil {
		return false, domain.Wrap(domain.ReasonInternal, err, "cannot list "+e.dir("consumequeue"))
	}
	empty := true
	for _, ent := range ents {
		if ent.Name() != queueFormatFile {
			empty = false
		}
	}
	if err := atomicfile.Write(p, []byte(queueFormat+"\n")); err != nil {
		return false, domain.Wrap(domain.ReasonInternal, err, "cannot write "+p)
	}
	return empty, nil
}

// shortQueuesError: recovery found queues shorter than the snapshot says
// whose topic the replay did not delete; they must be rebuilt.
type shortQueuesError struct{ keys []queueKey }

func (e *shortQueuesError) Error() string {
	names := make([]string, len(e.keys))
	for i, k := range e.keys {
		names[i] = fmt.Sprintf("%s/%d", k.topic, k.qid)
	}
	return "consume queues shorter than the snapshot says: " + strings.Join(names, ", ")
}

// batchEntry is the consume-queue entry of the message at loc of a batch
// record at off (payload p).
func batchEntry(off int64, p []byte, loc record.Location, m *record.Message) consumequeue.Entry {
	return consumequeue.Entry{
		CommitLogOffset: off + commitlog.PayloadStart + int64(loc.Pos),
		Size:            int32(loc.Size),
		CRC:             commitlog.Checksum(p[loc.Pos : loc.Pos+loc.Size]),
		TagHash:         consumequeue.TagHash(m.Tag),
		StoredAtMs:      m.StoredAt.UnixMilli(),
	}
}

// rebuildFlushEvery bounds the entries a rebuilt queue holds in memory.
const rebuildFlushEvery = 1 << 16

// Every rebuildMaxHeld entries appended to rebuilt queues (~10 MB), those
// holding at least rebuildMinWrite entries in memory are written: the
// entries held stay under rebuildMaxHeld plus rebuildMinWrite per queue
// (~2.5 KB, less than what a queue costs anyway), and the files of small
// queues are created by the first flush after the start, as before.
// Variables for tests.
var (
	rebuildMaxHeld  = 1 << 18
	rebuildMinWrite = 64
)

// rebuildRecordLocked re-derives, from a record before the snapshot, the
// entries of the queues being rebuilt.
func (e *Engine) rebuildRecordLocked(off int64, typ record.Type, p []byte) error {
	bad := func(err error) error {
		return domain.Wrap(domain.ReasonInternal, err, fmt.Sprintf("rebuilding consume queues: commit-log record at offset %d (%s) cannot be decoded", off, typ))
	}
	if e.timerScanFrom < 0 {
		e.timerScanFrom = off
	}
	batch := func(b *record.Batch, locs []record.Location) {
		if b.QueueOffset < 0 && e.timerRebuild != nil {
			e.rebuildTimersLocked(off, b, p, locs)
			return
		}
		k := queueKey{b.Topic, b.QueueID}
		if _, ok := e.rebuild[k]; !ok || b.QueueOffset < 0 {
			return
		}
		for i, loc := range locs {
			e.rebuildEntryLocked(k, b.QueueOffset+int64(i), batchEntry(off, p, loc, &b.Messages[i]))
		}
	}
	switch typ {
	case record.TypeMessageBatch:
		// Into the room replay's decoder keeps (as applyRecordLocked
		// does): the rebuild keeps nothing of the messages or locations.
		d := e.batchDec
		e.batchDec = record.MetaDecoder{}
		b, locs, err := d.Decode(p, e.topicNameLocked)
		if err != nil {
			return bad(err)
		}
		batch(&b, locs)
		e.batchDec = d
	case record.TypeDeadLetter:
		d, locs, err := record.DecodeDeadLetter(p)
		if err != nil {
			return bad(err)
		}
		batch(&d.Copy, locs)
	case record.TypeResolve:
		r, locs, err := record.DecodeResolve(p)
		if err != nil {
			return bad(err)
		}
		if r.Kind.Timer() && e.timerRebuild != nil && r.Origin >= e.timerScanFrom {
			e.timerRebuild.Done(r.DeliverAt, r.Origin)
		}
		if r.Copy != nil {
			batch(r.Copy, locs)
		}
	case record.TypeDispatch:
		d, err := record.DecodeDispatch(p)
		if err != nil {
			return bad(err)
		}
		if k := (queueKey{d.Topic, d.QueueID}); hasKey(e.rebuild, k) {
			e.rebuildEntryLocked(k, d.QueueOffset, consumequeue.Entry{CommitLogOffset: d.CommitLogOffset, Size: d.Size, CRC: d.CRC,
				TagHash: d.TagHash, StoredAtMs: d.StoredAt.UnixMilli()})
		}
	case record.TypeTopicDeleted:
		d, err := record.DecodeDeleted(p)
		if err != nil {
			return bad(err)
		}
		// A later incarnation of the topic starts its queues again.
		for k := range e.rebuild {
			if qi := e.queues[k]; k.topic == d.Name && qi != nil {
				if err := qi.cq.TruncateTo(0); err != nil {
					return domain.Wrap(domain.ReasonInternal, err, "rebuilding consume queue "+qi.cq.Path())
				}
				qi.count, qi.visible = 0, 0
			}
		}
	}
	return nil
}

func hasKey(m map[queueKey]int64, k queueKey) bool {
	_, ok := m[k]
	return ok
}

// rebuildEntryLocked puts ent at queue offset qoff of a queue being
// rebuilt; offsets skipped (their records are gone) get placeholders.
func (e *Engine) rebuildEntryLocked(k queueKey, qoff int64, ent consumequeue.Entry) {
	qi := e.queues[k]
	if qi == nil || qoff < qi.count {
		return
	}
	for qi.count < qoff {
		e.rebuildAppendLocked(qi, consumequeue.Gone)
	}
	e.rebuildAppendLocked(qi, ent)
}

func (e *Engine) rebuildAppendLocked(qi *queueIndex, ent consumequeue.Entry) {
	_, _ = qi.cq.Append(ent) // in memory: cannot fail on an open queue
	qi.count++
	qi.visible = qi.count
	if qi.count%rebuildFlushEvery == 0 {
		if err := qi.cq.Flush(qi.count); err != nil && e.rebuildErr == nil {
			e.rebuildErr = err
		}
	}
	// Many queues below that hold much together: write them.
	if e.rebuildHeld++; e.rebuildHeld >= rebuildMaxHeld {
		e.rebuildHeld = 0
		for k := range e.rebuild {
			if qi := e.queues[k]; qi != nil && qi.cq.Unwritten() >= rebuildMinWrite {
				if err := qi.cq.Flush(qi.count); err != nil && e.rebuildErr == nil {
					e.rebuildErr = err
				}
			}
		}
	}
}

// finishRebuildLocked ends the rebuild at the snapshot's offset: every
// rebuilt queue gets the snapshot's count (placeholders for entries whose
// records are gone, which only a damaged or truncated log explains).
func (e *Engine) finishRebuildLocked() error {
	if e.rebuildErr != nil {
		return domain.Wrap(domain.ReasonInternal, e.rebuildErr, "cannot write a rebuilt consume queue")
	}
	for k, n := range e.rebuild {
		qi := e.queues[k]
		if qi == nil {
			continue
		}
		if missing := n - qi.count; missing > 0 {
			e.log.Warn("a rebuilt consume queue lacks entries the snapshot counts (their records are not in the commit log); they are skipped as gone",
				"topic", k.topic, "queue_id", k.qid, "missing", missing)
			for qi.count < n {
				e.rebuildAppendLocked(qi, consumequeue.Gone)
			}
		}
		if qi.count > n {
			if err := qi.cq.TruncateTo(n); err != nil {
				return domain.Wrap(domain.ReasonInternal, err, "rebuilding consume queue "+qi.cq.Path())
			}
			qi.count, qi.visible = n, n
		}
		e.log.Info("consume queue rebuilt from the commit log", "path", qi.cq.Path(), "entries", n)
	}
	return e.finishTimerRebuildLocked()
}

// startTimerRebuildLocked starts rebuilding the damaged timer buckets: the
// recovery scan then starts at the oldest segment.
func (e *Engine) startTimerRebuildLocked(damaged []timerindex.Damage) {
	starts := make([]int64, len(damaged))
	for i, d := range damaged {
		starts[i] = d.Start
	}
	e.timerRebuild = e.timers.Rebuild(starts)
	e.timerDamage = damaged
	e.log.Info("timer index buckets are damaged; rebuilding them from the commit log (recovery reads it from the segment of their oldest timer, or from the start when consume queues are rebuilt too)", "buckets", len(damaged))
}

// timerScanStart is where the scan of a timer-only rebuild starts: the
// segment holding the smallest origin of any add of the damaged buckets
// (the snapshot records it), or the oldest segment. Every add of those
// buckets is at or after it, so every resolve they hold is too.
func (e *Engine) timerScanStart(snapOffset int64) int64 {
	lowest := snapOffset
	for _, d := range e.timerDamage {
		lowest = min(lowest, d.Want.MinOrigin)
	}
	bases, err := commitlog.SegmentBases(e.dir("commitlog"))
	if err != nil {
		return commitlog.FromStart // commitlog.Open reports it
	}
	from := int64(commitlog.FromStart)
	for _, base := range bases {
		if base <= lowest {
			from = base
		}
	}
	return from
}

// rebuildTimersLocked re-derives, from a deferred batch before the
// snapshot, the timers of the buckets being rebuilt.
func (e *Engine) rebuildTimersLocked(off int64, b *record.Batch, p []byte, locs []record.Location) {
	for i, loc := range locs {
		m := &b.Messages[i]
		at := timerAt(m)
		if m.Transactional || !e.timerRebuild.Wants(at) {
			continue
		}
		e.timerRebuild.Add(timerindex.Entry{DeliverAt: at, Origin: off + commitlog.PayloadStart + int64(loc.Pos), Size: int32(loc.Size),
			CRC: commitlog.Checksum(p[loc.Pos : loc.Pos+loc.Size]), QueueID: b.QueueID, Topic: b.Topic})
	}
}

// finishTimerRebuildLocked puts the rebuilt timer buckets in place (the
// scan reached the snapshot) and logs one warning saying what was damaged
// and how many pending timers the rebuilt buckets hold.
func (e *Engine) finishTimerRebuildLocked() error {
	rb := e.timerRebuild
	if rb == nil {
		return nil
	}
	e.timerRebuild = nil
	got, err := rb.Finish()
	if err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot write a rebuilt timer index bucket in "+e.dir("timer"))
	}
	var restored, expected int64
	for _, b := range got {
		restored += b.Pending
	}
	damaged := make([]string, len(e.timerDamage))
	for i, d := range e.timerDamage {
		damaged[i] = d.Path + ": " + d.Reason
		expected += d.Want.Adds - d.Want.Dones
	}
	e.log.Warn("timer index buckets were damaged; rebuilt them from the commit log",
		"damaged", strings.Join(damaged, "; "), "buckets", len(got), "timers_restored", restored,
		"timers_per_snapshot", expected, "scanned_from", e.timerScanFrom, "took", time.Since(e.rebuildStart))
	if restored < expected {
		// Only a commit log missing segments it should hold explains it.
		e.log.Error("the snapshot counts more pending delay messages in the damaged timer buckets than the commit log holds; the missing ones cannot be delivered",
			"missing", expected-restored, "log_start", e.timerScanFrom)
	}
	e.timerDamage = nil
	return nil
}

// removeQueueFile deletes a queue file that is about to be rebuilt.
func (e *Engine) removeQueueFile(k queueKey) error {
	p := e.queuePath(k)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return domain.Wrap(domain.ReasonInternal, err, "cannot remove damaged consume queue "+p)
	}
	return nil
}

// queueReadError maps a failure to read a consume-queue entry. An entry
// that fails its checksum while running (the file was damaged after
// recovery checked it) is not skipped — its message is intact in the log —
// but refused with a retryable error; readiness then says to restart, which
// rebuilds the queue.
func (e *Engine) queueReadError(err error) error {
	if !errors.Is(err, consumequeue.ErrBadEntry) {
		return domain.Wrap(domain.ReasonInternal, err, "cannot read the consume queue")
	}
	if e.damaged.CompareAndSwap(nil, &err) {
		e.log.Error("a consume-queue entry fails its checksum: messages from it on are held back; restart rmqproxy to rebuild the queue from the commit log", "error", err)
	}
	return domain.Wrap(domain.ReasonUnavailable, err, "a consume-queue index is damaged; the messages are intact and are delivered once rmqproxy restarts and rebuilds it; retry later")
}
