//go:build unix

package localbroker

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// TestTooManyQueueFilesNamesTheLimit: the engine keeps one file open per
// consume queue, so a data directory with more queues than the process may
// open files does not start; the error says so and what to raise (it only
// said "too many open files" before), and the flush warning while running
// does too.
func TestTooManyQueueFilesNamesTheLimit(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 40 {
		topic := fmt.Sprint("t", i)
		for q := range 8 {
			h.send(topic, int32(q), msg(topic, "m", ""))
		}
	}
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
	e, err := New(h.cfg, h.logger(), h.clock)
	if err == nil {
		err = e.Start(t.Context())
	}
	if rerr := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		h.e = e
		t.Fatal("started with 320 consume queues and 200 files allowed")
	}
	for _, want := range []string{"too many open files", "one open file per consume queue", "320", "LimitNOFILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the start error does not say %q: %v", want, err)
		}
	}
	h.open()
}
