package admin

import (
	"fmt"
	"testing"
	"time"
)

// TestNonceMemoryBounded: the memory never holds more than its limit;
// when full it refuses new nonces (saying when the oldest expires) and
// keeps refusing a remembered one; a nonce is forgotten only once its
// date-time is out of the window, and then room is made.
func TestNonceMemoryBounded(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := base
	m := newNonceMemory(3, 5*time.Minute, func() time.Time { return now })
	for i := range 3 {
		// Signed 1, 2 and 3 minutes ago: they expire in 4, 3 and 2 min.
		if o, _ := m.use(fmt.Sprint("n", i), base.Add(-time.Duration(i+1)*time.Minute)); o != nonceAccepted {
			t.Fatalf("n%d: %v", i, o)
		}
	}
	o, retry := m.use("n3", base)
	if o != nonceFull || retry != 2*time.Minute+time.Second {
		t.Fatalf("full: %v, retry %v; want nonceFull, 2m1s (the oldest expires in 2 min)", o, retry)
	}
	if o, _ := m.use("n2", base.Add(-3*time.Minute)); o != nonceReplayed {
		t.Fatalf("a remembered nonce while full: %v", o)
	}
	if m.size() != 3 {
		t.Fatalf("size %d", m.size())
	}
	// At the end of n2's window it is still remembered; just after, it
	// is forgotten (and its date-time refused), and there is room.
	now = base.Add(2 * time.Minute)
	if o, _ := m.use("n2", base.Add(-3*time.Minute)); o != nonceReplayed {
		t.Fatalf("n2 at the end of its window: %v", o)
	}
	now = now.Add(time.Nanosecond)
	if o, _ := m.use("n2", base.Add(-3*time.Minute)); o != nonceStale {
		t.Fatalf("n2 after its window: %v", o)
	}
	if o, _ := m.use("n3", now); o != nonceAccepted || m.size() != 3 {
		t.Fatalf("n3 once n2 expired: %v, size %d", o, m.size())
	}
	// Much later everything has expired.
	now = now.Add(time.Hour)
	if o, _ := m.use("n4", now); o != nonceAccepted || m.size() != 1 {
		t.Fatalf("an hour later: %v, size %d", o, m.size())
	}
}

// TestNonceMemoryClockSteppedBack: a forgotten nonce is not accepted again
// when the wall clock steps back (the memory keeps the latest reading), and
// a call read by a concurrent request at an earlier time cannot slip in
// after the nonce was forgotten.
func TestNonceMemoryClockSteppedBack(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := base
	m := newNonceMemory(10, 5*time.Minute, func() time.Time { return now })
	if o, _ := m.use("n", base); o != nonceAccepted {
		t.Fatal(o)
	}
	now = base.Add(6 * time.Minute) // n forgotten
	if o, _ := m.use("other", now); o != nonceAccepted || m.size() != 1 {
		t.Fatalf("%v, size %d", o, m.size())
	}
	now = base.Add(time.Minute) // the clock steps back
	if o, _ := m.use("n", base); o != nonceStale {
		t.Fatalf("a forgotten nonce after the clock stepped back: %v", o)
	}
}

// BenchmarkNonceMemory measures an accepted nonce (and, with -benchmem,
// what remembering one costs).
func BenchmarkNonceMemory(b *testing.B) {
	now := time.Now()
	m := newNonceMemory(b.N+1, 5*time.Minute, func() time.Time { return now })
	nonces := make([]string, b.N)
	for i := range nonces {
		nonces[i] = newNonce()
	}
	b.ResetTimer()
	for i := range b.N {
		if o, _ := m.use(nonces[i], now); o != nonceAccepted {
			b.Fatal(o)
		}
	}
}
