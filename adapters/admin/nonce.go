package admin

import (
	"container/heap"
	"sync"
	"time"
)

// maxAdminNonces bounds the nonces the admin API remembers: that many
// signed calls within the acceptance window (about 5 to 10 minutes), over
// 160 calls a second, far beyond what the CLI makes. An entry costs about
// 150 bytes, so the memory stays under 16 MiB.
const maxAdminNonces = 100_000

// nonceOutcome is what [nonceMemory.use] decided.
type nonceOutcome int

const (
	nonceAccepted nonceOutcome = iota
	nonceReplayed              // already used within the window
	nonceStale                 // the date-time is no longer accepted
	nonceFull                  // no room: the call is refused, nothing is forgotten
)

// nonceMemory remembers the nonce of every accepted admin call until the
// date-time check alone refuses the call (its signed date-time plus the
// window), so that a captured call cannot be made again while its
// date-time is still accepted. It holds at most limit nonces; when full it
// refuses new calls until the oldest expires rather than forget one early.
// It is per process: another proxy instance does not see its nonces.
type nonceMemory struct {
	window time.Duration
	limit  int
	now    func() time.Time

	mu     sync.Mutex
	latest time.Time            // the latest clock reading, so that a clock stepped back does not revive a forgotten nonce
	seen   map[string]time.Time // nonce → expiry
	order  nonceHeap            // the same entries, soonest expiry first
}

func newNonceMemory(limit int, window time.Duration, now func() time.Time) *nonceMemory {
	return &nonceMemory{window: window, limit: limit, now: now, seen: map[string]time.Time{}}
}

// use records nonce for a call signed at signedAt. It reads the clock
// under the lock and refuses a call whose date-time has expired by then,
// so that a nonce forgotten by a concurrent call (whose clock reading was
// later) cannot be used again. With nonceFull, retry is how long until the
// oldest nonce expires.
func (m *nonceMemory) use(nonce string, signedAt time.Time) (outcome nonceOutcome, retry time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Before(m.latest) {
		now = m.latest
	}
	m.latest = now
	for len(m.order) > 0 && m.order[0].expiry.Before(now) {
		delete(m.seen, heap.Pop(&m.order).(nonceEntry).nonce)
	}
	expiry := signedAt.Add(m.window)
	if expiry.Before(now) {
		return nonceStale, 0
	}
	if _, ok := m.seen[nonce]; ok {
		return nonceReplayed, 0
	}
	if len(m.seen) >= m.limit {
		return nonceFull, m.order[0].expiry.Sub(now) + time.Second
	}
	m.seen[nonce] = expiry
	heap.Push(&m.order, nonceEntry{nonce: nonce, expiry: expiry})
	return nonceAccepted, 0
}

// size returns how many nonces are remembered.
func (m *nonceMemory) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

type nonceEntry struct {
	nonce  string
	expiry time.Time
}

// nonceHeap is a min-heap of entries by expiry (container/heap).
type nonceHeap []nonceEntry

func (h nonceHeap) Len() int           { return len(h) }
func (h nonceHeap) Less(i, j int) bool { return h[i].expiry.Before(h[j].expiry) }
func (h nonceHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nonceHeap) Push(x any)        { *h = append(*h, x.(nonceEntry)) }
func (h *nonceHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nonceEntry{}
	*h = old[:len(old)-1]
	return e
}
