package localbroker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

func TestAckSetMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 10 {
		var s ackSet
		want := map[int64]bool{}
		floor, next := int64(rng.IntN(3*ackChunkBits)), int64(0)
		next = floor + int64(rng.IntN(5*ackChunkBits))
		for range rng.IntN(3000) {
			if next == floor {
				break
			}
			a := floor + int64(rng.IntN(int(next-floor)))
			if rng.IntN(20) == 0 {
				b := min(a+int64(rng.IntN(2*ackChunkBits)), next)
				s.addRange(a, b)
				for o := a; o < b; o++ {
					want[o] = true
				}
			} else {
				s.add(a)
				want[a] = true
			}
			if rng.IntN(50) == 0 { // the floor moves up
				f := s.next(floor, next, false)
				for o := floor; o < f; o++ {
					delete(want, o)
				}
				floor = f
				s.trim(floor)
			}
		}
		var ranges []offRange
		for o := floor; o < next; o++ {
			if s.has(o) != want[o] {
				t.Fatalf("round %d: has(%d) = %v, want %v", round, o, s.has(o), want[o])
			}
			if want[o] {
				if n := len(ranges); n > 0 && ranges[n-1].to == o {
					ranges[n-1].to++
				} else {
					ranges = append(ranges, offRange{o, o + 1})
				}
			}
		}
		if got := s.ranges(floor, next); !slices.Equal(got, ranges) {
			t.Fatalf("round %d: ranges %v, want %v", round, got, ranges)
		}
	}
}

// popAckCycles pops (batches of 100) and acks (in batches, so that the
// million cycles take seconds) n messages of topic t, leaving hold of the
// first ones unacked.
func popAckCycles(t *testing.T, e *Engine, topic string, n, hold int, inv time.Duration) []domain.StoredMessage {
	t.Helper()
	ctx := t.Context()
	var held []domain.StoredMessage
	for done := 0; done < n; {
		ms, err := e.Pop(ctx, ports.PopRequest{Group: "g", Topic: topic, QueueID: 0, MaxMessages: 100, InvisibleTime: inv})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Fatalf("pop found nothing after %d of %d", done, n)
		}
		reqs := make([]ports.AckRequest, 0, len(ms))
		for _, m := range ms {
			if len(held) < hold {
				held = append(held, m)
				continue
			}
			reqs = append(reqs, ackReq("g", m))
		}
		for i, err := range e.AckBatch(ctx, reqs) {
			if err != nil {
				t.Fatalf("ack %d: %v", i, err)
			}
		}
		done += len(ms)
	}
	return held
}

// sendMany stores n small messages in queue 0 of topic, 1,000 per record.
func sendMany(t *testing.T, e *Engine, topic string, n int) {
	t.Helper()
	q := domain.QueueRef{Topic: topic, BrokerName: e.cfg.BrokerName, QueueID: 0}
	batch := make([]domain.Message, 0, 1000)
	for i := 0; i < n; i += len(batch) {
		batch = batch[:0]
		for j := 0; j < 1000 && i+j < n; j++ {
			batch = append(batch, domain.Message{Topic: topic, ID: fmt.Sprint(i + j), Body: []byte("x")})
		}
		if _, err := e.Send(t.Context(), q, batch); err != nil {
			t.Fatal(err)
		}
	}
}

func heapInUseMB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// scaleCycles is how many pop+ack cycles the memory tests make: a million
// (about 6 s), or 20,000 with -short or the race detector.
func scaleCycles() int {
	if testing.Short() || raceEnabled {
		return 20_000
	}
	return 1_000_000
}

func scaleHarness(t *testing.T) *harness {
	return newHarness(t, func(c *Config) {
		c.SegmentSize = 256 << 20
		c.MaxRecordSize = 4 << 20
		c.Flush = "async" // acks wait for the write, not an fsync: the test is about memory
	})
}

// TestDeadlineHeapHoldsOnlyInFlight: a million pops and acks with a 12 h
// invisible time leave one deadline-heap entry per message still in flight
// (the heap used to keep an entry per pop until its deadline passed).
func TestDeadlineHeapHoldsOnlyInFlight(t *testing.T) {
	h := scaleHarness(t)
	n := scaleCycles()
	sendMany(t, h.e, "t", n)
	before := heapInUseMB()
	started := time.Now()
	held := popAckCycles(t, h.e, "t", n, 10, 12*time.Hour)
	took := time.Since(started)
	h.e.mu.Lock()
	heapLen, inFlight := len(h.e.heap), h.e.cons[consKey{"g", "t", 0}].inFlightCount()
	h.e.mu.Unlock()
	after := heapInUseMB()
	t.Logf("%d pop+ack cycles in %v: deadline heap %d entries, %d in flight; Go heap %.1f MB before, %.1f MB after; VmRSS %.1f MB",
		n, took.Round(time.Millisecond), heapLen, inFlight, before, after, vmRSSMB())
	if heapLen != len(held) || inFlight != int64(len(held)) {
		t.Fatalf("deadline heap holds %d entries for %d messages in flight", heapLen, len(held))
	}
	if err := h.e.checkIndexes(); err != nil {
		t.Fatal(err)
	}
}

// TestAckedSetBoundedBehindHeldMessage: one message held while a million
// after it are acked costs kilobytes, in memory and in the snapshot (a map
// cost ~66 B per acked offset, and the snapshot listed each one).
func TestAckedSetBoundedBehindHeldMessage(t *testing.T) {
	h := scaleHarness(t)
	n := scaleCycles()
	sendMany(t, h.e, "t", n)
	h.e.flushQueues()
	before := heapInUseMB()
	popAckCycles(t, h.e, "t", n, 1, time.Hour)
	h.e.flushQueues()
	after := heapInUseMB()
	h.e.mu.Lock()
	c := h.e.cons[consKey{"g", "t", 0}]
	floor, next, setBytes := c.floor, c.next, c.acked.memBytes()
	s := h.e.captureLocked(h.e.clog.NextOffset())
	s.sortCanonical()
	h.e.mu.Unlock()
	snap := len(encodeSnapshot(s))
	t.Logf("1 held + %d acked: floor %d next %d; acked set %d B; Go heap %.1f MB before the cycles, %.1f MB after; VmRSS %.1f MB; snapshot %d B",
		n-1, floor, next, setBytes, before, after, vmRSSMB(), snap)
	if floor != 0 || next != int64(n) {
		t.Fatalf("floor %d next %d", floor, next)
	}
	// Bound: 8 B per 4,096 offsets (16 with the slice's spare capacity)
	// plus two partly acked chunks (the held message's and the cursor's).
	if bound := 16*(n/ackChunkBits+2) + 2*520; setBytes > bound {
		t.Fatalf("acked set holds %d B, bound %d B", setBytes, bound)
	}
	if snap > 4096 {
		t.Fatalf("snapshot of one state is %d B", snap)
	}
	// The state survives a restart (snapshot) and a replay.
	h.restart()
	h.crashRestart(false)
	h.e.mu.Lock()
	c = h.e.cons[consKey{"g", "t", 0}]
	gotFloor, gotNext, consumed := c.floor, c.next, c.consumed(int64(n-1))
	h.e.mu.Unlock()
	if gotFloor != 0 || gotNext != int64(n) || !consumed {
		t.Fatalf("after restart: floor %d next %d", gotFloor, gotNext)
	}
}

// TestPopReadsMessagesWithoutTheEngineLock blocks a pop in the middle of
// reading a message and checks that sends, acks and other pops go on.
func TestPopReadsMessagesWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "a", ""))
	h.send("t", 1, msg("t", "b", ""))
	first := h.pop("g", "t", 1, 1, time.Minute)
	held := holdFirstRead(h, "t")
	done := make(chan []domain.StoredMessage)
	go func() {
		got, err := h.e.Pop(context.Background(), ports.PopRequest{Group: "g2", Topic: "t", QueueID: 0, MaxMessages: 1, InvisibleTime: time.Minute})
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	held.servesMeanwhile(t, func() {
		h.send("u", 0, msg("u", "c", ""))
		h.ack("g", first[0])
		if got := h.pop("g3", "u", 0, 1, time.Minute); len(got) != 1 {
			t.Errorf("pop of another group: %v", ids(got))
		}
	})
	if got := <-done; !slices.Equal(ids(got), []string{"a"}) {
		t.Fatalf("the blocked pop got %v", ids(got))
	}
}

// TestAckWakesOnlyItsQueuesFIFOPollers: long pollers wait per queue; an
// ack wakes the FIFO pollers of its group on its queue, nothing else.
func TestAckWakesOnlyItsQueuesFIFOPollers(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, fifoMsg("t", "A1", "A"), fifoMsg("t", "A2", "A"))
	got := h.popFIFO("g", "t", 1, time.Minute)
	h.e.mu.Lock()
	same := h.e.registerLocked("t", []int32{0}, "g", true, false)
	other := h.e.registerLocked("t", []int32{1, 2, 3}, "g", true, false)
	otherGroup := h.e.registerLocked("t", []int32{0}, "g2", true, false)
	plain := h.e.registerLocked("t", []int32{0}, "g", false, false)
	h.e.mu.Unlock()
	h.ack("g", got[0])
	woken := func(p *poller) bool {
		select {
		case <-p.ch:
			return true
		default:
			return false
		}
	}
	if !woken(same) || woken(other) || woken(otherGroup) || woken(plain) {
		t.Fatalf("woken: same queue %v, other queues %v, other group %v, non-FIFO poller %v", woken(same), woken(other), woken(otherGroup), woken(plain))
	}
	h.send("t", 2, msg("t", "x", ""))
	h.e.mu.Lock()
	h.e.promoteLocked()
	h.e.mu.Unlock()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if !woken(other) {
			return fmt.Errorf("a new message in queue 2 did not wake its poller")
		}
		return nil
	})
}

// TestDeferredMessagesReadWithoutTheEngineLock blocks the read of a firing
// timer's message and of a committed half message, and checks that the
// engine serves others meanwhile.
func TestDeferredMessagesReadWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, nil)
	// A timer firing.
	h.send("d", 0, delayMsg("d", "timer", h.clock.Now().Add(time.Second)))
	held := holdFirstRead(h, "d")
	h.fake().Advance(2 * time.Second)
	kick(h.e.timerKick)
	held.servesMeanwhile(t, func() { h.send("u", 0, msg("u", "during-timer", "")) })
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if got := h.pop("g", "d", 0, 1, time.Minute); len(got) != 1 {
			return fmt.Errorf("fired message not delivered yet")
		}
		return nil
	})
	// A commit.
	r := h.send("tx", 0, txMsg("tx", "half"))[0]
	held = holdFirstRead(h, "tx")
	done := make(chan error, 1)
	go func() {
		done <- h.e.EndTransaction(context.Background(), ports.EndTransactionRequest{Topic: "tx", MessageID: "half", TransactionID: r.TransactionID, Resolution: ports.ResolutionCommit})
	}()
	held.servesMeanwhile(t, func() { h.send("u", 0, msg("u", "during-commit", "")) })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := h.pop("g", "tx", 0, 1, time.Minute); !slices.Equal(ids(got), []string{"half"}) {
		t.Fatalf("committed message: %v", ids(got))
	}
}

// heldRead holds the first read of one topic's messages (the engine's
// read hook) until the engine has served others, and counts that topic's
// reads.
type heldRead struct {
	reading, release chan struct{}
	reads            atomic.Int32
}

// holdFirstRead installs the hook; it stays until the test ends.
func holdFirstRead(h *harness, topic string) *heldRead {
	r := &heldRead{reading: make(chan struct{}), release: make(chan struct{})}
	hook := func(tp string) {
		if tp == topic && r.reads.Add(1) == 1 {
			close(r.reading)
			<-r.release
		}
	}
	h.e.readHook.Store(&hook)
	h.t.Cleanup(func() { h.e.readHook.Store(nil) })
	return r
}

// servesMeanwhile waits for the held read, checks that f (which needs the
// engine lock) finishes while it is held, then lets it go.
func (r *heldRead) servesMeanwhile(t *testing.T, f func()) {
	t.Helper()
	<-r.reading
	servesMeanwhile(t, r.release, f)
	close(r.release)
}

// servesMeanwhile runs f, which needs the engine lock, while a read is
// blocked; if f does not finish within 30 s (the read holds the lock), it
// releases the read and fails.
// TestTimerDueDuringItsPassIsReadWithoutTheEngineLock: a timer that comes
// due after a pass read its due messages (and before it took the lock) is
// not read under the lock: the pass ends and the next one reads it first.
func TestTimerDueDuringItsPassIsReadWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, nil)
	start := h.clock.Now()
	h.send("early", 0, delayMsg("early", "e", start.Add(time.Second)))
	h.send("late", 0, delayMsg("late", "l", start.Add(5*time.Second)))
	reading, release := make(chan struct{}), make(chan struct{})
	var hook func(string)
	hook = func(topic string) {
		switch topic {
		case "early":
			// Between the pass's read and its lock, "late" comes due.
			h.fake().Advance(10 * time.Second)
		case "late":
			h.e.readHook.Store(nil)
			close(reading)
			<-release
		}
	}
	h.e.readHook.Store(&hook)
	h.fake().Advance(2 * time.Second)
	kick(h.e.timerKick)
	<-reading
	servesMeanwhile(t, release, func() { h.send("u", 0, msg("u", "during-read", "")) })
	close(release)
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if got := h.pop("g", "late", 0, 1, time.Minute); len(got) != 1 {
			return fmt.Errorf("the late timer's message is not delivered yet")
		}
		return nil
	})
	if got := h.pop("g", "early", 0, 1, time.Minute); !slices.Equal(ids(got), []string{"e"}) {
		t.Fatalf("the early timer's message: %v", ids(got))
	}
}

// TestRecallReadsWithoutTheEngineLock blocks the read of a recalled delay
// message (and of the bucket of a timer not loaded) and checks that the
// engine serves others meanwhile; then it lets
// the timer fire while a second recall's read is blocked: that recall finds
// the message delivered and answers not found, and it is delivered once.
func TestRecallReadsWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Now()
	ctx := t.Context()
	type result struct {
		id  string
		err error
	}
	recallHeld := func(topic, handle string) (*heldRead, chan result) {
		held, done := holdFirstRead(h, topic), make(chan result, 1)
		go func() {
			id, err := h.e.Recall(ctx, topic, handle)
			done <- result{id, err}
		}()
		return held, done
	}
	// A timer whose bucket is loaded and one whose bucket is not.
	for _, at := range []time.Duration{2 * time.Second, time.Hour} {
		r := h.send("r", 0, delayMsg("r", fmt.Sprint("recall-", at), now.Add(at)))[0]
		h.fireTimers()
		held, done := recallHeld("r", r.RecallHandle)
		held.servesMeanwhile(t, func() { h.send("u", 0, msg("u", "during-recall", "")) })
		if got := <-done; got.err != nil || got.id != r.MessageID {
			t.Fatalf("recall of the message due in %v: %q %v", at, got.id, got.err)
		}
	}
	// A timer whose bucket is not loaded: its bucket is read without the
	// lock too.
	far := h.send("r", 0, delayMsg("r", "far", now.Add(2*time.Hour)))[0]
	bucketRead, releaseBucket := make(chan struct{}), make(chan struct{})
	bucketHook := func(int64) {
		h.e.bucketHook.Store(nil)
		close(bucketRead)
		<-releaseBucket
	}
	h.e.bucketHook.Store(&bucketHook)
	farDone := make(chan result, 1)
	go func() {
		id, err := h.e.Recall(ctx, "r", far.RecallHandle)
		farDone <- result{id, err}
	}()
	<-bucketRead
	servesMeanwhile(t, releaseBucket, func() { h.send("u", 0, msg("u", "during-bucket-read", "")) })
	close(releaseBucket)
	if got := <-farDone; got.err != nil || got.id != far.MessageID {
		t.Fatalf("recall of the message due in 2h: %q %v", got.id, got.err)
	}
	// The timer fires while the recall reads.
	r := h.send("f", 0, delayMsg("f", "fires", now.Add(3*time.Second)))[0]
	h.fireTimers()
	held, done := recallHeld("f", r.RecallHandle)
	<-held.reading
	h.fake().Advance(4 * time.Second)
	kick(h.e.timerKick)
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if got := h.pop("g", "f", 0, 1, time.Minute); len(got) != 1 {
			return fmt.Errorf("the due message is not delivered yet")
		}
		return nil
	})
	close(held.release)
	got := <-done
	wantReason(t, got.err, domain.ReasonNotFound)
	if again := h.pop("g2", "f", 0, 8, time.Minute); !slices.Equal(ids(again), []string{"fires"}) {
		t.Fatalf("the fired message in its queue: %v, want it once", ids(again))
	}
}

// TestTimerBucketLoadedWithoutTheEngineLock holds a timer pass right after
// it read a bucket it is about to load and checks that the engine serves
// others meanwhile; a delay message sent into that bucket and a recall of
// one of its timers meanwhile are not lost on the way: the pass reads what
// was appended since from where its read ended.
func TestTimerBucketLoadedWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, nil)
	start := h.clock.Now()
	at := start.Add(2 * time.Hour) // a bucket the window does not hold yet
	h.send("b", 0, delayMsg("b", "before", at))
	recalled := h.send("b", 0, delayMsg("b", "recalled", at))[0]
	reading, release := make(chan struct{}), make(chan struct{})
	hook := func(from int64) {
		if from == 0 {
			h.e.bucketHook.Store(nil)
			close(reading)
			<-release
		}
	}
	h.e.bucketHook.Store(&hook)
	h.fake().Advance(at.Sub(start) - time.Second) // the bucket comes within the lookahead
	kick(h.e.timerKick)
	<-reading
	servesMeanwhile(t, release, func() {
		h.send("u", 0, msg("u", "during-load", ""))
		h.send("b", 0, delayMsg("b", "during", at))
		if id, err := h.e.Recall(t.Context(), "b", recalled.RecallHandle); err != nil || id != "recalled" {
			t.Errorf("recall during the load: %q %v", id, err)
		}
	})
	close(release)
	h.fake().Advance(2 * time.Second)
	kick(h.e.timerKick)
	var got []string
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		for _, m := range h.pop("g", "b", 0, 8, time.Minute) {
			got = append(got, m.ID)
		}
		if len(got) < 2 {
			return fmt.Errorf("delivered so far: %v", got)
		}
		return nil
	})
	slices.Sort(got)
	if !slices.Equal(got, []string{"before", "during"}) {
		t.Fatalf("delivered %v, want before and during (not the recalled one)", got)
	}
	if more := h.pop("g", "b", 0, 8, time.Minute); len(more) != 0 {
		t.Fatalf("delivered besides: %v", ids(more))
	}
}

// TestTransactionChecksReadWithoutTheEngineLock blocks the read of a half
// message for its check-back, then for its commit by
// transactionCheckMaxAction, and checks that the engine serves others
// meanwhile each time.
func TestTransactionChecksReadWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TransactionCheckMax = 1; c.TransactionCheckMaxAction = "commit" })
	rec := &checkRecorder{}
	h.e.SetTransactionCheckHandler(rec.handle)
	h.send("tx", 0, txMsg("tx", "half"))
	// phase holds the first read of the half message until the engine has
	// served a send, lets later reads pass, waits for done, and checks that
	// the half message was read once: before the pass, not again under the
	// lock.
	phase := func(advance time.Duration, what string, done func() error) {
		t.Helper()
		held := holdFirstRead(h, "tx")
		h.fake().Advance(advance)
		kick(h.e.txnKick)
		held.servesMeanwhile(t, func() { h.send("u", 0, msg("u", "during-"+what, "")) })
		waitfor.Condition(t, 10*time.Second, time.Millisecond, done)
		if n := held.reads.Load(); n != 1 {
			t.Fatalf("%s: the half message was read %d times, want once (without the engine lock)", what, n)
		}
	}
	phase(7*time.Second, "check", func() error { // transactionTimeout 6 s: the check-back
		if c := rec.counts(); len(c) != 1 {
			return fmt.Errorf("check-backs handled: %v", c)
		}
		return nil
	})
	phase(31*time.Second, "commit", func() error { // the next interval: transactionCheckMaxAction commits it
		h.e.mu.Lock() // (a pop would read the message too)
		defer h.e.mu.Unlock()
		if qi := h.e.queues[queueKey{"tx", 0}]; qi == nil || qi.visible != 1 {
			return fmt.Errorf("not committed yet")
		}
		return nil
	})
	if got := h.pop("g", "tx", 0, 1, time.Minute); !slices.Equal(ids(got), []string{"half"}) {
		t.Fatalf("committed message: %v", ids(got))
	}
}

// TestDeadLetterMoveReadsWithoutTheEngineLock holds the read of a message
// that used its last delivery attempt, which the reviver moves to the
// dead-letter queue, and checks that the engine serves others meanwhile and
// that the message is read once (not again under the lock).
func TestDeadLetterMoveReadsWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 1, false)
	h.send("dl", 0, msg("dl", "poison", ""))
	if got := h.pop("g", "dl", 0, 1, 5*time.Second); len(got) != 1 {
		t.Fatalf("first delivery: %v", ids(got))
	}
	held := holdFirstRead(h, "dl")
	h.fake().Advance(6 * time.Second)
	h.e.kickReviver()
	held.servesMeanwhile(t, func() { h.send("u", 0, msg("u", "during-dead-letter", "")) })
	dlq := domain.DeadLetterTopic("g")
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if got := h.pop("inspector", dlq, 0, 1, time.Minute); !slices.Equal(ids(got), []string{"poison"}) {
			return fmt.Errorf("in the dead-letter queue: %v", ids(got))
		}
		return nil
	})
	if n := held.reads.Load(); n != 1 {
		t.Fatalf("the message was read %d times, want once (without the engine lock)", n)
	}
}

// TestDueTimersListsTheFirstOnesInHeapOrder: with more timers due than a
// pass fires, the pass reads beforehand the ones it pops first.
func TestDueTimersListsTheFirstOnesInHeapOrder(t *testing.T) {
	h := newHarness(t, nil)
	start := h.clock.Now().Truncate(time.Millisecond)
	for i := 40; i > 0; i-- { // sent in reverse order of delivery
		h.send("d", 0, delayMsg("d", fmt.Sprintf("m%02d", i), start.Add(time.Duration(i)*time.Second)))
	}
	h.e.mu.Lock()
	due := h.e.dueTimersLocked(start.Add(30*time.Second).UnixMilli(), 7)
	var got, want []int64
	for i, d := range due {
		got = append(got, h.e.tw.live[d.origin].deliverAt)
		want = append(want, start.Add(time.Duration(i+1)*time.Second).UnixMilli())
	}
	h.e.mu.Unlock()
	if len(due) != 7 || !slices.Equal(got, want) {
		t.Fatalf("due timers at (ms): %v, want the first seven: %v", got, want)
	}
	h.e.mu.Lock()
	none := h.e.dueTimersLocked(start.UnixMilli(), 7)
	h.e.mu.Unlock()
	if len(none) != 0 {
		t.Fatalf("%d timers listed before any is due", len(none))
	}
}

func servesMeanwhile(t *testing.T, release chan struct{}, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		close(release)
		<-done
		t.Fatal("the engine did not serve others while a message was being read: the read holds the engine lock")
	}
}
