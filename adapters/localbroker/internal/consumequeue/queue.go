// Package consumequeue is the per-queue index of the local broker: for each
// (topic, queue id) an append-only file of fixed-size entries, entry i being
// the message at queue offset i.
//
// The index is derived data. The engine appends entries in memory when it
// assigns queue offsets, writes them to the file lazily (only once the
// commit-log record they point to is durable; a new queue's file is created
// by its first write) and truncates/rebuilds them from the commit log at
// recovery. The package does no fsync ordering of its own beyond
// [Queue.Sync].
//
// Entry layout, 36 bytes, big endian:
//
//	0   8  commit-log offset of the message encoding
//	8   4  size of the message encoding in bytes (0: a placeholder, see Gone)
//	12  4  CRC-32C of the message encoding
//	16  8  tag hash (FNV-1a 64 of the tag, 0 = no tag)
//	24  8  store time, Unix milliseconds
//	32  4  CRC-32C of bytes 0..31 of the entry
//
// The entry checksum tells a damaged entry from a damaged message: a file
// whose entries fail it (or a file of the 32-byte format of older versions,
// whose bytes fail it too) is rebuilt from the commit log by the engine.
//
// Invariants: DecodeEntry never panics and returns ErrBadEntry for an entry
// that fails its checksum; Get never returns an entry that was not appended;
// a Queue is safe for concurrent use and every method fails with ErrClosed
// after Close.
package consumequeue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/atomicfile"
)

// EntrySize is the size of one entry on disk.
const EntrySize = 36

// Gone is the placeholder a rebuild writes for a queue offset whose message
// the commit log no longer holds (retention deleted its segment): readers
// treat an entry of size 0 as a message that is gone.
var Gone = Entry{}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry locates one message of a queue in the commit log.
type Entry struct {
	CommitLogOffset int64
	Size            int32
	CRC             uint32
	TagHash         uint64
	StoredAtMs      int64
}

// ErrClosed is returned by a closed queue.
var ErrClosed = errors.New("consume queue closed")

// ErrBadEntry wraps entry decoding errors.
var ErrBadEntry = errors.New("bad consume queue entry")

// TagHash hashes a tag for the index; the empty tag hashes to 0.
func TagHash(tag string) uint64 {
	if tag == "" {
		return 0
	}
	// 64-bit FNV-1a, as hash/fnv's New64a computes it, without its
	// allocation.
	h := uint64(fnvOffset64)
	for i := range len(tag) {
		h ^= uint64(tag[i])
		h *= fnvPrime64
	}
	if h != 0 {
		return h
	}
	return 1
}

// The 64-bit FNV parameters.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// AppendEntry appends the encoding of e to dst. It encodes in place: an
// array on the stack would be moved to the heap, as the checksum escapes
// its input.
func AppendEntry(dst []byte, e Entry) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, EntrySize)...)
	b := dst[n:]
	binary.BigEndian.PutUint64(b[0:], uint64(e.CommitLogOffset))
	binary.BigEndian.PutUint32(b[8:], uint32(e.Size))
	binary.BigEndian.PutUint32(b[12:], e.CRC)
	binary.BigEndian.PutUint64(b[16:], e.TagHash)
	binary.BigEndian.PutUint64(b[24:], uint64(e.StoredAtMs))
	binary.BigEndian.PutUint32(b[32:], crc32.Checksum(b[:32], castagnoli))
	return dst
}

// DecodeEntry decodes one entry.
func DecodeEntry(b []byte) (Entry, error) {
	if len(b) != EntrySize {
		return Entry{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadEntry, len(b), EntrySize)
	}
	if binary.BigEndian.Uint32(b[32:]) != crc32.Checksum(b[:32], castagnoli) {
		return Entry{}, fmt.Errorf("%w: checksum mismatch", ErrBadEntry)
	}
	off := binary.BigEndian.Uint64(b[0:])
	size := binary.BigEndian.Uint32(b[8:])
	if off > math.MaxInt64 || size > math.MaxInt32 {
		return Entry{}, fmt.Errorf("%w: offset or size out of range", ErrBadEntry)
	}
	return Entry{
		CommitLogOffset: int64(off),
		Size:            int32(size),
		CRC:             binary.BigEndian.Uint32(b[12:]),
		TagHash:         binary.BigEndian.Uint64(b[16:]),
		StoredAtMs:      int64(binary.BigEndian.Uint64(b[24:])),
	}, nil
}

// keptRoom is the room for in-memory entries a queue keeps after Flush.
const keptRoom = 1024

// Queue is one index file.
//
// Its file is not held open for good: at most maxOpen index files (of all
// queues of the process) are, so that a data directory with more queues
// than the process may open files still works (see openFiles). A queue
// whose file was closed to make room opens it again when it next reads or
// writes it.
type Queue struct {
	mu      sync.Mutex
	path    string
	f       *os.File // nil: no file yet (onDisk unset), or closed to make room
	onDisk  bool     // the file exists at path
	flushed int64    // entries in the file
	tail    []Entry  // entries [flushed, flushed+len(tail)) not yet written
	dirty   bool     // written since the last Sync
	created bool     // the file was created by Flush; Sync fsyncs its directories
	closed  bool
	used    atomic.Int64 // openFiles' tick of the last use of f
}

// Open opens the index file at path. A partial last entry (a torn write) is
// dropped. A missing file opens an empty queue whose file the first Flush
// creates.
func Open(path string) (*Queue, error) {
	q := &Queue{path: path}
	f, err := openFiles.openFile(q, os.O_RDWR)
	if errors.Is(err, os.ErrNotExist) {
		return Create(path), nil
	}
	if err != nil {
		return nil, fmt.Errorf("consumequeue: open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("consumequeue: stat %s: %w", path, err)
	}
	n := st.Size() / EntrySize
	if st.Size()%EntrySize != 0 {
		if err := f.Truncate(n * EntrySize); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("consumequeue: truncate %s: %w", path, err)
		}
	}
	q.f, q.onDisk, q.flushed = f, true, n
	openFiles.opened(q)
	return q, nil
}

// Create returns a new, empty queue for path without touching the disk: the
// first Flush creates the file (replacing any file left at path) and its
// directory. Appending to a queue therefore never does I/O.
func Create(path string) *Queue {
	return &Queue{path: path}
}

// Path is the file's path.
func (q *Queue) Path() string { return q.path }

// Count is the number of entries (the next queue offset).
func (q *Queue) Count() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flushed + int64(len(q.tail))
}

// Unwritten is the number of entries held in memory, not yet written to
// the file.
func (q *Queue) Unwritten() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.tail)
}

// Append adds e at queue offset Count() (in memory until Flush).
func (q *Queue) Append(e Entry) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, ErrClosed
	}
	q.tail = append(q.tail, e)
	return q.flushed + int64(len(q.tail)) - 1, nil
}

// Get returns the entry at queue offset i.
func (q *Queue) Get(i int64) (Entry, error) {
	return q.GetInto(new([EntrySize]byte), i)
}

// GetInto is Get reading an entry from the file into room (whose array
// would escape to the file read, an allocation per call): a reader of many
// entries passes the same room.
func (q *Queue) GetInto(room *[EntrySize]byte, i int64) (Entry, error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return Entry{}, ErrClosed
	}
	if i < 0 || i >= q.flushed+int64(len(q.tail)) {
		q.mu.Unlock()
		return Entry{}, fmt.Errorf("consumequeue: offset %d out of range", i)
	}
	if i >= q.flushed {
		e := q.tail[i-q.flushed]
		q.mu.Unlock()
		return e, nil
	}
	if err := q.reopenLocked(); err != nil {
		q.mu.Unlock()
		return Entry{}, err
	}
	f := q.f
	q.mu.Unlock()
	b := room
	_, err := f.ReadAt(b[:], i*EntrySize)
	if errors.Is(err, os.ErrClosed) {
		err = q.readAt(b[:], i*EntrySize) // parked or closed since the check above
	}
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return Entry{}, err
		}
		return Entry{}, fmt.Errorf("consumequeue: read %s at %d: %w", q.path, i, err)
	}
	e, err := DecodeEntry(b[:])
	if err != nil {
		return Entry{}, fmt.Errorf("consumequeue: %s entry %d: %w", q.path, i, err)
	}
	return e, nil
}

// Check reads the file's entries below n and returns how many leading ones
// are present and pass their checksum (n when all do).
func (q *Queue) Check(n int64) (int64, error) {
	q.mu.Lock()
	onDisk, flushed := q.onDisk, q.flushed
	q.mu.Unlock()
	if !onDisk {
		return 0, nil
	}
	n = min(n, flushed)
	const chunk = 8192 // entries per read
	// No larger than the entries to check: every start checks every queue,
	// and most queues of a directory with thousands are small.
	buf := make([]byte, min(n, chunk)*EntrySize)
	for i := int64(0); i < n; {
		k := min(n-i, chunk)
		if err := q.readAt(buf[:k*EntrySize], i*EntrySize); err != nil {
			return i, fmt.Errorf("consumequeue: read %s: %w", q.path, err)
		}
		for j := range k {
			if _, err := DecodeEntry(buf[j*EntrySize : (j+1)*EntrySize]); err != nil {
				return i + j, nil
			}
		}
		i += k
	}
	return n, nil
}

// Flush writes the in-memory entries below upTo to the file (no fsync).
func (q *Queue) Flush(upTo int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	n := min(upTo-q.flushed, int64(len(q.tail)))
	if n <= 0 {
		return nil
	}
	if !q.onDisk {
		dir := filepath.Dir(q.path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("consumequeue: create %s: %w", dir, err)
		}
		f, err := openFiles.openFile(q, os.O_RDWR|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("consumequeue: create %s: %w", q.path, err)
		}
		q.f, q.onDisk, q.created = f, true, true
		openFiles.opened(q)
	} else if err := q.reopenLocked(); err != nil {
		return err
	}
	buf := make([]byte, 0, n*EntrySize)
	for _, e := range q.tail[:n] {
		buf = AppendEntry(buf, e)
	}
	if _, err := q.f.WriteAt(buf, q.flushed*EntrySize); err != nil {
		return fmt.Errorf("consumequeue: write %s: %w", q.path, err)
	}
	q.flushed += n
	if rest := q.tail[n:]; cap(q.tail) > keptRoom && len(rest) <= keptRoom {
		// Room for many entries is not kept for good: a start that
		// rebuilt or replayed many entries of this queue needed it once.
		q.tail = slices.Clone(rest)
	} else {
		q.tail = append(q.tail[:0], rest...)
	}
	q.dirty = true
	return nil
}

// Sync fsyncs the file if it was written since the last Sync.
func (q *Queue) Sync() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	return q.syncLocked()
}

// syncLocked is Sync with q.mu held.
func (q *Queue) syncLocked() error {
	if !q.dirty {
		return nil
	}
	if err := q.reopenLocked(); err != nil {
		return err
	}
	if err := q.f.Sync(); err != nil {
		return fmt.Errorf("consumequeue: fsync %s: %w", q.path, err)
	}
	if q.created {
		// The new file's name, and its topic directory's, must be durable too.
		dir := filepath.Dir(q.path)
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := atomicfile.SyncDir(d); err != nil {
				return fmt.Errorf("consumequeue: %w", err)
			}
		}
		q.created = false
	}
	q.dirty = false
	openFiles.synced()
	return nil
}

// TruncateTo drops every entry at or above queue offset n.
func (q *Queue) TruncateTo(n int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if n < 0 {
		n = 0
	}
	if n >= q.flushed {
		if k := n - q.flushed; k < int64(len(q.tail)) {
			q.tail = q.tail[:k]
		}
		return nil
	}
	q.tail = nil
	if !q.onDisk {
		return nil
	}
	if err := q.reopenLocked(); err != nil {
		return err
	}
	if err := q.f.Truncate(n * EntrySize); err != nil {
		return fmt.Errorf("consumequeue: truncate %s: %w", q.path, err)
	}
	q.flushed = n
	q.dirty = true
	return nil
}

// Close closes the file without flushing the in-memory entries.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	if q.f == nil {
		return nil
	}
	openFiles.forget(q)
	return q.f.Close()
}

// Remove closes the queue and deletes its file (a missing file is fine).
func (q *Queue) Remove() error {
	if err := q.Close(); err != nil {
		return err
	}
	if err := os.Remove(q.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("consumequeue: remove %s: %w", q.path, err)
	}
	return nil
}
