package commitlog

import (
	"errors"
	"fmt"
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

// validAfter reports whether a valid frame starts anywhere in (pos, size) of
// the segment.
func (l *Log) validAfter(r *segReader, base, pos int64) (bool, error) {
	for p := pos + 1; p+PayloadStart <= r.size; p++ {
		size, problem, err := l.frameAt(r, base, p)
		if err != nil {
			return false, err
		}
		if problem == "" && size > 0 {
			return true, nil
		}
	}
	return false, nil
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
	if end := last.base + last.size.Load(); from > end {
		return fmt.Errorf("commitlog: replay must start at offset %d but the log ends at %d (segment %s); segments are missing or were truncated", from, end, last.path)
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
	laterData := false
	for _, t := range l.segs[i+1:] {
		if t.size.Load() > 0 {
			laterData = true
		}
	}
	validFollows := laterData
	if !validFollows {
		v, err := l.validAfter(r, s.base, pos)
		if err != nil {
			return fmt.Errorf("commitlog: read %s: %w", s.path, err)
		}
		validFollows = v
	}
	cerr := &CorruptionError{Segment: s.path, Offset: s.base + pos, Reason: problem}
	return l.cutAt(i, pos, cerr, validFollows)
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
		l.log.Warn("commit log corrupt; truncated at the first bad record as configured (recovery: truncate)",
			"segment", s.path, "offset", cerr.Offset, "reason", cerr.Reason, "bytes_dropped", dropped)
	} else if dropped > 0 {
		l.log.Warn("commit log had a torn tail (an incomplete last write); truncated it",
			"segment", s.path, "offset", cerr.Offset, "reason", cerr.Reason, "bytes_dropped", dropped)
	}
	return nil
}
