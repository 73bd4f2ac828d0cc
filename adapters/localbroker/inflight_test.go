package localbroker

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestInflightBoundPerQueue: a consumer group that holds
// local.maxInflightPerQueue deliveries of a queue unacked gets no new
// messages from it (each delivery costs memory and snapshot space, and a
// consumer that never acks would otherwise grow them without end) until an
// ack, or an invisible time that runs out, makes room; messages visible
// again are delivered at the bound, other groups are not held back, and a
// warning names the group, topic, queue and setting.
func TestInflightBoundPerQueue(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxInflightPerQueue = 3 })
	for i := range 10 {
		h.send("t", 0, msg("t", fmt.Sprint(i), ""))
	}
	first := h.pop("g", "t", 0, 10, 30*time.Second)
	if len(first) != 3 {
		t.Fatalf("first pop delivered %d messages, want the bound's 3", len(first))
	}
	if again := h.pop("g", "t", 0, 10, 30*time.Second); len(again) != 0 {
		t.Fatalf("a pop at the bound delivered %d messages", len(again))
	}
	if !h.warns.contains("local.maxInflightPerQueue", "group=g", "topic=t", "queue=0") {
		t.Fatalf("no warning names the setting, group, topic and queue: %q", h.warns.lines)
	}
	if other := h.pop("other", "t", 0, 10, 30*time.Second); len(other) != 3 {
		t.Fatalf("another group got %d messages, want its own 3", len(other))
	}
	// An ack makes room for one.
	h.ack("g", first[0])
	if next := h.pop("g", "t", 0, 10, 30*time.Second); len(next) != 1 || next[0].ID != "3" {
		t.Fatalf("after one ack the pop delivered %v, want message 3", ids(next))
	}
	// Invisible times that run out make the held messages visible again:
	// they are delivered again (the bound counts them already), nothing new.
	h.fake().Advance(time.Minute)
	again := h.pop("g", "t", 0, 10, 30*time.Second)
	if got := strings.Join(ids(again), ","); got != "1,2,3" {
		t.Fatalf("after the invisible time the pop delivered %q, want 1,2,3 again", got)
	}
	// Acking everything lets the rest through; replay agrees.
	for _, m := range again {
		h.ack("g", m)
	}
	var rest []string
	for len(rest) < 6 {
		ms := h.pop("g", "t", 0, 10, 30*time.Second)
		if len(ms) == 0 {
			t.Fatalf("only %v of the last 6 delivered", rest)
		}
		for _, m := range ms {
			rest = append(rest, m.ID)
			h.ack("g", m)
		}
	}
	if got := strings.Join(rest, ","); got != "4,5,6,7,8,9" {
		t.Fatalf("the rest came as %q", got)
	}
	h.requireReplaysMatch()
}
