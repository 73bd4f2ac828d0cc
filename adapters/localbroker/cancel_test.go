package localbroker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestStartCancelledDuringRecovery: a start whose context ends while it
// replays the commit log (SIGTERM during a long recovery) stops between
// two records with an error that says so, writes nothing (no snapshot),
// unlocks the data directory and leaves no goroutine (TestMain's goleak);
// the next start recovers every record.
func TestStartCancelledDuringRecovery(t *testing.T) {
	const n = 50
	h := newHarness(t, nil)
	ctx := context.Background()
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		h.send("t", 0, msg("t", fmt.Sprint("m", i), ""))
	}
	if err := h.e.clog.Sync(ctx, h.e.clog.NextOffset()); err != nil {
		t.Fatal(err)
	}
	h.e.crash() // no final snapshot: the next start replays every record

	start, cancel := context.WithCancel(ctx)
	read := 0
	replayHook = func() {
		if read++; read == 10 {
			cancel()
		}
	}
	defer func() { replayHook = nil }()
	e, err := New(h.cfg, h.logger(), h.clock)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start(start)
	if !errors.Is(err, context.Canceled) || domain.ReasonOf(err) != domain.ReasonUnavailable {
		t.Fatalf("Start cancelled during recovery: %v", err)
	}
	if read != 10 {
		t.Fatalf("recovery read %d records after the cancel at the 10th", read)
	}
	t.Logf("Start: %v", err)
	replayHook = nil

	// Unlocked, nothing written: the next start replays everything.
	h.open()
	if got := h.e.replayed.Load(); got < n {
		t.Fatalf("the next start replayed %d records, want at least %d", got, n)
	}
	if got := len(h.pop("g", "t", 0, 2*n, 0)); got != n {
		t.Fatalf("popped %d messages, want %d", got, n)
	}
}

// TestReadyReportsRebuildProgress: while a start rebuilds the consume
// queues from the whole commit log (their files were removed), readiness
// says so and how far it got; it said "commit-log records replayed: 0"
// until the rebuild ended, minutes for a large directory.
func TestReadyReportsRebuildProgress(t *testing.T) {
	const n = 50
	h := newHarness(t, nil)
	for i := range n {
		h.send("t", 0, msg("t", fmt.Sprint("m", i), ""))
	}
	if err := h.e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(h.cfg.DataDir, "consumequeue", "t")); err != nil {
		t.Fatal(err)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	read := 0
	replayHook = func() {
		if read++; read == 10 {
			close(reached)
			<-release
		}
	}
	defer func() { replayHook = nil }()
	e, err := New(h.cfg, h.logger(), h.clock)
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() { started <- e.Start(context.Background()) }()
	<-reached
	ready := e.Ready(t.Context())
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	h.e = e
	if ready == nil || !strings.Contains(ready.Error(), "rebuilding indexes from the whole commit log (records read: 10, at byte ") {
		t.Fatalf("readiness during the rebuild: %v", ready)
	}
	t.Logf("readiness during the rebuild: %v", ready)
	if got := len(h.pop("g", "t", 0, 2*n, 0)); got != n {
		t.Fatalf("popped %d messages after the rebuild, want %d", got, n)
	}
}

// TestRebuildHoldsBoundedEntries: a start that rebuilds consume queues
// from the commit log writes their entries as it goes, whatever the number
// of queues: each queue wrote only every 65,536 entries, so a directory of
// many smaller queues held every entry of every queue in memory until the
// rebuild ended (3 million messages: some 200 MB).
func TestRebuildHoldsBoundedEntries(t *testing.T) {
	const queues, perQueue, bound = 8, 100, 50
	h := newHarness(t, nil)
	if _, err := h.e.CreateTopic(t.Context(), domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: queues}); err != nil {
		t.Fatal(err)
	}
	for q := range int32(queues) {
		for i := 0; i < perQueue; i += 10 {
			ms := make([]domain.Message, 10)
			for j := range ms {
				ms[j] = msg("t", fmt.Sprint(q, "-", i+j), "")
			}
			h.send("t", q, ms...)
		}
	}
	if err := h.e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(h.cfg.DataDir, "consumequeue", "t")); err != nil {
		t.Fatal(err)
	}
	defer func(held, write int) { rebuildMaxHeld, rebuildMinWrite = held, write }(rebuildMaxHeld, rebuildMinWrite)
	rebuildMaxHeld, rebuildMinWrite = bound, 2
	var e *Engine
	most := 0
	replayHook = func() { // called with the engine lock held by Start
		held := 0
		for k := range e.rebuild {
			if qi := e.queues[k]; qi != nil {
				held += qi.cq.Unwritten()
			}
		}
		most = max(most, held)
	}
	defer func() { replayHook = nil }()
	e, err := New(h.cfg, h.logger(), h.clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.e = e
	replayHook = nil
	// Queues holding fewer than rebuildMinWrite are not written.
	if most > bound+2*queues {
		t.Fatalf("the rebuild held up to %d entries in memory, bound %d", most, bound)
	}
	for q := range int32(queues) {
		if got := len(h.pop("g", "t", q, 2*perQueue, 0)); got != perQueue {
			t.Fatalf("queue %d: popped %d messages after the rebuild, want %d", q, got, perQueue)
		}
	}
}
