package localbroker

import (
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
)

// TestDeadLetterCopyKeepsDeliveryCount: a dead-letter copy carries the
// deliveries its message had, as a RocketMQ broker's copy carries its
// reconsume times (the count + 1 of the delivery it was moved at), so a
// consumer of the dead-letter queue sees the delivery attempts a client
// of the Apache proxy sees: the copy of a message its consumer forwarded
// at attempt 2 comes with attempt 3; the copy of one that used all 2
// attempts of its group comes with attempt 4 (a broker redelivers it once
// more, with reconsume times 2, and the proxy forwards that delivery).
// The count survives restarts, kill -9 and snapshots, and goes on
// counting: a redelivery of the copy, a pull of it, and a copy of the copy.
func TestDeadLetterCopyKeepsDeliveryCount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart func(*harness)
	}{
		{"live", func(*harness) {}},
		{"restart", (*harness).restart},
		{"snapshot then restart", func(h *harness) {
			if err := h.e.Snapshot(h.t.Context()); err != nil {
				h.t.Fatal(err)
			}
			h.restart()
		}},
		{"kill -9", func(h *harness) { h.crashRestart(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.createGroup("g", 2, false)
			h.send("t", 0, msg("t", "exhausted", ""))
			h.send("t", 1, msg("t", "forwarded", ""))
			for attempt := int32(1); attempt <= 2; attempt++ {
				for _, qid := range []int32{0, 1} {
					got := h.pop("g", "t", qid, 1, 10*time.Second)
					if len(got) != 1 || got[0].DeliveryAttempt != attempt {
						t.Fatalf("queue %d, attempt %d: %+v", qid, attempt, got)
					}
					if attempt == 2 && qid == 1 {
						if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("g", got[0])); err != nil {
							t.Fatal(err)
						}
					}
				}
				h.fake().Advance(10 * time.Second)
			}
			h.revive() // moves "exhausted", which used both attempts
			h.settle(h.e.clog.NextOffset())
			tc.restart(h)

			dlq := domain.DeadLetterTopic("g")
			want := map[string]int32{"exhausted": 4, "forwarded": 3}
			check := func(what string, ms []domain.StoredMessage, extra int32) {
				t.Helper()
				if len(ms) != len(want) {
					t.Fatalf("%s: %d messages, want %d: %+v", what, len(ms), len(want), ms)
				}
				for _, m := range ms {
					if m.DeliveryAttempt != want[m.ID]+extra {
						t.Errorf("%s: %s has delivery attempt %d, want %d", what, m.ID, m.DeliveryAttempt, want[m.ID]+extra)
					}
				}
			}
			first := h.pop("reader", dlq, 0, 10, 10*time.Second)
			check("first delivery from the DLQ", first, 0)
			check("pull from the DLQ", h.pull("puller", dlq, 0, 0, 10, filter.All).Messages, 0)

			tc.restart(h)
			h.fake().Advance(10 * time.Second)
			again := h.pop("reader", dlq, 0, 10, 10*time.Second)
			check("redelivery from the DLQ", again, 1)

			// The reader forwards its copies in turn: the next copies count on.
			for _, m := range again {
				if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("reader", m)); err != nil {
					t.Fatal(err)
				}
			}
			tc.restart(h)
			check("copy of a copy", h.pop("reader2", domain.DeadLetterTopic("reader"), 0, 10, 10*time.Second), 2)
		})
	}
}

// TestDeadLetterCopyOfAnOlderVersion replays a dead-letter record as
// versions before prior attempts wrote it (a copy without them:
// record.TestMessageLayoutWithoutPriorAttempts pins that layout): the copy
// is read, and its deliveries count from 1, as those versions counted.
func TestDeadLetterCopyOfAnOlderVersion(t *testing.T) {
	h := newHarness(t, nil)
	h.send("t", 0, msg("t", "old", ""))
	got := h.pop("g", "t", 0, 1, time.Minute)
	if len(got) != 1 {
		t.Fatalf("popped %+v", got)
	}
	hd, _ := domain.ParseReceiptHandle(got[0].ReceiptHandle)
	e := h.e
	e.mu.Lock()
	dlq, err := e.dlqTopicLocked("g")
	if err == nil {
		cp := record.Message{Message: msg(dlq.Name, "old", ""), StoredAt: h.clock.Now(), DeadLetter: &domain.DeadLetterOrigin{Topic: "t", MessageID: "old"}}
		rec := record.DeadLetter{Group: "g", Topic: "t", QueueID: 0, Offset: 0, Receipt: hd.StartOffset,
			Copy: record.Batch{Topic: dlq.Name, QueueOffset: e.queueLocked(dlq.Name, 0).count, Messages: []record.Message{cp}}}
		_, _, err = e.appendApplyLocked(record.TypeDeadLetter, func(dst []byte) []byte {
			p, _ := record.AppendDeadLetter(dst, &rec)
			return p
		}, true)
	}
	e.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	h.crashRestart(true)
	for attempt := int32(1); attempt <= 2; attempt++ {
		d := h.pop("reader", dlq.Name, 0, 10, 10*time.Second)
		if len(d) != 1 || d[0].ID != "old" || d[0].DeliveryAttempt != attempt {
			t.Fatalf("delivery %d from the DLQ: %+v", attempt, d)
		}
		h.fake().Advance(10 * time.Second)
	}
}

// TestFIFODeadLetterCopyCountsTheMessagesOwnAttempts: a RocketMQ broker's
// orderly pop counts a FIFO message's deliveries apart from the message,
// whose stored reconsume times stay what they were; its dead-letter copy
// takes those plus one. So the copy of an orderly group's message comes
// with attempt 2 (for a message sent fresh), whether the reviver moved it
// after it used both attempts of its group or its consumer forwarded it
// at attempt 2, and a dead-letter copy read and forwarded by an orderly
// group counts on from its own prior attempts.
func TestFIFODeadLetterCopyCountsTheMessagesOwnAttempts(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 2, true)
	h.send("f", 0, fifoMsg("f", "exhausted", "A"), fifoMsg("f", "forwarded", "B"))
	for attempt := int32(1); attempt <= 2; attempt++ {
		got := h.popFIFOMode("g", "f", 10, 10*time.Second, false)
		if len(got) != 2 {
			t.Fatalf("attempt %d: %+v", attempt, got)
		}
		for _, m := range got {
			if m.DeliveryAttempt != attempt {
				t.Fatalf("%s at attempt %d, want %d", m.ID, m.DeliveryAttempt, attempt)
			}
			if attempt == 2 && m.ID == "forwarded" {
				if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("g", m)); err != nil {
					t.Fatal(err)
				}
			}
		}
		h.fake().Advance(10 * time.Second)
	}
	h.revive() // moves "exhausted", which used both attempts
	h.settle(h.e.clog.NextOffset())
	dlq := domain.DeadLetterTopic("g")
	first := h.pop("reader", dlq, 0, 10, 10*time.Second)
	if len(first) != 2 {
		t.Fatalf("DLQ holds %+v, want both messages", first)
	}
	for _, m := range first {
		if m.DeliveryAttempt != 2 {
			t.Errorf("dead-letter copy of %s comes with attempt %d, want 2 (the broker's reconsume times 0 + 1, + 1)", m.ID, m.DeliveryAttempt)
		}
	}
	// An orderly group reading the dead-letter queue forwards a copy at
	// its second delivery: the copy of the copy counts on from 1.
	h.createGroup("fifo-reader", 5, true)
	var fw []domain.StoredMessage
	for range 2 {
		fw = h.popFIFOMode("fifo-reader", dlq, 10, 10*time.Second, false)
		h.fake().Advance(10 * time.Second)
	}
	if len(fw) == 0 {
		t.Fatal("the orderly reader got nothing from the DLQ")
	}
	if err := h.e.ForwardToDeadLetter(t.Context(), ackReq("fifo-reader", fw[0])); err != nil {
		t.Fatal(err)
	}
	h.settle(h.e.clog.NextOffset())
	if cc := h.pop("reader2", domain.DeadLetterTopic("fifo-reader"), 0, 10, 10*time.Second); len(cc) != 1 || cc[0].DeliveryAttempt != 3 {
		t.Fatalf("copy of a copy: %+v, want one at attempt 3", cc)
	}
}
