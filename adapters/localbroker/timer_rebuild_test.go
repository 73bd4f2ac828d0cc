package localbroker

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/timerindex"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// bucketFile is the timer-index file of the bucket holding time at.
func (h *harness) bucketFile(at time.Time) string {
	return h.e.dir("timer", timerindex.Name(h.e.timers.BucketStart(at.UnixMilli())))
}

// pendingIn is the number of pending timers the engine counts in the
// buckets holding the times ats.
func (h *harness) pendingIn(ats ...time.Time) int64 {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	seen := map[int64]bool{}
	var n int64
	for _, at := range ats {
		start := h.e.timers.BucketStart(at.UnixMilli())
		if b := h.e.timers.Bucket(start); b != nil && !seen[start] {
			seen[start] = true
			n += b.Pending()
		}
	}
	return n
}

// deliverInOrder advances the fake clock to each delivery time of want (id
// → time) in turn, firing timers just before it (nothing may come) and at
// it, and returns every message delivered, in delivery order; a message
// delivered before its time fails the test.
func (h *harness) deliverInOrder(topic string, want map[string]time.Time) []string {
	h.t.Helper()
	var times []time.Time
	for _, at := range want {
		times = append(times, at)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	var got []string
	collect := func() {
		for {
			ms := h.pop("g", topic, -1, 32, time.Hour)
			if len(ms) == 0 {
				return
			}
			for _, m := range ms {
				if at, ok := want[m.ID]; ok && h.clock.Now().Before(at) {
					h.t.Fatalf("%s delivered at %v, before its time %v", m.ID, h.clock.Now(), at)
				}
				got = append(got, m.ID)
				h.ack("g", m)
			}
		}
	}
	for _, at := range times {
		if d := at.Add(-time.Millisecond).Sub(h.clock.Now()); d > 0 {
			h.fake().Advance(d)
			h.fireTimers()
			collect()
		}
		if d := at.Sub(h.clock.Now()); d > 0 {
			h.fake().Advance(d)
		}
		h.fireTimers()
		collect()
	}
	h.fake().Advance(2 * time.Hour)
	h.fireTimers()
	collect()
	return got
}

// TestDamagedTimerBucketRebuilt damages timer-index buckets of a data
// directory with pending delay messages (some due within seconds, some in
// later buckets; one already fired, one recalled, some sent after the
// snapshot) after a crash, and restarts: the buckets are rebuilt from the
// commit log, one warning says so, and every pending delay message is
// delivered exactly once, at and not before its time. (Before: a short or
// deleted bucket stopped the start; a flipped byte lost the timers after it
// with one ERROR line.)
func TestDamagedTimerBucketRebuilt(t *testing.T) {
	type damage func(t *testing.T, h *harness, files []string)
	edit := func(f func(b []byte) []byte) damage {
		return func(t *testing.T, _ *harness, files []string) {
			for _, p := range files {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, f(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	cases := []struct {
		name   string
		damage damage
		reason string
	}{
		{"flipped byte in the last entry", edit(func(b []byte) []byte { b[len(b)-2] ^= 0x10; return b }), "checksum mismatch"},
		{"flipped byte in the first entry", edit(func(b []byte) []byte { b[timerindex.HeaderSize+9] ^= 0x01; return b }), "checksum mismatch"},
		{"bad header", edit(func(b []byte) []byte { b[3] = 'X'; return b }), "bad header"},
		{"truncated", edit(func(b []byte) []byte { return b[:len(b)-7] }), "truncated"},
		{"deleted", func(t *testing.T, _ *harness, files []string) {
			for _, p := range files {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}, "missing"},
		{"every bucket deleted, rebuild interrupted", func(t *testing.T, h *harness, _ []string) {
			ents, err := os.ReadDir(h.e.dir("timer"))
			if err != nil {
				t.Fatal(err)
			}
			for _, ent := range ents {
				if err := os.Remove(h.e.dir("timer", ent.Name())); err != nil {
					t.Fatal(err)
				}
				// What a crash during a rebuild leaves.
				if err := os.WriteFile(h.e.dir("timer", ent.Name()+".rebuild"), []byte(timerindex.Header), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, nil)
			now := h.clock.Now() // 03:04:05: buckets of one minute
			want := map[string]time.Time{}
			send := func(id string, qid int32, at time.Time) domain.SendReceipt {
				want[id] = at
				return h.send("d", qid, delayMsg("d", id, at))[0]
			}
			send("fired", 0, now.Add(time.Second))
			soon := now.Add(2*time.Second + 300*time.Microsecond)
			send("soon", 1, soon)
			send("soon2", 0, now.Add(3*time.Second))
			r := send("recalled", 1, now.Add(4*time.Second))
			send("next-minute", 0, now.Add(90*time.Second))
			later := now.Add(10*time.Minute + 5*time.Millisecond)
			send("later", 1, later)
			send("later2", 0, later.Add(20*time.Second))
			send("hour", 1, now.Add(time.Hour))
			// A committed transactional delay message: its timer comes from
			// the commit's resolve record (a deferred copy).
			tm := txMsg("d", "txn-later")
			tm.DeliverAt = later.Add(3 * time.Second)
			want["txn-later"] = tm.DeliverAt
			tr := h.send("d", 0, tm)[0]
			if err := h.e.EndTransaction(t.Context(), ports.EndTransactionRequest{Topic: "d", MessageID: "txn-later", TransactionID: tr.TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
				t.Fatal(err)
			}
			h.fake().Advance(time.Second)
			h.fireTimers()
			if got := h.popAll("g", "d"); !slices.Equal(got, []string{"fired"}) {
				t.Fatalf("before the crash: %v", got)
			}
			delete(want, "fired")
			if _, err := h.e.Recall(t.Context(), "d", r.RecallHandle); err != nil {
				t.Fatal(err)
			}
			delete(want, "recalled")
			if err := h.e.Snapshot(t.Context()); err != nil {
				t.Fatal(err)
			}
			pending := h.pendingIn(soon, later)
			// After the snapshot: replayed into the rebuilt buckets.
			send("after-snapshot", 0, now.Add(5*time.Second))
			send("after-snapshot-later", 1, later.Add(time.Second))
			files := []string{h.bucketFile(soon), h.bucketFile(later)}
			h.crashRestart(true)
			h.e.crash()
			c.damage(t, h, files)
			h.warns.lines = nil
			h.open()
			if !h.warns.contains("rebuilt them from the commit log", files[0], c.reason) {
				t.Fatalf("no rebuild warning naming %s (%s): %q", files[0], c.reason, h.warns.lines)
			}
			if c.name != "every bucket deleted, rebuild interrupted" &&
				!h.warns.contains("rebuilt them", fmt.Sprintf("timers_restored=%d timers_per_snapshot=%d", pending, pending)) {
				t.Fatalf("want %d timers restored: %q", pending, h.warns.lines)
			}
			ents, _ := os.ReadDir(h.e.dir("timer"))
			for _, ent := range ents {
				if strings.HasSuffix(ent.Name(), ".rebuild") {
					t.Fatalf("temporary file %s left", ent.Name())
				}
			}
			// The rebuilt buckets are whole: a crash now rebuilds nothing.
			h.warns.lines = nil
			h.crashRestart(true)
			if h.warns.contains("rebuilt them") {
				t.Fatalf("rebuilt again: %q", h.warns.lines)
			}
			got := h.deliverInOrder("d", want)
			slices.Sort(got)
			var ids []string
			for id := range want {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			if !slices.Equal(got, ids) {
				t.Fatalf("delivered %v\nwant      %v", got, ids)
			}
			if n := h.queueCount("d", 0) + h.queueCount("d", 1); n != int64(len(ids)+1) {
				t.Fatalf("queues hold %d messages for %d fired timers (one fired twice?)", n, len(ids)+1)
			}
		})
	}
}

// TestTimerRebuildAfterRetention: a bucket whose first timer was recalled
// and whose segment retention then deleted gets a new timer; rebuilt, it
// must count that timer as pending: the recall's resolve record is still in
// the log but the add it resolves is not, and counting it would make the
// bucket look drained (its file deleted, the timer lost).
func TestTimerRebuildAfterRetention(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	h.restart()
	now := h.clock.Now()
	at := h.e.timers.BucketStart(now.Add(5*time.Hour).UnixMilli()) + 10_000
	first := time.UnixMilli(at)
	filler := func(n int) {
		for i := range n {
			m := msg("t", fmt.Sprint(i), "")
			m.Body = make([]byte, 500)
			h.send("t", 0, m)
		}
	}
	r := h.send("d", 0, delayMsg("d", "recalled", first))[0]
	filler(20) // the recalled message's segment fills up
	if _, err := h.e.Recall(t.Context(), "d", r.RecallHandle); err != nil {
		t.Fatal(err)
	}
	recallEnd := h.e.clog.NextOffset()
	// The oldest kept snapshot is in the recall's segment: retention
	// deletes the segment of the add, not the one of the recall.
	for range 2 {
		if err := h.e.Snapshot(t.Context()); err != nil {
			t.Fatal(err)
		}
		filler(20)
	}
	h.fake().Advance(2 * time.Hour)
	if err := h.e.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if start := h.e.clog.StartOffset(); start == 0 || start >= recallEnd {
		t.Fatalf("log starts at %d; the recall record ends at %d", start, recallEnd)
	}
	second := first.Add(20 * time.Second)
	h.send("d", 0, delayMsg("d", "kept", second))
	p := h.restartWithoutBucket(t, second)
	if !h.warns.contains("rebuilt them", p, "timers_restored=1 timers_per_snapshot=1") {
		t.Fatalf("warnings %q", h.warns.lines)
	}
	if n := h.pendingIn(second); n != 1 {
		t.Fatalf("the rebuilt bucket counts %d pending timers, want 1", n)
	}
	// Drained buckets go after two snapshots; this one must stay.
	for range 3 {
		h.send("t", 0, msg("t", "more", ""))
		if err := h.e.Snapshot(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	h.crashRestart(true)
	if got := h.deliverInOrder("d", map[string]time.Time{"kept": second}); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("delivered %v", got)
	}
}

// TestTimerBucketDamagedWhileRunning: a bucket damaged after recovery
// checked it is found when the timer service loads it: its timers after
// the damage are held back, readiness says to restart, and the restart
// rebuilds the bucket and delivers each timer once.
func TestTimerBucketDamagedWhileRunning(t *testing.T) {
	h := newHarness(t, nil)
	h.allow = append(h.allow, "timer index bucket is damaged")
	now := h.clock.Now()
	want := map[string]time.Time{}
	var last domain.SendReceipt
	for i := range 5 {
		id := fmt.Sprint("m", i)
		want[id] = now.Add(10*time.Minute + time.Duration(i)*time.Second)
		last = h.send("d", 0, delayMsg("d", id, want[id]))[0]
	}
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := h.bucketFile(want["m0"])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x08
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// A recall of a timer after the damage (its bucket not loaded) must
	// not say the message is not pending.
	_, err = h.e.Recall(t.Context(), "d", last.RecallHandle)
	wantReason(t, err, domain.ReasonUnavailable)
	h.fake().Advance(11 * time.Minute)
	h.fireTimers()
	first := h.popAll("g", "d")
	if len(first) == len(want) {
		t.Fatal("the damage hid nothing: the test damaged the wrong bytes")
	}
	if err := h.e.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), "restart rmqproxy") {
		t.Fatalf("readiness: %v", err)
	}
	h.crashRestart(true)
	if !h.warns.contains("rebuilt them", p) {
		t.Fatalf("warnings %q", h.warns.lines)
	}
	h.fireTimers()
	all := append(first, h.popAll("g", "d")...)
	slices.Sort(all)
	if !slices.Equal(all, []string{"m0", "m1", "m2", "m3", "m4"}) {
		t.Fatalf("delivered %v", all)
	}
	if n := h.queueCount("d", 0); n != 5 {
		t.Fatalf("queue holds %d messages for 5 timers", n)
	}
}

// TestTimerRebuildScansFromItsOldestAdd: with no consume queue to rebuild,
// the scan starts at the segment of the damaged bucket's smallest origin,
// not at the oldest segment, and still restores every timer (and the
// recall of one).
func TestTimerRebuildScansFromItsOldestAdd(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10 })
	for i := range 40 {
		m := msg("t", fmt.Sprint(i), "")
		m.Body = make([]byte, 500)
		h.send("t", 0, m)
	}
	start := h.e.clog.NextOffset()
	now := h.clock.Now()
	at := now.Add(10 * time.Minute)
	want := map[string]time.Time{"a": at, "b": at.Add(time.Second)}
	h.send("d", 0, delayMsg("d", "a", want["a"]))
	r := h.send("d", 1, delayMsg("d", "recalled", at.Add(2*time.Second)))[0]
	h.send("d", 1, delayMsg("d", "b", want["b"]))
	if _, err := h.e.Recall(t.Context(), "d", r.RecallHandle); err != nil {
		t.Fatal(err)
	}
	h.restartWithoutBucket(t, at)
	var from int64 = -1
	for _, l := range h.warns.lines {
		if i := strings.Index(l, "scanned_from="); i >= 0 && strings.Contains(l, "timers_restored=2 timers_per_snapshot=2") {
			_, _ = fmt.Sscanf(l[i:], "scanned_from=%d", &from)
		}
	}
	if from <= 0 || from > start {
		t.Fatalf("scan started at %d (the delay messages start at %d): %q", from, start, h.warns.lines)
	}
	if got := h.deliverInOrder("d", want); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("delivered %v", got)
	}
}

// restartWithoutBucket snapshots, crashes, deletes the timer bucket of at
// (as a bad disk would lose it) and reopens the engine; it returns the
// bucket's path.
func (h *harness) restartWithoutBucket(t *testing.T, at time.Time) string {
	t.Helper()
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	p := h.bucketFile(at)
	h.e.crash()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	h.open()
	return p
}
