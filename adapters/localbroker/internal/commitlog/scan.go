package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// segReader reads windows of one segment file through a reusable buffer.
type segReader struct {
	f     *os.File
	size  int64
	buf   []byte
	start int64 // segment position of buf[0]
}

const readChunk = 4 << 20

// window returns up to n bytes at pos (fewer only at the end of the file).
func (r *segReader) window(pos int64, n int64) ([]byte, error) {
	if pos+n > r.size {
		n = r.size - pos
	}
	if n <= 0 {
		return nil, nil
	}
	if pos >= r.start && pos+n <= r.start+int64(len(r.buf)) {
		return r.buf[pos-r.start : pos-r.start+n], nil
	}
	want := max(n, readChunk)
	if pos+want > r.size {
		want = r.size - pos
	}
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	r.buf = r.buf[:want]
	got, err := r.f.ReadAt(r.buf, pos)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	r.buf, r.start = r.buf[:got], pos
	if int64(got) < n {
		n = int64(got)
	}
	return r.buf[:n], nil
}

// frameAt checks the frame at segment position pos.
func (l *Log) frameAt(r *segReader, base, pos int64) (size int64, problem frameProblem, err error) {
	h, err := r.window(pos, PayloadStart)
	if err != nil {
		return 0, "", err
	}
	avail := r.size - pos
	size, need, problem := checkFrame(h, base+pos, avail, l.opts.MaxRecordSize, l.opts.KnownType)
	if need > 0 {
		full, err := r.window(pos, need)
		if err != nil {
			return 0, "", err
		}
		size, _, problem = checkFrame(full, base+pos, avail, l.opts.MaxRecordSize, l.opts.KnownType)
	}
	return size, problem, nil
}

// validAfter reports whether valid records may follow the bad frame at pos
// of the last segment, which tells damage in the middle of the log (refused
// with recovery: strict) from a torn tail (truncated).
//
// Message bodies are the producers' bytes, so a frame that validates at its
// position can be forged inside one; what is trusted as a record is only
// what is reachable from the segment start by walking valid frames, and a
// forged frame never is. The search must not be fooled either:
//   - when the bad frame's length is plausible and the extent it claims
//     ends exactly where the segment's data ends (its last non-zero byte,
//     not the zeros Preallocate writes ahead: a complete last frame whose
//     checksum fails), frames inside it are never looked at, they would
//     lie in its payload, a producer's body among others. An extent ending
//     before the data does may be a damaged length covering intact
//     records: every later position is searched;
//   - a frame claiming more than the segment holds is a torn last write or
//     a damaged length, which nothing in it tells apart: the search looks
//     at every later position, so that damage never makes strict recovery
//     cut intact records away. A torn record whose body a producer filled
//     with frames forged for their positions then makes strict recovery
//     refuse (recovery: truncate starts, and never replays them);
//   - otherwise (a zero or impossible length: a hole or damage) it looks at
//     every later position, as a record after a hole is worth a refusal;
//   - its work is bounded (searchBudget bytes checked, counted in
//     searchWork): a region full of plausible headers with long lengths
//     would cost a checksum of up to maxRecordSize bytes per position. When
//     the budget runs out valid records cannot be ruled out, and it says so
//     (gaveUp): recovery: strict refuses rather than drop them.
//
// Valid or not, nothing after the bad frame is ever replayed: truncation
// cuts at the bad frame.
// dataEnd is the segment position after its last non-zero byte (see
// lastNonZero), which the caller has found already.
func (l *Log) validAfter(r *segReader, base, pos, dataEnd int64) (found, gaveUp bool, err error) {
	start := pos + 1
	h, err := r.window(pos, 4)
	if err != nil {
		return false, false, err
	}
	if len(h) == 4 {
		// Only a claimed extent ending where the segment's data ends is
		// skipped: a frame claiming more than that is a torn last write
		// or a damaged length, which its length cannot tell apart, one
		// claiming less may be a damaged length over intact records, and
		// damage must not make strict recovery cut them away.
		// The data ends at the last byte that is not zero: the zeros
		// written ahead of the records (Options.Preallocate) are no
		// data, and a damaged length reaching into them must not hide
		// the records between.
		if n := int64(binary.BigEndian.Uint32(h)); n >= 1 && n <= l.opts.MaxRecordSize+1 && pos+HeaderSize+n == dataEnd {
			start = pos + HeaderSize + n
		}
	}
	return l.searchValid(r, base, start, r.size)
}

// searchValid reports whether a valid frame starts at a segment position in
// [from, to) (it may end after to), within the budget for those bytes (see
// validAfter).
func (l *Log) searchValid(r *segReader, base, from, to int64) (found, gaveUp bool, err error) {
	budget := searchBudget(to-from, l.opts.MaxRecordSize)
	work := int64(0)
	defer func() { l.searchWork += work }()
	for p := from; p < to && p+PayloadStart <= r.size; p++ {
		work += PayloadStart
		h, err := r.window(p, PayloadStart)
		if err != nil {
			return false, false, err
		}
		n := int64(binary.BigEndian.Uint32(h[0:4]))
		if n < 1 || n > l.opts.MaxRecordSize+1 || !l.opts.KnownType(h[8]) || HeaderSize+n > r.size-p {
			continue // cheap: no checksum to compute
		}
		if work += n; work > budget {
			return false, true, nil
		}
		size, problem, err := l.frameAt(r, base, p)
		if err != nil {
			return false, false, err
		}
		if problem == "" && size > 0 {
			return true, false, nil
		}
	}
	return false, false, nil
}

// searchBudget bounds the bytes validAfter examines to find a valid record
// in n bytes: a few times n, plus a few of the largest records.
func searchBudget(n, maxRecord int64) int64 {
	return 16*max(n, 0) + 4*(maxRecord+PayloadStart)
}

// ShortLogError is Open's error when the log ends before from or before
// Options.SyncedBefore (whichever is larger, From): a snapshot covers
// records the log does not hold (a recovery: truncate that cut the log
// before the snapshot's offset was interrupted before it removed the
// snapshot, or segments were lost).
type ShortLogError struct {
	From, End int64
	Segment   string // the last segment's path
}

func (e *ShortLogError) Error() string {
	return fmt.Sprintf("commitlog: the log ends at %d (segment %s), before offset %d, up to which a snapshot covers it (its records were fdatasynced before the snapshot was written); segments are missing or were truncated. "+
		"Restore the data directory from a backup; or, to start anyway and drop everything from offset %d on (the snapshot is removed and recovery starts from an older one or from the oldest segment; messages and acknowledgements stored after that offset are lost), set local.recovery: truncate",
		e.End, e.Segment, e.From, e.End)
}

// scan validates the log from offset from to its end, replaying each record.
func (l *Log) scan(from int64, replay func(int64, byte, []byte) error) error {
	// Segments must be contiguous.
	for i := 1; i < len(l.segs); i++ {
		prev, s := l.segs[i-1], l.segs[i]
		if end := prev.base + prev.size.Load(); end != s.base {
			cerr := &CorruptionError{Segment: s.path, Offset: min(end, s.base), Reason: fmt.Sprintf("segment starts at %d but the previous one ends at %d", s.base, end)}
			if err := l.cut(i-1, cerr, true); err != nil {
				return err
			}
			break
		}
	}
	first := l.segs[0]
	if from == FromStart {
		from = first.base
	}
	if from < first.base {
		return fmt.Errorf("commitlog: replay must start at offset %d but the oldest segment %s starts at %d; the segments in between are missing", from, first.path, first.base)
	}
	last := l.segs[len(l.segs)-1]
	// A log ending before the offset the snapshot covers lost synced
	// records, also when a rebuild makes the scan start earlier.
	if end, need := last.base+last.size.Load(), max(from, l.opts.SyncedBefore); need > end {
		return &ShortLogError{From: need, End: end, Segment: last.path}
	}
	for i := 0; i < len(l.segs); i++ {
		s := l.segs[i]
		size := s.size.Load()
		if s.base+size <= from && i < len(l.segs)-1 {
			continue
		}
		r := &segReader{f: s.f, size: size}
		pos := max(from-s.base, 0)
		for pos < size {
			n, problem, err := l.frameAt(r, s.base, pos)
			if err != nil {
				return fmt.Errorf("commitlog: read %s: %w", s.path, err)
			}
			if problem != "" {
				return l.badRecord(i, r, pos, string(problem))
			}
			p, err := r.window(pos, n)
			if err != nil {
				return fmt.Errorf("commitlog: read %s: %w", s.path, err)
			}
			if err := replay(s.base+pos, p[HeaderSize], p[PayloadStart:]); err != nil {
				return err
			}
			pos += n
		}
	}
	return nil
}

// badRecord handles a bad frame at pos of segment i: a torn tail is truncated;
// bad data followed by valid data is refused or truncated per the recovery
// mode.
func (l *Log) badRecord(i int, r *segReader, pos int64, problem string) error {
	s := l.segs[i]
	if err := l.refuseIntact(r, s, pos, problem); err != nil {
		return err
	}
	if i < len(l.segs)-1 {
		// A later segment, even an empty one, exists only once segment i
		// was fdatasynced whole (the writer syncs a segment before it
		// creates the next): a bad frame in it is damage to synced
		// records, never a torn tail.
		return l.cutAt(i, pos, &CorruptionError{Segment: s.path, Offset: s.base + pos, Reason: problem}, true)
	}
	dataEnd, err := lastNonZero(r, pos) // the last non-zero byte, +1
	if err != nil {
		return fmt.Errorf("commitlog: read %s: %w", s.path, err)
	}
	if s.base+pos < l.opts.SyncedBefore {
		// Synced whole before a snapshot was written: no interrupted
		// write, nor a power loss, explains a bad frame here (zeros
		// included).
		s.size.Store(max(dataEnd, pos))
		return l.cutAt(i, pos, &CorruptionError{Segment: s.path, Offset: s.base + pos, Reason: fmt.Sprintf(
			"%s; the snapshot recovery starts from covers the log up to offset %d, so this record was fdatasynced: damage, not an interrupted write", problem, l.opts.SyncedBefore)}, true)
	}
	if dataEnd == pos {
		// Zeros written ahead of the records (Options.Preallocate): the
		// log's clean end. They stay for the next appends.
		s.size.Store(pos)
		return nil
	}
	// The zeros after dataEnd are no records: what a cut drops, and the
	// error counts, ends there.
	s.size.Store(dataEnd)
	if hole, err := l.powerLossHole(r, s.base, pos, dataEnd); err != nil {
		return fmt.Errorf("commitlog: read %s: %w", s.path, err)
	} else if hole >= 0 {
		// Records written after the last completed fdatasync, some of
		// whose pages did not reach the disk before a power loss: none of
		// them was durable, and what follows the hole cannot be trusted to
		// be complete.
		cerr := &CorruptionError{Segment: s.path, Offset: s.base + pos, Reason: fmt.Sprintf(
			"%s; the zeros of a page a power loss did not store at segment position %d and the records up to %d bytes after it are writes a power loss kept only in part (they were never synced)",
			problem, hole, dataEnd-pos)}
		return l.cutAt(i, pos, cerr, false)
	}
	found, gaveUp, err := l.validAfter(r, s.base, pos, dataEnd)
	if err != nil {
		return fmt.Errorf("commitlog: read %s: %w", s.path, err)
	}
	if gaveUp {
		problem += "; the bytes after it are too many plausible record headers to tell a torn write from damage"
	}
	cerr := &CorruptionError{Segment: s.path, Offset: s.base + pos, Reason: problem}
	return l.cutAt(i, pos, cerr, found || gaveUp)
}

// refuseIntact returns the error refusing a bad frame that is whole and
// checksummed: it was written under other limits or by a newer version,
// and dropping it would lose a stored record. It runs before any cut (a
// power loss's hole near the end included: such a record's body may hold
// a page of zeros). nil when the frame is not such a record.
func (l *Log) refuseIntact(r *segReader, s *segment, pos int64, problem string) error {
	if frameProblem(problem) != "bad length" && frameProblem(problem) != "unknown record type" {
		return nil
	}
	n, typ, ok, err := l.intactFrame(r, s.base, pos)
	if err != nil {
		return fmt.Errorf("commitlog: read %s: %w", s.path, err)
	}
	if ok && problem == "bad length" {
		return fmt.Errorf("commitlog: the record at offset %d (segment %s) is intact but holds %d bytes, more than the maximum record size %d: "+
			"it was written with a larger maxRecordSize; set local.maxRecordSize to at least %d to open this log (nothing was changed)",
			s.base+pos, s.path, n, l.opts.MaxRecordSize, n)
	}
	if ok {
		return fmt.Errorf("commitlog: the record at offset %d (segment %s) is intact but has type %d, which this version does not know: "+
			"it was written by a newer rmqproxy; run that version or a later one on this data directory (nothing was changed)",
			s.base+pos, s.path, typ)
	}
	return nil
}

// intactFrame reports whether a whole frame with a valid checksum starts at
// segment position pos, whatever its length and type, and returns its
// length field (1 + payload length) and type. It reads the frame in chunks,
// so a long length costs no more memory than a scan.
func (l *Log) intactFrame(r *segReader, base, pos int64) (n int64, typ byte, ok bool, err error) {
	h, err := r.window(pos, PayloadStart)
	if err != nil || int64(len(h)) < PayloadStart {
		return 0, 0, false, err
	}
	n = int64(binary.BigEndian.Uint32(h[0:4]))
	want, typ := binary.BigEndian.Uint32(h[4:8]), h[8]
	if n < 1 || HeaderSize+n > r.size-pos {
		return 0, 0, false, nil
	}
	var pre [9]byte
	binary.BigEndian.PutUint64(pre[:8], uint64(base+pos))
	pre[8] = typ
	c := crc32.Update(0, castagnoli, pre[:])
	for p, end := pos+PayloadStart, pos+HeaderSize+n; p < end; {
		b, err := r.window(p, min(end-p, readChunk))
		if err != nil || len(b) == 0 {
			return 0, 0, false, err
		}
		c = crc32.Update(c, castagnoli, b)
		p += int64(len(b))
	}
	return n, typ, c == want, nil
}

// cut truncates the log at the end of segment i (used for a segment gap).
func (l *Log) cut(i int, cerr *CorruptionError, validFollows bool) error {
	return l.cutAt(i, l.segs[i].size.Load(), cerr, validFollows)
}

func (l *Log) cutAt(i int, pos int64, cerr *CorruptionError, validFollows bool) error {
	s := l.segs[i]
	dropped := s.size.Load() - pos
	for _, t := range l.segs[i+1:] {
		dropped += t.size.Load()
	}
	cerr.Dropped = dropped
	if validFollows && l.opts.Recovery == RecoveryStrict {
		return cerr
	}
	if err := s.f.Truncate(pos); err != nil {
		return fmt.Errorf("commitlog: truncate %s: %w", s.path, err)
	}
	if err := fdatasync(s.f); err != nil {
		return fmt.Errorf("commitlog: fdatasync %s: %w", s.path, err)
	}
	s.size.Store(pos)
	s.fileSize = pos
	for _, t := range l.segs[i+1:] {
		_ = t.f.Close()
		if err := os.Remove(t.path); err != nil {
			return fmt.Errorf("commitlog: remove %s: %w", t.path, err)
		}
	}
	l.segs = l.segs[:i+1]
	if err := syncDir(l.opts.Dir); err != nil {
		return fmt.Errorf("commitlog: fsync directory %s: %w", l.opts.Dir, err)
	}
	if validFollows {
		l.log.Warn("commit log corrupt; truncated at the first bad record as configured (local.recovery: truncate)",
			"segment", s.path, "offset", cerr.Offset, "reason", cerr.Reason, "bytes_dropped", dropped)
	} else if dropped > 0 {
		l.log.Warn("commit log had a torn tail (an incomplete last write); truncated it",
			"segment", s.path, "offset", cerr.Offset, "reason", cerr.Reason, "bytes_dropped", dropped)
	}
	return nil
}

// lastNonZero returns the segment position just after the last byte at or
// after pos that is not zero (pos when there is none).
func lastNonZero(r *segReader, pos int64) (int64, error) {
	for end := r.size; end > pos; {
		start := max(pos, end-readChunk)
		b, err := r.window(start, end-start)
		if err != nil {
			return 0, err
		}
		if int64(len(b)) < end-start {
			return 0, fmt.Errorf("short read at %d", start)
		}
		for j := len(b) - 1; j >= 0; j-- {
			if b[j] != 0 {
				return start + int64(j) + 1, nil
			}
		}
		end = start
	}
	return pos, nil
}

// powerLossHole returns the position of a whole zero page that makes the
// bad frame at pos of the last segment a power loss's hole (see
// holeWindow), or -1: the page holding pos when it holds zeros from pos
// (at least a length field's worth) to its end, the page's synced version. The
// last non-zero byte (dataEnd) must lie within the
// window, and a whole zero page must be where the bad frame is: within the extent
// its length claims when that is plausible, else in the page after pos. A
// zero page further on belongs to a record after the bad one (a body of
// zeros), which says nothing about the bad frame; so does one after a
// valid frame that starts past pos (a damaged length can claim an extent
// over intact records).
func (l *Log) powerLossHole(r *segReader, base, pos, dataEnd int64) (int64, error) {
	if w := l.holeWindow(); w <= 0 || dataEnd-pos > w {
		return -1, nil
	}
	// The page holding pos, read back as it was synced: the records before
	// pos, then zeros (the first record written after the last fdatasync
	// starts inside it, and its new version did not reach the disk). At
	// least the length field must lie in those zeros (no record has length
	// 0; a length's high bytes are often zero), the rest of the header may
	// be in the next page.
	if next := (pos/pageSize + 1) * pageSize; next-pos >= 4 && next <= dataEnd {
		b, err := r.window(pos, next-pos)
		if err != nil {
			return 0, err
		}
		if int64(len(b)) == next-pos && allZero(b) {
			return pos, nil
		}
	}
	extent := int64(PayloadStart)
	h, err := r.window(pos, 4)
	if err != nil {
		return 0, err
	}
	if len(h) == 4 {
		if n := int64(binary.BigEndian.Uint32(h)); n >= 1 && n <= l.opts.MaxRecordSize+1 {
			extent = HeaderSize + n
		}
	}
	hole, err := zeroPage(r, pos, min(dataEnd, pos+extent+pageSize))
	if err != nil || hole < 0 {
		return hole, err
	}
	// A valid frame between the bad frame and the page is a record after
	// it (a damaged length claims an extent over it and its body of
	// zeros), or one forged in a torn record's body: no hole either way.
	if found, gaveUp, err := l.searchValid(r, base, pos+1, hole); err != nil || found || gaveUp {
		return -1, err
	}
	return hole, nil
}

// pageSize is the unit in which written pages reach the disk.
const pageSize = 4096

// zeroPage returns the segment position of the first page-aligned, whole
// page of zeros in [pos, end), or -1.
func zeroPage(r *segReader, pos, end int64) (int64, error) {
	for p := (pos + pageSize - 1) / pageSize * pageSize; p+pageSize <= end; p += pageSize {
		b, err := r.window(p, pageSize)
		if err != nil {
			return 0, err
		}
		if len(b) == pageSize && allZero(b) {
			return p, nil
		}
	}
	return -1, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
