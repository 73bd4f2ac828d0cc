//go:build unix

package localbroker

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestMoreQueuesThanOpenFiles: a data directory with more consume queues
// than the process may open files starts and serves every queue (the
// engine used to hold every queue file open, so such a directory failed to
// start with "too many open files", and a running engine could no longer
// create queue files or write snapshots); index files are opened again as
// they are needed.
func TestMoreQueuesThanOpenFiles(t *testing.T) {
	h := newHarness(t, nil)
	send := func(id string) {
		for i := range 40 {
			topic := fmt.Sprint("t", i)
			for q := range 8 {
				h.send(topic, int32(q), msg(topic, id, ""))
			}
		}
	}
	send("a")
	if err := h.e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Skip(err)
	}
	low := old
	low.Cur = 200
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Error(err)
		}
	})
	h.open() // 320 consume queues, 200 files allowed
	drain := func(want string) {
		t.Helper()
		for i := range 40 {
			topic := fmt.Sprint("t", i)
			for q := range 8 {
				got := h.pop("g", topic, int32(q), 8, time.Minute)
				if len(got) != 1 || got[0].ID != want {
					t.Fatalf("queue %s#%d gave %v, want %s", topic, q, popIDs(got), want)
				}
				h.ack("g", got[0])
			}
		}
	}
	drain("a")
	send("b")
	h.e.flushQueues() // every queue written, none synced yet
	if h.warns.contains("cannot write consume queue") {
		t.Fatal("consume queues could not be written with more queues than open files")
	}
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatalf("snapshot with more queues than open files: %v", err)
	}
	h.restart()
	drain("b")
	send("c")
	h.crashRestart(true)
	drain("c")
}
