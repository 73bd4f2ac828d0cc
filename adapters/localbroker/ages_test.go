package localbroker

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// TestGroupAgesFollowTheOldestMessages: the ages behind
// rocketmq_consumer_lag_latency (the oldest message not consumed) and
// rocketmq_consumer_queueing_latency (the oldest never delivered) follow
// receives, an in-flight message held past a later one, acks and a
// redelivery, which keeps its offset and so stays the oldest unconsumed
// message without being undelivered again.
func TestGroupAgesFollowTheOldestMessages(t *testing.T) {
	h := newHarness(t, nil)
	h.createGroup("g", 16, false)
	t0 := h.clock.Now().UnixMilli()
	h.send("t", 0, msg("t", "a", ""))
	h.fake().Advance(10 * time.Second)
	t1 := h.clock.Now().UnixMilli()
	h.send("t", 0, msg("t", "b", ""))
	h.fake().Advance(5 * time.Second)

	want := func(step string, unconsumed, undelivered int64) {
		t.Helper()
		ages, err := h.e.GroupAges(t.Context(), "g", []string{"t"})
		if err != nil {
			t.Fatal(err)
		}
		if len(ages) != 8 || ages[0].Topic != "t" || ages[0].QueueID != 0 {
			t.Fatalf("%s: ages %+v, want the 8 queues of t", step, ages)
		}
		for _, q := range ages[1:] {
			if q.OldestUnconsumed != 0 || q.OldestUndelivered != 0 {
				t.Errorf("%s: empty queue %d has ages %+v", step, q.QueueID, q)
			}
		}
		if ages[0].OldestUnconsumed != unconsumed || ages[0].OldestUndelivered != undelivered {
			t.Errorf("%s: oldest unconsumed %d, undelivered %d; want %d, %d", step, ages[0].OldestUnconsumed, ages[0].OldestUndelivered, unconsumed, undelivered)
		}
	}
	want("subscribed, never received", t0, t0)
	a := h.pop("g", "t", 0, 1, time.Minute)
	if len(a) != 1 || a[0].ID != "a" {
		t.Fatalf("pop %+v", a)
	}
	want("a held in flight", t0, t1)
	b := h.pop("g", "t", 0, 1, time.Minute)
	h.ack("g", b[0])
	want("b acked, a in flight", t0, 0)
	h.fake().Advance(time.Minute)
	want("a visible again", t0, 0)
	a = h.pop("g", "t", 0, 1, time.Minute)
	h.ack("g", a[0])
	want("all acked", 0, 0)
}

// TestStatsCountTopicsAndGroups: the basis of rocketmq_topic_number and
// rocketmq_consumer_group_number.
func TestStatsCountTopicsAndGroups(t *testing.T) {
	h := newHarness(t, nil)
	st := h.e.Stats()
	topics, groups := st.Topics, st.Groups
	h.send("t", 0, msg("t", "a", "")) // auto-created
	h.createGroup("g", 16, false)
	if st := h.e.Stats(); st.Topics != topics+1 || st.Groups != groups+1 {
		t.Fatalf("topics %d, groups %d; want %d, %d", st.Topics, st.Groups, topics+1, groups+1)
	}
	if err := h.e.DeleteTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if st := h.e.Stats(); st.Topics != topics {
		t.Fatalf("after the delete: topics %d, want %d", st.Topics, topics)
	}
}

// TestEarliestStoreTimeIsTheOldestMessageKept: the basis of
// rocketmq_storage_message_reserve_time is the store time of the oldest
// message still in a queue, and moves once retention removes it.
func TestEarliestStoreTimeIsTheOldestMessageKept(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SegmentSize = 8 << 10; c.MaxRecordSize = 2 << 10; c.Retention = time.Hour })
	h.clock = clocktest.New(time.Now()) // segment ages come from file times
	h.restart()
	if got := h.e.EarliestStoreTime(); got != 0 {
		t.Fatalf("no message: %d, want 0", got)
	}
	t0 := h.clock.Now().UnixMilli()
	for i := range 40 { // several segments, a second apart
		m := msg("t", fmt.Sprint(i), "")
		m.Body = bytes.Repeat([]byte{'x'}, 500)
		h.send("t", 0, m)
		h.fake().Advance(time.Second)
	}
	h.fake().Advance(time.Minute)
	h.send("u", 0, msg("u", "x", ""))
	for range 2 { // the second answer comes from the cache
		if got := h.e.EarliestStoreTime(); got != t0 {
			t.Fatalf("after sends: %d, want %d", got, t0)
		}
	}
	h.retire("t", "late")
	if h.e.clog.StartOffset() == 0 {
		t.Fatal("no segment deleted")
	}
	if got := h.e.EarliestStoreTime(); got <= t0 {
		t.Fatalf("after retention: %d, want later than %d", got, t0)
	}
}
