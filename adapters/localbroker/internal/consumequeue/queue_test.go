package consumequeue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestAppendFlushReopenTruncate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0")
	q, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		off, err := q.Append(Entry{CommitLogOffset: int64(i * 100), Size: 10, CRC: uint32(i), TagHash: TagHash("a"), StoredAtMs: 5})
		if err != nil || off != int64(i) {
			t.Fatalf("Append = %d, %v", off, err)
		}
	}
	if err := q.Flush(6); err != nil {
		t.Fatal(err)
	}
	for i := range int64(10) {
		e, err := q.Get(i)
		if err != nil || e.CommitLogOffset != i*100 || e.CRC != uint32(i) {
			t.Fatalf("Get(%d) = %+v, %v", i, e, err)
		}
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if _, err := q.Get(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	// Unflushed entries are gone after reopen; a torn entry is dropped.
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{1, 2, 3})
	f.Close()
	q, err = Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Count() != 6 {
		t.Fatalf("Count = %d, want 6", q.Count())
	}
	if err := q.TruncateTo(4); err != nil || q.Count() != 4 {
		t.Fatalf("TruncateTo: %v, count %d", err, q.Count())
	}
	if _, err := q.Get(4); err == nil {
		t.Fatal("Get beyond count succeeded")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(AppendEntry(nil, Entry{CommitLogOffset: 123, Size: 45, CRC: 6, TagHash: 7, StoredAtMs: 8}))
	f.Add(bytes.Repeat([]byte{0xff}, EntrySize))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			return
		}
		if re := AppendEntry(nil, e); !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// TestEntryChecksum: a flipped bit in any entry byte fails the entry's
// checksum; Check finds the first bad entry, Get refuses it.
func TestEntryChecksum(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0")
	q := Create(p)
	for i := range 5 {
		if _, err := q.Append(Entry{CommitLogOffset: int64(i * 100), Size: 10, CRC: 7, TagHash: 9, StoredAtMs: 11}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Flush(5); err != nil {
		t.Fatal(err)
	}
	q.Close()
	good := AppendEntry(nil, Entry{CommitLogOffset: 5, Size: 1})
	for i := range EntrySize * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		if _, err := DecodeEntry(b); !errors.Is(err, ErrBadEntry) {
			t.Fatalf("bit %d flipped: %v", i, err)
		}
	}
	b, _ := os.ReadFile(p)
	b[3*EntrySize+1] ^= 4
	os.WriteFile(p, b, 0o644)
	q, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, err := q.Check(5); err != nil || n != 3 {
		t.Fatalf("Check = %d, %v; want 3", n, err)
	}
	if _, err := q.Get(3); !errors.Is(err, ErrBadEntry) {
		t.Fatalf("Get of the bad entry: %v", err)
	}
	if e, err := q.Get(4); err != nil || e.CommitLogOffset != 400 {
		t.Fatalf("Get(4) = %+v, %v", e, err)
	}
}

// TestGetRacingCloseIsErrClosed: Get reads the file outside of the queue's
// mutex, so a Close (a removal of a deleted topic's queue) can close the
// file in between; that read is ErrClosed, which callers reading without
// the engine lock (pop, pull, offset queries) take as "the topic was
// deleted: look again", not as a storage error.
func TestGetRacingCloseIsErrClosed(t *testing.T) {
	q := Create(filepath.Join(t.TempDir(), "0"))
	if _, err := q.Append(Entry{CommitLogOffset: 1, Size: 1}); err != nil {
		t.Fatal(err)
	}
	if err := q.Flush(1); err != nil {
		t.Fatal(err)
	}
	f := q.f
	_ = q.Close() // as Close does between Get's check and its read
	if _, err := f.ReadAt(make([]byte, EntrySize), 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read of the closed file = %v", err)
	}
	if err := q.readAt(make([]byte, EntrySize), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close = %v, want ErrClosed", err)
	}
	if _, err := q.Get(0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get = %v, want ErrClosed", err)
	}
}

// TestFilesBoundedAndReopened: with more queues than index files may be
// open, the least recently used files with nothing to fsync are closed and
// opened again when read or written, also while a read is under way (a
// parked file's read is retried); a file written since its last Sync is
// only closed synced, when descriptors run out. The entries read back are
// those written.
func TestFilesBoundedAndReopened(t *testing.T) {
	openFiles.mu.Lock()
	openFiles.limit = 8
	openFiles.mu.Unlock()
	defer func() {
		openFiles.mu.Lock()
		openFiles.limit = 0
		openFiles.mu.Unlock()
	}()
	dir := t.TempDir()
	var qs []*Queue
	for i := range 40 {
		q := Create(filepath.Join(dir, fmt.Sprint(i)))
		for j := range 3 {
			if _, err := q.Append(Entry{CommitLogOffset: int64(i*100 + j), Size: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.Flush(3); err != nil {
			t.Fatal(err)
		}
		if err := q.Sync(); err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	openCount := func() int {
		openFiles.mu.Lock()
		defer openFiles.mu.Unlock()
		n := 0
		for q := range openFiles.open {
			if slices.Contains(qs, q) {
				n++
			}
		}
		return n
	}
	if n := openCount(); n > 8 {
		t.Fatalf("%d index files open, want at most 8", n)
	}
	for round := range 3 {
		for i, q := range qs {
			for j := range int64(3) {
				e, err := q.Get(j)
				if err != nil || e.CommitLogOffset != int64(i*100)+j {
					t.Fatalf("round %d: queue %d entry %d = %+v, %v", round, i, j, e, err)
				}
			}
			if n := openCount(); n > 8 {
				t.Fatalf("%d index files open, want at most 8", n)
			}
		}
	}
	// A parked file read while it is being closed is read again.
	q := qs[0]
	q.mu.Lock()
	f := q.f
	q.mu.Unlock()
	if f == nil {
		if _, err := q.Get(0); err != nil {
			t.Fatal(err)
		}
	}
	q.park(false)
	if e, err := q.Get(1); err != nil || e.CommitLogOffset != 1 {
		t.Fatalf("Get of a parked queue = %+v, %v", e, err)
	}
	// Written and not synced: left open, or synced when descriptors run
	// out, so that nothing is left for a descriptor opened later to fsync.
	// Appends, truncation and reopening keep the file's content.
	for i, q := range qs[:20] {
		if _, err := q.Append(Entry{CommitLogOffset: int64(i*100 + 3), Size: 1}); err != nil {
			t.Fatal(err)
		}
		if err := q.Flush(4); err != nil {
			t.Fatal(err)
		}
	}
	for i, q := range qs[:20] {
		q.mu.Lock()
		open := q.f != nil
		q.mu.Unlock()
		if !open {
			t.Fatalf("queue %d was closed with writes not synced", i)
		}
		if i < 10 {
			q.park(true) // as when descriptors run out
			q.mu.Lock()
			parked, dirty := q.f == nil, q.dirty
			q.mu.Unlock()
			if !parked || dirty {
				t.Fatalf("queue %d: parked %v, dirty %v after a park that may sync", i, parked, dirty)
			}
		}
	}
	for i, q := range qs[:20] {
		if err := q.TruncateTo(2); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			q.park(true)
		} else if err := q.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for i, q := range qs {
		want := int64(4)
		if i < 20 {
			want = 2
		} else {
			want = 3
		}
		if got := q.Count(); got != want {
			t.Fatalf("queue %d has %d entries, want %d", i, got, want)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := Open(q.Path())
		if err != nil {
			t.Fatal(err)
		}
		if r.Count() != want {
			t.Fatalf("queue %d reopened has %d entries, want %d", i, r.Count(), want)
		}
		for j := range want {
			if e, err := r.Get(j); err != nil || e.CommitLogOffset != int64(i*100)+j {
				t.Fatalf("queue %d reopened entry %d = %+v, %v", i, j, e, err)
			}
		}
		_ = r.Close()
	}
}

// tagHash keeps TagHash from being inlined into the test, which measures
// what the function itself costs.
var tagHash = TagHash

// TestTagHash: 64-bit FNV-1a of the tag as hash/fnv computes it (the
// index files hold it), 0 only for the empty tag, and no allocation.
func TestTagHash(t *testing.T) {
	for _, tag := range []string{"a", "TagA", "some longer tag with spaces", "\x00\xff", strings.Repeat("x", 300)} {
		h := fnv.New64a()
		h.Write([]byte(tag))
		if got, want := TagHash(tag), h.Sum64(); got != want {
			t.Errorf("TagHash(%q) = %#x, hash/fnv says %#x", tag, got, want)
		}
	}
	if TagHash("") != 0 {
		t.Error("the empty tag does not hash to 0")
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = tagHash("TagA") }); allocs != 0 {
		t.Errorf("TagHash allocates %v times, want 0", allocs)
	}
}

// TestAppendEntryLayout: the entry is its five fields big-endian and a
// CRC-32C of them, appended after what dst holds, without allocating when
// dst has room.
func TestAppendEntryLayout(t *testing.T) {
	e := Entry{CommitLogOffset: 0x0102030405060708, Size: 0x11121314, CRC: 0x21222324, TagHash: 0x3132333435363738, StoredAtMs: 0x4142434445464748}
	want := []byte{'p',
		1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x21, 0x22, 0x23, 0x24,
		0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48}
	want = binary.BigEndian.AppendUint32(want, crc32.Checksum(want[1:], crc32.MakeTable(crc32.Castagnoli)))
	if got := AppendEntry([]byte{'p'}, e); !bytes.Equal(got, want) {
		t.Fatalf("AppendEntry = %x, want %x", got, want)
	}
	dst := make([]byte, 0, EntrySize)
	if allocs := testing.AllocsPerRun(100, func() { _ = AppendEntry(dst, e) }); allocs != 0 {
		t.Errorf("AppendEntry into room allocates %v times, want 0", allocs)
	}
}

// TestGetIntoReusesRoom: GetInto returns what Get does, and reads an entry
// from the file without allocating.
func TestGetIntoReusesRoom(t *testing.T) {
	q, err := Open(filepath.Join(t.TempDir(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := range 4 {
		if _, err := q.Append(Entry{CommitLogOffset: int64(i * 100), Size: 10, CRC: uint32(i), TagHash: TagHash("a"), StoredAtMs: 5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Flush(2); err != nil {
		t.Fatal(err)
	}
	room := new([EntrySize]byte)
	for i := range int64(4) { // from the file, then from the tail
		got, err1 := q.GetInto(room, i)
		want, err2 := q.Get(i)
		if err1 != nil || err2 != nil || got != want || got.CommitLogOffset != i*100 {
			t.Fatalf("GetInto(%d) = %+v, %v; Get = %+v, %v", i, got, err1, want, err2)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = q.GetInto(room, 0) }); allocs != 0 {
		t.Errorf("%.0f allocations per GetInto of a flushed entry, want 0", allocs)
	}
}

// TestCheckOfASmallQueueAllocatesLittle: every start checks every queue
// file; a data directory with thousands of small queues allocated 288 KiB
// per queue for that (2.2 GB for 8,000 queues, most of the start's CPU in
// allocation and GC).
func TestCheckOfASmallQueueAllocatesLittle(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0")
	q := Create(p)
	for i := range 3 {
		if _, err := q.Append(Entry{CommitLogOffset: int64(i), Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Flush(3); err != nil {
		t.Fatal(err)
	}
	const checks = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range checks {
		if n, err := q.Check(3); err != nil || n != 3 {
			t.Fatalf("Check = %d, %v", n, err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / checks; per > 4<<10 {
		t.Fatalf("a check of a 3-entry queue allocated %d bytes", per)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestFlushReleasesTheTailsRoom: entries written to the file leave no room
// behind them. A start that rebuilt or replayed many entries of a queue
// (65,536 per queue before each write of a rebuild, a snapshot interval's
// worth after kill -9) kept room for as many in every such queue for as
// long as the process ran, ~2.6 MB a queue after a rebuild.
func TestFlushReleasesTheTailsRoom(t *testing.T) {
	q := Create(filepath.Join(t.TempDir(), "0"))
	defer func() { _ = q.Close() }()
	const n = 100_000
	for i := range n {
		if _, err := q.Append(Entry{CommitLogOffset: int64(i), Size: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Flush(n - 10); err != nil {
		t.Fatal(err)
	}
	if c := cap(q.tail); c > 1024 {
		t.Fatalf("10 entries left in memory keep room for %d", c)
	}
	if err := q.Flush(n); err != nil {
		t.Fatal(err)
	}
	if c := cap(q.tail); c > 1024 {
		t.Fatalf("no entry left in memory keeps room for %d", c)
	}
	for i := range int64(n) {
		if e, err := q.Get(i); err != nil || e.CommitLogOffset != i {
			t.Fatalf("Get(%d) = %+v, %v", i, e, err)
		}
	}
}

// TestOpeningWrittenFilesBeyondTheLimitSortsRarely: files written since
// their last sync are not parked, so past the open-file limit every open
// sorted every open file again to find none to park: the first write of
// 8,000 queues rebuilt at a start (limit 5,000) took seconds of CPU.
func TestOpeningWrittenFilesBeyondTheLimitSortsRarely(t *testing.T) {
	openFiles.mu.Lock()
	openFiles.limit = 64
	openFiles.scans = 0
	openFiles.mu.Unlock()
	t.Cleanup(func() {
		openFiles.mu.Lock()
		openFiles.limit = 0
		openFiles.mu.Unlock()
	})
	dir := t.TempDir()
	const queues = 1000
	qs := make([]*Queue, queues)
	t.Cleanup(func() {
		for _, q := range qs {
			if q != nil {
				_ = q.Close()
			}
		}
	})
	for i := range qs {
		qs[i] = Create(filepath.Join(dir, fmt.Sprint(i)))
		if _, err := qs[i].Append(Entry{CommitLogOffset: int64(i), Size: 1}); err != nil {
			t.Fatal(err)
		}
		if err := qs[i].Flush(1); err != nil { // written, not synced: stays open
			t.Fatal(err)
		}
	}
	openFiles.mu.Lock()
	scans := openFiles.scans
	openFiles.scans = 0
	openFiles.mu.Unlock()
	// Growing by an eighth between searches: about 23 from 64 to 1,000.
	if scans > 40 {
		t.Fatalf("%d searches for files to park while opening %d written files beyond a limit of 64", scans, queues)
	}
	// Synced, they are parked again at the next search.
	for _, q := range qs {
		if err := q.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	extra := make([]*Queue, 200)
	for i := range extra {
		extra[i] = Create(filepath.Join(dir, fmt.Sprint("x", i)))
		qs = append(qs, extra[i])
		if _, err := extra[i].Append(Entry{Size: 1}); err != nil {
			t.Fatal(err)
		}
		if err := extra[i].Flush(1); err != nil {
			t.Fatal(err)
		}
	}
	openFiles.mu.Lock()
	open := len(openFiles.open)
	openFiles.mu.Unlock()
	if open > 64+200 {
		t.Fatalf("%d files open after the others were synced, limit 64", open)
	}
}
