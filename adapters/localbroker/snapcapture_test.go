package localbroker

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestSnapshotCapturedDuringTraffic takes snapshots whose capture of the
// consumer states and half messages runs in batches of one, with sends, pops, acks,
// changes of invisible time, a group's deletion and a new group's pops,
// half messages sent, committed, rolled back and checked back between the
// batches: the captured states must be those at the
// snapshot's log offset (a copy of every one taken with it), and the
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
	var halves []domain.SendReceipt // pending half messages
	for i := range 12 {
		halves = append(halves, h.send("tx", int32(i%2), txMsg("tx", fmt.Sprint("h", i)))...)
	}
	h.e.mu.Lock()
	var origins []int64 // of the half messages sent so far
	for o := range h.e.txns {
		origins = append(origins, o)
	}
	h.e.mu.Unlock()
	end := func(res ports.Resolution) {
		r := halves[0]
		halves = halves[1:]
		if err := h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "tx", MessageID: r.MessageID,
			TransactionID: r.TransactionID, Resolution: res}); err != nil {
			t.Fatal(err)
		}
	}
	round := 0
	traffic := func() {
		round++
		sendAll(1)
		end(ports.ResolutionCommit)
		end(ports.ResolutionRollback)
		halves = append(halves, h.send("tx", 0, txMsg("tx", fmt.Sprint("h", sent, "a")), txMsg("tx", fmt.Sprint("h", sent, "b")))...)
		for _, o := range origins {
			h.e.countTxnCheck(o) // a check-back a producer took (none once resolved)
		}
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
		case 5: // an offset reset replaces a group's states
			if _, err := h.e.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g1", Topic: "t", QueueID: -1, Policy: ports.OffsetBeginning}); err != nil {
				t.Fatal(err)
			}
			held["g1"] = nil // their handles are from before the reset
		case 6:
			if _, err := h.e.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g0", Topic: "t", QueueID: 2, Policy: ports.OffsetEnd}); err != nil {
				t.Fatal(err)
			}
		}
	}
	saved := captureStates
	captureStates = 1
	captureBatchHook = traffic
	defer func() { captureStates, captureBatchHook = saved, nil }()

	h.e.snapMu.Lock() // as Snapshot does
	h.e.mu.Lock()
	sc := h.e.beginCaptureLocked(h.e.clog.NextOffset())
	want := *sc.s
	for _, c := range h.e.cons {
		want.states = append(want.states, c.snapState())
	}
	for o, st := range h.e.txns {
		want.txns = append(want.txns, snapTxn{origin: o, st: *st})
	}
	h.e.mu.Unlock()
	got, _ := sc.finish(h.e)
	h.e.snapMu.Unlock()
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
	h.requireReplaysMatch()
}

// TestSnapshotsDuringConcurrentTraffic takes snapshots (in batches of one
// consumer state or half message) while clients send, pop, ack and send
// and commit half messages from other goroutines until the last snapshot
// is written: the engine restarted from the last one must hold exactly the
// live state and the state a full replay of the log builds.
func TestSnapshotsDuringConcurrentTraffic(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 4,
		Permission: domain.PermRead | domain.PermWrite}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		h.createGroup(fmt.Sprint("g", i), 16, false)
	}
	saved := captureStates
	captureStates = 1
	defer func() { captureStates = saved }()
	var stop atomic.Bool
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := fmt.Sprint("g", w)
			for i := 0; !stop.Load(); i++ {
				q := int32(i % 4)
				if _, err := h.e.Send(ctx, domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: q},
					[]domain.Message{msg("t", fmt.Sprint(w, "-", i), "")}); err != nil {
					errs <- err
					return
				}
				ms, err := h.e.Pop(ctx, ports.PopRequest{Group: g, Topic: "t", QueueID: q, MaxMessages: 2, InvisibleTime: time.Minute})
				if err != nil {
					errs <- err
					return
				}
				if len(ms) > 0 {
					if err := h.e.Ack(ctx, ackReq(g, ms[0])); err != nil {
						errs <- err
						return
					}
				}
				rs, err := h.e.Send(ctx, domain.QueueRef{Topic: "tx", BrokerName: h.cfg.BrokerName, QueueID: q},
					[]domain.Message{txMsg("tx", fmt.Sprint("x", w, "-", i))})
				if err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					if err := h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "tx", MessageID: rs[0].MessageID,
						TransactionID: rs[0].TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for range 10 {
		if err := h.e.Snapshot(ctx); err != nil {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h.requireReplaysMatch()
}
