package localbroker

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func (h *harness) reset(group, topic string, qid int32, p ports.OffsetPolicy, at time.Time) []ports.OffsetReset {
	h.t.Helper()
	out, err := h.e.ResetOffset(h.t.Context(), ports.ResetOffsetRequest{Group: group, Topic: topic, QueueID: qid, Policy: p, At: at})
	if err != nil {
		h.t.Fatalf("ResetOffset: %v", err)
	}
	return out
}

// sendTimed sends one message per id to queue 0, a second apart, and
// returns their store times.
func (h *harness) sendTimed(topic string, idList ...string) []time.Time {
	var at []time.Time
	for _, id := range idList {
		h.fake().Advance(time.Second)
		at = append(at, h.clock.Now())
		h.send(topic, 0, msg(topic, id, ""))
	}
	return at
}

func TestResetReplaysFromATimeAndSkipsABacklog(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultQueueCount = 2 })
	ctx := t.Context()
	at := h.sendTimed("t", "0", "1", "2", "3", "4", "5")
	got := h.pop("g", "t", 0, 10, time.Minute)
	for _, m := range got[:4] {
		h.ack("g", m)
	}
	// 4 and 5 are in flight; back to the time of 2.
	res := h.reset("g", "t", -1, ports.OffsetTimestamp, at[2])
	if want := []ports.OffsetReset{{QueueID: 0, OldOffset: 4, NewOffset: 2}, {QueueID: 1, OldOffset: 0, NewOffset: 0}}; !slices.Equal(res, want) {
		t.Fatalf("reset: %+v, want %+v", res, want)
	}
	// The old handles neither ack nor renew what the new run delivers.
	if err := h.e.Ack(ctx, ackReq("g", got[4])); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) || !strings.Contains(err.Error(), "offset reset") {
		t.Fatalf("ack of a handle from before the reset, not delivered since: %v", err)
	}
	again := h.pop("g", "t", 0, 10, time.Minute)
	if !slices.Equal(ids(again), []string{"2", "3", "4", "5"}) {
		t.Fatalf("after the reset: %v", ids(again))
	}
	for _, m := range got[2:] {
		if err := h.e.Ack(ctx, ackReq("g", m)); m.QueueOffset >= 2 && !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
			t.Fatalf("ack of the old handle of %s: %v", m.ID, err)
		}
		_, err := h.e.ChangeInvisible(ctx, ports.ChangeInvisibleRequest{AckRequest: ackReq("g", m), InvisibleTime: time.Minute})
		if !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
			t.Fatalf("renewal of the old handle of %s: %v", m.ID, err)
		}
	}
	h.ack("g", again[0])
	st, err := h.e.GroupStats(ctx, "g")
	if err != nil || st[0].AckOffset != 3 || st[0].InFlight != 3 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	// Forwards to the end: the backlog is skipped, even in flight; an old
	// handle of a skipped message acks nothing but is answered OK.
	h.sendTimed("t", "6", "7")
	res = h.reset("g", "t", 0, ports.OffsetEnd, time.Time{})
	if want := []ports.OffsetReset{{QueueID: 0, OldOffset: 3, NewOffset: 8}}; !slices.Equal(res, want) {
		t.Fatalf("reset to the end: %+v", res)
	}
	if err := h.e.Ack(ctx, ackReq("g", again[1])); err != nil {
		t.Fatalf("ack of a skipped message: %v", err)
	}
	if got := h.pop("g", "t", 0, 10, time.Minute); len(got) != 0 {
		t.Fatalf("after the skip: %v", ids(got))
	}
	h.sendTimed("t", "8")
	if got := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"8"}) {
		t.Fatalf("a message sent after the skip: %v", ids(got))
	}
	// Earliest, and a time after every message.
	if res := h.reset("g", "t", 0, ports.OffsetBeginning, time.Time{}); res[0].NewOffset != 0 {
		t.Fatalf("earliest: %+v", res)
	}
	if res := h.reset("g", "t", 0, ports.OffsetTimestamp, h.clock.Now().Add(time.Hour)); res[0].OldOffset != 0 || res[0].NewOffset != 9 {
		t.Fatalf("a time after the last message: %+v", res)
	}
}

func TestResetRefusesWhatDoesNotExist(t *testing.T) {
	// Groups and topics are auto-created on use (the default): a reset
	// creates neither.
	h := newHarness(t, func(c *Config) { c.DefaultQueueCount = 2 })
	ctx := t.Context()
	h.send("t", 0, msg("t", "0", ""))
	h.createGroup("g", 3, false)
	for _, c := range []struct {
		req  ports.ResetOffsetRequest
		want domain.Reason
	}{
		{ports.ResetOffsetRequest{Group: "nope", Topic: "t", QueueID: -1}, domain.ReasonConsumerGroupNotFound},
		{ports.ResetOffsetRequest{Group: "g", Topic: "nope", QueueID: -1}, domain.ReasonTopicNotFound},
		{ports.ResetOffsetRequest{Group: "g", Topic: "t", QueueID: 2}, domain.ReasonBadRequest},
		{ports.ResetOffsetRequest{Group: "g", Topic: "t", QueueID: -2}, domain.ReasonBadRequest},
		{ports.ResetOffsetRequest{Group: "g", Topic: "t", QueueID: 0, Policy: 9}, domain.ReasonBadRequest},
	} {
		_, err := h.e.ResetOffset(ctx, c.req)
		wantReason(t, err, c.want)
	}
	if _, ok := h.e.groups["nope"]; ok {
		t.Fatal("a reset created a group")
	}
	if _, ok := h.e.topics["nope"]; ok {
		t.Fatal("a reset created a topic")
	}
}

// TestResetSurvivesRestarts: the reset is replayed from the log after a
// crash, and kept by snapshots, with its effect on in-flight deliveries,
// acked offsets above the floor and a FIFO group's blocking.
func TestResetSurvivesRestarts(t *testing.T) {
	for _, how := range []string{"crash", "snapshot", "close"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, nil)
			ctx := t.Context()
			ms := []domain.Message{msg("t", "0", ""), msg("t", "1", ""), msg("t", "2", ""), msg("t", "3", "")}
			for i := range ms {
				ms[i].Group = "A"
			}
			h.send("t", 0, ms...)
			req := ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 1, InvisibleTime: time.Hour, FIFO: true}
			first, err := h.e.Pop(ctx, req)
			if err != nil || len(first) != 1 {
				t.Fatalf("fifo pop: %v %v", ids(first), err)
			}
			// Message group A is blocked by 0 in flight; skip every message.
			h.reset("g", "t", 0, ports.OffsetEnd, time.Time{})
			h.send("t", 0, msg("t", "4", ""))
			switch how {
			case "crash":
				h.crashRestart(false)
			case "snapshot":
				if err := h.e.Snapshot(ctx); err != nil {
					t.Fatal(err)
				}
				h.crashRestart(false)
			default:
				h.restart()
			}
			got, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 10, InvisibleTime: time.Hour, FIFO: true})
			if err != nil || !slices.Equal(ids(got), []string{"4"}) {
				t.Fatalf("after the restart: %v %v; want 4 only", ids(got), err)
			}
			if err := h.e.Ack(ctx, ackReq("g", first[0])); err != nil {
				t.Fatalf("ack of a skipped message: %v", err)
			}
			h.reset("g", "t", 0, ports.OffsetBeginning, time.Time{})
			h.crashRestart(false)
			got, err = h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 10, InvisibleTime: time.Hour, FIFO: true})
			// 0 again at once, its old delivery (in flight for an hour)
			// no longer blocking its message group.
			if err != nil || !slices.Equal(ids(got), []string{"0", "4"}) {
				t.Fatalf("after a reset to the beginning and a crash: %v %v", ids(got), err)
			}
			if err := h.e.Ack(ctx, ackReq("g", first[0])); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
				t.Fatalf("ack of the old handle of a message delivered again: %v", err)
			}
			h.ack("g", got[0])
			h.crashRestart(false)
			got, err = h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 10, InvisibleTime: time.Hour, FIFO: true})
			if err != nil || !slices.Equal(ids(got), []string{"1"}) {
				t.Fatalf("after the ack of 0 and a crash: %v %v", ids(got), err)
			}
		})
	}
}

// TestResetsDuringPopsAndAcksReplayExactly: resets run while consumers pop
// and ack on the same queues (and a snapshot is taken meanwhile); every
// ack is either taken or refused as a handle of before a reset, and the
// state after a crash, rebuilt from the snapshot and the log or from the
// log alone, is the live state.
func TestResetsDuringPopsAndAcksReplayExactly(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultQueueCount = 2 })
	ctx := t.Context()
	for i := range 100 {
		h.send("t", int32(i%2), msg("t", fmt.Sprint(i), ""))
	}
	h.pop("g", "t", -1, 1, time.Minute) // creates the group
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 4, InvisibleTime: time.Minute})
				if err != nil {
					errs <- err
					return
				}
				for _, m := range got {
					if err := h.e.Ack(ctx, ackReq("g", m)); err != nil && !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
						errs <- err
						return
					}
				}
			}
		}()
	}
	for i := range 30 {
		p := []ports.OffsetPolicy{ports.OffsetBeginning, ports.OffsetEnd, ports.OffsetTimestamp}[i%3]
		if _, err := h.e.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g", Topic: "t", QueueID: int32(i%3) - 1, Policy: p, At: h.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		if i == 15 {
			if err := h.e.Snapshot(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	h.requireReplaysMatch()
}
