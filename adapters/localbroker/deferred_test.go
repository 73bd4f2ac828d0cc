package localbroker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// fireTimers runs the timer service at the fake clock's time until nothing
// is due, and waits until what it fired is visible.
func (h *harness) fireTimers() {
	h.t.Helper()
	e := h.e
	e.mu.Lock()
	for {
		now := e.clock.Now()
		if wake := e.timerPassLocked(now); wake.After(now) {
			break
		}
	}
	end := e.clog.NextOffset()
	e.mu.Unlock()
	h.settle(end)
}

// settle waits until the log is durable up to end and promotes the index
// entries it covers.
func (h *harness) settle(end int64) {
	h.t.Helper()
	if err := h.e.clog.Sync(context.Background(), end); err != nil {
		h.t.Fatal(err)
	}
	h.e.mu.Lock()
	h.e.promoteLocked()
	h.e.mu.Unlock()
}

// checkTxns runs the transaction check-backs due at the fake clock's time.
// The engine's own check-back loop may run a pass meanwhile and take some
// of them (it runs late on a busy machine: its first pass after a restart,
// or one kicked by a counted check-back, can come after the test moved the
// clock); the check-backs it took are counted once it has handed them
// over, so checkTxns waits for it to be idle before it settles the log.
func (h *harness) checkTxns() {
	h.t.Helper()
	e := h.e
	e.mu.Lock()
	var all []ports.TransactionCheck
	for {
		now := e.clock.Now()
		checks, wake := e.txnPassLocked(now)
		all = append(all, checks...)
		if wake.After(now) {
			break
		}
	}
	e.mu.Unlock()
	e.deliverChecks(context.Background(), all)
	h.waitTxnLoopIdle()
	h.settle(e.clog.NextOffset())
}

// waitTxnLoopIdle waits until the engine's check-back loop is parked
// between passes with no kick pending: a pass it ran has then handed its
// check-backs to the handler, and no other starts before the clock moves
// (the timer it waits on is hours of real time away, or fires a pass that
// finds nothing due at the same fake time).
func (h *harness) waitTxnLoopIdle() {
	h.t.Helper()
	waitfor.Condition(h.t, 10*time.Second, time.Millisecond, func() error {
		if len(h.e.txnKick) > 0 {
			return errors.New("a check-back pass is kicked")
		}
		for _, s := range goroutines.Stacks() {
			if !strings.Contains(s, "\ngithub.com/rmqproxy/rmqproxy/adapters/localbroker.(*Engine).txnLoop(") {
				continue
			}
			// Parked: blocked in runLoop's select, runLoop the top frame
			// (a pass runs in txnLoop.func1, above runLoop).
			header, rest, _ := strings.Cut(s, "\n")
			if strings.Contains(header, "[select") && strings.HasPrefix(rest, "github.com/rmqproxy/rmqproxy/adapters/localbroker.(*Engine).runLoop(") {
				return nil
			}
			return fmt.Errorf("the check-back loop is in a pass:\n%s", s)
		}
		return errors.New("no check-back loop runs")
	})
}

func delayMsg(topic, id string, at time.Time) domain.Message {
	m := msg(topic, id, "")
	m.DeliverAt = at
	return m
}

func txMsg(topic, id string) domain.Message {
	m := msg(topic, id, "")
	m.Transactional = true
	return m
}

func (h *harness) queueCount(topic string, qid int32) int64 {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	if qi := h.e.queues[queueKey{topic, qid}]; qi != nil {
		return qi.count
	}
	return 0
}

func TestDelayMessageDeliveredAtItsTime(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	rs := h.send("d", 1, delayMsg("d", "late", now.Add(30*time.Second)))
	if rs[0].QueueOffset != -1 || rs[0].RecallHandle == "" || rs[0].QueueID != 1 || rs[0].MessageID != "late" {
		t.Fatalf("receipt %+v", rs[0])
	}
	// Due, or within one tick: stored as a normal message, which cannot
	// be recalled: a RocketMQ broker gives it no recall handle either. A
	// handle was given, and its recall was NOT_FOUND.
	rs = h.send("d", 1, delayMsg("d", "past", now.Add(-time.Hour)), delayMsg("d", "tick", now.Add(timerTick)))
	if rs[0].QueueOffset != 0 || rs[1].QueueOffset != 1 || rs[0].RecallHandle != "" || rs[1].RecallHandle != "" {
		t.Fatalf("receipts of due messages %+v", rs)
	}
	_, err := h.e.Send(t.Context(), domain.QueueRef{Topic: "d", BrokerName: h.cfg.BrokerName}, []domain.Message{delayMsg("d", "never", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))})
	wantReason(t, err, domain.ReasonIllegalDeliveryTime)
	due := h.pop("g", "d", 1, 10, time.Minute)
	if !slices.Equal(ids(due), []string{"past", "tick"}) {
		t.Fatalf("due messages: %v", ids(due))
	}
	for _, m := range due {
		h.ack("g", m)
	}
	h.fake().Advance(29 * time.Second)
	h.fireTimers()
	if got := h.pop("g", "d", 1, 10, time.Minute); len(got) != 0 {
		t.Fatalf("delivered early: %v", ids(got))
	}
	h.fake().Advance(time.Second)
	h.fireTimers()
	got := h.pop("g", "d", 1, 10, time.Minute)
	if len(got) != 1 || got[0].ID != "late" || got[0].QueueOffset != 2 || got[0].DeliveryAttempt != 1 ||
		!got[0].DeliverAt.Equal(now.Add(30*time.Second)) || !got[0].StoredAt.Equal(h.clock.Now()) || string(got[0].Body) != "body-late" {
		t.Fatalf("fired message %+v", got)
	}
	// It is an ordinary message from now on: acked once, never again.
	h.ack("g", got[0])
	h.crashRestart(false)
	h.fireTimers()
	h.fake().Advance(time.Hour)
	if got := h.pop("g", "d", 1, 10, time.Minute); len(got) != 0 {
		t.Fatalf("after restart: %v", ids(got))
	}
	if n := h.queueCount("d", 1); n != 3 {
		t.Fatalf("queue holds %d entries, want 3 (a timer fired twice?)", n)
	}
}

func TestDelayMessagesSurviveCrashAndFireOnce(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	var want []string
	for i := range 40 {
		// Spread over several buckets, some in the loaded window, some not.
		at := now.Add(time.Duration(i*7) * time.Second)
		if i == 0 {
			at = now.Add(time.Second)
		}
		id := fmt.Sprintf("m%02d", i)
		want = append(want, id)
		h.send("d", int32(i%2), delayMsg("d", id, at))
	}
	h.fireTimers() // loads the first bucket
	h.crashRestart(false)
	h.fake().Advance(100 * time.Second)
	h.fireTimers()
	first := h.popAll("g", "d")
	h.crashRestart(true) // fired records are on disk: they must not fire again
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.fake().Advance(time.Hour)
	h.crashRestart(false)
	h.fireTimers()
	rest := h.popAll("g", "d")
	all := append(first, rest...)
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Fatalf("delivered %v\nwant %v", all, want)
	}
	if len(first) == 0 || len(first) == len(want) {
		t.Fatalf("first round delivered %d of %d", len(first), len(want))
	}
	if n := h.queueCount("d", 0) + h.queueCount("d", 1); n != int64(len(want)) {
		t.Fatalf("queues hold %d entries for %d timers", n, len(want))
	}
}

// popAll pops everything visible for group from topic and acks it.
func (h *harness) popAll(group, topic string) []string {
	h.t.Helper()
	var out []string
	for {
		got := h.pop(group, topic, -1, 32, time.Hour)
		if len(got) == 0 {
			return out
		}
		for _, m := range got {
			out = append(out, m.ID)
			h.ack(group, m)
		}
	}
}

func TestOverdueTimersFireAtStart(t *testing.T) {
	h := newHarness(t, nil)
	h.clock = ports.SystemClock{}
	h.restart()
	now := time.Now()
	h.send("d", 0, delayMsg("d", "a", now.Add(300*time.Millisecond)), delayMsg("d", "b", now.Add(2*time.Hour)))
	h.send("d", 0, delayMsg("d", "c", now.Add(400*time.Millisecond)))
	h.e.crash()
	// Restart well after the first two were due: the timer goroutine fires
	// them without anyone asking.
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if time.Now().Before(now.Add(500 * time.Millisecond)) {
			return fmt.Errorf("not due yet")
		}
		return nil
	})
	h.open()
	got, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "d", QueueID: -1, MaxMessages: 10, InvisibleTime: time.Minute, PollTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for len(got) < 2 {
		more, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "d", QueueID: -1, MaxMessages: 10, InvisibleTime: time.Minute, PollTimeout: 5 * time.Second})
		if err != nil || len(more) == 0 {
			t.Fatalf("overdue timers not fired after restart: got %v (%v)", ids(got), err)
		}
		got = append(got, more...)
	}
	if !slices.Equal(ids(got), []string{"a", "c"}) {
		t.Fatalf("fired %v", ids(got))
	}
}

// TestTimerGoroutineFindsNewBuckets runs the timer goroutine alone (real
// clock, no test-driven passes) with short buckets: timers in buckets
// created after it planned its sleep must still fire on time.
func TestTimerGoroutineFindsNewBuckets(t *testing.T) {
	h := newHarness(t, nil)
	h.clock = ports.SystemClock{}
	h.engineMod = func(e *Engine) { e.timerWidth, e.timerLookahead = 100*time.Millisecond, 20*time.Millisecond }
	h.restart()
	now := time.Now()
	// A far timer first, so the goroutine plans a long sleep.
	h.send("d", 0, delayMsg("d", "far", now.Add(time.Hour)))
	var want []string
	for i := range 5 {
		id := fmt.Sprint("n", i)
		want = append(want, id)
		h.send("d", 0, delayMsg("d", id, now.Add(time.Duration(300+150*i)*time.Millisecond)))
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		ms, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "d", QueueID: 0, MaxMessages: 10, InvisibleTime: time.Hour, PollTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if late := time.Since(m.DeliverAt); late < 0 {
				t.Fatalf("%s delivered %v early", m.ID, -late)
			}
			got = append(got, m.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
}

func TestDelayRealClockLateness(t *testing.T) {
	h := newHarness(t, nil)
	h.clock = ports.SystemClock{}
	h.restart()
	at := time.Now().Add(150 * time.Millisecond)
	h.send("d", 0, delayMsg("d", "x", at))
	got, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "d", QueueID: 0, MaxMessages: 1, InvisibleTime: time.Minute, PollTimeout: 10 * time.Second})
	late := time.Since(at)
	if err != nil || len(got) != 1 {
		t.Fatalf("pop: %v %v", ids(got), err)
	}
	if late < 0 {
		t.Fatalf("delivered %v early", -late)
	}
	t.Logf("delivered %v after its delivery time (long poll included)", late)
}

func TestRecall(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	ctx := t.Context()
	near := h.send("d", 0, delayMsg("d", "near", now.Add(2*time.Second)))[0]
	far := h.send("d", 0, delayMsg("d", "far", now.Add(time.Hour)))[0]
	keep := h.send("d", 0, delayMsg("d", "keep", now.Add(time.Hour)))[0]
	h.fireTimers() // the near bucket is loaded now, the far one is not
	for _, r := range []domain.SendReceipt{near, far} {
		id, err := h.e.Recall(ctx, "d", r.RecallHandle)
		if err != nil || id != r.MessageID {
			t.Fatalf("recall %s: %q %v", r.MessageID, id, err)
		}
		// Again (a client retrying a recall whose answer it lost): OK with
		// the message id, as a RocketMQ broker answers every recall before
		// the delivery time (RecallMessageProcessor writes a delete marker
		// per recall and cannot tell a second one from the first).
		if id, err := h.e.Recall(ctx, "d", r.RecallHandle); err != nil || id != r.MessageID {
			t.Fatalf("second recall of %s: %q %v", r.MessageID, id, err)
		}
	}
	_, err := h.e.Recall(ctx, "other", keep.RecallHandle)
	wantReason(t, err, domain.ReasonBadRequest)
	for _, bad := range []string{"", "!!!", "djEgZCBi", keep.RecallHandle[:len(keep.RecallHandle)-4]} {
		_, err = h.e.Recall(ctx, "d", bad)
		wantReason(t, err, domain.ReasonBadRequest)
	}
	// A handle naming a message that is not there: the same answer (the
	// broker cannot tell either; nothing is delivered for it).
	forged := encodeRecallHandle("d", h.cfg.BrokerName, now.Add(time.Hour).UnixMilli(), "nobody", 12345)
	if id, err := h.e.Recall(ctx, "d", forged); err != nil || id != "nobody" {
		t.Fatalf("recall of a message not held: %q %v", id, err)
	}
	h.crashRestart(false)
	if id, err := h.e.Recall(ctx, "d", far.RecallHandle); err != nil || id != far.MessageID {
		t.Fatalf("recall again after a restart: %q %v", id, err)
	}
	h.fake().Advance(2 * time.Hour)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("delivered %v; recalled messages must not be", got)
	}
	// After the delivery time (delivered, or recalled before): NOT_FOUND,
	// the broker's "timestamp invalid".
	for _, r := range []domain.SendReceipt{keep, far} {
		_, err = h.e.Recall(ctx, "d", r.RecallHandle)
		wantReason(t, err, domain.ReasonNotFound)
	}
	// A delay message sent already due has no recall handle.
	if due := h.send("d", 0, delayMsg("d", "due", h.clock.Now()))[0]; due.RecallHandle != "" {
		t.Fatalf("a delay message sent due has recall handle %q", due.RecallHandle)
	}
}

// TestRecallAfterBrokerRename: local.brokerName is only the name routes
// and handles show; a delay message sent before the operator renamed it is
// still pending in this broker, and its recall handle still recalls it.
func TestRecallAfterBrokerRename(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	r := h.send("d", 0, delayMsg("d", "a", now.Add(time.Hour)))[0]
	h.cfg.BrokerName = "renamed"
	h.restart()
	if id, err := h.e.Recall(t.Context(), "d", r.RecallHandle); err != nil || id != r.MessageID {
		t.Fatalf("recall after the broker's rename: %q %v", id, err)
	}
	if id, err := h.e.Recall(t.Context(), "d", r.RecallHandle); err != nil || id != r.MessageID {
		t.Fatalf("second recall after the broker's rename: %q %v", id, err)
	}
	h.fake().Advance(2 * time.Hour)
	h.fireTimers()
	if got := h.popAll("g", "d"); len(got) != 0 {
		t.Fatalf("delivered %v; the recalled message must not be", got)
	}
}

func TestDrainedTimerBucketsRemoved(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	for i := range 5 {
		h.send("d", 0, delayMsg("d", fmt.Sprint(i), now.Add(time.Duration(i)*time.Minute+time.Second)))
	}
	files := func() int {
		ents, _ := os.ReadDir(filepath.Join(h.cfg.DataDir, "timer"))
		return len(ents)
	}
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := files(); n != 5 {
		t.Fatalf("%d bucket files, want 5", n)
	}
	h.fake().Advance(10 * time.Minute)
	h.fireTimers()
	if got := h.popAll("g", "d"); len(got) != 5 {
		t.Fatalf("fired %v", got)
	}
	// The first snapshot after draining leaves the files (the previous
	// snapshot still lists them), the second removes them.
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.send("t", 0, msg("t", "x", "")) // something new so the next snapshot is written
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := files(); n != 0 {
		t.Fatalf("%d drained bucket files left", n)
	}
	h.crashRestart(false)
	h.fireTimers()
	if got := h.popAll("g", "d"); len(got) != 0 {
		t.Fatalf("after removal and restart: %v", got)
	}
}

func TestTimersOfDeletedTopicDropped(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	h.send("d", 0, delayMsg("d", "old", now.Add(time.Minute)))
	if err := h.e.DeleteTopic(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}
	h.send("d", 0, delayMsg("d", "new", now.Add(time.Minute)))
	h.fake().Advance(2 * time.Minute)
	h.crashRestart(false)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"new"}) {
		t.Fatalf("delivered %v", got)
	}
}

// TestDeletedTopicsTimersLogOnce: the delay messages of a deleted topic
// are discarded when they come due; a topic deleted with many pending
// wrote one WARN line per message (a flood of them, all due at once for a
// mass-scheduled topic). The discards are logged at most once a minute,
// with how many were not logged.
func TestDeletedTopicsTimersLogOnce(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	const n = 200
	for i := range n {
		h.send("d", 0, delayMsg("d", fmt.Sprint(i), now.Add(time.Minute)))
	}
	if err := h.e.DeleteTopic(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}
	h.fake().Advance(2 * time.Minute)
	h.fireTimers()
	if got := h.popAll("g", "d"); len(got) != 0 {
		t.Fatalf("delivered %v", got)
	}
	h.warns.mu.Lock()
	lines := 0
	for _, l := range h.warns.lines {
		if strings.Contains(l, "delay message discarded") {
			lines++
		}
	}
	h.warns.mu.Unlock()
	if lines != 1 {
		t.Fatalf("%d warnings for the %d discarded delay messages of a deleted topic, want 1", lines, n)
	}
}

func TestTransactionCommitAndRollback(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	rs := h.send("tx", 2, txMsg("tx", "c"), txMsg("tx", "r"))
	for _, r := range rs {
		if r.TransactionID == "" || r.QueueOffset != -1 || r.RecallHandle != "" {
			t.Fatalf("receipt %+v", r)
		}
	}
	if rs[0].TransactionID == rs[1].TransactionID {
		t.Fatal("two half messages share a transaction id")
	}
	if got := h.pop("g", "tx", -1, 10, time.Minute); len(got) != 0 {
		t.Fatalf("half message visible: %v", ids(got))
	}
	end := func(r domain.SendReceipt, res ports.Resolution) error {
		return h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "tx", MessageID: r.MessageID, TransactionID: r.TransactionID, Resolution: res})
	}
	if err := end(rs[0], ports.ResolutionUnknown); err != nil {
		t.Fatal(err)
	}
	// Mismatches and garbage.
	wantReason(t, h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "other", MessageID: "c", TransactionID: rs[0].TransactionID, Resolution: ports.ResolutionCommit}), domain.ReasonInvalidTransactionID)
	for _, bad := range []string{"", "xyz", "0123456789ABCDEF0123456789ABCDEF", strings.Repeat("F", 32)} {
		wantReason(t, h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "tx", TransactionID: bad, Resolution: ports.ResolutionCommit}), domain.ReasonInvalidTransactionID)
	}
	// The transaction id names the transaction, not the message id (as
	// with the Apache proxy and in cluster mode): a commit naming another
	// message's id commits rs[0].
	if err := h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "tx", MessageID: "r", TransactionID: rs[0].TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
		t.Fatal(err)
	}
	if err := end(rs[1], ports.ResolutionRollback); err != nil {
		t.Fatal(err)
	}
	err := end(rs[0], ports.ResolutionCommit)
	wantReason(t, err, domain.ReasonInvalidTransactionID)
	if !strings.Contains(err.Error(), "already resolved") {
		t.Fatalf("message %q", err)
	}
	wantReason(t, end(rs[1], ports.ResolutionCommit), domain.ReasonInvalidTransactionID)
	// Delivered as a transactional message, as a RocketMQ broker's
	// committed copy keeps TRAN_MSG=true.
	got := h.pop("g", "tx", -1, 10, time.Minute)
	if len(got) != 1 || got[0].ID != "c" || !got[0].Transactional || got[0].TransactionID != rs[0].TransactionID ||
		got[0].QueueID != 2 || got[0].QueueOffset != 0 {
		t.Fatalf("committed message %+v", got)
	}
	// Resolutions survive a crash: nothing more is delivered, nothing can
	// be resolved again.
	h.crashRestart(false)
	h.fake().Advance(time.Hour)
	h.checkTxns()
	wantReason(t, end(rs[1], ports.ResolutionCommit), domain.ReasonInvalidTransactionID)
	if got := h.pop("g2", "tx", -1, 10, time.Minute); !slices.Equal(ids(got), []string{"c"}) {
		t.Fatalf("after crash: %v", ids(got))
	}
}

func TestTransactionalDelayMessageCommittedAsTimer(t *testing.T) {
	h := newHarness(t, nil)
	m := txMsg("tx", "td")
	m.DeliverAt = h.clock.Now().Add(time.Minute)
	r := h.send("tx", 0, m)[0]
	if err := h.e.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "tx", MessageID: "td", TransactionID: r.TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
		t.Fatal(err)
	}
	h.fireTimers()
	if got := h.pop("g", "tx", -1, 10, time.Minute); len(got) != 0 {
		t.Fatalf("delivered before its time: %v", ids(got))
	}
	h.crashRestart(false)
	h.fake().Advance(time.Minute)
	h.fireTimers()
	got := h.pop("g", "tx", -1, 10, time.Minute)
	if len(got) != 1 || got[0].TransactionID != r.TransactionID || !got[0].Transactional {
		t.Fatalf("committed delay message %+v", got)
	}
}

// checkRecorder records the check-backs it gets and hands each to a
// producer (calls Handed) unless refuse is set.
type checkRecorder struct {
	mu     sync.Mutex
	checks []ports.TransactionCheck
	refuse bool
}

func (c *checkRecorder) handle(_ context.Context, tc ports.TransactionCheck) {
	c.mu.Lock()
	c.checks = append(c.checks, tc)
	refuse := c.refuse
	c.mu.Unlock()
	if !refuse && tc.Handed != nil {
		tc.Handed()
	}
}

func (c *checkRecorder) setRefuse(refuse bool) {
	c.mu.Lock()
	c.refuse = refuse
	c.mu.Unlock()
}

func (c *checkRecorder) counts() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int32
	for _, tc := range c.checks {
		out = append(out, tc.Checks)
	}
	return out
}

func (h *harness) txnChecks(origin int64) (int32, bool) {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	st := h.e.txns[origin]
	if st == nil {
		return 0, false
	}
	return st.checks, true
}

func originOf(t *testing.T, txID string) int64 {
	t.Helper()
	id, err := domain.ParseMessageID(txID, true)
	if err != nil {
		t.Fatal(err)
	}
	return id.CommitLogOffset
}

// TestFirstCheckBackAtTheProducersRecoveryTime: a RocketMQ broker checks
// back a half message once its age passes its immunity time: the
// producer's orphaned-transaction recovery duration in whole seconds (the
// CHECK_IMMUNITY_TIME_IN_SECONDS the proxy writes, Durations.toSeconds),
// or transactionTimeOut when it gave none or less than a second
// (TransactionalMessageServiceImpl.check, getImmunityTime), shorter or
// longer than transactionTimeOut. Local mode waited max(recovery,
// transactionTimeout): a producer asking for 2 s was checked back after
// 6 s.
func TestFirstCheckBackAtTheProducersRecoveryTime(t *testing.T) {
	h := newHarness(t, nil) // transactionTimeout 6 s
	rec := &checkRecorder{}
	h.e.SetTransactionCheckHandler(rec.handle)
	withRecovery := func(id string, d time.Duration) domain.Message {
		m := txMsg("tx", id)
		m.TransactionRecovery = d
		return m
	}
	rs := h.send("tx", 0, withRecovery("none", 0), withRecovery("half-second", 500*time.Millisecond),
		withRecovery("two", 2*time.Second), withRecovery("almost-three", 2900*time.Millisecond), withRecovery("ten", 10*time.Second))
	firstAt := map[string]time.Duration{"none": 6 * time.Second, "half-second": 6 * time.Second, "two": 2 * time.Second,
		"almost-three": 2 * time.Second, "ten": 10 * time.Second}
	start := h.clock.Now()
	for _, step := range []time.Duration{time.Second, time.Second, time.Second, 2 * time.Second, time.Second, 3 * time.Second, time.Second} {
		h.fake().Advance(step)
		h.checkTxns()
		age := h.clock.Now().Sub(start)
		for _, r := range rs {
			n, _ := h.txnChecks(originOf(t, r.TransactionID))
			want := int32(0)
			if age >= firstAt[r.MessageID] {
				want = 1
			}
			if n != want {
				t.Errorf("%s (first check-back due at %v) at %v: %d check-backs, want %d", r.MessageID, firstAt[r.MessageID], age, n, want)
			}
		}
	}
}

func TestTransactionCheckBack(t *testing.T) {
	for _, action := range []string{"rollback", "commit", "keep"} {
		t.Run(action, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.TransactionCheckMax = 3; c.TransactionCheckMaxAction = action })
			rec := &checkRecorder{}
			h.e.SetTransactionCheckHandler(rec.handle)
			slow := txMsg("tx", "slow")
			slow.TransactionRecovery = 20 * time.Second
			rs := h.send("tx", 1, txMsg("tx", "orphan"), slow)
			orphan, slowOrigin := originOf(t, rs[0].TransactionID), originOf(t, rs[1].TransactionID)
			h.fake().Advance(5 * time.Second)
			h.checkTxns()
			if n, _ := h.txnChecks(orphan); n != 0 {
				t.Fatalf("checked after 5s (transactionTimeout is 6s): %d", n)
			}
			h.fake().Advance(time.Second)
			h.checkTxns()
			if n, _ := h.txnChecks(orphan); n != 1 {
				t.Fatalf("checks after 6s: %d", n)
			}
			if n, _ := h.txnChecks(slowOrigin); n != 0 {
				t.Fatal("the producer's recovery time (20s) was not honoured")
			}
			waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
				if c := rec.counts(); len(c) != 1 {
					return fmt.Errorf("handler got %v", c)
				}
				return nil
			})
			rec.mu.Lock()
			c := rec.checks[0]
			rec.mu.Unlock()
			if c.Message.ID != "orphan" || c.Message.TransactionID != rs[0].TransactionID || c.Checks != 1 || !c.Message.Transactional ||
				c.Message.Topic != "tx" || c.Message.QueueID != 1 || string(c.Message.Body) != "body-orphan" {
				t.Fatalf("check %+v", c)
			}
			h.fake().Advance(14 * time.Second) // 20s: the slow one's first check
			h.checkTxns()
			if n, _ := h.txnChecks(slowOrigin); n != 1 {
				t.Fatalf("slow one's checks at 20s: %d", n)
			}
			// Counting continues across a crash.
			h.crashRestart(false)
			h.e.SetTransactionCheckHandler(rec.handle)
			h.fake().Advance(16 * time.Second) // 36s: orphan's second check
			h.checkTxns()
			if n, _ := h.txnChecks(orphan); n != 2 {
				t.Fatalf("checks after restart: %d", n)
			}
			h.fake().Advance(30 * time.Second)
			h.checkTxns()
			if n, _ := h.txnChecks(orphan); n != 3 {
				t.Fatalf("third check: %d", n)
			}
			h.fake().Advance(30 * time.Second) // one interval after the last check: the action
			h.checkTxns()
			n, pending := h.txnChecks(orphan)
			if (action == "keep") != pending || (pending && n != 3) {
				t.Fatalf("after the last check (%s): checks %d, pending %v", action, n, pending)
			}
			if action != "keep" && !h.warns.contains("transactionCheckMaxAction: "+action, "topic=tx", "msg_id=orphan") {
				t.Fatalf("no warning naming the discarded/committed transaction: %q", h.warns.lines)
			}
			h.fake().Advance(time.Hour)
			h.checkTxns()
			h.restart()
			got := h.pop("g", "tx", -1, 10, time.Minute)
			wantDelivered := action == "commit"
			if wantDelivered != slices.Contains(ids(got), "orphan") {
				t.Fatalf("%s: delivered %v", action, ids(got))
			}
			err := h.e.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "tx", MessageID: "orphan", TransactionID: rs[0].TransactionID, Resolution: ports.ResolutionCommit})
			if action == "keep" {
				if err != nil {
					t.Fatalf("a kept transaction can still be committed: %v", err)
				}
			} else {
				wantReason(t, err, domain.ReasonInvalidTransactionID)
			}
			if n, _ := h.txnChecks(orphan); n > 3 {
				t.Fatal("checked beyond transactionCheckMax")
			}
		})
	}
}

// TestCheckBacksCountOnlyWhenAProducerTakesThem: a check-back that reached
// no producer (dropped by the application's full dispatch queue, or no
// producer of the topic connected, as right after a restart) counted
// towards transactionCheckMax all the same, so a half message could be
// rolled back without its producer ever being asked. Such a check-back
// counts nothing and is asked again one interval later (once per
// interval, never in a loop); check-backs producers take still end an
// unanswered transaction after transactionCheckMax.
func TestCheckBacksCountOnlyWhenAProducerTakesThem(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TransactionCheckMax = 2 })
	rec := &checkRecorder{refuse: true}
	h.e.SetTransactionCheckHandler(rec.handle)
	r := h.send("tx", 0, txMsg("tx", "orphan"))[0]
	origin := originOf(t, r.TransactionID)
	// The engine's own goroutine may run a pass too: what it finds due it
	// hands over asynchronously, so wait for the outcome.
	waitOffered := func(want int) {
		t.Helper()
		waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
			if got := len(rec.counts()); got != want {
				return fmt.Errorf("check-backs offered: %d, want %d", got, want)
			}
			return nil
		})
	}
	waitChecks := func(want int32, pending bool) {
		t.Helper()
		waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
			if n, p := h.txnChecks(origin); n != want || p != pending {
				return fmt.Errorf("checks %d, pending %v; want %d, %v", n, p, want, pending)
			}
			return nil
		})
	}
	h.fake().Advance(6 * time.Second)
	for i := range 5 { // more intervals than transactionCheckMax
		h.checkTxns()
		h.checkTxns() // nothing is due again within the interval
		waitOffered(i + 1)
		waitChecks(0, true)
		h.fake().Advance(30 * time.Second)
	}
	// After a restart, before any handler (producer) is there: no count.
	h.crashRestart(true)
	h.checkTxns()
	waitChecks(0, true)
	// Producers take the check-backs now: they count, and the last one
	// is followed by transactionCheckMaxAction.
	rec.setRefuse(false)
	h.e.SetTransactionCheckHandler(rec.handle)
	for want := int32(1); want <= 2; want++ {
		h.fake().Advance(30 * time.Second)
		h.checkTxns()
		waitChecks(want, true)
	}
	h.fake().Advance(30 * time.Second)
	h.checkTxns()
	waitChecks(0, false)
	if !h.warns.contains("after the last check-back", "transactionCheckMaxAction: rollback", "msg_id=orphan", "checks=2") {
		t.Fatalf("no warning of the rollback after two check-backs: %q", h.warns.lines)
	}
}

// TestUnansweredHalfMessageEndsAtRetention: a half message whose
// check-backs never reach a producer is not kept (with its commit-log
// segment) for ever: local.retention after it was stored,
// transactionCheckMaxAction applies, as the Apache broker skips half
// messages older than its file reserved time.
func TestUnansweredHalfMessageEndsAtRetention(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retention = time.Hour })
	rec := &checkRecorder{refuse: true}
	h.e.SetTransactionCheckHandler(rec.handle)
	r := h.send("tx", 0, txMsg("tx", "never-asked"))[0]
	origin := originOf(t, r.TransactionID)
	for range 119 { // every 30 s up to 59.5 min
		h.fake().Advance(30 * time.Second)
		h.checkTxns()
	}
	if n, pending := h.txnChecks(origin); n != 0 || !pending {
		t.Fatalf("before local.retention: checks %d, pending %v", n, pending)
	}
	h.fake().Advance(time.Minute)
	h.checkTxns()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if _, pending := h.txnChecks(origin); pending {
			return fmt.Errorf("still pending an hour after it was stored")
		}
		return nil
	})
	if !h.warns.contains("local.retention after it was stored", "transactionCheckMaxAction: rollback", "msg_id=never-asked") {
		t.Fatalf("no warning of the rollback at local.retention: %q", h.warns.lines)
	}
}

func TestPendingDeferredMessagesPinRetention(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now())
	h.restart()
	now := h.clock.Now()
	r := h.send("tx", 0, txMsg("tx", "half"))[0]
	h.send("d", 0, delayMsg("d", "timer", now.Add(5*time.Hour)))
	for i := range 40 {
		m := msg("t", fmt.Sprint(i), "")
		m.Body = make([]byte, 500)
		h.send("t", 0, m)
	}
	ctx := t.Context()
	h.retire("t", "more")
	if h.e.clog.StartOffset() != 0 {
		t.Fatal("retention deleted a segment holding a pending half message")
	}
	if err := h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "tx", MessageID: "half", TransactionID: r.TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
		t.Fatal(err)
	}
	h.fake().Advance(3 * time.Hour)
	h.fireTimers()
	for range 2 {
		h.send("t", 0, msg("t", "more", ""))
		if err := h.e.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.e.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if h.e.clog.StartOffset() == 0 {
		t.Fatal("resolved deferred messages still pin the log")
	}
	if got := h.popAll("g", "tx"); !slices.Equal(got, []string{"half"}) {
		t.Fatalf("tx: %v", got)
	}
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"timer"}) {
		t.Fatalf("d: %v", got)
	}
}

// TestTimerDueBeforeItsRecordIsStored fires a timer whose deferred batch
// record is appended but not yet stored: it must wait for the log, not be
// dropped (a delay of a few milliseconds under a slow fsync).
func TestTimerDueBeforeItsRecordIsStored(t *testing.T) {
	h := newHarness(t, nil)
	e := h.e
	now := h.clock.Now()
	b := record.Batch{Topic: "d", QueueID: 0, QueueOffset: -1, Messages: []record.Message{{Message: delayMsg("d", "quick", now.Add(time.Second)), StoredAt: now}}}
	if _, err := e.Topic(t.Context(), "d"); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	_, end, err := e.appendApplyLocked(record.TypeMessageBatch, func(dst []byte) []byte {
		p, _ := record.AppendBatch(dst, &b)
		return p
	}, false)
	live := -1
	if err == nil {
		h.fake().Advance(time.Second)
		if e.clog.VisibleOffset() < end {
			// The usual case: the record is not stored yet. Firing waits.
			e.timerPassLocked(h.clock.Now())
			live = len(e.tw.live)
		}
	}
	e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if live == 0 {
		t.Fatal("the timer was resolved before its record was stored")
	}
	h.settle(end)
	h.fireTimers()
	if got := h.popAll("g", "d"); !slices.Equal(got, []string{"quick"}) {
		t.Fatalf("delivered %v", got)
	}
}

// TestDelayMessageBeforeStorableTimeRefused: a delivery time before 1678
// cannot be held in Unix nanoseconds. It used to wrap around on encoding:
// a message of a deferred batch (or a half message, once committed) was
// scheduled for a year around 2184 instead of at once — never delivered,
// and pinning its commit-log segment from retention for good. Such a time
// is refused, as one after 2262 is.
func TestDelayMessageBeforeStorableTimeRefused(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	ancient := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	ref := domain.QueueRef{Topic: "d", BrokerName: h.cfg.BrokerName}
	tx := txMsg("d", "tx")
	tx.DeliverAt = ancient
	for _, batch := range [][]domain.Message{
		{delayMsg("d", "ancient", ancient)},
		{delayMsg("d", "soon", now.Add(time.Second)), delayMsg("d", "ancient", ancient)},
		{tx},
	} {
		_, err := h.e.Send(t.Context(), ref, batch)
		wantReason(t, err, domain.ReasonIllegalDeliveryTime)
	}
	// The earliest storable time is accepted, and due at once.
	h.send("d", 0, delayMsg("d", "earliest", time.Unix(0, math.MinInt64)), delayMsg("d", "soon", now.Add(time.Second)))
	h.fake().Advance(time.Second)
	h.fireTimers()
	got := h.popAll("g", "d")
	slices.Sort(got)
	if !slices.Equal(got, []string{"earliest", "soon"}) {
		t.Fatalf("delivered %v", got)
	}
	h.e.mu.Lock()
	_, pinned := h.e.pinnedOffsetLocked()
	h.e.mu.Unlock()
	if pinned {
		t.Fatal("a delivered delay message still pins the commit log")
	}
}

// TestRecallAfterDeliveryTimeRefused: once its delivery time has passed a
// delay message cannot be recalled, as upstream's RecallMessageProcessor
// refuses ("timestamp invalid") and cluster mode answers: it is delivered,
// even when the timer has not fired yet (overdue after a downtime, or a
// timer goroutine behind). The answer must not depend on that timing.
func TestRecallAfterDeliveryTimeRefused(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	ctx := t.Context()
	near := h.send("d", 0, delayMsg("d", "near", now.Add(2*time.Second)))[0]
	far := h.send("d", 0, delayMsg("d", "far", now.Add(time.Hour)))[0]
	h.fireTimers() // the near bucket is loaded, the far one is not
	h.fake().Advance(2 * time.Hour)
	// Neither timer has fired: nothing told the timer goroutine the clock moved.
	for _, r := range []domain.SendReceipt{near, far} {
		_, err := h.e.Recall(ctx, "d", r.RecallHandle)
		wantReason(t, err, domain.ReasonNotFound)
		if err != nil && !strings.Contains(err.Error(), "delivery time has passed") {
			t.Fatalf("recall of %s: %v", r.MessageID, err)
		}
	}
	h.fireTimers()
	got := h.popAll("g", "d")
	slices.Sort(got)
	if !slices.Equal(got, []string{"far", "near"}) {
		t.Fatalf("delivered %v", got)
	}
	// The delivery time passes while the recall reads the message without
	// the engine lock (its timer has not fired): the recall still refuses.
	r := h.send("e", 0, delayMsg("e", "during-read", h.clock.Now().Add(2*time.Second)))[0]
	h.fireTimers()
	held := holdFirstRead(h, "e")
	done := make(chan error, 1)
	go func() {
		_, err := h.e.Recall(ctx, "e", r.RecallHandle)
		done <- err
	}()
	<-held.reading
	h.fake().Advance(time.Hour)
	close(held.release)
	wantReason(t, <-done, domain.ReasonNotFound)
	h.fireTimers()
	if got := h.popAll("g", "e"); !slices.Equal(got, []string{"during-read"}) {
		t.Fatalf("the message whose delivery time passed during the recall: delivered %v", got)
	}
}

// TestResolvedTransactionsLeaveNoSchedule: the check-back schedule of a
// resolved transaction is dropped lazily, when it comes due; a producer
// that asks for a long recovery time (up to an hour) and commits at once
// left one entry per transaction there for that long — memory growing with
// the transaction rate times the recovery time. The schedule stays within
// a bound of the pending transactions, and still checks those back.
func TestResolvedTransactionsLeaveNoSchedule(t *testing.T) {
	h := newHarness(t, nil)
	rec := &checkRecorder{}
	h.e.SetTransactionCheckHandler(rec.handle)
	orphan := h.send("tx", 0, txMsg("tx", "orphan"))[0]
	const n = 4 * txnHeapSlack
	for i := range n / 8 {
		var batch []domain.Message
		for j := range 8 {
			m := txMsg("tx", fmt.Sprintf("m%d-%d", i, j))
			m.TransactionRecovery = time.Hour
			batch = append(batch, m)
		}
		for _, r := range h.send("tx", 1, batch...) {
			if err := h.e.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "tx", MessageID: r.MessageID,
				TransactionID: r.TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.e.mu.Lock()
	scheduled, pending := len(h.e.txnHeap), len(h.e.txns)
	h.e.mu.Unlock()
	if pending != 1 || scheduled > 2*pending+txnHeapSlack {
		t.Fatalf("%d check-backs scheduled for %d pending transactions (%d resolved)", scheduled, pending, n)
	}
	h.fake().Advance(6 * time.Second)
	h.checkTxns()
	if c, _ := h.txnChecks(originOf(t, orphan.TransactionID)); c != 1 {
		t.Fatalf("the pending transaction was checked %d times, want 1", c)
	}
	if got := h.popAll("g", "tx"); len(got) != n {
		t.Fatalf("%d committed messages delivered, want %d", len(got), n)
	}
}

// TestDeferredSendCreatesNoQueue: a send of a delay message not yet due, or
// of a half message, created the (empty) index of its queue, which replay
// does not create (a deferred batch enters no queue): the state after a
// full replay differed from the live one and from snapshot + replay. The
// queue is created by the first message stored in it.
func TestDeferredSendCreatesNoQueue(t *testing.T) {
	h := newHarness(t, nil)
	h.send("d", 1, delayMsg("d", "later", h.clock.Now().Add(time.Hour)))
	h.send("x", 2, txMsg("x", "half"))
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.requireReplaysMatch()
	if n := h.queueCount("d", 1) + h.queueCount("x", 2); n != 0 {
		t.Fatalf("queues hold %d entries", n)
	}
}

// TestRecallsOfOneBucketReadItOnce recalls many delay messages due in the
// same minute, well ahead of it (their bucket is not loaded): the bucket
// file is read whole once, not once per recall (which made every recall
// cost the whole bucket, 70 ms with 100,000 timers in it, one recall at a
// time), and the recalls still see what changed in the bucket since
// (messages sent after the read, recalls done).
func TestRecallsOfOneBucketReadItOnce(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	at := now.Add(time.Hour).Truncate(time.Minute)
	const n = 500
	var rs []domain.SendReceipt
	for i := 0; i < n; i += 50 {
		var batch []domain.Message
		for j := range 50 {
			batch = append(batch, delayMsg("d", fmt.Sprintf("m%d", i+j), at.Add(time.Duration(i+j)*time.Millisecond)))
		}
		rs = append(rs, h.send("d", 0, batch...)...)
	}
	var full atomic.Int64
	hook := func(from int64) {
		if from == 0 {
			full.Add(1)
		}
	}
	h.e.bucketHook.Store(&hook)
	ctx := t.Context()
	recall := func(r domain.SendReceipt) {
		t.Helper()
		if id, err := h.e.Recall(ctx, "d", r.RecallHandle); err != nil || id != r.MessageID {
			t.Fatalf("recall %s: %q %v", r.MessageID, id, err)
		}
	}
	for _, r := range rs[:n-10] {
		recall(r)
	}
	if got := full.Load(); got != 1 {
		t.Fatalf("%d recalls of one bucket read it whole %d times, want once", n-10, got)
	}
	// Recalled ones are not pending any more (a second recall is answered
	// as the first); a message sent to the bucket after it was read can be
	// recalled.
	recall(rs[0])
	late := h.send("d", 0, delayMsg("d", "late", at.Add(30*time.Second)))[0]
	recall(late)
	recall(late)
	if got := full.Load(); got != 1 {
		t.Fatalf("the bucket was read whole %d times, want once", got)
	}
	// A recall of another bucket, then of this one again.
	other := h.send("d", 0, delayMsg("d", "other", at.Add(2*time.Hour)))[0]
	recall(other)
	recall(rs[n-10])
	// Unused for a minute, the index is dropped (a lone recall in a large
	// bucket does not pin its timers until the bucket loads).
	h.fake().Advance(recallIndexIdle - time.Second)
	h.e.dropIdleRecallIndex()
	h.e.mu.Lock()
	kept := h.e.recallIdx != nil
	h.e.mu.Unlock()
	h.fake().Advance(time.Second)
	h.e.dropIdleRecallIndex()
	h.e.mu.Lock()
	dropped := h.e.recallIdx == nil
	h.e.mu.Unlock()
	if !kept || !dropped {
		t.Fatalf("recall index kept %v before %v idle, dropped %v after", kept, recallIndexIdle, dropped)
	}
	// After a restart the recalls are remembered (the bucket holds them):
	// recalled again, they are answered as before and not delivered.
	h.crashRestart(true)
	h.e.bucketHook.Store(&hook)
	recall(rs[1])
	recall(rs[n-9])
	// Once the bucket is loaded, recalls find the timers in memory.
	h.fake().Advance(at.Sub(h.clock.Now()) - 2*time.Second)
	h.fireTimers()
	recall(rs[n-8])
	recall(rs[n-9])
	h.e.mu.Lock()
	cached := h.e.recallIdx
	h.e.mu.Unlock()
	if cached != nil {
		t.Fatal("the recall index of a loaded bucket is kept")
	}
	h.fake().Advance(time.Minute + 2*time.Second)
	h.fireTimers()
	want := []string{}
	for _, r := range rs[n-7:] {
		want = append(want, r.MessageID)
	}
	got := h.popAll("g", "d")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want the %d not recalled %v", got, len(want), want)
	}
}

// TestRecallOfAnUnreadableDelayMessage: a recall of a pending delay
// message whose bytes cannot be read now (EIO) cannot check the handle's
// message id against it; it must not be answered OK (the message stays
// pending and is delivered) but UNAVAILABLE, for the client to retry, and
// recalls it once the read works.
func TestRecallOfAnUnreadableDelayMessage(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	r := h.send("d", 0, delayMsg("d", "a", h.clock.Now().Add(time.Hour)))[0]
	rh, err := decodeRecallHandle(r.RecallHandle)
	if err != nil {
		t.Fatal(err)
	}
	fault := h.failReads(rh.origin, syscall.EIO)
	_, err = h.e.Recall(ctx, "d", r.RecallHandle)
	wantReason(t, err, domain.ReasonUnavailable)
	fault.on.Store(false)
	if id, err := h.e.Recall(ctx, "d", r.RecallHandle); err != nil || id != r.MessageID {
		t.Fatalf("recall once the read works: %q %v", id, err)
	}
	h.fake().Advance(2 * time.Hour)
	h.fireTimers()
	if got := h.popAll("g", "d"); len(got) != 0 {
		t.Fatalf("delivered %v; the recalled message must not be", got)
	}
}
