package localbroker

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

func (h *harness) pull(group, topic string, qid int32, off int64, n int32, f filter.Filter) ports.PullResult {
	h.t.Helper()
	r, err := h.e.Pull(h.t.Context(), ports.PullRequest{Group: group, Queue: domain.QueueRef{Topic: topic, BrokerName: h.cfg.BrokerName, QueueID: qid}, Offset: off, BatchSize: n, Filter: f})
	if err != nil {
		h.t.Fatalf("Pull: %v", err)
	}
	return r
}

func TestPullReadsFromOffsets(t *testing.T) {
	h := newHarness(t, nil)
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 1}
	h.send("t", 1, msg("t", "0", "A"), msg("t", "1", "B"), msg("t", "2", "A"), msg("t", "3", "B"), msg("t", "4", "A"))
	r := h.pull("p", "t", 1, 0, 2, nil)
	if !slices.Equal(ids(r.Messages), []string{"0", "1"}) || r.NextOffset != 2 || r.MinOffset != 0 || r.MaxOffset != 5 {
		t.Fatalf("pull: %v %+v", ids(r.Messages), r)
	}
	m := r.Messages[1]
	if m.QueueOffset != 1 || m.QueueID != 1 || m.DeliveryAttempt != 1 || m.ReceiptHandle != "" || m.Topic != "t" ||
		m.BrokerName != h.cfg.BrokerName || m.StoreHost != h.cfg.StoreHost || m.CommitLogOffset <= 0 || m.StoredAt.IsZero() || string(m.Body) != "body-1" {
		t.Fatalf("pulled message %+v", m)
	}
	fA, _ := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: "A"})
	r = h.pull("p", "t", 1, 1, 10, fA)
	if !slices.Equal(ids(r.Messages), []string{"2", "4"}) || r.NextOffset != 5 {
		t.Fatalf("filtered pull: %v next %d", ids(r.Messages), r.NextOffset)
	}
	fC, _ := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: "C"})
	if r = h.pull("p", "t", 0, 0, 10, fC); len(r.Messages) != 0 || r.NextOffset != 0 || r.MaxOffset != 0 {
		t.Fatalf("empty queue: %+v", r)
	}
	if r = h.pull("p", "t", 1, 0, 10, fC); len(r.Messages) != 0 || r.NextOffset != 5 {
		t.Fatalf("nothing matches: %+v", r)
	}
	if r = h.pull("p", "t", 1, 5, 10, nil); r.Messages == nil || len(r.Messages) != 0 || r.NextOffset != 5 {
		t.Fatalf("at the end: %+v", r)
	}
	for _, off := range []int64{-1, 6} {
		_, err := h.e.Pull(t.Context(), ports.PullRequest{Group: "p", Queue: q, Offset: off, BatchSize: 1})
		wantReason(t, err, domain.ReasonIllegalOffset)
		if !strings.Contains(err.Error(), "[0, 5]") {
			t.Fatalf("message %q does not give the range", err)
		}
	}
	_, err := h.e.Pull(t.Context(), ports.PullRequest{Group: "p", Queue: q, BatchSize: 0})
	wantReason(t, err, domain.ReasonBadRequest)
	_, err = h.e.Pull(t.Context(), ports.PullRequest{Group: "p", Queue: domain.QueueRef{Topic: "t", QueueID: 99}, BatchSize: 1})
	wantReason(t, err, domain.ReasonBadRequest)
	// Pull does not touch the group's pop state.
	if got := h.pop("p", "t", 1, 10, time.Minute); len(got) != 5 {
		t.Fatalf("pop after pulls got %d", len(got))
	}
}

func TestPullLongPoll(t *testing.T) {
	h := newHarness(t, nil)
	h.clock = ports.SystemClock{}
	h.restart()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 0}
	start := time.Now()
	r, err := h.e.Pull(t.Context(), ports.PullRequest{Group: "p", Queue: q, BatchSize: 4, PollTimeout: 50 * time.Millisecond})
	if err != nil || len(r.Messages) != 0 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("timeout pull: %+v %v after %v", r, err, time.Since(start))
	}
	res := make(chan ports.PullResult, 1)
	go func() {
		r, err := h.e.Pull(t.Context(), ports.PullRequest{Group: "p", Queue: q, BatchSize: 4, PollTimeout: time.Minute})
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	h.waitPollers("t", q.QueueID, 1)
	h.send("t", 0, msg("t", "x", ""))
	select {
	case r := <-res:
		if !slices.Equal(ids(r.Messages), []string{"x"}) || r.NextOffset != 1 {
			t.Fatalf("woken pull: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long-polling pull not woken by a send")
	}
}

func TestCommittedOffsets(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 2}
	_, err := h.e.GetOffset(ctx, "p", q)
	wantReason(t, err, domain.ReasonOffsetNotFound)
	h.send("t", 2, msg("t", "a", ""), msg("t", "b", ""), msg("t", "c", ""))
	for _, bad := range []int64{-1, 4} {
		wantReason(t, h.e.UpdateOffset(ctx, "p", q, bad), domain.ReasonIllegalOffset)
	}
	if err := h.e.UpdateOffset(ctx, "p", q, 2); err != nil {
		t.Fatal(err)
	}
	if err := h.e.UpdateOffset(ctx, "p2", q, 3); err != nil {
		t.Fatal(err)
	}
	if off, err := h.e.GetOffset(ctx, "p", q); err != nil || off != 2 {
		t.Fatalf("GetOffset: %d %v", off, err)
	}
	_, err = h.e.GetOffset(ctx, "p", domain.QueueRef{Topic: "t", QueueID: 1})
	wantReason(t, err, domain.ReasonOffsetNotFound)
	h.crashRestart(false)
	if off, err := h.e.GetOffset(ctx, "p", q); err != nil || off != 2 {
		t.Fatalf("GetOffset after crash: %d %v", off, err)
	}
	if err := h.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.e.UpdateOffset(ctx, "p", q, 3); err != nil {
		t.Fatal(err)
	}
	h.crashRestart(false)
	if off, err := h.e.GetOffset(ctx, "p", q); err != nil || off != 3 {
		t.Fatalf("GetOffset after snapshot and crash: %d %v", off, err)
	}
	// Deleting the group drops its offsets.
	if err := h.e.DeleteGroup(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	_, err = h.e.GetOffset(ctx, "p", q)
	wantReason(t, err, domain.ReasonOffsetNotFound)
	if off, err := h.e.GetOffset(ctx, "p2", q); err != nil || off != 3 {
		t.Fatalf("other group's offset: %d %v", off, err)
	}
}

func TestQueryOffset(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 0}
	query := func(p ports.OffsetPolicy, at time.Time) int64 {
		t.Helper()
		off, err := h.e.QueryOffset(ctx, q, p, at)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	t0 := h.clock.Now()
	if query(ports.OffsetBeginning, time.Time{}) != 0 || query(ports.OffsetEnd, time.Time{}) != 0 || query(ports.OffsetTimestamp, t0) != 0 {
		t.Fatal("empty queue")
	}
	for i := range 10 {
		h.send("t", 0, msg("t", fmt.Sprint(i), ""), msg("t", fmt.Sprint(i, "b"), ""))
		h.fake().Advance(time.Second)
	}
	if b, e := query(ports.OffsetBeginning, time.Time{}), query(ports.OffsetEnd, time.Time{}); b != 0 || e != 20 {
		t.Fatalf("range [%d, %d]", b, e)
	}
	cases := []struct {
		at   time.Time
		want int64
	}{
		{t0.Add(-time.Hour), 0},
		{t0, 0},
		{t0.Add(time.Millisecond), 2},
		{t0.Add(3 * time.Second), 6},
		{t0.Add(9 * time.Second), 18},
		{t0.Add(9*time.Second + time.Millisecond), 20}, // store times have millisecond precision
		{t0.Add(time.Hour), 20},
	}
	for _, c := range cases {
		if got := query(ports.OffsetTimestamp, c.at); got != c.want {
			t.Errorf("timestamp %v: offset %d, want %d", c.at.Sub(t0), got, c.want)
		}
	}
	_, err := h.e.QueryOffset(ctx, domain.QueueRef{Topic: "t", QueueID: 8}, ports.OffsetEnd, time.Time{})
	wantReason(t, err, domain.ReasonBadRequest)
}

// TestQueryOffsetByTimeReadsWithoutTheEngineLock blocks the binary search
// of an offset query by time (a read of consume-queue entries per probe)
// and checks that the engine serves others meanwhile: the search held the
// engine lock. A deletion of the topic during the search (its queue closed
// under it) makes the query look again, not fail.
func TestQueryOffsetByTimeReadsWithoutTheEngineLock(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 0}
	t0 := h.clock.Now()
	for i := range 10 {
		h.send("t", 0, msg("t", fmt.Sprint(i), ""))
		h.fake().Advance(time.Second)
	}
	h.e.flushQueues() // the search reads the file
	type result struct {
		off int64
		err error
	}
	query := func() (*heldRead, chan result) {
		held, done := holdFirstRead(h, "t"), make(chan result, 1)
		go func() {
			off, err := h.e.QueryOffset(ctx, q, ports.OffsetTimestamp, t0.Add(3*time.Second))
			done <- result{off, err}
		}()
		return held, done
	}
	held, done := query()
	held.servesMeanwhile(t, func() { h.send("u", 0, msg("u", "during-query", "")) })
	if got := <-done; got.err != nil || got.off != 3 {
		t.Fatalf("query: offset %d, %v; want 3", got.off, got.err)
	}
	held, done = query()
	held.servesMeanwhile(t, func() {
		if err := h.e.DeleteTopic(ctx, "t"); err != nil {
			t.Error(err)
		}
		h.e.flushQueues() // the deletion is durable: the queue is closed and removed
	})
	if got := <-done; got.err != nil && !domain.HasReason(got.err, domain.ReasonTopicNotFound) || got.err == nil && got.off != 0 {
		t.Fatalf("query during the topic's deletion: offset %d, %v; want 0 (a new topic) or topic not found", got.off, got.err)
	}
}

func TestMinOffsetAfterRetention(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now())
	h.restart()
	ctx := t.Context()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 0}
	h.fill("t")
	h.retire("t", "late")
	minOff, err := h.e.QueryOffset(ctx, q, ports.OffsetBeginning, time.Time{})
	if err != nil || minOff == 0 || minOff >= 42 {
		t.Fatalf("min offset after retention: %d %v", minOff, err)
	}
	_, err = h.e.Pull(ctx, ports.PullRequest{Group: "p", Queue: q, Offset: minOff - 1, BatchSize: 1})
	wantReason(t, err, domain.ReasonIllegalOffset)
	r := h.pull("p", "t", 0, minOff, 100, nil)
	if len(r.Messages) != int(42-minOff) || r.Messages[0].QueueOffset != minOff || r.MinOffset != minOff {
		t.Fatalf("pull from the new minimum: %d messages, %+v", len(r.Messages), r.Messages[0])
	}
	// The answer is kept until retention moves the start again; messages
	// sent since do not change it.
	h.e.mu.Lock()
	qi := h.e.queues[queueKey{"t", 0}]
	cachedStart, cached := qi.minStart, qi.minOff
	h.e.mu.Unlock()
	if cachedStart != h.e.clog.StartOffset() || cached != minOff {
		t.Fatalf("cached minimum %d for start %d, want %d for %d", cached, cachedStart, minOff, h.e.clog.StartOffset())
	}
	for range 40 {
		m := msg("t", "more", "")
		m.Body = bytes.Repeat([]byte{'y'}, 500)
		h.send("t", 0, m)
	}
	if got, err := h.e.QueryOffset(ctx, q, ports.OffsetBeginning, time.Time{}); err != nil || got != minOff {
		t.Fatalf("min offset after more sends: %d %v, want %d", got, err, minOff)
	}
	h.retire("t", "late")
	again, err := h.e.QueryOffset(ctx, q, ports.OffsetBeginning, time.Time{})
	if err != nil || again <= minOff {
		t.Fatalf("min offset after a second retention run: %d %v, want more than %d", again, err, minOff)
	}
	if r := h.pull("p", "t", 0, again, 1, nil); len(r.Messages) != 1 || r.Messages[0].QueueOffset != again {
		t.Fatalf("pull from the second minimum %d: %+v", again, r.Messages)
	}
}

// TestStatsSkipWhatRetentionRemoved: the progress a group is reported
// (rocketmq_consumer_lag_messages and _ready_messages) starts at the
// queue's first kept message, for a group that never received from the
// queue as for one whose position retention passed: a receive would skip
// the removed ones without delivering them. They were counted until the
// group's next receive passed them.
func TestStatsSkipWhatRetentionRemoved(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now())
	h.restart()
	ctx := t.Context()
	h.createGroup("old", 16, false)
	h.createGroup("new", 16, false)
	h.fill("t")
	for _, m := range h.pop("old", "t", 0, 2, time.Minute) {
		h.ack("old", m)
	}
	h.retire("t", "late")
	minOff, err := h.e.QueryOffset(ctx, domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}, ports.OffsetBeginning, time.Time{})
	if err != nil || minOff <= 2 {
		t.Fatalf("min offset after retention: %d %v", minOff, err)
	}
	const end = 42 // fill's 40 and retire's 2
	want := ports.QueueStats{Topic: "t", QueueID: 0, MaxOffset: end, AckOffset: minOff, Consumable: end - minOff}
	ts, err := h.e.TopicQueueStats(ctx, "t")
	if err != nil || len(ts) == 0 || ts[0] != want {
		t.Errorf("queue stats of a group without state: %+v %v, want %+v", ts, err, want)
	}
	gs, err := h.e.GroupStats(ctx, "old")
	if err == nil && len(gs) == 1 {
		if gs[0].ConsumedUpTo.IsZero() {
			t.Error("stats of a group whose position retention passed: no store time of the message below it")
		}
		gs[0].ConsumedUpTo = time.Time{}
	}
	if err != nil || len(gs) != 1 || gs[0] != want {
		t.Errorf("stats of a group whose position retention passed: %+v %v, want %+v", gs, err, want)
	}
	if got := h.pop("new", "t", 0, 64, time.Minute); int64(len(got)) != end-minOff {
		t.Fatalf("a new group received %d messages, want the %d kept", len(got), end-minOff)
	}
}

// TestFilteredPullScansABoundedStretch: a pull whose filter matches
// nothing in a long backlog examines one stretch of maxScanPerQueue
// entries when it has no poll time, and answers with the offset to pull
// from next (as a RocketMQ broker's NO_MATCHED_MESSAGE), instead of walking
// the whole backlog in one call; with poll time it scans on only while
// that lasts.
func TestFilteredPullScansABoundedStretch(t *testing.T) {
	h := newHarness(t, nil)
	backlog := 3*maxScanPerQueue + 10
	batch := make([]domain.Message, 0, 256)
	for i := range backlog {
		batch = append(batch, msg("t", fmt.Sprint(i), "A"))
		if len(batch) == cap(batch) || i == backlog-1 {
			h.send("t", 0, batch...)
			batch = batch[:0]
		}
	}
	h.send("t", 0, msg("t", "wanted", "B"))
	fB, _ := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: "B"})
	r := h.pull("p", "t", 0, 0, 32, fB)
	if len(r.Messages) != 0 || r.NextOffset != maxScanPerQueue {
		t.Fatalf("one pull without poll time: %d messages, next offset %d; want 0 and %d", len(r.Messages), r.NextOffset, maxScanPerQueue)
	}
	// Pulling on from there reaches the match.
	off, pulls := r.NextOffset, 1
	for len(r.Messages) == 0 && pulls < 10 {
		r = h.pull("p", "t", 0, off, 32, fB)
		off, pulls = r.NextOffset, pulls+1
	}
	if !slices.Equal(ids(r.Messages), []string{"wanted"}) || pulls != 4 {
		t.Fatalf("after %d pulls: %v", pulls, ids(r.Messages))
	}
	// With poll time the scan goes on (the backlog takes well under it).
	r, err := h.e.Pull(t.Context(), ports.PullRequest{Group: "p", Queue: domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}, BatchSize: 32, Filter: fB, PollTimeout: time.Minute})
	if err != nil || !slices.Equal(ids(r.Messages), []string{"wanted"}) {
		t.Fatalf("a long-polling pull: %v %v", ids(r.Messages), err)
	}
}

// TestGetOffsetCreatesNoGroup: GetOffset of a group not known created the
// group where groups are auto-created (a query changed state); a broker
// answers QUERY_CONSUMER_OFFSET for any group, creating none. It is
// OFFSET_NOT_FOUND, as for a new group, and leaves no group behind.
func TestGetOffsetCreatesNoGroup(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "m", ""))
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 0}
	_, err := h.e.GetOffset(t.Context(), "nobody", q)
	wantReason(t, err, domain.ReasonOffsetNotFound)
	gs, err := h.e.ListGroups(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == "nobody" {
			t.Fatal("GetOffset created the group it was asked about")
		}
	}
	h.cfg.AutoCreateGroups = false
	h.restart()
	_, err = h.e.GetOffset(t.Context(), "nobody", q)
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)
}

// TestOffsetsNamingAFormerBrokerName: a pull consumer whose route is from
// before local.brokerName was renamed names the old broker in its queue
// until it reads the route again; its pulls, offset commits, offset reads
// and queries got BAD_REQUEST "query the route again". A name this data
// directory was served under before is this broker's (as the Apache
// proxy's local mode takes any broker name for its broker); a name it
// never had is still refused, as cluster mode refuses a broker it does not
// know (test/cluster's differential test compares the two modes there).
func TestOffsetsNamingAFormerBrokerName(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.send("t", 1, msg("t", "a", ""), msg("t", "b", ""))
	old := h.cfg.BrokerName
	h.cfg.BrokerName = "renamed"
	h.restart()
	h.cfg.BrokerName = "renamed-again"
	h.crashRestart(true)
	for _, name := range []string{old, "renamed", "renamed-again", ""} {
		q := domain.QueueRef{Topic: "t", BrokerName: name, QueueID: 1}
		r, err := h.e.Pull(ctx, ports.PullRequest{Group: "p", Queue: q, Offset: 0, BatchSize: 2})
		if err != nil || len(r.Messages) != 2 {
			t.Fatalf("pull naming broker %q: %+v %v", name, r, err)
		}
		if err := h.e.UpdateOffset(ctx, "p", q, 2); err != nil {
			t.Fatalf("offset commit naming broker %q: %v", name, err)
		}
		if off, err := h.e.GetOffset(ctx, "p", q); err != nil || off != 2 {
			t.Fatalf("offset read naming broker %q: %d %v", name, off, err)
		}
		if off, err := h.e.QueryOffset(ctx, q, ports.OffsetEnd, time.Time{}); err != nil || off != 2 {
			t.Fatalf("offset query naming broker %q: %d %v", name, off, err)
		}
		// The queue id is still checked.
		q.QueueID = 99
		if _, err := h.e.GetOffset(ctx, "p", q); domain.ReasonOf(err) != domain.ReasonBadRequest {
			t.Fatalf("offset read of queue 99 naming broker %q: %v, want BAD_REQUEST", name, err)
		}
	}
	// A broker this data directory never was.
	q := domain.QueueRef{Topic: "t", BrokerName: "elsewhere", QueueID: 1}
	_, err := h.e.Pull(ctx, ports.PullRequest{Group: "p", Queue: q, Offset: 0, BatchSize: 2})
	wantReason(t, err, domain.ReasonBadRequest)
	wantReason(t, h.e.UpdateOffset(ctx, "p", q, 1), domain.ReasonBadRequest)
	_, err = h.e.GetOffset(ctx, "p", q)
	wantReason(t, err, domain.ReasonBadRequest)
	_, err = h.e.QueryOffset(ctx, q, ports.OffsetEnd, time.Time{})
	wantReason(t, err, domain.ReasonBadRequest)
	// A damaged list is started anew, with a warning: the former names
	// are refused again, the current one served.
	if err := os.WriteFile(filepath.Join(h.cfg.DataDir, "meta", brokerNamesFile), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.restart()
	if !h.warns.contains("former broker names is damaged") {
		t.Errorf("no warning about the damaged list: %q", h.warns.lines)
	}
	_, err = h.e.GetOffset(ctx, "p", domain.QueueRef{Topic: "t", BrokerName: old, QueueID: 1})
	wantReason(t, err, domain.ReasonBadRequest)
	if off, err := h.e.GetOffset(ctx, "p", domain.QueueRef{Topic: "t", BrokerName: "renamed-again", QueueID: 1}); err != nil || off != 2 {
		t.Fatalf("offset read naming the current broker after the list was started anew: %d %v", off, err)
	}
}
