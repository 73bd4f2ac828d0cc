package localbroker

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkListGroupsLockHeld: listing 50,000 groups (every scrape of the
// consumer gauges does, and every `rmqproxy group describe` and `group
// update`), with a goroutine beside it taking the engine's lock as a send
// would: lock-held-max-µs is the longest it found the lock held.
func BenchmarkListGroupsLockHeld(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.Flush = "async"; c.SegmentSize = 64 << 20 })
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for g := w; g < 50000; g += 8 {
				h.createGroup(fmt.Sprint("group-", g), 16, false)
			}
		})
	}
	wg.Wait()
	done := make(chan struct{})
	var held time.Duration
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if h.e.mu.TryLock() {
				h.e.mu.Unlock()
				continue
			}
			start := time.Now()
			h.e.mu.Lock()
			h.e.mu.Unlock()
			held = max(held, time.Since(start))
		}
	})
	b.ResetTimer()
	for range b.N {
		if gs, err := h.e.ListGroups(b.Context()); err != nil || len(gs) != 50000 {
			b.Fatalf("%d groups, %v", len(gs), err)
		}
	}
	b.StopTimer()
	close(done)
	wg.Wait()
	b.ReportMetric(float64(held.Microseconds()), "lock-held-max-µs")
}
