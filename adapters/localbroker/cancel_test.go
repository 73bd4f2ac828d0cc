package localbroker

import (
	"context"
	"errors"
	"fmt"
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
