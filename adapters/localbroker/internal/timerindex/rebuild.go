package timerindex

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/atomicfile"
)

// Damage names a bucket the snapshot lists whose file cannot be used.
type Damage struct {
	Start  int64
	Path   string
	Reason string // "missing", "truncated: ...", "checksum mismatch at byte n", ...
	Want   State  // what the snapshot records
}

// checkBuffer is the read buffer of check.
const checkBuffer = 64 << 10

// check reads the first st.Length bytes of the bucket file p, entry by
// entry, and says why they do not match st ("" when they do). Its memory
// does not grow with the file. An error is returned only when the file
// cannot be read at all.
func check(p string, st State) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "missing", nil
		}
		return "", fmt.Errorf("timerindex: open %s: %w", p, err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("timerindex: stat %s: %w", p, err)
	}
	if fi.Size() < st.Length {
		return fmt.Sprintf("truncated: %d bytes, the snapshot says %d", fi.Size(), st.Length), nil
	}
	r := bufio.NewReaderSize(io.LimitReader(f, st.Length), checkBuffer)
	var buf [8 + maxPayload]byte
	if _, err := io.ReadFull(r, buf[:HeaderSize]); err != nil {
		return "", fmt.Errorf("timerindex: read %s: %w", p, err)
	}
	if string(buf[:HeaderSize]) != Header {
		return fmt.Sprintf("bad header %q", buf[:HeaderSize]), nil
	}
	var adds, dones, minOrigin int64
	for pos := HeaderSize; pos < st.Length; {
		hdr := buf[:8]
		if st.Length-pos >= 8 {
			if _, err := io.ReadFull(r, hdr); err != nil {
				return "", fmt.Errorf("timerindex: read %s: %w", p, err)
			}
		}
		n, err := entryLength(hdr, st.Length-pos, pos)
		if err != nil {
			return damageReason(err), nil
		}
		payload := buf[8 : 8+n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return "", fmt.Errorf("timerindex: read %s: %w", p, err)
		}
		e, err := checkedPayload(hdr, payload, pos)
		if err != nil {
			return damageReason(err), nil
		}
		switch e.Kind {
		case KindAdd:
			if adds == 0 || e.Origin < minOrigin {
				minOrigin = e.Origin
			}
			adds++
		case KindDone:
			dones++
		}
		pos += 8 + n
	}
	if adds != st.Adds || dones != st.Dones || (adds > 0 && minOrigin != st.MinOrigin) {
		return fmt.Sprintf("holds %d adds and %d dones (min origin %d), the snapshot says %d, %d (%d)",
			adds, dones, minOrigin, st.Adds, st.Dones, st.MinOrigin), nil
	}
	return "", nil
}

// damageReason is a decoding error as a Damage reason, without the
// ErrCorrupt prefix every such error has.
func damageReason(err error) string {
	return strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": ")
}

// rebuildSuffix names the temporary file of a bucket being rebuilt (Open
// deletes leftovers: their names are not bucket names).
const rebuildSuffix = ".rebuild"

// rebuildBuffer bounds the bytes a Rebuilder holds before it writes them.
const rebuildBuffer = 1 << 20

// Rebuilder rebuilds buckets from a scan of the commit log: the caller
// passes every add and done the scanned records imply, in log order, and
// the rebuilder writes those of its buckets to temporary files, holding at
// most about rebuildBuffer bytes (plus one small struct per bucket)
// whatever the number of timers. Finish makes the files durable, renames
// them over the buckets' files and adds the buckets to the index; until
// then the old files stay, so a crash leaves either the old bucket (found
// damaged again at the next start) or the whole rebuilt one.
type Rebuilder struct {
	x        *Index
	buckets  map[int64]*rebuilt
	buffered int
	err      error
}

type rebuilt struct {
	tmp                    string
	created                bool
	written                int64
	buf                    []byte
	adds, dones, minOrigin int64
}

// Rebuild starts rebuilding the buckets starting at starts (which must not
// be in the index).
func (x *Index) Rebuild(starts []int64) *Rebuilder {
	r := &Rebuilder{x: x, buckets: make(map[int64]*rebuilt, len(starts))}
	for _, s := range starts {
		r.buckets[s] = &rebuilt{tmp: filepath.Join(x.dir, Name(s)+rebuildSuffix), buf: []byte(Header)}
		r.buffered += len(Header)
	}
	return r
}

// Wants reports whether the bucket holding time ms is being rebuilt.
func (r *Rebuilder) Wants(ms int64) bool {
	_, ok := r.buckets[r.x.BucketStart(ms)]
	return ok
}

// Add records a timer (ignored unless its bucket is being rebuilt).
func (r *Rebuilder) Add(e Entry) {
	b := r.buckets[r.x.BucketStart(e.DeliverAt)]
	if b == nil {
		return
	}
	e.Kind = KindAdd
	if b.adds == 0 || e.Origin < b.minOrigin {
		b.minOrigin = e.Origin
	}
	b.adds++
	r.append(b, &e)
}

// Done records that the timer with origin, due at deliverAt, is resolved
// (ignored unless its bucket is being rebuilt). The caller passes only
// dones whose add it passed before.
func (r *Rebuilder) Done(deliverAt, origin int64) {
	b := r.buckets[r.x.BucketStart(deliverAt)]
	if b == nil {
		return
	}
	b.dones++
	r.append(b, &Entry{Kind: KindDone, Origin: origin})
}

func (r *Rebuilder) append(b *rebuilt, e *Entry) {
	n := len(b.buf)
	b.buf = AppendEntry(b.buf, e)
	r.buffered += len(b.buf) - n
	if r.buffered >= rebuildBuffer {
		r.flushAll()
	}
}

// flushAll writes every buffered byte to the temporary files (the first
// error sticks and is returned by Finish).
func (r *Rebuilder) flushAll() {
	for _, b := range r.buckets {
		if err := r.flush(b); err != nil && r.err == nil {
			r.err = err
		}
	}
	r.buffered = 0
}

func (r *Rebuilder) flush(b *rebuilt) error {
	if len(b.buf) == 0 || r.err != nil {
		b.buf = b.buf[:0]
		return nil
	}
	flags := os.O_WRONLY | os.O_APPEND
	if !b.created {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(b.tmp, flags, 0o644)
	if err != nil {
		return fmt.Errorf("timerindex: create %s: %w", b.tmp, err)
	}
	b.created = true
	_, err = f.Write(b.buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("timerindex: write %s: %w", b.tmp, err)
	}
	b.written += int64(len(b.buf))
	if cap(b.buf) > 4<<10 {
		b.buf = nil // a bucket that took a large share gives it back
	} else {
		b.buf = b.buf[:0]
	}
	return nil
}

// Rebuilt is what Finish reports about one rebuilt bucket.
type Rebuilt struct {
	Start   int64
	Path    string
	Pending int64 // adds without a done
}

// Finish writes and fsyncs the rebuilt files, renames them over the
// buckets' files, fsyncs the directory, and adds the buckets to the index.
func (r *Rebuilder) Finish() ([]Rebuilt, error) {
	r.flushAll()
	if r.err != nil {
		r.Abort()
		return nil, r.err
	}
	starts := make([]int64, 0, len(r.buckets))
	for s := range r.buckets {
		starts = append(starts, s)
	}
	slices.Sort(starts)
	for _, s := range starts {
		if err := atomicfile.SyncFile(r.buckets[s].tmp); err != nil {
			r.Abort()
			return nil, err
		}
	}
	out := make([]Rebuilt, 0, len(starts))
	for _, s := range starts {
		b := r.buckets[s]
		p := filepath.Join(r.x.dir, Name(s))
		if err := os.Rename(b.tmp, p); err != nil {
			r.Abort()
			return nil, fmt.Errorf("timerindex: rename %s: %w", b.tmp, err)
		}
		out = append(out, Rebuilt{Start: s, Path: p, Pending: max(b.adds-b.dones, 0)})
	}
	if err := atomicfile.SyncDir(r.x.dir); err != nil {
		return nil, fmt.Errorf("timerindex: %w", err)
	}
	for _, s := range starts {
		b := r.buckets[s]
		r.x.byTime[s] = &Bucket{start: s, path: filepath.Join(r.x.dir, Name(s)), flushed: b.written,
			adds: b.adds, dones: b.dones, minOrigin: b.minOrigin}
		i, _ := slices.BinarySearch(r.x.starts, s)
		r.x.starts = slices.Insert(r.x.starts, i, s)
	}
	r.buckets = nil
	return out, nil
}

// Abort removes the temporary files of an unfinished rebuild.
func (r *Rebuilder) Abort() {
	for _, b := range r.buckets {
		_ = os.Remove(b.tmp)
	}
}
