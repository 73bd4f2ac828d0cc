package localbroker

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestSnapshotCapturedDuringTraffic takes snapshots whose capture of the
// consumer states runs in batches of one state, with sends, pops, acks,
// changes of invisible time, a group's deletion and a new group's pops
// between the batches: the captured states must be those at the
// snapshot's log offset (a copy of every state taken with it), and the
// engine restarted from the snapshot must hold exactly the state a full
// replay of the log builds, and the live one.
func TestSnapshotCapturedDuringTraffic(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 4,
		Permission: domain.PermRead | domain.PermWrite}); err != nil {
		t.Fatal(err)
	}
	groups := []string{"g0", "g1", "g2", "g3"}
	for _, g := range groups {
		h.createGroup(g, 16, false)
	}
	sent := 0
	sendAll := func(n int) {
		for q := range int32(4) {
			for range n {
				sent++
				h.send("t", q, msg("t", fmt.Sprint("m", sent), ""))
			}
		}
	}
	sendAll(12)
	held := map[string][]domain.StoredMessage{}
	for _, g := range groups {
		for q := range int32(4) {
			ms := h.pop(g, "t", q, 5, time.Minute)
			for _, m := range ms[:2] {
				h.ack(g, m)
			}
			held[g] = append(held[g], ms[2:]...)
		}
	}
	round := 0
	traffic := func() {
		round++
		sendAll(1)
		for _, g := range []string{"g0", "g1"} {
			held[g] = append(held[g], h.pop(g, "t", int32(round%4), 2, time.Minute)...)
		}
		if ms := held["g0"]; len(ms) > 0 {
			h.ack("g0", ms[0])
			held["g0"] = ms[1:]
		}
		if ms := held["g1"]; len(ms) > 0 {
			if _, err := h.e.ChangeInvisible(ctx, ports.ChangeInvisibleRequest{AckRequest: ackReq("g1", ms[0]),
				InvisibleTime: 2 * time.Minute}); err != nil {
				t.Fatal(err)
			}
			held["g1"] = ms[1:]
		}
		switch round {
		case 2:
			if err := h.e.DeleteGroup(ctx, "g3"); err != nil {
				t.Fatal(err)
			}
		case 3:
			h.createGroup(fmt.Sprint("new", sent), 16, false)
			h.pop(fmt.Sprint("new", sent), "t", 1, 3, time.Minute)
		case 4:
			h.createGroup("g3", 16, false)
			h.pop("g3", "t", 0, 3, time.Minute)
		}
	}
	saved := captureStates
	captureStates = 1
	captureBatchHook = traffic
	defer func() { captureStates, captureBatchHook = saved, nil }()

	h.e.mu.Lock()
	sc := h.e.beginCaptureLocked(h.e.clog.NextOffset())
	want := *sc.s
	for _, c := range h.e.cons {
		want.states = append(want.states, c.snapState())
	}
	h.e.mu.Unlock()
	got, _ := sc.finish(h.e)
	if round < 8 {
		t.Fatalf("the capture ran %d batches, want one a state", round+1)
	}
	got.sortCanonical()
	want.sortCanonical()
	if g, w := encodeSnapshot(got), encodeSnapshot(&want); !bytes.Equal(g, w) {
		t.Fatalf("captured states differ from those at the snapshot's offset:\n%s", stateDiff(append(w, '\n'), append(g, '\n')))
	}

	round = 0
	if err := h.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if round < 8 {
		t.Fatalf("the snapshot's capture ran %d batches, want one a state", round+1)
	}
	captureBatchHook = nil
	traffic()
	live, fromSnap, fromLog := h.replayStates()
	if !bytes.Equal(live, fromSnap) {
		t.Errorf("state after snapshot + replay differs from the live state:\n%s", stateDiff(live, fromSnap))
	}
	if !bytes.Equal(fromSnap, fromLog) {
		t.Errorf("state after snapshot + replay differs from a full replay:\n%s", stateDiff(fromLog, fromSnap))
	}
}
