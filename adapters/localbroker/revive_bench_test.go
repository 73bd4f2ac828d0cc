package localbroker

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// BenchmarkReviveMany measures one reviver pass that makes 100,000
// deliveries of one queue visible again, popped (in batches of 32) with
// invisible times that differ, so that their deadlines do not follow their
// offsets: as after a downtime longer than the invisible times, when the
// start revives every delivery in flight at once, under the engine lock.
func BenchmarkReviveMany(b *testing.B) {
	const n = 100_000
	for range b.N {
		b.StopTimer()
		h := newHarness(b, func(c *Config) {
			c.SegmentSize = 256 << 20
			c.MaxRecordSize = 4 << 20
			c.Flush = "async"
		})
		e := h.e
		for i := 0; i < n; i += 1000 {
			batch := make([]domain.Message, 0, 1000)
			for j := range 1000 {
				batch = append(batch, msg("t", fmt.Sprint(i+j), ""))
			}
			h.send("t", 0, batch...)
		}
		for i, got := 0, 0; got < n; i++ {
			got += len(h.pop("g", "t", 0, 32, 30*time.Minute+time.Duration(i*7919%3600)*time.Second))
		}
		h.fake().Advance(2 * time.Hour)
		b.StartTimer()
		h.revive()
		b.StopTimer()
		e.mu.Lock()
		visible := len(e.cons[consKey{"g", "t", 0}].visible)
		e.mu.Unlock()
		if visible != n {
			b.Fatalf("%d visible after the pass, want %d", visible, n)
		}
		if err := e.Close(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReviveAllMatchesOneByOne: reviving deliveries together leaves the
// visible indexes as reviving them one at a time does, whatever their
// order and whatever was visible before.
func TestReviveAllMatchesOneByOne(t *testing.T) {
	build := func() (*consState, []*delivery) {
		var dl deadlineHeap
		c := newConsState(consKey{"g", "t", 0}, &dl)
		var due []*delivery
		for off := range int64(200) {
			st := deliveryState{attempt: 1, receipt: off + 1, deadline: (off * 7919) % 97}
			if off%3 == 0 {
				st.msgGroup = fmt.Sprint("mg", off%5)
			}
			if off%11 == 0 {
				st.visible = true
			}
			d := c.set(off, st)
			if !st.visible {
				due = append(due, d)
			}
		}
		// Deadline order, as the heap hands them out.
		slices.SortStableFunc(due, func(a, b *delivery) int { return cmp.Compare(a.deadline, b.deadline) })
		return c, due
	}
	one, due1 := build()
	for _, d := range due1 {
		one.dl.remove(d)
		one.revive(d)
	}
	all, due2 := build()
	for _, d := range due2 {
		all.dl.remove(d)
	}
	all.reviveAll(due2)
	if !slices.Equal(one.visible, all.visible) || !slices.Equal(one.free, all.free) || one.passed != all.passed ||
		len(one.busy) != len(all.busy) || len(one.grouped) != len(all.grouped) {
		t.Fatalf("together: visible %v free %v busy %v, one by one: visible %v free %v busy %v",
			all.visible, all.free, all.busy, one.visible, one.free, one.busy)
	}
	for g, offs := range one.grouped {
		if !slices.Equal(offs, all.grouped[g]) {
			t.Fatalf("group %s: together %v, one by one %v", g, all.grouped[g], offs)
		}
	}
	if got := mergeSorted([]int64{1, 3, 5}, []int64{2, 3, 6}); !slices.Equal(got, []int64{1, 2, 3, 5, 6}) {
		t.Fatalf("mergeSorted = %v", got)
	}
}
