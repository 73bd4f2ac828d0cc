package localbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/timerindex"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func newFakeClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// errorCatcher fails the test on any Error-level log the test did not expect,
// and keeps Warn-level logs (message and attributes) for tests to inspect.
type errorCatcher struct {
	t       testing.TB
	allowed *[]string
	warns   *warnLog
}

type warnLog struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnLog) contains(parts ...string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func (h errorCatcher) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h errorCatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		line := r.Message
		r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
		h.warns.mu.Lock()
		h.warns.lines = append(h.warns.lines, line)
		h.warns.mu.Unlock()
		return nil
	}
	for _, a := range *h.allowed {
		if strings.Contains(r.Message, a) {
			line := r.Message // kept for tests to inspect, as warnings are
			r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
			h.warns.mu.Lock()
			h.warns.lines = append(h.warns.lines, line)
			h.warns.mu.Unlock()
			return nil
		}
	}
	h.t.Errorf("unexpected error log: %s", r.Message)
	return nil
}
func (h errorCatcher) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h errorCatcher) WithGroup(string) slog.Handler      { return h }

func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.SegmentSize = 64 << 10
	cfg.MaxRecordSize = 16 << 10
	cfg.SnapshotInterval = time.Hour
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.DiskReserve = 256 << 10
	return cfg
}

type harness struct {
	t     testing.TB
	cfg   Config
	clock ports.Clock
	e     *Engine
	allow []string
	warns warnLog
	// engineMod changes the engine between New and Start.
	engineMod func(*Engine)
}

// createGroup creates consumer group name whose messages go to the
// dead-letter queue after maxAttempts deliveries, orderly or not.
func (h *harness) createGroup(name string, maxAttempts int32, orderly bool) {
	h.t.Helper()
	g := domain.NewConsumerGroup(name)
	g.MaxDeliveryAttempts = maxAttempts
	g.Orderly = orderly
	if _, err := h.e.CreateGroup(h.t.Context(), g); err != nil {
		h.t.Fatal(err)
	}
}

func newHarness(t testing.TB, mod func(*Config)) *harness {
	t.Helper()
	cfg := testConfig(t.TempDir())
	if mod != nil {
		mod(&cfg)
	}
	h := &harness{t: t, cfg: cfg, clock: newFakeClock()}
	h.open()
	t.Cleanup(func() {
		if h.e != nil && h.e.state == stateOpen {
			if err := h.e.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return h
}

func (h *harness) logger() *slog.Logger {
	return slog.New(errorCatcher{t: h.t, allowed: &h.allow, warns: &h.warns})
}

func (h *harness) open() {
	h.t.Helper()
	e, err := New(h.cfg, h.logger(), h.clock)
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	if h.engineMod != nil {
		h.engineMod(e)
	}
	if err := e.Start(context.Background()); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	h.e = e
}

func (h *harness) restart() {
	h.t.Helper()
	if err := h.e.Close(context.Background()); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.open()
}

// crashRestart abandons the engine as kill -9 would and reopens it. With
// settle, it first waits until every appended record reached the file (as a
// kill -9 a moment later would find it); without, records still queued for
// the writer are lost, as they may be in reality.
func (h *harness) crashRestart(settle bool) {
	h.t.Helper()
	if settle {
		if err := h.e.clog.Sync(context.Background(), h.e.clog.NextOffset()); err != nil {
			h.t.Fatal(err)
		}
	}
	h.e.crash()
	h.open()
}

func (h *harness) fake() *clocktest.Clock { return h.clock.(*clocktest.Clock) }

func msg(topic, id, tag string) domain.Message {
	return domain.Message{Topic: topic, ID: id, Tag: tag, Body: []byte("body-" + id)}
}

func (h *harness) send(topic string, qid int32, msgs ...domain.Message) []domain.SendReceipt {
	h.t.Helper()
	r, err := h.e.Send(context.Background(), domain.QueueRef{Topic: topic, BrokerName: h.cfg.BrokerName, QueueID: qid}, msgs)
	if err != nil {
		h.t.Fatalf("Send: %v", err)
	}
	return r
}

// revive runs reviver passes now, until one does not stop at an exhausted
// delivery it had not read (the reviver goroutine runs them too, when
// kicked).
func (h *harness) revive() {
	h.t.Helper()
	for {
		if _, stopped := h.e.revivePass(); !stopped {
			return
		}
	}
}

// fill sends 40 messages of 500 bytes (ids "0" to "39") to queue 0 of
// topic: several segments of the tests' small commit log.
func (h *harness) fill(topic string) {
	for i := range 40 {
		m := msg(topic, fmt.Sprint(i), "")
		m.Body = bytes.Repeat([]byte{'x'}, 500)
		h.send(topic, 0, m)
	}
}

// retire takes two snapshots, each followed by a send of a message with id
// to topic (queue 0), so that the segments before them are no longer
// needed, then moves the clock two hours on and applies retention.
func (h *harness) retire(topic, id string) {
	h.t.Helper()
	for range 2 {
		if err := h.e.Snapshot(h.t.Context()); err != nil {
			h.t.Fatal(err)
		}
		h.send(topic, 0, msg(topic, id, ""))
	}
	h.fake().Advance(2 * time.Hour)
	if err := h.e.applyRetention(); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) pop(group, topic string, qid int32, n int32, inv time.Duration) []domain.StoredMessage {
	h.t.Helper()
	out, err := h.e.Pop(context.Background(), ports.PopRequest{Group: group, Topic: topic, QueueID: qid, MaxMessages: n, InvisibleTime: inv})
	if err != nil {
		h.t.Fatalf("Pop: %v", err)
	}
	return out
}

func ackReq(group string, m domain.StoredMessage) ports.AckRequest {
	hd, err := domain.ParseReceiptHandle(m.ReceiptHandle)
	if err != nil {
		panic(err)
	}
	return ports.AckRequest{Group: group, Topic: m.Topic, MessageID: m.ID, Handle: hd}
}

func (h *harness) ack(group string, m domain.StoredMessage) {
	h.t.Helper()
	if err := h.e.Ack(context.Background(), ackReq(group, m)); err != nil {
		h.t.Fatalf("Ack: %v", err)
	}
}

func wantReason(t testing.TB, err error, r domain.Reason) {
	t.Helper()
	if !domain.HasReason(err, r) {
		t.Fatalf("got error %v, want reason %q", err, r)
	}
}

func ids(ms []domain.StoredMessage) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestSendPopAckAllFields(t *testing.T) {
	h := newHarness(t, nil)
	full := domain.Message{
		Topic: "orders", Body: []byte{0, 1, 2, 0xff}, Compressed: true, Tag: "TagA", Keys: []string{"k1", "k2"},
		ID: "01AABBCCDDEEFF0011223344556677", TraceContext: "00-trace", BornHost: "10.1.2.3",
		BornAt: time.Date(2025, 5, 6, 7, 8, 9, 123000000, time.UTC), ReconsumeTimes: 3,
		Properties: map[string]string{"color": "red", "size": ""},
	}
	second := msg("orders", "m2", "")
	rs := h.send("orders", 2, full, second)
	if len(rs) != 2 || rs[0].QueueOffset != 0 || rs[1].QueueOffset != 1 || rs[0].QueueID != 2 || rs[0].MessageID != full.ID {
		t.Fatalf("receipts %+v", rs)
	}
	got := h.pop("g", "orders", -1, 10, 30*time.Second)
	if len(got) != 2 {
		t.Fatalf("popped %d messages", len(got))
	}
	m := got[0]
	if m.Topic != "orders" || !bytes.Equal(m.Body, full.Body) || !m.Compressed || m.Tag != "TagA" || !slices.Equal(m.Keys, full.Keys) ||
		m.ID != full.ID || m.TraceContext != full.TraceContext || m.BornHost != full.BornHost || !m.BornAt.Equal(full.BornAt) ||
		m.ReconsumeTimes != 3 || len(m.Properties) != 2 || m.Properties["color"] != "red" || m.Group != "" || !m.DeliverAt.IsZero() || m.Transactional {
		t.Fatalf("message fields differ: %+v", m)
	}
	now := h.clock.Now()
	if m.BrokerName != h.cfg.BrokerName || m.QueueID != 2 || m.QueueOffset != 0 || m.StoreHost != h.cfg.StoreHost ||
		m.DeliveryAttempt != 1 || !m.StoredAt.Equal(now) || m.DeadLetter != nil || m.CommitLogOffset <= 0 {
		t.Fatalf("stored fields: %+v", m)
	}
	hd, err := domain.ParseReceiptHandle(m.ReceiptHandle)
	if err != nil {
		t.Fatal(err)
	}
	if hd.StartOffset <= 0 || hd.RetrieveTime != now.UnixMilli() || hd.InvisibleTime != 30000 || hd.BrokerName != h.cfg.BrokerName ||
		hd.QueueID != 2 || hd.QueueOffset != 0 || hd.CommitLogOffset != m.CommitLogOffset {
		t.Fatalf("handle %+v", hd)
	}
	if got[1].CommitLogOffset <= m.CommitLogOffset {
		t.Fatal("commit-log offsets of a batch must grow")
	}
	for _, m := range got {
		h.ack("g", m)
	}
	// Idempotent retry of an ack.
	h.ack("g", got[0])
	if again := h.pop("g", "orders", -1, 10, 30*time.Second); len(again) != 0 {
		t.Fatalf("acked messages redelivered: %v", ids(again))
	}
	h.fake().Advance(time.Hour)
	h.restart()
	if again := h.pop("g", "orders", -1, 10, 30*time.Second); len(again) != 0 {
		t.Fatalf("acked messages redelivered after restart: %v", ids(again))
	}
	// Another group sees everything.
	if other := h.pop("g2", "orders", 2, 10, 30*time.Second); len(other) != 2 {
		t.Fatalf("second group got %d", len(other))
	}
	st, err := h.e.GroupStats(t.Context(), "g")
	if err != nil || len(st) != 1 || st[0].AckOffset != 2 || st[0].MaxOffset != 2 || st[0].InFlight != 0 || st[0].Consumable != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestInvisibleExpiryRedeliversWithNewHandle(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "a", ""))
	first := h.pop("g", "t", 0, 1, 30*time.Second)
	if len(first) != 1 {
		t.Fatal("no message")
	}
	if again := h.pop("g", "t", 0, 1, 30*time.Second); len(again) != 0 {
		t.Fatal("invisible message delivered again")
	}
	h.fake().Advance(30 * time.Second)
	second := h.pop("g", "t", 0, 1, 30*time.Second)
	if len(second) != 1 || second[0].QueueOffset != first[0].QueueOffset || second[0].DeliveryAttempt != 2 {
		t.Fatalf("redelivery %+v", second)
	}
	if second[0].ReceiptHandle == first[0].ReceiptHandle {
		t.Fatal("redelivery reused the handle")
	}
	wantReason(t, h.e.Ack(t.Context(), ackReq("g", first[0])), domain.ReasonInvalidReceiptHandle)
	h.ack("g", second[0])
	h.ack("g", second[0])
	// An expired handle (visible again, not yet redelivered) is rejected.
	h.send("t", 0, msg("t", "b", ""))
	b := h.pop("g", "t", 0, 1, 10*time.Second)
	h.fake().Advance(11 * time.Second)
	err := h.e.Ack(t.Context(), ackReq("g", b[0]))
	wantReason(t, err, domain.ReasonInvalidReceiptHandle)
	if !strings.Contains(err.Error(), "expired") {
		t.Fatalf("message %q does not say expired", err)
	}
}

func TestChangeInvisible(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "a", ""))
	m := h.pop("g", "t", 0, 1, 30*time.Second)[0]
	h.fake().Advance(10 * time.Second)
	req := ports.ChangeInvisibleRequest{AckRequest: ackReq("g", m), InvisibleTime: 60 * time.Second}
	nh, err := h.e.ChangeInvisible(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	old := req.Handle
	if nh.StartOffset == old.StartOffset || nh.InvisibleTime != 60000 || nh.RetrieveTime != h.clock.Now().UnixMilli() ||
		nh.QueueOffset != old.QueueOffset || nh.CommitLogOffset != old.CommitLogOffset || nh.BrokerName != old.BrokerName {
		t.Fatalf("new handle %+v from %+v", nh, old)
	}
	wantReason(t, h.e.Ack(t.Context(), ackReq("g", m)), domain.ReasonInvalidReceiptHandle)
	_, err = h.e.ChangeInvisible(t.Context(), req)
	wantReason(t, err, domain.ReasonInvalidReceiptHandle)
	h.fake().Advance(30 * time.Second) // past the original deadline
	if got := h.pop("g", "t", 0, 1, 30*time.Second); len(got) != 0 {
		t.Fatal("extended message delivered early")
	}
	// Zero makes it visible now; it was delivered once.
	req.Handle = nh
	req.InvisibleTime = 0
	if _, err := h.e.ChangeInvisible(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	got := h.pop("g", "t", 0, 1, 30*time.Second)
	if len(got) != 1 || got[0].DeliveryAttempt != 2 {
		t.Fatalf("after change to 0: %+v", got)
	}
	// Acking with the current handle works after a restart too.
	h.crashRestart(true)
	h.ack("g", got[0])
	_, err = h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", got[0]), InvisibleTime: time.Second})
	wantReason(t, err, domain.ReasonInvalidReceiptHandle)
}

// TestRenewalKeepsTheHandle: the proxy's renewals of a delivery (for a
// push consumer, which acks with the handle it received) keep the handle
// the pop gave valid, after a crash too, when the proxy no longer knows
// the renewals: that ack takes, while the delivery is in flight. Before,
// each renewal superseded it, and after a restart the consumer's ack was
// refused and the message (and its FIFO message group) stayed invisible
// for the renewed time, then came again. A client's own change still
// supersedes the handle.
func TestRenewalKeepsTheHandle(t *testing.T) {
	h := newHarness(t, nil)
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"))
	first := h.popFIFO("g", "f", 1, 10*time.Second)[0]
	renew := ports.ChangeInvisibleRequest{AckRequest: ackReq("g", first), InvisibleTime: time.Minute, Renewal: true}
	for range 2 {
		h.fake().Advance(8 * time.Second)
		nh, err := h.e.ChangeInvisible(t.Context(), renew)
		if err != nil {
			t.Fatal(err)
		}
		renew.Handle = nh
	}
	h.crashRestart(true)
	h.fake().Advance(10 * time.Second) // past the pop's invisible time, within the renewal's
	if got := h.popFIFO("g", "f", 1, 10*time.Second); len(got) != 0 {
		t.Fatalf("delivered while the renewed head was in flight: %v", ids(got))
	}
	h.ack("g", first)
	second := h.popFIFO("g", "f", 1, 10*time.Second)
	if !slices.Equal(ids(second), []string{"A2"}) {
		t.Fatalf("after the ack with the pop's handle: %v", ids(second))
	}
	if _, err := h.e.ChangeInvisible(t.Context(), ports.ChangeInvisibleRequest{AckRequest: ackReq("g", second[0]), InvisibleTime: time.Minute}); err != nil {
		t.Fatal(err)
	}
	wantReason(t, h.e.Ack(t.Context(), ackReq("g", second[0])), domain.ReasonInvalidReceiptHandle)
}

func TestMaxAttemptsMovesToDeadLetter(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 2, false)
	orig := msg("t", "poison", "x")
	h.send("t", 0, orig)
	for attempt := int32(1); attempt <= 2; attempt++ {
		got := h.pop("g", "t", 0, 1, 10*time.Second)
		if len(got) != 1 || got[0].DeliveryAttempt != attempt {
			t.Fatalf("attempt %d: %+v", attempt, got)
		}
		h.fake().Advance(10 * time.Second)
	}
	h.revive() // the reviver moves it, having read it without the engine lock
	if got := h.pop("g", "t", 0, 1, 10*time.Second); len(got) != 0 {
		t.Fatalf("delivered beyond max attempts: %+v", got)
	}
	dlq := domain.DeadLetterTopic("g")
	top, err := h.e.Topic(t.Context(), dlq)
	if err != nil || top.QueueCount != 1 || top.Type != domain.MessageTypeNormal || top.Permission != domain.PermReadWrite {
		t.Fatalf("DLQ topic %+v %v", top, err)
	}
	h.crashRestart(true)
	d := h.pop("inspector", dlq, -1, 10, time.Minute)
	if len(d) != 1 || d[0].ID != "poison" || string(d[0].Body) != "body-poison" || d[0].Tag != "x" ||
		d[0].DeadLetter == nil || d[0].DeadLetter.Topic != "t" || d[0].DeadLetter.MessageID != "poison" {
		t.Fatalf("DLQ message %+v", d)
	}
	st, _ := h.e.GroupStats(t.Context(), "g")
	if len(st) != 1 || st[0].AckOffset != 1 {
		t.Fatalf("original not consumed: %+v", st)
	}
}

func TestForwardToDeadLetter(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 1, msg("t", "m", ""))
	m := h.pop("g", "t", 1, 1, time.Minute)[0]
	if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("g", m)); err != nil {
		t.Fatal(err)
	}
	if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("g", m)); err != nil {
		t.Fatalf("retry must be idempotent: %v", err)
	}
	h.fake().Advance(time.Hour)
	if got := h.pop("g", "t", -1, 10, time.Minute); len(got) != 0 {
		t.Fatal("forwarded message redelivered")
	}
	d := h.pop("x", "%DLQ%g", 0, 10, time.Minute)
	if len(d) != 1 || d[0].DeadLetter == nil || d[0].DeadLetter.Topic != "t" {
		t.Fatalf("DLQ %+v", d)
	}
}

// TestForwardOfAnOutlivedHandle: a forward whose receipt handle the
// message outlived was refused (INVALID_RECEIPT_HANDLE), and the Go
// client v5.1.4 repeats a refused forward every second without end (a
// broker in cluster mode takes any handle). A message visible again once its invisible time
// passed is moved all the same; one delivered anew is left to that
// delivery, the forward answered OK: it is acked with its new handle and
// never copied.
func TestForwardOfAnOutlivedHandle(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.send("t", 0, msg("t", "a", ""), msg("t", "b", ""))
	first := h.pop("g", "t", 0, 2, 10*time.Second)
	if !slices.Equal(ids(first), []string{"a", "b"}) {
		t.Fatalf("first delivery: %v", ids(first))
	}
	h.fake().Advance(10 * time.Second)
	h.revive()
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", first[0])); err != nil {
		t.Fatalf("forward of a message visible again: %v", err)
	}
	again := h.pop("g", "t", 0, 10, time.Minute)
	if len(again) != 1 || again[0].ID != "b" || again[0].DeliveryAttempt != 2 {
		t.Fatalf("after the forward of a: %v; want b again", ids(again))
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", first[1])); err != nil {
		t.Fatalf("forward of a message delivered anew: %v", err)
	}
	if err := h.e.Ack(ctx, ackReq("g", again[0])); err != nil {
		t.Fatalf("ack of the new delivery after the forward of the old one: %v", err)
	}
	if d := h.pop("x", "%DLQ%g", 0, 10, time.Minute); !slices.Equal(ids(d), []string{"a"}) {
		t.Fatalf("dead-letter queue: %v; want a only", ids(d))
	}
	// A handle of another broker is still refused (one naming a message
	// consumed already is a retry, answered as with this broker's name:
	// TestRetriedAckOfAHandleOfBeforeABrokerRename).
	h.send("t", 0, msg("t", "c", ""))
	other := ackReq("g", first[1])
	other.Handle.BrokerName = "elsewhere"
	other.Handle.QueueOffset = 2
	if err := h.e.ForwardToDeadLetter(ctx, other); !domain.HasReason(err, domain.ReasonInvalidReceiptHandle) {
		t.Fatalf("forward of another broker's handle: %v", err)
	}
}

// TestForwardOfAnExpiredHandleMovesTheMessageOnce: a forward whose
// handle's invisible time has ended must leave the message in the
// dead-letter queue once and not deliver it to the group again (in
// cluster mode a RocketMQ broker revives the checkpoint whatever comes
// after, and the adapter moves nothing; see docs/cluster.md). Local mode
// decides under the engine lock, from the message's one state in the
// group, when the move is written: a message not delivered again yet
// (its deadline passed, the reviver not run: the forward processes it) is
// moved, and not delivered again; one delivered again is left to that
// delivery, whose forward moves it. Each is in the dead-letter queue
// once.
func TestForwardOfAnExpiredHandleMovesTheMessageOnce(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.send("t", 0, msg("t", "a", ""), msg("t", "b", ""))
	first := h.pop("g", "t", 0, 2, 10*time.Second)
	if !slices.Equal(ids(first), []string{"a", "b"}) {
		t.Fatalf("first delivery: %v", ids(first))
	}
	h.fake().Advance(10 * time.Second) // both expired; no h.revive()
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", first[0])); err != nil {
		t.Fatalf("forward of a whose handle expired: %v", err)
	}
	again := h.pop("g", "t", 0, 10, 10*time.Second)
	if len(again) != 1 || again[0].ID != "b" || again[0].DeliveryAttempt != 2 {
		t.Fatalf("after the forward of a: %v; want b again, attempt 2", ids(again))
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", first[1])); err != nil {
		t.Fatalf("forward of b's expired first delivery, b delivered again: %v", err)
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", again[0])); err != nil {
		t.Fatalf("forward of b's second delivery: %v", err)
	}
	h.fake().Advance(time.Hour)
	h.revive()
	if got := h.pop("g", "t", -1, 10, time.Minute); len(got) != 0 {
		t.Fatalf("delivered after the forwards: %v", ids(got))
	}
	if d := h.pop("x", "%DLQ%g", 0, 10, time.Minute); !slices.Equal(ids(d), []string{"a", "b"}) {
		t.Fatalf("dead-letter queue: %v; want a and b once each", ids(d))
	}
}

// TestForwardOfAnOutlivedHandleOfADeletedTopicMovesNothing: a forward
// with a handle of a topic deleted and created again since found the new
// topic's message at the handle's queue offset, visible again after its
// own delivery, and moved that one to the dead-letter queue (an outlived
// handle is taken, and the message was not compared). It moves nothing,
// refused as foreign_message (the application answers OK and audits it).
func TestForwardOfAnOutlivedHandleOfADeletedTopicMovesNothing(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.send("t", 0, msg("t", "old", ""))
	old := h.pop("g", "t", 0, 1, 10*time.Second)[0]
	if err := h.e.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 8}); err != nil {
		t.Fatal(err)
	}
	h.send("t", 0, msg("t", "new", ""))
	if got := h.pop("g", "t", 0, 1, 10*time.Second); !slices.Equal(ids(got), []string{"new"}) {
		t.Fatalf("pop of the new topic: %v", ids(got))
	}
	h.fake().Advance(11 * time.Second)
	h.revive()
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", old)); !forwardRefused(err, ports.ForwardForeignMessage) {
		t.Fatalf("forward of the old topic's message: %v, want it refused as %s", err, ports.ForwardForeignMessage)
	}
	if d := h.pop("x", "%DLQ%g", 0, 10, time.Minute); len(d) != 0 {
		t.Fatalf("dead-letter queue: %v; want nothing moved", ids(d))
	}
	if got := h.pop("g", "t", 0, 1, time.Minute); !slices.Equal(ids(got), []string{"new"}) {
		t.Fatalf("the new topic's message: %v; want it delivered again", ids(got))
	}
}

// TestForwardOfWhatTheGroupDoesNotHoldEnds: a forward naming a message
// never delivered to the group, or one of a topic deleted since, was
// refused (INVALID_RECEIPT_HANDLE, TOPIC_NOT_FOUND), and the Go client
// v5.1.4 repeats a refused forward every second for ever; a RocketMQ
// broker answers SUCCESS (it copies whatever the handle's commit-log
// offset holds). Both move nothing: the message never delivered stays
// with its queue and is delivered as usual. The one never delivered is a
// ports.ForwardRefusedError (forged_handle), which the application
// answers OK and audits; the deleted topic's is done.
func TestForwardOfWhatTheGroupDoesNotHoldEnds(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	// A message a FIFO pop passed (its message group busy).
	h.send("f", 0, fifoMsg("f", "A1", "A"), fifoMsg("f", "A2", "A"), fifoMsg("f", "B1", "B"))
	got := h.popFIFOMode("g", "f", 10, time.Minute, false)
	if !slices.Equal(ids(got), []string{"A1", "B1"}) {
		t.Fatalf("FIFO pop: %v", ids(got))
	}
	passed := ackReq("g", got[0])
	passed.Handle.QueueOffset = 1 // A2's
	if err := h.e.ForwardToDeadLetter(ctx, passed); !forwardRefused(err, ports.ForwardForgedHandle) {
		t.Fatalf("forward naming a message a FIFO pop passed: %v, want it refused as %s", err, ports.ForwardForgedHandle)
	}
	// One the group never popped, and one of a group that never popped.
	h.send("t", 0, msg("t", "m", ""))
	other := h.pop("other", "t", 0, 1, time.Minute)[0]
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", other)); !forwardRefused(err, ports.ForwardForgedHandle) {
		t.Fatalf("forward naming a message never delivered to the group: %v, want it refused as %s", err, ports.ForwardForgedHandle)
	}
	if got := h.pop("idle", "t", 1, 1, time.Minute); len(got) != 0 { // reads another queue
		t.Fatalf("queue 1: %v", ids(got))
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("idle", other)); !forwardRefused(err, ports.ForwardForgedHandle) {
		t.Fatalf("forward naming a message of a queue the group never read: %v, want it refused as %s", err, ports.ForwardForgedHandle)
	}
	for _, g := range []string{"g", "idle"} {
		if d := h.pop(g, "%DLQ%"+g, 0, 10, time.Minute); len(d) != 0 {
			t.Fatalf("dead-letter queue of %s: %v; want nothing moved", g, ids(d))
		}
	}
	h.ack("g", got[0])
	if again := h.popFIFOMode("g", "f", 10, time.Minute, false); !slices.Equal(ids(again), []string{"A2"}) {
		t.Fatalf("after A1's ack: %v; want A2, still the group's", ids(again))
	}
	if mine := h.pop("g", "t", 0, 1, time.Minute); !slices.Equal(ids(mine), []string{"m"}) {
		t.Fatalf("the group's own pop: %v; want m", ids(mine))
	}
	// The topic of a received message is deleted before the forward.
	if err := h.e.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("other", other)); err != nil {
		t.Fatalf("forward of a message whose topic was deleted: %v", err)
	}
}

// TestDeadLetterHookTellsEachMoveOnce: the dead-letter hook (the
// rocketmq_send_to_dlq_messages_total metric) was told only of the moves
// the reviver made; a consumer's forward, and the forward of a receive that
// finds a message past a lowered maximum (the application's
// dropExhausted), went uncounted, and the inbound adapter counted each OK
// answer instead, a retried forward twice. Every message that leaves its
// queue for the dead-letter queue is told once, whatever asked for it: one
// whose body retention removed is consumed instead, and told too; a
// repeated forward and a replay after a restart tell nothing.
func TestDeadLetterHookTellsEachMoveOnce(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	var mu sync.Mutex
	told := map[string]int{}
	h.engineMod = func(e *Engine) {
		e.SetHooks(Hooks{DeadLetter: func(topic, group string) {
			mu.Lock()
			told[topic+" "+group]++
			mu.Unlock()
		}})
	}
	h.restart()
	want := map[string]int{}
	check := func(what string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if !maps.Equal(told, want) {
			t.Fatalf("%s: told %v, want %v", what, told, want)
		}
	}
	ctx := t.Context()
	group := func(name string, attempts int32) {
		t.Helper()
		g := domain.NewConsumerGroup(name)
		g.MaxDeliveryAttempts = attempts
		if _, err := h.e.CreateGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}

	// A consumer's forward, then its retry with the same handle.
	h.send("f", 0, msg("f", "forwarded", ""))
	m := h.pop("g", "f", 0, 1, time.Minute)[0]
	for range 2 {
		if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", m)); err != nil {
			t.Fatal(err)
		}
	}
	want["f g"] = 1
	check("forward and its retry")

	// The reviver's move of a delivery that used the last attempt.
	group("gx", 1)
	h.send("x", 0, msg("x", "exhausted", ""))
	h.pop("gx", "x", 0, 1, 10*time.Second)
	h.fake().Advance(10 * time.Second)
	h.revive()
	want["x gx"] = 1
	check("exhausted delivery")

	// A message visible again after attempt 1 of 5; the maximum drops to 1;
	// the next receive gets attempt 2, past it, and forwards it (what the
	// application's dropExhausted does).
	group("gl", 5)
	h.send("l", 0, msg("l", "lowered", ""))
	h.pop("gl", "l", 0, 1, 10*time.Second)
	h.fake().Advance(10 * time.Second)
	h.revive()
	g, err := h.e.ConsumerGroup(ctx, "gl")
	if err != nil {
		t.Fatal(err)
	}
	g.MaxDeliveryAttempts = 1
	if _, err := h.e.UpdateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	again := h.pop("gl", "l", 0, 1, time.Minute)
	if len(again) != 1 || again[0].DeliveryAttempt != 2 {
		t.Fatalf("second delivery: %+v", again)
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("gl", again[0])); err != nil {
		t.Fatal(err)
	}
	want["l gl"] = 1
	check("past a lowered maximum")

	// A delivery whose segment retention deleted meanwhile: consumed, not
	// copied, and told.
	body := bytes.Repeat([]byte{'x'}, 500)
	for i := range 40 {
		m := msg("r", fmt.Sprint("r", i), "")
		m.Body = body
		h.send("r", 0, m)
	}
	first := h.pop("gr", "r", 0, 1, 3*time.Hour)[0]
	h.retire("r", "late")
	if h.e.clog.StartOffset() == 0 {
		t.Fatal("no segment deleted")
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("gr", first)); err != nil {
		t.Fatal(err)
	}
	want["r gr"] = 1
	check("a message retention removed")
	if d := h.pop("inspector", domain.DeadLetterTopic("gr"), -1, 10, time.Minute); len(d) != 0 {
		t.Fatalf("a removed message was copied to the dead-letter queue: %v", ids(d))
	}

	// Replay tells nothing again.
	h.crashRestart(true)
	check("after a restart")
}

func TestFilterSkipsNonMatching(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "1", "A"), msg("t", "2", "B"), msg("t", "3", "A"), msg("t", "4", ""))
	f, err := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: "A"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 10, InvisibleTime: time.Minute, Filter: f})
	if err != nil || !slices.Equal(ids(got), []string{"1", "3"}) {
		t.Fatalf("filtered pop %v %v", ids(got), err)
	}
	for _, m := range got {
		h.ack("g", m)
	}
	st, _ := h.e.GroupStats(t.Context(), "g")
	if st[0].AckOffset != 4 || st[0].Consumable != 0 {
		t.Fatalf("skipped messages not consumed: %+v", st)
	}
	h.fake().Advance(time.Hour)
	if again := h.pop("g", "t", 0, 10, time.Minute); len(again) != 0 {
		t.Fatalf("filtered messages delivered later: %v", ids(again))
	}
}

func TestFIFOOrderPerMessageGroup(t *testing.T) {
	h := newHarness(t, nil)
	fm := func(id, group string) domain.Message { m := msg("f", id, ""); m.Group = group; return m }
	h.send("f", 0, fm("A1", "A"), fm("B1", "B"), fm("A2", "A"), fm("B2", "B"), fm("C1", "C"))
	pop := func() []domain.StoredMessage {
		got, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "f", QueueID: 0, MaxMessages: 10, InvisibleTime: time.Minute, FIFO: true, FIFORuns: true})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// One pop hands out a run of each group: its messages in order.
	first := pop()
	if !slices.Equal(ids(first), []string{"A1", "B1", "A2", "B2", "C1"}) {
		t.Fatalf("first FIFO pop %v", ids(first))
	}
	if got := pop(); len(got) != 0 {
		t.Fatalf("second pop while groups in flight: %v", ids(got))
	}
	h.ack("g", first[1]) // B1
	h.ack("g", first[3]) // B2
	h.ack("g", first[2]) // A2, while A1 is in flight
	if got := pop(); len(got) != 0 {
		t.Fatalf("pop while A1 in flight: %v", ids(got))
	}
	// A1 expires: the run of A comes again, A2 included, and C1 too.
	h.fake().Advance(time.Minute)
	got := pop()
	if !slices.Equal(ids(got), []string{"A1", "A2", "C1"}) || got[0].DeliveryAttempt != 2 || got[1].DeliveryAttempt != 2 {
		t.Fatalf("after A1 expired: %v", ids(got))
	}
	h.crashRestart(true)
	h.ack("g", got[2])
	h.ack("g", got[0])
	h.ack("g", got[1])
	h.send("f", 0, fm("A3", "A"))
	h.restart()
	if got := pop(); !slices.Equal(ids(got), []string{"A3"}) {
		t.Fatalf("after the run acked and a restart: %v", ids(got))
	}
}

// TestPopProgressStopsWhenContextEnds: a pop that consumed messages without
// returning any (filtered out, or passed FIFO messages) looks again at
// once, but not once its caller went away: it went on through the whole
// backlog, maxScanPerQueue at a time.
func TestPopProgressStopsWhenContextEnds(t *testing.T) {
	h := newHarness(t, nil)
	const n = 4 * maxScanPerQueue
	for i := 0; i < n; i += 100 {
		var batch []domain.Message
		for j := range 100 {
			batch = append(batch, msg("t", fmt.Sprint(i+j), "skip"))
		}
		h.send("t", 0, batch...)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f, err := filter.Compile(filter.Expression{Type: filter.TypeTag, Text: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 32, InvisibleTime: time.Minute, Filter: f})
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v", ids(got), err)
	}
	h.e.mu.Lock()
	next := h.e.cons[consKey{"g", "t", 0}].next
	h.e.mu.Unlock()
	if next > maxScanPerQueue {
		t.Fatalf("a pop whose context ended went on to offset %d (one pass examines %d)", next, maxScanPerQueue)
	}
}

func TestSendValidation(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AutoCreateTopics = false })
	ctx := t.Context()
	_, err := h.e.Send(ctx, domain.QueueRef{Topic: "nope", BrokerName: h.cfg.BrokerName}, []domain.Message{msg("nope", "1", "")})
	wantReason(t, err, domain.ReasonTopicNotFound)
	if !strings.Contains(err.Error(), "rmqproxy topic create nope`") {
		t.Fatalf("message %q does not say how to create the topic", err)
	}
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 2}); err != nil {
		t.Fatal(err)
	}
	q := domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 0}
	_, err = h.e.Send(ctx, q, []domain.Message{msg("other", "1", "")})
	wantReason(t, err, domain.ReasonMessageCorrupted)
	_, err = h.e.Send(ctx, domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: 2}, []domain.Message{msg("t", "1", "")})
	wantReason(t, err, domain.ReasonBadRequest)
	_, err = h.e.Send(ctx, domain.QueueRef{Topic: "t", BrokerName: "elsewhere"}, []domain.Message{msg("t", "1", "")})
	wantReason(t, err, domain.ReasonBadRequest)
	tx := msg("t", "1", "")
	tx.Transactional = true
	_, err = h.e.Send(ctx, q, []domain.Message{tx, msg("t", "2", "")})
	wantReason(t, err, domain.ReasonBadRequest)
	big := msg("t", "1", "")
	big.Body = make([]byte, h.cfg.MaxRecordSize)
	_, err = h.e.Send(ctx, q, []domain.Message{big})
	wantReason(t, err, domain.ReasonBodyTooLarge)
	if _, err := h.e.UpdateTopic(ctx, domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 2, Permission: domain.PermRead}); err != nil {
		t.Fatal(err)
	}
	_, err = h.e.Send(ctx, q, []domain.Message{msg("t", "1", "")})
	wantReason(t, err, domain.ReasonForbidden)
	_, err = h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 0})
	wantReason(t, err, domain.ReasonBadRequest)
	h.cfg.AutoCreateGroups = false
	h.restart()
	_, err = h.e.Pop(ctx, ports.PopRequest{Group: "nog", Topic: "t", QueueID: -1, MaxMessages: 1})
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)
	_, err = h.e.Route(ctx, "missing")
	wantReason(t, err, domain.ReasonTopicNotFound)
	r, err := h.e.Route(ctx, "t")
	if err != nil || len(r.Queues) != 2 || r.Queues[1].QueueID != 1 || r.Queues[0].BrokerName != h.cfg.BrokerName || r.Queues[0].Permission != domain.PermRead {
		t.Fatalf("route %+v %v", r, err)
	}
	// A bad handle never panics.
	wantReason(t, h.e.Ack(ctx, ports.AckRequest{Group: "g", Topic: "t", Handle: domain.ReceiptHandle{BrokerName: "other"}}), domain.ReasonInvalidReceiptHandle)
}

// TestPopNamingAnotherBrokerServed: a receive naming another broker (the
// client's route from before local.brokerName was renamed, until it
// refreshes) is served from the local broker, as the Apache proxy's local
// mode picks one of its own queues when the named broker has none; it was
// BAD_REQUEST, so every receive failed until the client's next route
// refresh.
func TestPopNamingAnotherBrokerServed(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "a", ""))
	h.send("t", 3, msg("t", "b", ""))
	for _, qid := range []int32{-1, 3} {
		got, err := h.e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "t", BrokerName: "renamed-away", QueueID: qid, MaxMessages: 1, InvisibleTime: time.Minute})
		if err != nil || len(got) != 1 || got[0].BrokerName != h.cfg.BrokerName || qid >= 0 && got[0].QueueID != qid {
			t.Fatalf("pop of queue %d naming another broker: %+v %v", qid, got, err)
		}
		h.ack("g", got[0])
	}
}

// TestHandlesOfBeforeABrokerRename: after a restart (here a kill -9)
// with local.brokerName renamed, the receipt handles consumers held named
// the old name and every ack, invisible-time change and dead-letter forward
// of them was refused (INVALID_RECEIPT_HANDLE "belongs to broker"): the
// messages, processed and acked, were delivered again after their
// invisible time. A handle whose receipt id is that of the delivery it
// names is this broker's whatever name it carries; one whose receipt id
// is not (forged, or a superseded delivery) is still refused.
func TestHandlesOfBeforeABrokerRename(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.send("t", 0, msg("t", "a", ""), msg("t", "b", ""), msg("t", "c", ""))
	got := h.pop("g", "t", 0, 3, time.Minute)
	if !slices.Equal(ids(got), []string{"a", "b", "c"}) {
		t.Fatalf("pop: %v", ids(got))
	}
	h.cfg.BrokerName = "renamed"
	h.crashRestart(true)
	if err := h.e.Ack(ctx, ackReq("g", got[0])); err != nil {
		t.Fatalf("ack of a handle from before the rename: %v", err)
	}
	b := ackReq("g", got[1])
	nh, err := h.e.ChangeInvisible(ctx, ports.ChangeInvisibleRequest{AckRequest: b, InvisibleTime: time.Hour})
	if err != nil {
		t.Fatalf("invisible-time change of a handle from before the rename: %v", err)
	}
	if nh.BrokerName != "renamed" {
		t.Fatalf("new handle names broker %q", nh.BrokerName)
	}
	// The superseded handle of b is refused, whatever broker it names.
	wantReason(t, h.e.Ack(ctx, b), domain.ReasonInvalidReceiptHandle)
	// c's handle outlives its invisible time: its forward still moves it.
	h.fake().Advance(2 * time.Minute)
	h.revive()
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", got[2])); err != nil {
		t.Fatalf("forward of a handle from before the rename: %v", err)
	}
	if d := h.pop("x", "%DLQ%g", 0, 10, time.Minute); !slices.Equal(ids(d), []string{"c"}) {
		t.Fatalf("dead-letter queue: %v; want c", ids(d))
	}
	h.fake().Advance(2 * time.Hour)
	if again := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(again), []string{"b"}) {
		t.Fatalf("delivered again: %v; want b only (a was acked, c forwarded)", ids(again))
	}
}

// TestRetriedAckOfAHandleOfBeforeABrokerRename: a client retrying an ack
// whose answer it lost, with a handle from before a rename of
// local.brokerName, of a message the first try acked, is answered as a
// retried ack with a handle naming the current broker: OK (a RocketMQ
// broker acks again whatever broker name the handle's extra info carries).
// It was INVALID_RECEIPT_HANDLE "belongs to broker", and the Go client
// then logs the ack failed. An invisible-time change of it is refused
// alike, as already acknowledged.
func TestRetriedAckOfAHandleOfBeforeABrokerRename(t *testing.T) {
	h := newHarness(t, nil)
	ctx := t.Context()
	h.send("t", 0, msg("t", "a", ""), msg("t", "b", ""))
	got := h.pop("g", "t", 0, 2, time.Minute)
	if !slices.Equal(ids(got), []string{"a", "b"}) {
		t.Fatalf("pop: %v", ids(got))
	}
	a, b := ackReq("g", got[0]), ackReq("g", got[1])
	if err := h.e.Ack(ctx, a); err != nil { // acked before the rename
		t.Fatal(err)
	}
	h.cfg.BrokerName = "renamed"
	h.crashRestart(true)
	if err := h.e.Ack(ctx, b); err != nil { // acked after it
		t.Fatalf("ack of a handle from before the rename: %v", err)
	}
	for _, r := range []ports.AckRequest{a, b} {
		if err := h.e.Ack(ctx, r); err != nil {
			t.Errorf("retried ack of %s with a handle from before the rename: %v", r.MessageID, err)
		}
		_, err := h.e.ChangeInvisible(ctx, ports.ChangeInvisibleRequest{AckRequest: r, InvisibleTime: time.Minute})
		if domain.ReasonOf(err) != domain.ReasonInvalidReceiptHandle || !strings.Contains(err.Error(), "already acknowledged") {
			t.Errorf("invisible-time change of acked %s: %v, want INVALID_RECEIPT_HANDLE already acknowledged", r.MessageID, err)
		}
	}
	// A forward repeated after the ack moves nothing and is answered OK,
	// as with a handle of the current broker.
	if err := h.e.ForwardToDeadLetter(ctx, a); err != nil {
		t.Errorf("forward of acked a with a handle from before the rename: %v", err)
	}
	if d := h.pop("x", "%DLQ%g", 0, 10, time.Minute); len(d) != 0 {
		t.Errorf("dead-letter queue: %v; want nothing", ids(d))
	}
	// The same retry with a handle naming the current broker.
	cur := a
	cur.Handle.BrokerName = "renamed"
	if err := h.e.Ack(ctx, cur); err != nil {
		t.Errorf("retried ack with a handle of the current broker: %v", err)
	}
	// A handle naming another broker and a message never delivered is
	// still refused.
	h.send("t", 0, msg("t", "c", ""))
	never := a
	never.Handle.QueueOffset = 2
	wantReason(t, h.e.Ack(ctx, never), domain.ReasonInvalidReceiptHandle)
}

// TestRouteFollowsTopicChanges: the routes of one topic definition share
// their queues, so a send's route lookup allocates nothing; an update
// (more queues, another permission), a deletion and a new incarnation
// each give the route the topic has then.
func TestRouteFollowsTopicChanges(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AutoCreateTopics = false })
	ctx := t.Context()
	check := func(what string, n int, perm domain.Permission) {
		t.Helper()
		r, err := h.e.Route(ctx, "rt")
		if err != nil || len(r.Queues) != n || r.Topic.QueueCount != int32(n) || r.Topic.Permission != perm {
			t.Fatalf("%s: route %+v %v, want %d queues %v", what, r, err, n, perm)
		}
		for i, q := range r.Queues {
			if q != (ports.RouteQueue{BrokerName: h.cfg.BrokerName, QueueID: int32(i), Permission: perm}) {
				t.Fatalf("%s: queue %d is %+v", what, i, q)
			}
		}
	}
	tp := domain.Topic{Name: "rt", Type: domain.MessageTypeNormal, QueueCount: 2, Permission: domain.PermReadWrite}
	if _, err := h.e.CreateTopic(ctx, tp); err != nil {
		t.Fatal(err)
	}
	check("created", 2, domain.PermReadWrite)
	if allocs := testing.AllocsPerRun(100, func() { _, _ = h.e.Route(ctx, "rt") }); allocs != 0 {
		t.Errorf("a route lookup allocates %v times, want 0", allocs)
	}
	tp.QueueCount = 4
	if _, err := h.e.UpdateTopic(ctx, tp); err != nil {
		t.Fatal(err)
	}
	check("more queues", 4, domain.PermReadWrite)
	tp.Permission = domain.PermRead
	if _, err := h.e.UpdateTopic(ctx, tp); err != nil {
		t.Fatal(err)
	}
	check("read-only", 4, domain.PermRead)
	if err := h.e.DeleteTopic(ctx, "rt"); err != nil {
		t.Fatal(err)
	}
	_, err := h.e.Route(ctx, "rt")
	wantReason(t, err, domain.ReasonTopicNotFound)
	tp.QueueCount, tp.Permission = 1, domain.PermWrite
	if _, err := h.e.CreateTopic(ctx, tp); err != nil {
		t.Fatal(err)
	}
	check("created again", 1, domain.PermWrite)
	h.restart()
	check("after a restart", 1, domain.PermWrite)
}

func TestAdmin(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AutoCreateTopics = false })
	ctx := t.Context()
	tp := domain.Topic{Name: "b", Type: domain.MessageTypeFIFO, QueueCount: 2, Permission: domain.PermReadWrite}
	created, err := h.e.CreateTopic(ctx, tp)
	if err != nil || created.CreatedAt.IsZero() {
		t.Fatalf("create %+v %v", created, err)
	}
	_, err = h.e.CreateTopic(ctx, tp)
	wantReason(t, err, domain.ReasonAlreadyExists)
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "a", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	tp.QueueCount = 1
	_, err = h.e.UpdateTopic(ctx, tp)
	wantReason(t, err, domain.ReasonBadRequest)
	tp.QueueCount = 4
	if up, err := h.e.UpdateTopic(ctx, tp); err != nil || up.QueueCount != 4 || !up.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("update %+v %v", up, err)
	}
	_, err = h.e.UpdateTopic(ctx, domain.Topic{Name: "zz", Type: domain.MessageTypeNormal, QueueCount: 1})
	wantReason(t, err, domain.ReasonTopicNotFound)
	g := domain.NewConsumerGroup("grp")
	if _, err := h.e.CreateGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	_, err = h.e.CreateGroup(ctx, g)
	wantReason(t, err, domain.ReasonAlreadyExists)
	g.MaxDeliveryAttempts = 5
	if up, err := h.e.UpdateGroup(ctx, g); err != nil || up.MaxDeliveryAttempts != 5 {
		t.Fatalf("update group %v", err)
	}
	wantReason(t, h.e.DeleteGroup(ctx, "missing"), domain.ReasonConsumerGroupNotFound)
	_, err = h.e.UpdateGroup(ctx, domain.NewConsumerGroup("missing"))
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)
	h.restart()
	ts, _ := h.e.ListTopics(ctx)
	if len(ts) != 2 || ts[0].Name != "a" || ts[1].Name != "b" || ts[1].QueueCount != 4 || ts[1].Type != domain.MessageTypeFIFO {
		t.Fatalf("topics after restart %+v", ts)
	}
	gs, _ := h.e.ListGroups(ctx)
	if len(gs) != 1 || gs[0].MaxDeliveryAttempts != 5 {
		t.Fatalf("groups after restart %+v", gs)
	}
	// Deleting a topic drops its messages and state; a new topic of the
	// same name starts empty, also after a crash and a full replay.
	m := msg("a", "old", "")
	h.send("a", 0, m)
	h.pop("grp", "a", 0, 1, time.Minute)
	if err := h.e.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantReason(t, h.e.DeleteTopic(ctx, "a"), domain.ReasonTopicNotFound)
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "a", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	h.send("a", 0, msg("a", "new", ""))
	h.crashRestart(true)
	got := h.pop("grp", "a", 0, 10, time.Minute)
	if !slices.Equal(ids(got), []string{"new"}) || got[0].QueueOffset != 0 {
		t.Fatalf("recreated topic holds %v", ids(got))
	}
	if err := h.e.DeleteGroup(ctx, "grp"); err != nil {
		t.Fatal(err)
	}
	_, err = h.e.GroupStats(ctx, "grp")
	wantReason(t, err, domain.ReasonConsumerGroupNotFound)
	h.crashRestart(true)
	if gs, _ := h.e.ListGroups(ctx); len(gs) != 0 {
		t.Fatalf("deleted group back: %+v", gs)
	}
}

func TestCrashKeepsAcknowledgedSendsAndAcks(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 16 << 10; c.MaxRecordSize = 4 << 10 })
	const writers, per = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := map[string]bool{}
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				id := fmt.Sprintf("w%d-%d", w, i)
				_, err := h.e.Send(context.Background(), domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName, QueueID: int32(w % 4)}, []domain.Message{msg("t", id, "")})
				if err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				mu.Lock()
				sent[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if st := h.e.Stats(); st.LogFsyncs >= st.LogAppends {
		t.Errorf("concurrent sends did not share fsyncs: %+v", st)
	}
	got := h.pop("g", "t", -1, 120, time.Minute)
	acked := map[string]bool{}
	for _, m := range got[:60] {
		h.ack("g", m)
		acked[m.ID] = true
	}
	h.crashRestart(false)
	h.fake().Advance(2 * time.Minute) // the unacked deliveries expire
	seen := map[string]int{}
	for {
		ms := h.pop("g", "t", -1, 64, time.Minute)
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			seen[m.ID]++
		}
	}
	for id := range sent {
		switch {
		case acked[id] && seen[id] > 0:
			t.Errorf("acked message %s redelivered after crash", id)
		case !acked[id] && seen[id] != 1:
			t.Errorf("sent message %s delivered %d times after crash", id, seen[id])
		}
	}
	if len(sent) != writers*per {
		t.Fatalf("sent %d", len(sent))
	}
	if st := h.e.Stats(); st.LogEnd <= 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSnapshotReplayEquivalence(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 16 << 10; c.MaxRecordSize = 4 << 10 })
	rec := &checkRecorder{}
	h.e.SetTransactionCheckHandler(rec.handle)
	ctx := t.Context()
	var recall []domain.SendReceipt
	step := func(round int) {
		for i := range 10 {
			h.send("t", int32(i%3), msg("t", fmt.Sprintf("r%d-%d", round, i), []string{"A", "B"}[i%2]))
		}
		got := h.pop("g", "t", -1, 6, 20*time.Second)
		for i, m := range got {
			switch i % 3 {
			case 0:
				h.ack("g", m)
			case 1:
				_, _ = h.e.ChangeInvisible(ctx, ports.ChangeInvisibleRequest{AckRequest: ackReq("g", m), InvisibleTime: time.Minute})
			}
		}
		f, _ := filter.Compile(filter.Expression{Text: "A"})
		_, _ = h.e.Pop(ctx, ports.PopRequest{Group: "g2", Topic: "t", QueueID: -1, MaxMessages: 3, InvisibleTime: 5 * time.Second, Filter: f})
		// FIFO runs: the later messages of each run acked (held), the first
		// of group B's too (so B's become final); A's run comes again after
		// its invisible time.
		h.send("f", 0, fifoMsg("f", fmt.Sprint("fa", round, "-0"), "A"), fifoMsg("f", fmt.Sprint("fb", round, "-0"), "B"),
			fifoMsg("f", fmt.Sprint("fa", round, "-1"), "A"), fifoMsg("f", fmt.Sprint("fb", round, "-1"), "B"))
		seen := map[string]bool{}
		for _, m := range h.popFIFO("gf", "f", 6, 10*time.Second) {
			if seen[m.Group] || m.Group == "B" {
				h.ack("gf", m)
			}
			seen[m.Group] = true
		}
		// Timers: one fires next round, one in a later bucket, one recalled.
		now := h.clock.Now()
		h.send("d", int32(round%2), delayMsg("d", fmt.Sprintf("soon%d", round), now.Add(10*time.Second)),
			delayMsg("d", fmt.Sprintf("later%d", round), now.Add(3*time.Minute)))
		recall = append(recall, h.send("d", 0, delayMsg("d", fmt.Sprintf("recalled%d", round), now.Add(time.Hour)))[0])
		if round > 0 {
			if _, err := h.e.Recall(ctx, "d", recall[round-1].RecallHandle); err != nil {
				t.Fatal(err)
			}
		}
		// Transactions: one committed, one rolled back, one left to the
		// check-backs.
		rs := h.send("x", 1, txMsg("x", fmt.Sprintf("c%d", round)), txMsg("x", fmt.Sprintf("rb%d", round)), txMsg("x", fmt.Sprintf("o%d", round)))
		for i, res := range []ports.Resolution{ports.ResolutionCommit, ports.ResolutionRollback} {
			if err := h.e.EndTransaction(ctx, ports.EndTransactionRequest{Topic: "x", MessageID: rs[i].MessageID, TransactionID: rs[i].TransactionID, Resolution: res}); err != nil {
				t.Fatal(err)
			}
		}
		// A pull consumer's offset.
		if err := h.e.UpdateOffset(ctx, "puller", domain.QueueRef{Topic: "t", QueueID: int32(round % 3)}, int64(round)); err != nil {
			t.Fatal(err)
		}
		h.fake().Advance(15 * time.Second)
		h.fireTimers()
		h.checkTxns()
	}
	step(0)
	step(1)
	if err := h.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	step(2)
	step(3)
	if len(rec.counts()) == 0 {
		t.Fatal("no transaction was checked back")
	}
	if snaps, _ := filepath.Glob(filepath.Join(h.cfg.DataDir, "snapshot", "*.snap")); len(snaps) == 0 {
		t.Fatal("no snapshot written")
	}
	live := h.requireReplaysMatch()
	if !bytes.Contains(live, []byte("\nlater3")) || !bytes.Contains(live, []byte("\nrecalled3")) || bytes.Contains(live, []byte("\nrecalled2")) {
		t.Errorf("pending timers in the dump: %q", live[bytes.IndexByte(live, '\n'):])
	}
}

// canonicalState is canonicalStateLocked with the visible consume-queue
// entries promoted and the due deliveries revived first (those that used
// their last attempt moved to the dead-letter queue: a bare
// reviveDueLocked stops at the first one the reviver has not read, and
// leaves the later ones as they were).
func (h *harness) canonicalState() []byte {
	h.t.Helper()
	h.revive()
	h.e.mu.Lock()
	h.e.promoteLocked()
	h.e.reviveDueLocked(h.e.clock.Now())
	b, err := h.e.canonicalStateLocked()
	h.e.mu.Unlock()
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// replayStates returns the canonical state of the live engine, of the
// engine reopened after a crash (every appended record written: snapshot
// plus replay), and of the engine reopened with every snapshot deleted
// (a full replay of the log). It leaves the last one open.
func (h *harness) replayStates() (live, fromSnap, fromLog []byte) {
	h.t.Helper()
	live = h.canonicalState()
	h.crashRestart(true)
	fromSnap = h.canonicalState()
	h.e.crash()
	snaps, _ := filepath.Glob(filepath.Join(h.cfg.DataDir, "snapshot", "*.snap"))
	for _, s := range snaps {
		if err := os.Remove(s); err != nil {
			h.t.Fatal(err)
		}
	}
	h.open()
	return live, fromSnap, h.canonicalState()
}

// requireReplaysMatch fails the test unless the live state, the state
// after snapshot + replay and the state after a full replay are the same
// (see replayStates); it returns the live state.
func (h *harness) requireReplaysMatch() []byte {
	h.t.Helper()
	live, fromSnap, fromLog := h.replayStates()
	if msg := replayMismatch(live, fromSnap, fromLog); msg != "" {
		h.t.Fatal(msg)
	}
	return live
}

// replayMismatch describes how the three states of replayStates differ, or
// returns "" when they are the same.
func replayMismatch(live, fromSnap, fromLog []byte) string {
	switch {
	case !bytes.Equal(live, fromSnap):
		return "state after snapshot + replay differs from the live state (- live, + snapshot and replay):\n" + stateDiff(live, fromSnap)
	case !bytes.Equal(fromSnap, fromLog):
		return "state after snapshot + replay differs from a full replay (- snapshot and replay, + full replay):\n" + stateDiff(fromSnap, fromLog)
	}
	return ""
}

// describeState renders a canonical state (see canonicalStateLocked) as
// lines of text, for a readable difference.
func describeState(b []byte) []string {
	for i := range b {
		if b[i] != '\n' {
			continue
		}
		s, err := decodeSnapshot(b[:i])
		if err != nil {
			continue
		}
		var out []string
		for _, q := range s.queues {
			out = append(out, fmt.Sprintf("queue %+v", q))
		}
		for _, st := range s.states {
			out = append(out, fmt.Sprintf("state %+v floor %d next %d acked %v", st.key, st.floor, st.next, st.acked))
			for _, d := range st.deliveries {
				out = append(out, fmt.Sprintf("  delivery %d %+v", d.offset, d.d))
			}
		}
		for _, x := range s.timers {
			out = append(out, fmt.Sprintf("timers %+v", x))
		}
		for _, x := range s.txns {
			out = append(out, fmt.Sprintf("txn %d %+v", x.origin, x.st))
		}
		for _, x := range s.offsets {
			out = append(out, fmt.Sprintf("offset %+v", x))
		}
		for _, x := range s.deleted {
			out = append(out, fmt.Sprintf("deleted %+v", x))
		}
		for _, x := range s.topics {
			out = append(out, fmt.Sprintf("topic %+v", x))
		}
		for _, x := range s.groups {
			out = append(out, fmt.Sprintf("group %+v", x))
		}
		return append(out, strings.Split(string(b[i+1:]), "\n")...)
	}
	return []string{fmt.Sprintf("undecodable %q", b)}
}

// stateDiff lists the lines of a's and b's descriptions that differ.
func stateDiff(a, b []byte) string {
	da, db := describeState(a), describeState(b)
	var out []string
	for _, l := range da {
		if !slices.Contains(db, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range db {
		if !slices.Contains(da, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// canonicalStateLocked is the snapshot of the state with the timer buckets
// reduced to their pending timers (a bucket's bytes depend on when drained
// buckets were deleted; its pending timers do not), followed by the pending
// timers' message ids, one per line.
func (e *Engine) canonicalStateLocked() ([]byte, error) {
	s := e.captureLocked(0)
	s.sortCanonical()
	var pend []string
	for i := range s.timers {
		es, err := e.timers.Bucket(s.timers[i].Start).Entries()
		if err != nil {
			return nil, err
		}
		p := timerindex.Pending(es)
		st := timerindex.State{Start: s.timers[i].Start, Length: timerindex.HeaderSize, Adds: int64(len(p))}
		for j, ent := range p {
			if j == 0 || ent.Origin < st.MinOrigin {
				st.MinOrigin = ent.Origin
			}
			m, err := e.readDeferredLocked(ent.Origin, ent.Size, ent.CRC, ent.Topic)
			if err != nil {
				return nil, err
			}
			pend = append(pend, fmt.Sprintf("%s %d %d %s#%d", m.ID, ent.DeliverAt, ent.Origin, ent.Topic, ent.QueueID))
		}
		s.timers[i] = st
	}
	slices.Sort(pend)
	return append(encodeSnapshot(s), ("\n" + strings.Join(pend, "\n"))...), nil
}

func TestReceiptIDsUniqueAcrossRestarts(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "a", ""))
	seen := map[int64]bool{}
	for range 3 {
		m := h.pop("g", "t", 0, 1, time.Second)
		if len(m) != 1 {
			t.Fatal("no message")
		}
		hd, _ := domain.ParseReceiptHandle(m[0].ReceiptHandle)
		if seen[hd.StartOffset] {
			t.Fatalf("receipt id %d repeated", hd.StartOffset)
		}
		seen[hd.StartOffset] = true
		h.fake().Advance(time.Second)
		h.crashRestart(false) // the pop record may be lost: ids must still not repeat
	}
}

func TestLongPoll(t *testing.T) {
	h := newHarness(t, func(c *Config) {})
	h.clock = ports.SystemClock{}
	h.restart()
	ctx := t.Context()
	// Times out empty.
	start := time.Now()
	got, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute, PollTimeout: 50 * time.Millisecond})
	if err != nil || got == nil || len(got) != 0 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("timeout pop: %v %v after %v", got, err, time.Since(start))
	}
	// Wakes on send.
	res := make(chan []domain.StoredMessage, 1)
	go func() {
		got, err := h.e.Pop(ctx, ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute, PollTimeout: time.Minute})
		if err != nil {
			t.Error(err)
		}
		res <- got
	}()
	h.waitPollers("t", 3, 1)
	h.send("t", 3, msg("t", "x", ""))
	select {
	case got := <-res:
		if len(got) != 1 || got[0].ID != "x" {
			t.Fatalf("woken pop got %v", ids(got))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll not woken by a send")
	}
	// Wakes when a delivery becomes visible again (reviver timer).
	go func() {
		got, _ := h.e.Pop(ctx, ports.PopRequest{Group: "g2", Topic: "t", QueueID: -1, MaxMessages: 1, InvisibleTime: 100 * time.Millisecond})
		if len(got) != 1 {
			t.Error("g2 got nothing")
		}
		got, _ = h.e.Pop(ctx, ports.PopRequest{Group: "g2", Topic: "t", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute, PollTimeout: time.Minute})
		res <- got
	}()
	select {
	case got := <-res:
		if len(got) != 1 || got[0].DeliveryAttempt != 2 {
			t.Fatalf("revived pop got %+v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll not woken by an expired delivery")
	}
	// A cancelled context ends a poll.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		got, err := h.e.Pop(cctx, ports.PopRequest{Group: "g3", Topic: "empty", QueueID: -1, MaxMessages: 1, InvisibleTime: time.Minute, PollTimeout: time.Hour})
		if err != nil || len(got) != 0 {
			t.Errorf("cancelled poll: %v %v", got, err)
		}
		res <- got
	}()
	cancel()
	select {
	case <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("poll hung past its context")
	}
}

func TestTornTailAndCorruption(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 5 {
		h.send("t", 0, msg("t", fmt.Sprint(i), ""))
	}
	segs, _ := filepath.Glob(filepath.Join(h.cfg.DataDir, "commitlog", "0*"))
	last := segs[len(segs)-1]
	base, _ := strconv.ParseInt(filepath.Base(last), 10, 64)
	end := h.e.clog.NextOffset()
	h.e.crash()
	// A torn record where the records end: over the zeros written ahead of
	// them (local.preallocate), not after them (that would be a torn
	// record after a hole, cut as a power loss's).
	f, _ := os.OpenFile(last, os.O_WRONLY, 0)
	f.WriteAt([]byte{0, 0, 1, 0, 9, 9, 9, 9, 1, 2, 3}, end-base)
	f.Close()
	h.open()
	if got := h.pop("g", "t", 0, 10, time.Minute); len(got) != 5 {
		t.Fatalf("after torn tail: %d messages", len(got))
	}
	if !h.warns.contains("torn tail", fmt.Sprint("offset=", end)) || h.warns.contains("power loss") {
		t.Fatalf("the torn record was not cut as a torn tail at %d: %q", end, h.warns.lines)
	}
	h.send("t", 0, msg("t", "after", ""))
	h.e.crash()
	// Corrupt an early record: strict refuses, naming the way out.
	b, _ := os.ReadFile(last)
	b[20] ^= 0xff
	os.WriteFile(last, b, 0o644)
	_, err := Open(t.Context(), h.cfg, h.logger(), h.clock)
	if err == nil || !strings.Contains(err.Error(), "local.recovery: truncate") || !strings.Contains(err.Error(), last) {
		t.Fatalf("strict open: %v", err)
	}
	// Said once, naming the setting by its key: the error used to carry
	// the corruption's text twice, as its message and as its cause, and
	// said "set recovery: truncate", which is no key.
	if n := strings.Count(err.Error(), "is corrupt at offset"); n != 1 {
		t.Errorf("strict open says the corruption %d times: %v", n, err)
	}
	wantReason(t, err, domain.ReasonInternal)
	h.cfg.Recovery = "truncate"
	h.open()
	if got := h.pop("g2", "t", 0, 10, time.Minute); len(got) != 0 {
		t.Fatalf("truncated log still has %d messages", len(got))
	}
}

func TestRetentionSkipsDeletedMessages(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	h.restart()
	h.fill("t")
	ctx := t.Context()
	if err := h.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	h.send("t", 0, msg("t", "late", ""))
	if err := h.e.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	h.fake().Advance(2 * time.Hour)
	if err := h.e.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if h.e.clog.StartOffset() == 0 {
		t.Fatal("no segment deleted")
	}
	got := h.pop("g", "t", 0, 100, time.Minute)
	if len(got) == 0 || len(got) >= 41 || got[len(got)-1].ID != "late" {
		t.Fatalf("after retention got %d messages", len(got))
	}
	h.restart()
	st, _ := h.e.GroupStats(ctx, "g")
	if st[0].InFlight != int64(len(got)) || st[0].Consumable != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestReplayForgetsDeletionsRetentionRemoved: the running engine forgets
// a topic's deletion once retention removed its record (no deferred
// message stored before it is left); a restart from a snapshot taken
// before that retention run kept it, so its state was not the live one.
func TestReplayForgetsDeletionsRetentionRemoved(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	h.restart()
	ctx := t.Context()
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "gone", Type: domain.MessageTypeNormal, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	if err := h.e.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	h.fill("t")
	h.retire("t", "late")
	if h.e.clog.StartOffset() == 0 {
		t.Fatal("no segment deleted")
	}
	live := h.canonicalState()
	h.crashRestart(true)
	if replayed := h.canonicalState(); !bytes.Equal(live, replayed) {
		t.Fatalf("state after snapshot + replay differs from the live state (- live, + snapshot and replay):\n%s", stateDiff(live, replayed))
	}
}

func TestAsyncFlushAndCancelledSend(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Flush = "async" })
	h.send("t", 0, msg("t", "a", ""))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := h.e.Send(ctx, domain.QueueRef{Topic: "t", BrokerName: h.cfg.BrokerName}, []domain.Message{msg("t", "b", "")})
	if err != nil {
		wantReason(t, err, domain.ReasonPersistenceTimeout)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cause lost: %v", err)
		}
	}
	h.restart()
	if got := h.pop("g", "t", 0, 10, time.Minute); !slices.Equal(ids(got), []string{"a", "b"}) {
		t.Fatalf("got %v; a send whose caller stopped waiting must be stored once", ids(got))
	}
}

func TestClosedEngineUnavailable(t *testing.T) {
	h := newHarness(t, nil)
	_, err := Open(t.Context(), h.cfg, nil, nil)
	wantReason(t, err, domain.ReasonUnavailable)
	if !strings.Contains(err.Error(), "another rmqproxy") {
		t.Fatalf("second engine on one data directory: %v", err)
	}
	if err := h.e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, err = h.e.Route(t.Context(), "t")
	wantReason(t, err, domain.ReasonUnavailable)
	_, err = h.e.Send(t.Context(), domain.QueueRef{Topic: "t"}, []domain.Message{msg("t", "a", "")})
	wantReason(t, err, domain.ReasonUnavailable)
	if err := h.e.Close(t.Context()); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Config){
		"segmentSize must be > maxRecordSize": func(c *Config) { c.SegmentSize = c.MaxRecordSize },
		"brokerName":                          func(c *Config) { c.BrokerName = "a b" },
		"flush must be sync or async":         func(c *Config) { c.Flush = "never" },
		"recovery must be strict or truncate": func(c *Config) { c.Recovery = "x" },
		"storeHost":                           func(c *Config) { c.StoreHost = "nohost" },
		"autoCreateTopicType":                 func(c *Config) { c.AutoCreateTopicType = "BAD" },
		"defaultQueueCount":                   func(c *Config) { c.DefaultQueueCount = 0 },
		"retention":                           func(c *Config) { c.Retention = -1 },
		"transactionTimeout":                  func(c *Config) { c.TransactionTimeout = 0 },
		"transactionCheckInterval":            func(c *Config) { c.TransactionCheckInterval = -time.Second },
		"transactionCheckMax must":            func(c *Config) { c.TransactionCheckMax = 0 },
		"transactionCheckMaxAction":           func(c *Config) { c.TransactionCheckMaxAction = "drop" },
	}
	for want, mod := range cases {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}

func TestIndexEntriesBeyondRecoveredLogDropped(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Flush = "async"; c.Recovery = "truncate" })
	for i := range 3 {
		h.send("t", 0, msg("t", fmt.Sprint("early", i), ""))
	}
	if err := h.e.Snapshot(t.Context()); err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for i := range 4 {
		h.send("t", 0, msg("t", fmt.Sprint("late", i), ""))
		ends = append(ends, h.e.clog.NextOffset())
	}
	h.e.flushQueues() // the index file now points at all seven messages
	if err := h.e.clog.Sync(t.Context(), ends[3]); err != nil {
		t.Fatal(err)
	}
	h.e.crash()
	// A power failure in async mode lost the last two records.
	segs, _ := filepath.Glob(filepath.Join(h.cfg.DataDir, "commitlog", "0*"))
	if err := os.Truncate(segs[len(segs)-1], ends[1]); err != nil {
		t.Fatal(err)
	}
	h.open()
	got := h.pop("g", "t", 0, 100, time.Minute)
	if !slices.Equal(ids(got), []string{"early0", "early1", "early2", "late0", "late1"}) {
		t.Fatalf("after losing the tail: %v", ids(got))
	}
	// New sends reuse the dropped queue offsets consistently.
	r := h.send("t", 0, msg("t", "new", ""))
	if r[0].QueueOffset != 5 {
		t.Fatalf("new message got queue offset %d", r[0].QueueOffset)
	}
	if got := h.pop("g", "t", 0, 100, time.Minute); !slices.Equal(ids(got), []string{"new"}) {
		t.Fatalf("after new send: %v", ids(got))
	}
}

// TestRetentionForgetsTopicDeletions: the engine remembers where each
// topic was deleted (deferred messages stored before belong to the deleted
// topic), one entry per topic name, also written into every snapshot.
// Topics created and deleted for months grew it for ever; deletions that
// retention removed from the log, before every pending deferred message,
// are forgotten.
func TestRetentionForgetsTopicDeletions(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	h.restart()
	ctx := t.Context()
	for i := range 20 {
		name := fmt.Sprint("gone-", i)
		h.send(name, 0, msg(name, "x", ""))
		if err := h.e.DeleteTopic(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.e.topicDeletedAt); n != 20 {
		t.Fatalf("%d deletions remembered, want 20", n)
	}
	h.fill("t")
	h.retire("t", "more")
	if h.e.clog.StartOffset() == 0 {
		t.Fatal("no segment deleted")
	}
	if n := len(h.e.topicDeletedAt); n != 0 {
		t.Fatalf("%d deletions remembered after retention removed them from the log", n)
	}
	h.restart()
	if n := len(h.e.topicDeletedAt); n != 0 {
		t.Fatalf("%d deletions remembered after a restart", n)
	}
}

// TestBornTimeBeyondStorableTimeRefused: a born time after 2262 passes the
// protocol's validation (message times run to 9999) but cannot be held in
// the records' Unix nanoseconds: it was stored wrapped around and read back
// as another time. Such a send is refused, as a delivery time beyond 2262
// is; one within the range is kept exactly.
func TestBornTimeBeyondStorableTimeRefused(t *testing.T) {
	h := newHarness(t, nil)
	far := msg("orders", "far", "")
	far.BornAt = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := domain.DefaultLimits().ValidateMessage(&far, h.clock.Now()); err != nil {
		t.Fatalf("the protocol's validation refuses it already: %v", err)
	}
	_, err := h.e.Send(t.Context(), domain.QueueRef{Topic: "orders", BrokerName: h.cfg.BrokerName}, []domain.Message{msg("orders", "now", ""), far})
	wantReason(t, err, domain.ReasonBadRequest)
	late := msg("orders", "late", "")
	late.BornAt = time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)
	h.send("orders", 0, late)
	got := h.pop("g", "orders", -1, 10, 30*time.Second)
	if len(got) != 1 || got[0].ID != "late" || !got[0].BornAt.Equal(late.BornAt) {
		t.Fatalf("popped %+v, want only late born at %s", got, late.BornAt)
	}
}

// forwardRefused reports whether err is a ports.ForwardRefusedError for
// reason with no answer of its own (the forward is answered OK).
func forwardRefused(err error, reason string) bool {
	var r *ports.ForwardRefusedError
	return errors.As(err, &r) && r.Reason == reason && r.Err == nil
}

// TestOutlivedForwardOfRemovedMessageKeepsReleasedRun: a FIFO run [a, b]
// is delivered, b acked, and a's invisible time passes (the run released:
// b visible again); retention then removes a's segment, and a forward of
// a's outlived handle comes. It moves nothing (nothing is left to copy),
// and a restart must not consume b, which the live engine had released.
func TestOutlivedForwardOfRemovedMessageKeepsReleasedRun(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	h.restart()
	ctx := t.Context()
	if _, err := h.e.CreateTopic(ctx, domain.Topic{Name: "f", Type: domain.MessageTypeFIFO, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	h.createGroup("g", 5, true)
	h.send("f", 0, fifoMsg("f", "a", "A"))
	h.fill("n")
	h.send("f", 0, fifoMsg("f", "b", "A"))
	got := h.popFIFO("g", "f", 2, 10*time.Second)
	if !slices.Equal(ids(got), []string{"a", "b"}) {
		t.Fatalf("got %v", ids(got))
	}
	h.ack("g", got[1])
	h.fake().Advance(11 * time.Second)
	h.revive()
	h.retire("n", "late")
	start := h.e.clog.StartOffset()
	if start <= got[0].CommitLogOffset || start > got[1].CommitLogOffset {
		t.Fatalf("log starts at %d; a is at %d, b at %d", start, got[0].CommitLogOffset, got[1].CommitLogOffset)
	}
	if err := h.e.ForwardToDeadLetter(ctx, ackReq("g", got[0])); err != nil {
		t.Fatal(err)
	}
	live := h.canonicalState()
	h.crashRestart(true)
	if replayed := h.canonicalState(); !bytes.Equal(live, replayed) {
		t.Fatalf("state after snapshot + replay differs from the live state (- live, + snapshot and replay):\n%s", stateDiff(live, replayed))
	}
	if got := h.popFIFO("g", "f", 2, time.Minute); !slices.Equal(ids(got), []string{"b"}) {
		t.Fatalf("after the forward and a restart got %v, want b again", ids(got))
	}
}
