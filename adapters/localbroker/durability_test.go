package localbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/commitlog"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/consumequeue"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
	"github.com/rmqproxy/rmqproxy/test/testenv/tmpfs"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestCrashAfterTopicDeleteStarts is the regression test of a crash right
// after a topic deletion: the last snapshot still lists the topic's queues,
// so recovery must not need their files (they went with the topic).
func TestCrashAfterTopicDeleteStarts(t *testing.T) {
	for _, settle := range []bool{true, false} {
		h := newHarness(t, nil)
		ctx := t.Context()
		h.send("a", 0, msg("a", "m1", ""))
		h.send("keep", 0, msg("keep", "k1", ""))
		h.pop("g", "a", 0, 1, time.Minute)
		if err := h.e.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
		if err := h.e.DeleteTopic(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		h.crashRestart(settle)
		if ts, _ := h.e.ListTopics(ctx); slices.ContainsFunc(ts, func(t domain.Topic) bool { return t.Name == "a" }) {
			t.Fatalf("deleted topic back after the crash: %+v", ts)
		}
		// A new topic of the same name starts empty; the other topic keeps
		// its message; both survive another crash and restart.
		if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "a", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
			t.Fatal(err)
		}
		h.send("a", 0, msg("a", "m2", ""))
		h.crashRestart(true)
		if got := h.pop("g", "a", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"m2"}) || got[0].QueueOffset != 0 {
			t.Fatalf("recreated topic holds %v", ids(got))
		}
		if got := h.pop("g", "keep", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"k1"}) {
			t.Fatalf("other topic holds %v", ids(got))
		}
		h.restart()
	}
}

// TestAsyncRecreatedTopicKeepsItsQueueFile is the regression test of a topic
// deleted and re-created (by a send) before the periodic fdatasync made the
// deletion durable, with flush: async: the new incarnation's entries are
// visible at once, so the index flush created the new queue's file at the
// old file's path (truncating it), and the old incarnation's removal then
// unlinked the live file and its directory; every later snapshot failed to
// fsync the missing directory, and the clean restart rebuilt the queue from
// the whole log.
func TestAsyncRecreatedTopicKeepsItsQueueFile(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Flush = "async"
		c.FlushInterval = time.Hour // only the test fdatasyncs
	})
	ctx := t.Context()
	k := queueKey{"a", 0}
	// visibleFlush waits until the notifier made every entry of the queue
	// visible (after write(2), in async mode), then runs the index flush.
	visibleFlush := func() {
		t.Helper()
		waitfor.True(t, 10*time.Second, time.Millisecond, "entries visible", func() bool {
			h.e.mu.Lock()
			defer h.e.mu.Unlock()
			qi := h.e.queues[k]
			return qi != nil && qi.visible == qi.count
		})
		h.e.flushQueues()
	}
	h.send("a", 0, msg("a", "m1", ""))
	visibleFlush() // the first incarnation's file exists
	if err := h.e.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	h.send("a", 0, msg("a", "m2", "")) // auto-creates the topic again
	visibleFlush()                     // the deletion is not durable yet
	if err := h.e.clog.Sync(ctx, h.e.clog.NextOffset()); err != nil {
		t.Fatal(err)
	}
	visibleFlush() // removes the first incarnation's file
	if _, err := os.Stat(h.e.queuePath(k)); err != nil {
		t.Fatalf("the new incarnation's queue file: %v", err)
	}
	for i := range 3 {
		h.send("a", 0, msg("a", fmt.Sprintf("m%d", 3+i), ""))
		visibleFlush()
		if err := h.e.Snapshot(ctx); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
	h.restart()
	if h.warns.contains("rebuilding") {
		t.Error("a clean restart rebuilt a consume queue from the commit log")
	}
	if got := h.pop("g", "a", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"m2", "m3", "m4", "m5"}) || got[0].QueueOffset != 0 {
		t.Fatalf("recreated topic holds %v", ids(got))
	}
}

// TestCrashAfterGroupDeleteStarts: the same for a consumer group with state
// and a dead-letter topic.
func TestCrashAfterGroupDeleteStarts(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.send("a", 0, msg("a", "m1", ""), msg("a", "m2", ""))
	got := h.pop("g", "a", 0, 1, time.Minute)
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", got[0])); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.e.DeleteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	h.crashRestart(true)
	if gs, _ := h.e.ListGroups(ctx); len(gs) != 0 {
		t.Fatalf("deleted group back: %+v", gs)
	}
	// A new group of the same name starts from the first message.
	if got := h.pop("g", "a", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"m1", "m2"}) {
		t.Fatalf("new group got %v", ids(got))
	}
	h.restart()
}

// newClosedHarness is newHarness without opening the engine (the test
// prepares the data directory first, then calls open).
func newClosedHarness(t *testing.T, mod func(*Config)) *harness {
	cfg := testConfig(t.TempDir())
	if mod != nil {
		mod(&cfg)
	}
	h := &harness{t: t, cfg: cfg, clock: newFakeClock()}
	t.Cleanup(func() {
		if h.e != nil && h.e.state == stateOpen {
			if err := h.e.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return h
}

// writeLegacyDataDir builds the data directory of a version that kept
// topics and groups in meta/*.json: a commit log with one message batch for
// topic "legacy" (queue 1 of 2) and no definition records, the JSON files
// (unless withJSON is false) and, with v2Snapshot, an empty version-2
// snapshot at offset 0.
func writeLegacyDataDir(t *testing.T, cfg Config, withJSON, v2Snapshot bool) {
	t.Helper()
	for _, d := range []string{"meta", "commitlog", "snapshot"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	clog, err := commitlog.Open(commitlog.Options{Dir: filepath.Join(cfg.DataDir, "commitlog"), SegmentSize: cfg.SegmentSize,
		MaxRecordSize: cfg.MaxRecordSize}, 0, func(int64, byte, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := record.Batch{Topic: "legacy", QueueID: 1, QueueOffset: 0, Messages: []record.Message{
		{Message: msg("legacy", "old1", "tagA"), StoredAt: now}, {Message: msg("legacy", "old2", ""), StoredAt: now}}}
	p, _ := record.AppendBatch(nil, &b)
	_, end, err := clog.Append(byte(record.TypeMessageBatch), p, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := clog.Wait(t.Context(), end); err != nil {
		t.Fatal(err)
	}
	if err := clog.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if withJSON {
		ts := []topicMeta{{Topic: domain.Topic{Name: "legacy", Type: domain.MessageTypeFIFO, QueueCount: 2, Permission: domain.PermReadWrite,
			CreatedAt: now, UpdatedAt: now}, incarnation: 5}}
		gs := []groupMeta{{ConsumerGroup: domain.NewConsumerGroup("lg"), incarnation: 6}}
		gs[0].MaxDeliveryAttempts = 4
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "meta", topicsFile), encodeTopics(ts), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "meta", groupsFile), encodeGroups(gs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if v2Snapshot {
		s := encodeSnapshot(&snapshot{})
		v2 := append(bytes.Clone(snapMagicV2), s[len(snapMagic):len(s)-4-2]...)
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "snapshot", snapshotName(0)), encodeSnapshotRaw(v2), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLegacyMetadataImported: a data directory of an older version is
// imported once (definitions recorded in the log, JSON files renamed); from
// then on the JSON files play no role.
func TestLegacyMetadataImported(t *testing.T) {
	for _, v2 := range []bool{false, true} {
		h := newClosedHarness(t, func(c *Config) { c.AutoCreateTopics, c.AutoCreateGroups = false, false })
		writeLegacyDataDir(t, h.cfg, true, v2)
		h.open()
		ctx := t.Context()
		check := func(when string) {
			t.Helper()
			tp, err := h.e.Topic(ctx, "legacy")
			if err != nil || tp.Type != domain.MessageTypeFIFO || tp.QueueCount != 2 {
				t.Fatalf("%s: topic %+v %v", when, tp, err)
			}
			g, err := h.e.ConsumerGroup(ctx, "lg")
			if err != nil || g.MaxDeliveryAttempts != 4 {
				t.Fatalf("%s: group %+v %v", when, g, err)
			}
		}
		check("after the import")
		for _, name := range []string{topicsFile, groupsFile} {
			if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "meta", name)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s still there after the import: %v", name, err)
			}
			if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "meta", name+importedSuffix)); err != nil {
				t.Fatalf("%s not kept as %s: %v", name, importedSuffix, err)
			}
		}
		h.crashRestart(true) // from the v2 snapshot (or none) and the log alone
		check("after a crash")
		if got := h.pop("lg", "legacy", 1, 10, time.Minute); !slices.Equal(ids(got), []string{"old1", "old2"}) {
			t.Fatalf("legacy messages: %v", ids(got))
		}
		if err := h.e.DeleteTopic(ctx, "legacy"); err != nil {
			t.Fatal(err)
		}
		h.restart() // writes a v3 snapshot
		if _, err := h.e.Topic(ctx, "legacy"); !domain.HasReason(err, domain.ReasonTopicNotFound) {
			t.Fatalf("deleted topic back: %v", err)
		}
		check2 := func() {
			if g, err := h.e.ConsumerGroup(ctx, "lg"); err != nil || g.MaxDeliveryAttempts != 4 {
				t.Fatalf("group %+v %v", g, err)
			}
		}
		check2()
		// A topics.json put back is ignored: it would bring back the topic.
		if err := os.Rename(filepath.Join(h.cfg.DataDir, "meta", topicsFile+importedSuffix), filepath.Join(h.cfg.DataDir, "meta", topicsFile)); err != nil {
			t.Fatal(err)
		}
		h.crashRestart(true)
		if _, err := h.e.Topic(ctx, "legacy"); !domain.HasReason(err, domain.ReasonTopicNotFound) {
			t.Fatalf("deleted topic back from topics.json: %v", err)
		}
		if !h.warns.contains("ignoring a metadata file of an older version") {
			t.Fatal("no warning about the ignored topics.json")
		}
		check2()
		h.restart()
	}
}

// TestLostTopicsJSONKeepsDataReachable is the regression test of a deleted
// topics.json: the messages of the topic stay reachable (the topic is
// recreated from the log, with a warning), and so does the group's state.
func TestLostTopicsJSONKeepsDataReachable(t *testing.T) {
	h := newClosedHarness(t, func(c *Config) { c.AutoCreateTopics, c.AutoCreateGroups = false, false })
	writeLegacyDataDir(t, h.cfg, false, true)
	h.open()
	if !h.warns.contains("topic without a definition", "legacy") {
		t.Fatal("no warning about the recreated topic")
	}
	tp, err := h.e.Topic(t.Context(), "legacy")
	if err != nil || tp.QueueCount != 2 {
		t.Fatalf("topic %+v %v", tp, err)
	}
	if _, err := h.e.CreateGroup(t.Context(), domain.NewConsumerGroup("g")); err != nil {
		t.Fatal(err)
	}
	if got := h.pop("g", "legacy", 1, 10, time.Minute); !slices.Equal(ids(got), []string{"old1", "old2"}) {
		t.Fatalf("messages of the topic whose definition was lost: %v", ids(got))
	}
	h.crashRestart(true)
	if _, err := h.e.Topic(t.Context(), "legacy"); err != nil {
		t.Fatal(err)
	}
	h.restart()
}

// TestNewDataDirHasNoMetadataFiles: definitions live in the log and the
// snapshots only; removing meta/ (but the boot counter) loses nothing.
func TestNewDataDirHasNoMetadataFiles(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AutoCreateTopics = false })
	ctx := t.Context()
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 3}); err != nil {
		t.Fatal(err)
	}
	h.createGroup("g", 9, false)
	h.send("t", 2, msg("t", "m", ""))
	for _, restart := range []func(){func() { h.crashRestart(false) }, h.restart, h.restart} {
		restart()
		if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "meta", topicsFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("topics.json written: %v", err)
		}
		if tp, err := h.e.Topic(ctx, "t"); err != nil || tp.QueueCount != 3 {
			t.Fatalf("topic %+v %v", tp, err)
		}
		if g, err := h.e.ConsumerGroup(ctx, "g"); err != nil || g.MaxDeliveryAttempts != 9 {
			t.Fatalf("group %+v %v", g, err)
		}
	}
	if got := h.pop("g", "t", 2, 10, time.Minute); !slices.Equal(ids(got), []string{"m"}) {
		t.Fatalf("got %v", ids(got))
	}
}

// TestAutoCreateBounded: auto-creation stops at the configured count with a
// precise error, and is rate limited with a retryable one.
func TestAutoCreateBounded(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AutoCreateMaxTopics = 3; c.AutoCreateMaxGroups = 2; c.AutoCreateRate = 2 })
	ctx := t.Context()
	for _, n := range []string{"a", "b"} {
		if _, err := h.e.Route(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	_, err := h.e.Route(ctx, "c")
	wantReason(t, err, domain.ReasonTooManyRequests)
	if !strings.Contains(err.Error(), "local.autoCreateRate") {
		t.Fatalf("rate error does not name the setting: %v", err)
	}
	h.fake().Advance(time.Second)
	if _, err := h.e.Route(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	h.fake().Advance(time.Minute)
	_, err = h.e.Route(ctx, "d")
	wantReason(t, err, domain.ReasonTopicNotFound)
	if !strings.Contains(err.Error(), "local.autoCreateMaxTopics") || !strings.Contains(err.Error(), "rmqproxy topic create d") {
		t.Fatalf("count error: %v", err)
	}
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "d", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatalf("explicit creation is not limited: %v", err)
	}
	for _, g := range []string{"g1", "g2"} {
		if _, err := h.e.ConsumerGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	_, err = h.e.ConsumerGroup(ctx, "g3")
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)
	if !strings.Contains(err.Error(), "local.autoCreateMaxGroups") {
		t.Fatalf("group count error: %v", err)
	}
}

// TestDiskFullEngine fills a small tmpfs with sends: sends then get a
// retryable error, receives and acks go on (the reserve), the engine starts
// again on the full disk, resumes by itself once the file system grows, and
// nothing acknowledged is lost.
func TestDiskFullEngine(t *testing.T) {
	mnt := tmpfs.Mount(t, "3m")
	h := newClosedHarness(t, func(c *Config) {
		c.DataDir = filepath.Join(mnt, "data")
		c.SegmentSize, c.MaxRecordSize = 1<<20, 64<<10
		c.MaxPendingBytes = 1 << 20
		c.DiskReserve = 256 << 10
	})
	h.clock = ports.SystemClock{}
	h.open()
	ctx := t.Context()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}
	body := bytes.Repeat([]byte{'x'}, 4<<10)
	sent := map[string]bool{}
	var fullErr error
	for i := 0; fullErr == nil; i++ {
		if i > 2000 {
			t.Fatal("a 3 MiB file system never filled")
		}
		id := fmt.Sprint("m", i)
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := h.e.Send(sctx, q, []domain.Message{{Topic: "t", ID: id, Body: body}})
		cancel()
		switch {
		case err == nil:
			sent[id] = true
		case domain.HasReason(err, domain.ReasonUnavailable):
			fullErr = err
		default:
			t.Fatalf("send %d on a filling disk: %v (want a retryable code)", i, err)
		}
	}
	if !strings.Contains(fullErr.Error(), "disk holding local.dataDir is full") {
		t.Fatalf("the disk-full error does not say so: %v", fullErr)
	}
	if err := h.e.Ready(ctx); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("readiness on a full disk: %v", err)
	}
	// Receives and acks go on.
	acked := map[string]bool{}
	got := h.pop("g", "t", -1, 8, time.Minute)
	if len(got) == 0 {
		t.Fatal("nothing received on a full disk")
	}
	for _, m := range got {
		h.ack("g", m)
		acked[m.ID] = true
	}
	t.Logf("%d sends stored before the disk was full; %d received and acked while full", len(sent), len(acked))

	// A restart on the full disk works and says what is wrong.
	_ = h.e.Close(ctx) // the final snapshot may fail for lack of space
	h.allow = append(h.allow, "commit log write failed")
	h.open()
	if err := h.e.Ready(ctx); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("readiness after a restart on a full disk: %v", err)
	}
	if !h.warns.contains("disk holding local.dataDir is full") {
		t.Fatal("no warning about the full disk at start")
	}
	_, err := h.e.Send(ctx, q, []domain.Message{{Topic: "t", ID: "refused", Body: body}})
	wantReason(t, err, domain.ReasonUnavailable)

	// Space comes back: the engine resumes by itself.
	tmpfs.Resize(t, mnt, "16m")
	waitfor.Condition(t, 30*time.Second, time.Millisecond, func() error {
		_, err := h.e.Send(ctx, q, []domain.Message{{Topic: "t", ID: "after", Body: body}})
		return err
	})
	sent["after"] = true
	if err := h.e.Ready(ctx); err != nil {
		t.Fatalf("not ready after space came back: %v", err)
	}
	for {
		got := h.pop("g", "t", -1, 64, time.Minute)
		if len(got) == 0 {
			break
		}
		for _, m := range got {
			if acked[m.ID] {
				t.Errorf("message %s acked on the full disk was delivered again", m.ID)
			}
			h.ack("g", m)
			acked[m.ID] = true
		}
	}
	h.restart()
	if got := h.pop("g", "t", -1, 64, time.Minute); len(got) != 0 {
		t.Fatalf("%d acked messages delivered again after a restart", len(got))
	}
	for id := range sent {
		if !acked[id] {
			t.Errorf("message %s was stored but never delivered", id)
		}
	}
}

// TestFailedStateAfterFsyncError: an fdatasync error is not retried (the
// kernel may have dropped the pages): every write answers a retryable code
// naming the failure, readiness says why, reads go on, and a restart
// recovers from the log.
func TestFailedStateAfterFsyncError(t *testing.T) {
	h := newClosedHarness(t, nil)
	var fail atomic.Bool
	h.engineMod = func(e *Engine) {
		e.syncFault = func(f *os.File) error {
			if fail.Load() {
				return syscall.EIO
			}
			return f.Sync()
		}
	}
	h.open()
	ctx := t.Context()
	h.send("t", 0, msg("t", "a", ""), msg("t", "b", ""))
	got := h.pop("g", "t", 0, 1, time.Minute)
	h.ack("g", got[0])
	fail.Store(true)
	h.allow = append(h.allow, "commit log write failed")
	_, err := h.e.Send(ctx, domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}, []domain.Message{msg("t", "c", "")})
	wantReason(t, err, domain.ReasonUnavailable)
	if !strings.Contains(err.Error(), "restart rmqproxy") || !errors.Is(err, syscall.EIO) {
		t.Fatalf("send after the fsync error: %v", err)
	}
	for _, call := range []func() error{
		func() error {
			_, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 1, InvisibleTime: time.Minute})
			return err
		},
		func() error {
			_, err := h.e.CreateTopic(ctx, domain.Topic{Name: "x", Type: domain.MessageTypeNormal, QueueCount: 1})
			return err
		},
	} {
		if err := call(); !domain.HasReason(err, domain.ReasonUnavailable) {
			t.Fatalf("write after the fsync error: %v", err)
		}
	}
	if err := h.e.Ready(ctx); err == nil || !strings.Contains(err.Error(), "restart rmqproxy") {
		t.Fatalf("readiness after the fsync error: %v", err)
	}
	if _, err := h.e.Pull(ctx, ports.PullRequest{Group: "g", Queue: domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}, Offset: 0, BatchSize: 10}); err != nil {
		t.Fatalf("a read after the fsync error: %v", err)
	}
	fail.Store(false)
	h.crashRestart(false)
	if err := h.e.Ready(ctx); err != nil {
		t.Fatalf("not ready after a restart: %v", err)
	}
	h.fake().Advance(2 * time.Minute)
	seen := map[string]bool{}
	for _, m := range h.pop("g", "t", 0, 10, time.Minute) {
		seen[m.ID] = true
		h.ack("g", m)
	}
	if seen["a"] || !seen["b"] {
		t.Fatalf("after the restart got %v: the acked message must not come back, the other must", seen)
	}
	h.send("t", 0, msg("t", "d", ""))
}

// TestNoSnapshotInTheFailedState: once applying a stored record failed
// (the engine's failed state), live state may differ from what replay
// builds, and the restart the error asks for must recover from the commit
// log. No snapshot is written then, neither periodically nor at Close: one
// covering the record would make every later start skip it for good. (The
// failure is simulated: the record is appended and its apply fails before
// changing anything.)
func TestNoSnapshotInTheFailedState(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 0}
	h.createGroup("p", 16, false)
	h.send("t", 0, msg("t", "a", ""), msg("t", "b", ""))
	before := h.snapshotOffset()
	h.allow = append(h.allow, "the local broker stopped writing")
	h.e.mu.Lock()
	rec := record.OffsetCommit{Group: "p", Topic: "t", QueueID: 0, Offset: 2}
	_, end, err := h.e.clog.Append(byte(record.TypeOffsetCommit), record.AppendOffsetCommit(nil, &rec), true)
	if err == nil {
		h.e.failLocked(errors.New("injected: applying the record failed"))
	}
	h.e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.e.clog.Sync(ctx, end); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Snapshot(ctx); !domain.HasReason(err, domain.ReasonUnavailable) {
		t.Errorf("snapshot in the failed state: %v, want it refused as unavailable", err)
	}
	if err := h.e.Close(ctx); err != nil {
		t.Errorf("Close in the failed state: %v", err)
	}
	h.open()
	if got := h.e.snapOffsets[len(h.e.snapOffsets)-1]; got != before {
		t.Errorf("newest snapshot at offset %d after the failed state, want the one before it (%d)", got, before)
	}
	if off, err := h.e.GetOffset(ctx, "p", q); err != nil || off != 2 {
		t.Fatalf("offset committed by the record whose apply failed, after a restart: %d %v; want 2 (replayed from the commit log)", off, err)
	}
}

// openStallingDisk opens the engine on a disk that stalls: while stall is
// set, every fsync waits until release is closed.
func (h *harness) openStallingDisk() (stall *atomic.Bool, release chan struct{}) {
	stall, release = new(atomic.Bool), make(chan struct{})
	h.engineMod = func(e *Engine) {
		e.syncFault = func(f *os.File) error {
			if stall.Load() {
				<-release
			}
			return f.Sync()
		}
	}
	h.open()
	return stall, release
}

// TestSendBackPressure: while the disk stalls, the bytes waiting to be
// written stay under local.maxPendingBytes; sends beyond wait within their
// deadline and then get TOO_MANY_REQUESTS; once the disk moves, sends work.
func TestSendBackPressure(t *testing.T) {
	h := newClosedHarness(t, func(c *Config) { c.MaxPendingBytes = 1 << 20; c.MaxRecordSize = 256 << 10; c.SegmentSize = 64 << 20 })
	stall, release := h.openStallingDisk()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}
	body := bytes.Repeat([]byte{'x'}, 100<<10)
	stall.Store(true)
	var wg sync.WaitGroup
	var busy, timedOut atomic.Int32
	var maxPending atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			_, err := h.e.Send(ctx, q, []domain.Message{{Topic: "t", ID: fmt.Sprint(i), Body: body}})
			if p := h.e.clog.PendingBytes(); p > maxPending.Load() {
				maxPending.Store(p)
			}
			switch {
			case domain.HasReason(err, domain.ReasonTooManyRequests):
				busy.Add(1)
			case domain.HasReason(err, domain.ReasonPersistenceTimeout):
				timedOut.Add(1)
			default:
				t.Errorf("send %d while the disk stalls: %v", i, err)
			}
		})
	}
	wg.Wait()
	if busy.Load() == 0 || maxPending.Load() > h.cfg.MaxPendingBytes {
		t.Fatalf("%d sends refused, %d timed out waiting for durability, at most %d bytes pending (bound %d)",
			busy.Load(), timedOut.Load(), maxPending.Load(), h.cfg.MaxPendingBytes)
	}
	t.Logf("%d sends got TOO_MANY_REQUESTS, %d were accepted and timed out waiting for the disk; at most %d bytes pending",
		busy.Load(), timedOut.Load(), maxPending.Load())
	stall.Store(false)
	close(release)
	h.send("t", 0, msg("t", "after", ""))
}

// TestCloseKeepsLockUntilWriterStops: a Close whose context ends while the
// commit-log writer is stuck in fdatasync returns at once, and the data
// directory stays locked (another engine cannot open it) until the writer
// has stopped.
func TestCloseKeepsLockUntilWriterStops(t *testing.T) {
	h := newClosedHarness(t, nil)
	stall, release := h.openStallingDisk()
	h.send("t", 0, msg("t", "a", ""))
	endA := h.e.clog.NextOffset()
	stall.Store(true)
	sent := make(chan error, 1)
	go func() {
		_, err := h.e.Send(context.Background(), domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}, []domain.Message{msg("t", "b", "")})
		sent <- err
	}()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		if h.e.clog.NextOffset() == endA || h.e.clog.PendingBytes() > 0 {
			return errors.New("the send is not in fdatasync yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := h.e.Close(ctx); err == nil {
		t.Fatal("Close with a stuck writer and an ended context succeeded")
	}
	if !h.warns.contains("the commit-log writer did not stop in time") {
		t.Fatal("no warning about the writer still running")
	}
	_, err := Open(t.Context(), h.cfg, nil, nil)
	wantReason(t, err, domain.ReasonUnavailable)
	if !strings.Contains(err.Error(), "lock") {
		t.Fatalf("a second engine opened the data directory while the writer ran: %v", err)
	}
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("the send waiting in fdatasync: %v", err)
	}
	select {
	case <-h.e.clog.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not stop")
	}
	_ = h.e.lock.Close() // this process would exit here, releasing the lock
	h.open()
	if got := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"a", "b"}) {
		t.Fatalf("after the restart: %v", ids(got))
	}
}

// queueFile is the path of a queue's index file.
func (h *harness) queueFile(topic string, qid int) string {
	return filepath.Join(h.cfg.DataDir, "consumequeue", topic, fmt.Sprint(qid))
}

// TestDamagedQueueEntryRebuilt is the regression test of a flipped byte in
// a consume-queue entry: the message it points to is intact in the log and
// must still be delivered (before, it was skipped for every group with one
// ERROR line). Recovery finds the bad entry by its checksum and rebuilds
// the queue from the log.
func TestDamagedQueueEntryRebuilt(t *testing.T) {
	h := newHarness(t, nil)
	var want []string
	for i := range 6 {
		id := fmt.Sprint("m", i)
		want = append(want, id)
		h.send("t", 0, msg("t", id, ""))
	}
	h.restart() // the final snapshot writes and fsyncs the queue file
	p := h.queueFile("t", 0)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[2*consumequeue.EntrySize+6] ^= 0x40 // the commit-log offset of entry 2
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h.crashRestart(true)
	if !h.warns.contains("fails its checksum", p) {
		t.Fatal("no warning about the damaged entry")
	}
	if got := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(got), want) {
		t.Fatalf("after the rebuild: %v, want %v", ids(got), want)
	}
	// The rebuilt file is whole: no rebuild at the next start.
	h.warns.lines = nil
	h.restart()
	if h.warns.contains("rebuilding") {
		t.Fatal("the queue was rebuilt again")
	}
}

// TestShortQueueRebuilt: a queue file shorter than the snapshot says, whose
// topic was not deleted, is rebuilt (before: the engine refused to start).
func TestShortQueueRebuilt(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 1, msg("t", "a", ""), msg("t", "b", ""), msg("t", "c", ""))
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.send("t", 1, msg("t", "d", ""))
	h.crashRestart(true)
	if err := os.Truncate(h.queueFile("t", 1), consumequeue.EntrySize); err != nil {
		t.Fatal(err)
	}
	h.crashRestart(true)
	if got := h.pop("g", "t", 1, 10, time.Minute); !slices.Equal(ids(got), []string{"a", "b", "c", "d"}) {
		t.Fatalf("after the rebuild: %v", ids(got))
	}
}

// TestOldFormatQueuesRebuilt: consume queues of the 32-byte format of older
// versions (no FORMAT marker) are rebuilt from the log, including a queue
// whose first records retention deleted (placeholders: gone).
func TestOldFormatQueuesRebuilt(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	h.restart()
	body := bytes.Repeat([]byte{'x'}, 500)
	for i := range 40 {
		m := msg("t", fmt.Sprint("m", i), "")
		m.Body = body
		h.send("t", 0, m)
	}
	h.send("u", 0, msg("u", "u0", ""))
	ctx := t.Context()
	h.retire("t", "late")
	if h.e.clog.StartOffset() == 0 {
		t.Fatal("no segment deleted")
	}
	h.restart()
	// Rewrite every queue file in the old 32-byte format.
	for _, topic := range []string{"t", "u"} {
		p := h.queueFile(topic, 0)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var old []byte
		for i := 0; i+consumequeue.EntrySize <= len(b); i += consumequeue.EntrySize {
			old = append(old, b[i:i+32]...)
		}
		if err := os.WriteFile(p, old, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(h.cfg.DataDir, "consumequeue", queueFormatFile)); err != nil {
		t.Fatal(err)
	}
	h.crashRestart(true)
	if !h.warns.contains("rebuilding consume queues") {
		t.Fatal("no rebuild reported")
	}
	got := h.pop("g", "t", 0, 100, time.Minute)
	if len(got) == 0 || len(got) >= 42 || got[len(got)-1].ID != "late" {
		t.Fatalf("after the rebuild got %v", ids(got))
	}
	if got := h.pop("g", "u", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"u0"}) {
		t.Fatalf("queue u after the rebuild: %v", ids(got))
	}
	st, _ := h.e.GroupStats(ctx, "g")
	if st[0].MaxOffset != 42 {
		t.Fatalf("rebuilt queue t has %d entries, want 42", st[0].MaxOffset)
	}
}

// TestQueueEntryDamagedWhileRunning: an entry damaged after recovery checked
// it is not skipped: the receive gets a retryable error, readiness says to
// restart, and the restart rebuilds the queue and delivers the message.
func TestQueueEntryDamagedWhileRunning(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "a", ""), msg("t", "b", ""))
	if err := h.e.Snapshot(t.Context()); err != nil { // the entries are in the file now
		t.Fatal(err)
	}
	f, err := os.OpenFile(h.queueFile("t", 0), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, consumequeue.EntrySize+3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	h.allow = append(h.allow, "a consume-queue entry fails its checksum")
	got, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 10, InvisibleTime: time.Minute})
	if !domain.HasReason(err, domain.ReasonUnavailable) {
		t.Fatalf("pop over a damaged entry: %v %v", ids(got), err)
	}
	if err := h.e.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), "restart rmqproxy") {
		t.Fatalf("readiness: %v", err)
	}
	h.crashRestart(true)
	if got := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"a", "b"}) {
		t.Fatalf("after the restart: %v", ids(got))
	}
}

// TestRetriedAckAnsweredOnlyWhenDurable: an ack retried while the first
// attempt's record still waits for its fdatasync (the first caller timed
// out) is not answered OK before that record is durable; once it is
// answered OK, a kill -9 does not bring the message back. The same holds
// for a dead-letter move of a message acked before.
func TestRetriedAckAnsweredOnlyWhenDurable(t *testing.T) {
	h := newClosedHarness(t, nil)
	var blocking atomic.Bool
	block, entered := make(chan struct{}), make(chan struct{}, 1)
	h.engineMod = func(e *Engine) {
		e.syncFault = func(f *os.File) error {
			if blocking.Load() {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-block
			}
			return f.Sync()
		}
	}
	unblock := sync.OnceFunc(func() { blocking.Store(false); close(block) })
	defer unblock() // also when the test fails with the writer inside fdatasync
	h.open()
	h.send("t", 0, msg("t", "a", ""))
	got := h.pop("g", "t", 0, 1, time.Minute)
	blocking.Store(true)
	sendDone := make(chan struct{})
	go func() { // another producer's send: the writer is then inside fdatasync
		defer close(sendDone)
		_, _ = h.e.Send(context.Background(), domain.QueueRef{Topic: "other", BrokerName: h.cfg.BrokerName}, []domain.Message{msg("other", "o", "")})
	}()
	<-entered
	attempt := func(d time.Duration, call func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return call(ctx)
	}
	ack := func(ctx context.Context) error { return h.e.Ack(ctx, ackReq("g", got[0])) }
	dlq := func(ctx context.Context) error { return h.e.ForwardToDeadLetter(ctx, ackReq("g", got[0])) }
	if err := attempt(50*time.Millisecond, ack); err == nil {
		t.Fatal("the first ack was answered OK while the log could not be synced")
	}
	if err := attempt(100*time.Millisecond, ack); err == nil {
		t.Fatal("a retried ack was answered OK before the first attempt's record was durable")
	}
	if err := attempt(100*time.Millisecond, dlq); err == nil {
		t.Fatal("a dead-letter move of the acked message was answered OK before the ack was durable")
	}
	unblock()
	<-sendDone
	if err := attempt(10*time.Second, ack); err != nil {
		t.Fatalf("the retried ack once the log syncs again: %v", err)
	}
	h.e.crash() // kill -9
	h.open()
	h.fake().Advance(2 * time.Minute)
	if again := h.pop("g", "t", 0, 1, time.Minute); len(again) != 0 {
		t.Fatalf("a message acked OK was delivered again after kill -9: %v (attempt %d)", ids(again), again[0].DeliveryAttempt)
	}
}

// TestGroupDeletedDuringPopRead: a group deleted while a pop of it reads
// messages (without the engine lock) gets no pop record: the pop used to
// append one, so the deleted group's consumer state lived on (in flight
// deliveries, a cursor a re-created group inherited) and a restart
// re-created the group from it as if its definition had been lost.
func TestGroupDeletedDuringPopRead(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AutoCreateGroups = false })
	ctx := t.Context()
	if _, err := h.e.CreateGroup(ctx, domain.NewConsumerGroup("g")); err != nil {
		t.Fatal(err)
	}
	h.send("a", 0, msg("a", "m1", ""))
	var once sync.Once
	hook := func(topic string) {
		once.Do(func() {
			if err := h.e.DeleteGroup(ctx, "g"); err != nil {
				t.Error(err)
			}
		})
	}
	h.e.readHook.Store(&hook)
	got, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "a", QueueID: 0, MaxMessages: 1, InvisibleTime: time.Minute})
	h.e.readHook.Store(nil)
	if len(got) != 0 {
		t.Fatalf("pop of a group deleted meanwhile handed out %v (error %v)", ids(got), err)
	}
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)
	h.e.mu.Lock()
	_, state := h.e.cons[consKey{"g", "a", 0}]
	h.e.mu.Unlock()
	if state {
		t.Fatal("the deleted group has consumer state")
	}
	h.crashRestart(true)
	if gs, _ := h.e.ListGroups(ctx); len(gs) != 0 {
		t.Fatalf("deleted group back after a restart: %+v", gs)
	}
	// A new group of the same name starts from the first message.
	if _, err := h.e.CreateGroup(ctx, domain.NewConsumerGroup("g")); err != nil {
		t.Fatal(err)
	}
	if got := h.pop("g", "a", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"m1"}) {
		t.Fatalf("new group got %v", ids(got))
	}
}

// TestCrashLeftoversOfAtomicWritesRemoved: a kill -9 while a snapshot (or
// the consume-queue format marker) is being written leaves its temporary
// file behind, as large as the snapshot; nothing read or removed them, so
// every such crash left one more in the data directory for good. A start
// removes them (the directory is locked: no other process writes there).
func TestCrashLeftoversOfAtomicWritesRemoved(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "a", ""))
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.e.crash()
	leftovers := []string{
		filepath.Join(h.cfg.DataDir, "snapshot", "."+snapshotName(4096)+".tmp123456"),
		filepath.Join(h.cfg.DataDir, "consumequeue", "."+queueFormatFile+".tmp42"),
	}
	for _, p := range leftovers {
		if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 1<<16), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.open()
	for _, p := range leftovers {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after a start: %v", p, err)
		}
	}
	if got := h.pop("g", "t", 0, 8, time.Minute); len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("got %v, want the message sent before the crash", popIDs(got))
	}
}

// TestSendOfMoreMessagesThanARecordHoldsRefused: a send of more messages
// than a batch record may hold (record.MaxBatchMessages; tiny ones fit in
// maxRecordSize and a 130 MiB gRPC request) is refused before anything is
// appended. It used to be stored: applying it failed (its message count is
// beyond what decoding accepts), the engine stopped writing, and every
// restart failed on the record ("cannot be decoded"), so the data directory
// would not start again.
func TestSendOfMoreMessagesThanARecordHoldsRefused(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("sends over a million messages in one batch (about 300 MB)")
	}
	h := newHarness(t, func(c *Config) { c.MaxRecordSize, c.SegmentSize = 64<<20, 128<<20 })
	msgs := make([]domain.Message, record.MaxBatchMessages+1)
	for i := range msgs {
		msgs[i] = domain.Message{Topic: "t", ID: "m", Body: []byte("x")}
	}
	_, err := h.e.Send(t.Context(), domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}, msgs)
	wantReason(t, err, domain.ReasonBadRequest)
	if !strings.Contains(err.Error(), fmt.Sprint(record.MaxBatchMessages)) {
		t.Fatalf("the refusal does not say how many messages one send may hold: %v", err)
	}
	msgs = nil
	if err := h.e.Ready(t.Context()); err != nil {
		t.Fatalf("not ready after the refused send: %v", err)
	}
	h.send("t", 0, msg("t", "after", ""))
	h.crashRestart(true)
	if got := h.pop("g", "t", 0, 8, time.Minute); len(got) != 1 || got[0].ID != "after" {
		t.Fatalf("after a restart got %v, want the message sent after the refused one", popIDs(got))
	}
}

// TestLargestMessageCanBeCopied: the largest message a send accepts can
// still be dead-lettered, fired as a timer and committed, each of which
// writes a record with a copy of it; one byte more is refused at the send,
// naming local.maxRecordSize. (Sends used to be checked only against the
// send's own record: a message just under maxRecordSize was stored, then
// its commit failed with "message body too large", its dead-letter move
// failed for ever, and its due timer held up every later one.)
func TestLargestMessageCanBeCopied(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	topic := strings.Repeat("t", domain.MaxTopicNameLength)
	group := strings.Repeat("g", domain.MaxGroupNameLength)
	probe := strings.Repeat("p", domain.MaxTopicNameLength) // as long as topic
	// largest returns the largest body that a send of tmpl with it accepts
	// (probed on another topic), after checking that one byte more is
	// refused as too large.
	largest := func(tmpl domain.Message) domain.Message {
		t.Helper()
		send := func(n int) error {
			m := tmpl
			m.Body = bytes.Repeat([]byte{'x'}, n)
			m.Topic = probe
			_, err := h.e.Send(ctx, domain.QueueRef{Topic: probe, BrokerName: h.cfg.BrokerName}, []domain.Message{m})
			return err
		}
		lo, hi := 0, int(h.cfg.MaxRecordSize) // send(lo) fails or lo is 0; send(hi) fails
		for hi-lo > 1 {
			if mid := (lo + hi) / 2; send(mid) == nil {
				lo = mid
			} else {
				hi = mid
			}
		}
		err := send(lo + 1)
		wantReason(t, err, domain.ReasonBodyTooLarge)
		if !strings.Contains(err.Error(), "local.maxRecordSize") {
			t.Fatalf("refusal does not name the setting: %v", err)
		}
		m := tmpl
		m.Body = bytes.Repeat([]byte{'x'}, lo)
		return m
	}
	for _, name := range []string{topic, probe} {
		if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: name, Type: domain.MessageTypeMixed, QueueCount: 1, Permission: domain.PermReadWrite}); err != nil {
			t.Fatal(err)
		}
	}
	g := domain.NewConsumerGroup(group)
	if _, err := h.e.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}

	// A delay message fires.
	delay := largest(delayMsg(topic, "delay", h.clock.Now().Add(time.Hour)))
	delay.DeliverAt = h.clock.Now().Add(30 * time.Second)
	h.send(topic, 0, delay)
	h.fake().Advance(31 * time.Second)
	h.fireTimers()
	// A half message is committed.
	half := largest(txMsg(topic, "half"))
	rs := h.send(topic, 0, half)
	if err := h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: topic, MessageID: half.ID, TransactionID: rs[0].TransactionID, Resolution: ports.ResolutionCommit}); err != nil {
		t.Fatalf("commit of the largest half message: %v", err)
	}
	// A normal message is moved to the dead-letter queue.
	normal := largest(msg(topic, "normal", ""))
	h.send(topic, 0, normal)
	got := h.pop(group, topic, 0, 10, time.Minute)
	if !slices.Equal(ids(got), []string{"delay", "half", "normal"}) {
		t.Fatalf("delivered %v", ids(got))
	}
	for _, m := range got {
		if err := h.e.ForwardToDeadLetter(ctx, ackReq(group, m)); err != nil {
			t.Fatalf("dead-letter move of %s: %v", m.ID, err)
		}
	}
	if d := h.pop("inspector", domain.DeadLetterTopic(group), 0, 10, time.Minute); len(d) != 3 {
		t.Fatalf("dead-letter queue holds %v", ids(d))
	}
}

// TestTruncateBeforeSnapshotDropsIt: when recovery: truncate cuts the commit
// log before the offset of a snapshot (a damaged index makes recovery scan
// from the oldest segment, and finds a corrupt record behind the older of
// the two snapshots), that snapshot describes records that are gone: it is
// removed and recovery starts from the older one. Sends acknowledged after
// that survive the next crash. (The snapshot used to be kept and used: the
// engine served its state over a shorter log, and the next restart replayed
// from its offset, now inside newer records, and truncated them away.)
func TestTruncateBeforeSnapshotDropsIt(t *testing.T) {
	h := newHarness(t, nil)
	kept := h.sendIDs("a", 5)
	older := h.snapshotOffset()
	h.sendIDs("b", 5)
	newer := h.snapshotOffset()
	h.sendIDs("c", 5)
	h.e.crash()
	flipByte(t, filepath.Join(h.cfg.DataDir, "consumequeue", "t", "0"), 3)                     // damaged index: rebuild from the oldest segment
	flipByte(t, filepath.Join(h.cfg.DataDir, "commitlog", commitlog.SegmentName(0)), older+20) // corrupt record just after the older snapshot
	h.cfg.Recovery = "truncate"
	h.open()
	if end := h.e.clog.NextOffset(); end != older {
		t.Fatalf("log truncated at %d, want %d", end, older)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "snapshot", snapshotName(newer))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot beyond the truncated log kept: %v", err)
	}
	// Records of another size than the b ones: the newer snapshot's offset
	// falls inside one of them.
	want := append(kept, h.sendIDs("later", 20)...)
	if got := h.pop("g", "t", 0, 100, time.Minute); !slices.Equal(ids(got), want) {
		t.Fatalf("after truncation: %v, want %v", ids(got), want)
	}
	h.e.flushQueues() // as every second: the index files hold them
	h.crashRestart(true)
	if got := h.pop("g2", "t", 0, 100, time.Minute); !slices.Equal(ids(got), want) {
		t.Fatalf("after the next crash: %v, want %v", ids(got), want)
	}
}

// TestTruncateInterruptedBeforeSnapshotRemoval: a crash of the recovery of
// TestTruncateBeforeSnapshotDropsIt after it cut the commit log before the
// newer snapshot's offset and before it removed that snapshot (the cut is
// fdatasynced first) leaves a snapshot beyond the log's end. With
// recovery: truncate the next start removes it and recovers from the older
// one, as the interrupted recovery would have done. (It failed every start,
// "replay must start at offset N but the log ends at M".)
func TestTruncateInterruptedBeforeSnapshotRemoval(t *testing.T) {
	h := newHarness(t, nil)
	kept := h.sendIDs("a", 5)
	older := h.snapshotOffset()
	h.sendIDs("b", 5)
	newer := h.snapshotOffset()
	h.sendIDs("c", 5)
	h.e.crash()
	// What the interrupted recovery left: the damaged index removed (it was
	// to be rebuilt), the log cut at the corrupt record right after the
	// older snapshot, the newer snapshot not yet removed.
	if err := os.Remove(filepath.Join(h.cfg.DataDir, "consumequeue", "t", "0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(h.cfg.DataDir, "commitlog", commitlog.SegmentName(0)), older); err != nil {
		t.Fatal(err)
	}
	h.cfg.Recovery = "truncate"
	h.open()
	if end := h.e.clog.NextOffset(); end != older {
		t.Fatalf("log ends at %d, want %d", end, older)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.DataDir, "snapshot", snapshotName(newer))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshot beyond the log's end kept: %v", err)
	}
	want := append(kept, h.sendIDs("later", 20)...)
	if got := h.pop("g", "t", 0, 100, time.Minute); !slices.Equal(ids(got), want) {
		t.Fatalf("after the start: %v, want %v", ids(got), want)
	}
	h.e.flushQueues()
	h.crashRestart(true)
	if got := h.pop("g2", "t", 0, 100, time.Minute); !slices.Equal(ids(got), want) {
		t.Fatalf("after the next crash: %v, want %v", ids(got), want)
	}
}

// TestDamagedRecordBeforeTheSnapshotRefused: every record before the
// offset of the snapshot recovery starts from was fdatasynced before the
// snapshot was written, so a bad one there is damage, never a torn write:
// recovery: strict refuses it, even as the log's last record (nothing
// valid after it) and when a rebuild makes recovery read it (a damaged
// consume queue: the scan starts at the oldest segment). It was cut as a
// torn tail, the snapshot beyond the cut removed, and the engine started
// without an acknowledged send.
func TestDamagedRecordBeforeTheSnapshotRefused(t *testing.T) {
	h := newHarness(t, nil)
	var last int64
	for i := range 3 {
		last = h.e.clog.NextOffset()
		h.send("t", 0, msg("t", fmt.Sprint("m", i), ""))
	}
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.e.crash()
	flipByte(t, filepath.Join(h.cfg.DataDir, "consumequeue", "t", "0"), 3)                    // damaged index: rebuild from the oldest segment
	flipByte(t, filepath.Join(h.cfg.DataDir, "commitlog", commitlog.SegmentName(0)), last+20) // the last send's record, before the snapshot's offset
	e, err := New(h.cfg, h.logger(), h.clock)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start(t.Context())
	if err == nil {
		_ = e.Close(context.Background())
		t.Fatal("strict recovery started over a damaged record the snapshot covers")
	}
	if !strings.Contains(err.Error(), "corrupt at offset "+fmt.Sprint(last)) {
		t.Fatalf("Start: %v, want the corruption at %d named", err, last)
	}
	h.cfg.Recovery = "truncate" // the way out the error names
	h.open()
	if got := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"m0", "m1"}) {
		t.Fatalf("after truncation: %v", ids(got))
	}
}

// TestRetentionRunsWhileWritesWaitForSpace: once the reserve is used up,
// records wait in the writer for disk space, and the periodic snapshot,
// which first makes the log durable up to its offset, cannot complete.
// Retention must still run after it, as it does after a snapshot that
// failed for lack of space, since deleting old segments may be what makes
// room. (The snapshot waited for the held records without end, and the
// maintenance loop with it: no retention, no queue flush, until an
// operator freed space by hand.)
func TestRetentionRunsWhileWritesWaitForSpace(t *testing.T) {
	mnt := tmpfs.Mount(t, "3m")
	h := newClosedHarness(t, func(c *Config) {
		c.DataDir = filepath.Join(mnt, "data")
		c.SegmentSize, c.MaxRecordSize = 128<<10, 32<<10
		c.MaxPendingBytes = 1 << 20
		c.DiskReserve = 64 << 10
		c.Preallocate = 0
		c.Retention = time.Hour
		c.SnapshotInterval = 20 * time.Millisecond
	})
	clock := clocktest.New(time.Now())
	h.clock = clock
	h.open()
	freed := false
	defer func() {
		if !freed { // let Close's snapshot complete
			tmpfs.Resize(t, mnt, "16m")
		}
	}()
	ctx := t.Context()
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}
	body := bytes.Repeat([]byte{'x'}, 4<<10)
	for i := 0; ; i++ {
		if i > 2000 {
			t.Fatal("a 3 MiB file system never filled")
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := h.e.Send(sctx, q, []domain.Message{{Topic: "t", ID: fmt.Sprint("m", i), Body: body}})
		cancel()
		if domain.HasReason(err, domain.ReasonUnavailable) {
			break
		}
		if err != nil {
			t.Fatalf("send %d on a filling disk: %v", i, err)
		}
	}
	// Invisible-time changes (consumer-state records) use up the reserve
	// until one waits for space.
	got := h.pop("g", "t", 0, 1, time.Hour)
	if len(got) != 1 {
		t.Fatalf("received %d messages", len(got))
	}
	req := ackReq("g", got[0])
	held := false
	for i := 0; i < 100000 && !held; i++ {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		nh, err := h.e.ChangeInvisible(cctx, ports.ChangeInvisibleRequest{AckRequest: req, InvisibleTime: time.Hour})
		cancel()
		switch {
		case domain.HasReason(err, domain.ReasonPersistenceTimeout):
			held = true
		case err != nil:
			t.Fatalf("invisible-time change %d on a full disk: %v", i, err)
		default:
			req.Handle = nh
		}
	}
	if !held {
		t.Fatal("the reserve was never used up")
	}
	start := h.e.clog.StartOffset()
	clock.Set(time.Now().Add(2 * time.Hour)) // every segment is past retention
	err := waitfor.Poll(30*time.Second, 10*time.Millisecond, func() error {
		if s := h.e.clog.StartOffset(); s == start {
			return fmt.Errorf("no segment deleted: the log starts at %d", s)
		}
		if full, err := h.e.clog.DiskFull(); full {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("retention did not free the full disk: %v", err)
	}
	freed = true
	// The engine accepts sends again.
	if _, err := h.e.Send(ctx, q, []domain.Message{{Topic: "t", ID: "after", Body: body}}); err != nil {
		t.Fatalf("send after retention made room: %v", err)
	}
}

// TestLogShorterThanTheSnapshotRefused: a commit log that ends, at a
// record boundary, before the offset of the snapshot recovery starts from
// lost records that were fdatasynced (a lost or cut last segment):
// recovery: strict refuses to start whether or not a rebuild makes it scan
// from an older segment (with one it removed the snapshot and started
// without the lost sends), and truncate starts from what is left.
func TestLogShorterThanTheSnapshotRefused(t *testing.T) {
	for _, rebuild := range []bool{false, true} {
		t.Run(fmt.Sprint("rebuild=", rebuild), func(t *testing.T) {
			h := newHarness(t, nil)
			var last int64
			for i := range 3 {
				last = h.e.clog.NextOffset()
				h.send("t", 0, msg("t", fmt.Sprint("m", i), ""))
			}
			if err := h.e.Snapshot(t.Context()); err != nil {
				t.Fatal(err)
			}
			h.e.crash()
			if rebuild { // a damaged index: the scan starts at the oldest segment
				p := filepath.Join(h.cfg.DataDir, "consumequeue", "t", "0")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[3] ^= 0xff
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Truncate(filepath.Join(h.cfg.DataDir, "commitlog", commitlog.SegmentName(0)), last); err != nil {
				t.Fatal(err)
			}
			e, err := New(h.cfg, h.logger(), h.clock)
			if err != nil {
				t.Fatal(err)
			}
			if err = e.Start(t.Context()); err == nil {
				_ = e.Close(context.Background())
				t.Fatal("strict recovery started over a log shorter than the snapshot")
			}
			if !strings.Contains(err.Error(), fmt.Sprint("the log ends at ", last)) {
				t.Fatalf("Start: %v, want the log's end %d named", err, last)
			}
			// It says how to go on, as the corruption error does: it named
			// the problem only ("segments are missing or were truncated").
			for _, want := range []string{"Restore the data directory from a backup", "set local.recovery: truncate", fmt.Sprint("from offset ", last, " on")} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Start: %v, want it to say %q", err, want)
				}
			}
			h.cfg.Recovery = "truncate"
			h.open()
			if got := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"m0", "m1"}) {
				t.Fatalf("after truncation: %v", ids(got))
			}
		})
	}
}

// snapshotOffset writes a snapshot and returns its commit-log offset.
func (h *harness) snapshotOffset() int64 {
	h.t.Helper()
	if err := h.e.Snapshot(h.t.Context()); err != nil {
		h.t.Fatal(err)
	}
	return h.e.snapOffsets[len(h.e.snapOffsets)-1]
}

// sendIDs sends n messages to queue 0 of topic t, with the ids prefix0,
// prefix1, ..., and returns the ids.
func (h *harness) sendIDs(prefix string, n int) (sent []string) {
	for i := range n {
		id := fmt.Sprint(prefix, i)
		h.send("t", 0, msg("t", id, ""))
		sent = append(sent, id)
	}
	return sent
}

// flipByte inverts the byte at offset at of the file at path.
func flipByte(t *testing.T, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
