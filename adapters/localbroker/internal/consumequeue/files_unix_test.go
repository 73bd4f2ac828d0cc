//go:build linux

package consumequeue

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOpenWhenDescriptorsRunOut: opening an existing index file (a start's
// recovery opens every queue the snapshot lists) with no descriptor left
// failed at once with "too many open files", while reopening a parked one
// made room first by parking the least recently used files (syncing those
// written since their last sync). Open makes room the same way now, so a
// start does not fail while written index files are held open (seen: the
// localbroker package's TestMoreQueuesThanOpenFiles failed now and then on
// a loaded machine).
func TestOpenWhenDescriptorsRunOut(t *testing.T) {
	openFiles.mu.Lock()
	openFiles.limit = 1 << 20 // no parking by count: only running out parks
	openFiles.mu.Unlock()
	t.Cleanup(func() {
		openFiles.mu.Lock()
		openFiles.limit = 0
		openFiles.mu.Unlock()
	})
	dir := t.TempDir()
	const queues = 60
	for i := range queues {
		q := Create(filepath.Join(dir, fmt.Sprint(i)))
		if _, err := q.Append(Entry{CommitLogOffset: int64(i), Size: 1}); err != nil {
			t.Fatal(err)
		}
		if err := q.Flush(1); err != nil {
			t.Fatal(err)
		}
		if err := q.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var open []*Queue
	t.Cleanup(func() {
		for _, q := range open {
			_ = q.Close()
		}
	})
	// Half of them open and written since their last sync: held open.
	for i := range queues / 2 {
		q, err := Open(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, q)
		if _, err := q.Append(Entry{CommitLogOffset: int64(100 + i), Size: 1}); err != nil {
			t.Fatal(err)
		}
		if err := q.Flush(2); err != nil {
			t.Fatal(err)
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skip(err)
	}
	low := old
	low.Cur = uint64(len(fds) + 4)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Error(err)
		}
	})
	for i := queues / 2; i < queues; i++ {
		q, err := Open(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("open of index file %d with %d open files allowed: %v", i, low.Cur, err)
		}
		open = append(open, q)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	for i, q := range open {
		want := int64(1)
		if i < queues/2 {
			want = 2
		}
		if q.Count() != want {
			t.Fatalf("queue %d has %d entries, want %d", i, q.Count(), want)
		}
		if e, err := q.Get(0); err != nil || e.CommitLogOffset != int64(i) {
			t.Fatalf("queue %d entry 0 = %+v, %v", i, e, err)
		}
	}
}
