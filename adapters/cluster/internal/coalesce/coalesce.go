// Package coalesce merges concurrent requests bound for one destination
// like a group commit: a few requests are in flight at once, each sent as
// soon as it comes; what arrives while all are in flight waits, and when
// one returns, everything that waited by then goes in the next request.
// Nothing waits while the destination is not that busy, so a lone item
// costs what it would without the line; under load the destination gets
// fewer, larger requests. The cluster adapter coalesces acks and sends to
// each broker this way.
package coalesce

import (
	"context"
	"maps"
	"slices"
	"sync"
)

// Limits bounds a Line: how many requests are in flight at once and what
// one request may carry.
type Limits[T any] struct {
	// Flights is the number of requests in flight at once (at least 1).
	Flights int
	// MaxItems bounds the items of one request (at least 1).
	MaxItems int
	// MaxWeight bounds the summed Weight of one request's items; 0 means
	// no bound. An item heavier than MaxWeight still goes, alone.
	MaxWeight int
	// Weight weighs an item against MaxWeight (e.g. its bytes).
	Weight func(T) int
}

// Flush sends one request carrying items and returns one result per item,
// in order. It is called by one of the callers of Do whose items it
// carries; it owns no item after it returns. A request carries the items
// of several callers, so Flush bounds its own time rather than follow the
// calling caller's context (see context.WithoutCancel).
type Flush[T, R any] func(items []T) []R

// Line coalesces the requests of one destination. The zero Line is not
// usable: make one with New.
type Line[T, R any] struct {
	limits   Limits[T]
	mu       sync.Mutex
	inFlight int
	waiting  []*waiter[T, R]
}

// waiter is one item on its way through a Line.
type waiter[T, R any] struct {
	item T
	done chan R               // its result (buffered: whoever sends it never waits)
	lead chan []*waiter[T, R] // a batch it is to send, itself included (buffered)
}

// New returns an idle Line bounded by limits.
func New[T, R any](limits Limits[T]) *Line[T, R] {
	limits.Flights = max(limits.Flights, 1)
	limits.MaxItems = max(limits.MaxItems, 1)
	return &Line[T, R]{limits: limits}
}

// Do sends item in a request of its own at once when fewer than Flights
// requests are in flight; otherwise it waits and goes with the items that
// wait beside it. flush sends a request (the flush of whichever caller
// sends it is used: give every caller of a Line the same one). An item
// whose caller gives up (ctx) while it waits is dropped, never sent, and
// Do returns ctx's error; once it is in a request, Do returns its result
// even if ctx ends meanwhile.
func (l *Line[T, R]) Do(ctx context.Context, item T, flush Flush[T, R]) (R, error) {
	w := &waiter[T, R]{item: item, done: make(chan R, 1), lead: make(chan []*waiter[T, R], 1)}
	l.mu.Lock()
	if l.inFlight < l.limits.Flights {
		l.inFlight++
		l.mu.Unlock()
		l.send(flush, []*waiter[T, R]{w})
		return <-w.done, nil
	}
	l.waiting = append(l.waiting, w)
	l.mu.Unlock()
	if r, ok := l.await(flush, w, ctx.Done()); ok {
		return r, nil
	}
	l.mu.Lock()
	if i := slices.Index(l.waiting, w); i >= 0 {
		l.waiting = slices.Delete(l.waiting, i, i+1)
		l.mu.Unlock()
		var zero R
		return zero, ctx.Err()
	}
	l.mu.Unlock()
	// Taken into a request already, or given one to send: see it through.
	r, _ := l.await(flush, w, nil)
	return r, nil
}

// State reports the requests in flight and the items waiting.
func (l *Line[T, R]) State() (inFlight, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight, len(l.waiting)
}

// await waits for w's result, sending the batch w is given to send if it
// comes first, or until giveUp is closed (then ok is false).
func (l *Line[T, R]) await(flush Flush[T, R], w *waiter[T, R], giveUp <-chan struct{}) (r R, ok bool) {
	select {
	case r := <-w.done:
		return r, true
	case batch := <-w.lead:
		l.send(flush, batch)
		return <-w.done, true
	case <-giveUp:
		return r, false
	}
}

// send sends one request for batch, gives each waiter its result, and
// then hands the flight to the items that waited meanwhile (the first of
// them sends the next request) or ends it.
func (l *Line[T, R]) send(flush Flush[T, R], batch []*waiter[T, R]) {
	items := make([]T, len(batch))
	for i, w := range batch {
		items[i] = w.item
	}
	results := flush(items)
	for i, w := range batch {
		w.done <- results[i]
	}
	l.mu.Lock()
	if len(l.waiting) == 0 {
		l.inFlight--
		l.mu.Unlock()
		return
	}
	n := l.take()
	next := slices.Clone(l.waiting[:n])
	l.waiting = slices.Delete(l.waiting, 0, n)
	l.mu.Unlock()
	next[0].lead <- next
}

// take returns how many of the waiting items (at least one) the next
// request carries. Called with l.mu held.
func (l *Line[T, R]) take() int {
	n := min(len(l.waiting), l.limits.MaxItems)
	if l.limits.MaxWeight <= 0 || l.limits.Weight == nil {
		return n
	}
	weight := 0
	for i := range n {
		weight += l.limits.Weight(l.waiting[i].item)
		if weight > l.limits.MaxWeight && i > 0 {
			return i
		}
	}
	return n
}

// Lines holds the Line of every destination items went to, made on first
// use with the same limits.
type Lines[K comparable, T, R any] struct {
	Limits Limits[T]
	mu     sync.Mutex
	lines  map[K]*Line[T, R]
}

// Line returns the Line of key.
func (s *Lines[K, T, R]) Line(key K) *Line[T, R] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = map[K]*Line[T, R]{}
	}
	line := s.lines[key]
	if line == nil {
		line = New[T, R](s.Limits)
		s.lines[key] = line
	}
	return line
}

// Prune forgets the lines with nothing in flight nor waiting (a later item
// of their key gets a new one) and returns how many it forgot, so that the
// lines of destinations gone (a deleted topic, a broker taken out) do not
// pile up. A caller that took such a line before still completes on it,
// only without sharing requests with the callers of the new one.
func (s *Lines[K, T, R]) Prune() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.lines)
	maps.DeleteFunc(s.lines, func(_ K, l *Line[T, R]) bool {
		inFlight, waiting := l.State()
		return inFlight == 0 && waiting == 0
	})
	return n - len(s.lines)
}

// Len returns the number of lines held.
func (s *Lines[K, T, R]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}
