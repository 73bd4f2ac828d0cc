// Package timerindex is the local broker's on-disk timing wheel: the index
// of pending delay (timer) messages, bucketed by delivery time.
//
// Time is cut into buckets of a fixed width (the engine uses one minute).
// Each bucket that ever held a timer is one append-only file, named by the
// 20-digit Unix-millisecond start of the bucket, holding a file header and
// a sequence of entries: "add" (a timer: delivery time, where its message
// is in the commit log, its queue) and "done" (the timer with that origin
// fired, was recalled or dropped). A bucket's pending timers are its adds
// without a done. The engine keeps only the buckets of the near future in
// memory; this package does not hold entries in memory beyond the tails not
// yet written.
//
// The index is derived data, like the consume queues: every entry comes
// from a commit-log record, and the engine writes entries lazily (tails are
// buffered, written every second and fsynced only by snapshots). A snapshot
// records every bucket's length and counters; recovery truncates each
// bucket to its recorded length, deletes buckets the snapshot does not
// list, and replays the log after the snapshot, which appends the same
// entries again.
//
// File layout: the 8-byte header "RMQTMR01", then entries, each
//
//	0  4  length n of the payload (big endian)
//	4  4  CRC-32C of the payload
//	8  n  payload: kind (1 add, 2 done), then varints:
//	      add:  delivery time (Unix ms, zig-zag), origin, size, crc, queue id, topic
//	      done: origin
//
// (origin is the commit-log offset of the message encoding.)
//
// Invariants: DecodeEntries never panics and never reads past a bad entry;
// a Bucket is safe for concurrent use, and its counters change only with
// its entries; the Index itself is not synchronized (the engine guards it
// with its own mutex).
package timerindex

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// Header is the first bytes of every bucket file; it names the format.
const Header = "RMQTMR01"

// HeaderSize is len(Header).
const HeaderSize = int64(len(Header))

// maxPayload bounds one entry's payload (topics are at most 127 bytes).
const maxPayload = 1024

// Kind says what an entry records.
type Kind uint8

// Entry kinds. Values are persisted: never renumber.
const (
	KindAdd  Kind = 1
	KindDone Kind = 2
)

// Entry is one entry of a bucket.
type Entry struct {
	Kind      Kind
	DeliverAt int64 // Unix ms (adds only)
	Origin    int64 // commit-log offset of the message encoding
	Size      int32 // size of the message encoding (adds only)
	CRC       uint32
	QueueID   int32
	Topic     string
}

// ErrCorrupt wraps every decoding error.
var ErrCorrupt = errors.New("corrupt timer index entry")

// ErrRemoved is returned by a bucket whose file was removed.
var ErrRemoved = errors.New("timer index bucket removed")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendEntry appends the encoding of e to dst.
func AppendEntry(dst []byte, e *Entry) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = append(dst, byte(e.Kind))
	dst = binary.AppendUvarint(dst, uint64(e.Origin))
	if e.Kind == KindAdd {
		dst = binary.AppendVarint(dst, e.DeliverAt)
		dst = binary.AppendUvarint(dst, uint64(uint32(e.Size)))
		dst = binary.AppendUvarint(dst, uint64(e.CRC))
		dst = binary.AppendVarint(dst, int64(e.QueueID))
		dst = binary.AppendUvarint(dst, uint64(len(e.Topic)))
		dst = append(dst, e.Topic...)
	}
	p := dst[start+8:]
	binary.BigEndian.PutUint32(dst[start:], uint32(len(p)))
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(p, castagnoli))
	return dst
}

// DecodeEntries decodes the entries in b (a bucket file without its
// header). It returns the entries before the first bad one, the number of
// bytes they use, and an error wrapping ErrCorrupt when b holds more than
// those entries.
func DecodeEntries(b []byte) ([]Entry, int, error) {
	var out []Entry
	pos := 0
	for pos < len(b) {
		n, err := entryLength(b[pos:], int64(len(b)-pos), int64(pos))
		if err != nil {
			return out, pos, err
		}
		e, err := checkedPayload(b[pos:pos+8], b[pos+8:pos+8+int(n)], int64(pos))
		if err != nil {
			return out, pos, err
		}
		out = append(out, e)
		pos += 8 + int(n)
	}
	return out, pos, nil
}

// entryLength reads the payload length from the 8-byte entry header hdr
// (when left, the bytes from the entry to the end, can hold one) and
// checks it against left; pos is the entry's byte position, for the error.
func entryLength(hdr []byte, left, pos int64) (int64, error) {
	if left < 8 {
		return 0, fmt.Errorf("%w: truncated entry at byte %d", ErrCorrupt, pos)
	}
	n := int64(binary.BigEndian.Uint32(hdr))
	if n < 2 || n > maxPayload || n > left-8 {
		return 0, fmt.Errorf("%w: bad entry length %d at byte %d", ErrCorrupt, n, pos)
	}
	return n, nil
}

// checkedPayload checks payload p against the checksum in the entry header
// hdr and decodes it; pos is the entry's byte position, for the error.
func checkedPayload(hdr, p []byte, pos int64) (Entry, error) {
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(hdr[4:8]) {
		return Entry{}, fmt.Errorf("%w: checksum mismatch at byte %d", ErrCorrupt, pos)
	}
	e, err := decodePayload(p)
	if err != nil {
		return Entry{}, fmt.Errorf("%w at byte %d", err, pos)
	}
	return e, nil
}

func decodePayload(p []byte) (Entry, error) {
	bad := func(why string) (Entry, error) { return Entry{}, fmt.Errorf("%w: %s", ErrCorrupt, why) }
	e := Entry{Kind: Kind(p[0])}
	p = p[1:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	sv := func() (int64, bool) {
		v, n := binary.Varint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		return v, true
	}
	origin, ok := uv()
	if !ok || origin > math.MaxInt64 {
		return bad("bad origin")
	}
	e.Origin = int64(origin)
	switch e.Kind {
	case KindDone:
	case KindAdd:
		at, ok1 := sv()
		size, ok2 := uv()
		crc, ok3 := uv()
		qid, ok4 := sv()
		tl, ok5 := uv()
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || size > math.MaxInt32 || crc > math.MaxUint32 ||
			qid < 0 || qid > math.MaxInt32 || tl > uint64(len(p)) {
			return bad("bad add entry")
		}
		e.DeliverAt, e.Size, e.CRC, e.QueueID = at, int32(size), uint32(crc), int32(qid)
		e.Topic = string(p[:tl])
		p = p[tl:]
	default:
		return bad("unknown kind")
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return e, nil
}

// Pending returns the adds of entries that no done entry cancels, in file
// order.
func Pending(entries []Entry) []Entry {
	done := map[int64]int{}
	for i := range entries {
		if entries[i].Kind == KindDone {
			done[entries[i].Origin]++
		}
	}
	var out []Entry
	for i := range entries {
		e := &entries[i]
		if e.Kind != KindAdd {
			continue
		}
		if done[e.Origin] > 0 {
			done[e.Origin]--
			continue
		}
		out = append(out, *e)
	}
	return out
}

// State is what a snapshot records about one bucket.
type State struct {
	Start     int64 // Unix ms
	Length    int64 // bytes of the file, header included
	Adds      int64
	Dones     int64
	MinOrigin int64 // smallest origin of any add (the commit log must keep it)
}

// Bucket is one bucket file.
type Bucket struct {
	start int64
	path  string

	mu        sync.Mutex
	flushed   int64  // bytes in the file
	tail      []byte // bytes [flushed, flushed+len(tail)) not yet written
	dirty     bool   // written since the last Sync
	removed   bool
	adds      int64
	dones     int64
	minOrigin int64
}

// Start is the Unix-ms start of the bucket.
func (b *Bucket) Start() int64 { return b.start }

// Path is the bucket's file.
func (b *Bucket) Path() string { return b.path }

// State returns the bucket's length and counters.
func (b *Bucket) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return State{Start: b.start, Length: b.flushed + int64(len(b.tail)), Adds: b.adds, Dones: b.dones, MinOrigin: b.minOrigin}
}

// Pending is the number of adds without a done.
func (b *Bucket) Pending() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.adds-b.dones, 0)
}

func (b *Bucket) append(e *Entry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.flushed == 0 && len(b.tail) == 0 {
		b.tail = append(b.tail, Header...)
	}
	b.tail = AppendEntry(b.tail, e)
	switch e.Kind {
	case KindAdd:
		if b.adds == 0 || e.Origin < b.minOrigin {
			b.minOrigin = e.Origin
		}
		b.adds++
	case KindDone:
		b.dones++
	}
}

// Flush writes the buffered bytes below length upTo to the file (no fsync);
// upTo < 0 writes everything.
func (b *Bucket) Flush(upTo int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.removed {
		return ErrRemoved
	}
	n := int64(len(b.tail))
	if upTo >= 0 {
		n = min(upTo-b.flushed, n)
	}
	if n <= 0 {
		return nil
	}
	f, err := os.OpenFile(b.path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("timerindex: open %s: %w", b.path, err)
	}
	_, err = f.WriteAt(b.tail[:n], b.flushed)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("timerindex: write %s: %w", b.path, err)
	}
	b.flushed += n
	if n == int64(len(b.tail)) {
		b.tail = nil // release the buffer: idle buckets cost no memory
	} else {
		b.tail = slices.Clone(b.tail[n:])
	}
	b.dirty = true
	return nil
}

// Sync fsyncs the file if it was written since the last Sync.
func (b *Bucket) Sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.removed || !b.dirty {
		return nil
	}
	f, err := os.OpenFile(b.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("timerindex: open %s: %w", b.path, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("timerindex: fsync %s: %w", b.path, err)
	}
	b.dirty = false
	return nil
}

// Dirty reports whether the bucket has bytes not yet written or synced.
func (b *Bucket) Dirty() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.removed && (len(b.tail) > 0 || b.dirty)
}

// Entries reads every entry of the bucket (file and buffered tail). On a
// damaged file it returns the entries before the damage and an error
// wrapping ErrCorrupt.
func (b *Bucket) Entries() ([]Entry, error) {
	es, _, err := b.EntriesFrom(0)
	return es, err
}

// EntriesFrom reads the entries from byte from of the bucket on (0: every
// entry; else a length an earlier call returned) and returns them with the
// bucket's length they reach. Entries appended after a read stay in memory
// until the bucket is flushed, so reading them again from that length
// mostly needs no I/O. Errors as for Entries.
func (b *Bucket) EntriesFrom(from int64) ([]Entry, int64, error) {
	b.mu.Lock()
	flushed, total := b.flushed, b.flushed+int64(len(b.tail))
	if from < 0 || from > total {
		b.mu.Unlock()
		return nil, total, fmt.Errorf("%w: %s has %d bytes, not the %d read before", ErrCorrupt, b.path, total, from)
	}
	tail := slices.Clone(b.tail[max(from-flushed, 0):])
	b.mu.Unlock()
	var buf []byte
	if from < flushed {
		buf = make([]byte, flushed-from, total-from)
		f, err := os.Open(b.path)
		if err != nil {
			return nil, total, fmt.Errorf("timerindex: open %s: %w", b.path, err)
		}
		_, err = f.ReadAt(buf, from)
		_ = f.Close()
		if err != nil {
			return nil, total, fmt.Errorf("timerindex: read %s: %w", b.path, err)
		}
	}
	buf = append(buf, tail...)
	if from == 0 {
		if int64(len(buf)) < HeaderSize || string(buf[:HeaderSize]) != Header {
			return nil, total, fmt.Errorf("%w: %s does not start with %q", ErrCorrupt, b.path, Header)
		}
		buf = buf[HeaderSize:]
	}
	es, _, err := DecodeEntries(buf)
	if err != nil {
		err = fmt.Errorf("%s: %w", b.path, err)
	}
	return es, total, err
}

// Index is the set of buckets of one directory. It is not safe for
// concurrent use: the engine calls it under its mutex (Buckets are).
type Index struct {
	dir    string
	width  int64
	byTime map[int64]*Bucket
	starts []int64 // sorted bucket starts
}

// Name is the file name of the bucket starting at start.
func Name(start int64) string { return fmt.Sprintf("%020d", start) }

// Open opens the index in dir with buckets of width milliseconds, keeping
// exactly the buckets want lists, truncated to their recorded lengths, and
// deleting every other file (the log replay after the snapshot recreates
// their entries; a ".rebuild" file is a rebuild a crash interrupted).
//
// Every entry of a listed bucket is checked (header, checksums, counters
// against the snapshot's). A listed bucket that is missing, shorter than
// recorded, or fails a check is not opened but returned in damaged: the
// caller must rebuild it from the commit log (see Rebuild) before it uses
// the index.
func Open(dir string, width int64, want []State) (x *Index, damaged []Damage, err error) {
	if width <= 0 {
		return nil, nil, fmt.Errorf("timerindex: bucket width %d must be positive", width)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("timerindex: create %s: %w", dir, err)
	}
	x = &Index{dir: dir, width: width, byTime: map[int64]*Bucket{}}
	wanted := map[int64]State{}
	for _, s := range want {
		wanted[s.Start] = s
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("timerindex: list %s: %w", dir, err)
	}
	for _, ent := range ents {
		p := filepath.Join(dir, ent.Name())
		start, perr := strconv.ParseInt(ent.Name(), 10, 64)
		st, ok := wanted[start]
		if perr != nil || len(ent.Name()) != 20 || !ok || !ent.Type().IsRegular() {
			if err := os.RemoveAll(p); err != nil {
				return nil, nil, fmt.Errorf("timerindex: remove stale bucket %s: %w", p, err)
			}
			continue
		}
		if why, err := check(p, st); err != nil {
			return nil, nil, err
		} else if why != "" {
			damaged = append(damaged, Damage{Start: start, Path: p, Reason: why, Want: st})
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("timerindex: stat %s: %w", p, err)
		}
		if fi.Size() > st.Length {
			if err := os.Truncate(p, st.Length); err != nil {
				return nil, nil, fmt.Errorf("timerindex: truncate %s: %w", p, err)
			}
		}
		x.byTime[start] = &Bucket{start: start, path: p, flushed: st.Length, adds: st.Adds, dones: st.Dones, minOrigin: st.MinOrigin}
		x.starts = append(x.starts, start)
	}
	found := make(map[int64]bool, len(damaged))
	for _, d := range damaged {
		found[d.Start] = true
	}
	for start, st := range wanted {
		if _, ok := x.byTime[start]; !ok && !found[start] {
			damaged = append(damaged, Damage{Start: start, Path: filepath.Join(dir, Name(start)), Reason: "missing", Want: st})
		}
	}
	slices.Sort(x.starts)
	slices.SortFunc(damaged, func(a, b Damage) int { return cmp.Compare(a.Start, b.Start) })
	return x, damaged, nil
}

// Dir is the index directory.
func (x *Index) Dir() string { return x.dir }

// Width is the bucket width in milliseconds.
func (x *Index) Width() int64 { return x.width }

// BucketStart is the start of the bucket holding time ms (Unix ms).
func (x *Index) BucketStart(ms int64) int64 {
	if ms < 0 {
		return 0
	}
	return ms - ms%x.width
}

// Bucket returns the bucket starting at start, or nil.
func (x *Index) Bucket(start int64) *Bucket { return x.byTime[start] }

// Add records a timer in its bucket, creating the bucket on first use.
// It reports whether the bucket is new.
func (x *Index) Add(e Entry) (*Bucket, bool) {
	e.Kind = KindAdd
	start := x.BucketStart(e.DeliverAt)
	b, ok := x.byTime[start]
	if !ok {
		b = &Bucket{start: start, path: filepath.Join(x.dir, Name(start))}
		x.byTime[start] = b
		i, _ := slices.BinarySearch(x.starts, start)
		x.starts = slices.Insert(x.starts, i, start)
	}
	b.append(&e)
	return b, !ok
}

// Done records that the timer with origin, due at deliverAt, is resolved.
// A done for a bucket that does not exist creates it (replay of a damaged
// history); the engine never asks for that otherwise.
func (x *Index) Done(deliverAt, origin int64) {
	start := x.BucketStart(deliverAt)
	b, ok := x.byTime[start]
	if !ok {
		b = &Bucket{start: start, path: filepath.Join(x.dir, Name(start))}
		x.byTime[start] = b
		i, _ := slices.BinarySearch(x.starts, start)
		x.starts = slices.Insert(x.starts, i, start)
	}
	b.append(&Entry{Kind: KindDone, Origin: origin})
}

// Next returns the first bucket starting at or after from.
func (x *Index) Next(from int64) (*Bucket, bool) {
	i, _ := slices.BinarySearch(x.starts, from)
	if i >= len(x.starts) {
		return nil, false
	}
	return x.byTime[x.starts[i]], true
}

// Buckets returns every bucket in start order.
func (x *Index) Buckets() []*Bucket {
	out := make([]*Bucket, len(x.starts))
	for i, s := range x.starts {
		out[i] = x.byTime[s]
	}
	return out
}

// Len is the number of buckets.
func (x *Index) Len() int { return len(x.starts) }

// Remove deletes a bucket and its file.
func (x *Index) Remove(start int64) error {
	b, ok := x.byTime[start]
	if !ok {
		return nil
	}
	delete(x.byTime, start)
	if i, found := slices.BinarySearch(x.starts, start); found {
		x.starts = slices.Delete(x.starts, i, i+1)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.removed = true
	b.tail = nil
	if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("timerindex: remove %s: %w", b.path, err)
	}
	return nil
}
