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

// Flush sends one request carrying items and sets each item's result in
// results (as long as items, zero when called), in order. It is called by
// one of the callers of Do whose items it carries; it owns neither slice
// after it returns (the Line reuses them). A request carries the items of
// several callers, so Flush bounds its own time rather than follow the
// calling caller's context (see context.WithoutCancel).
type Flush[T, R any] func(items []T, results []R)

// Line coalesces the requests of one destination. The zero Line is not
// usable: make one with New.
type Line[T, R any] struct {
	limits   Limits[T]
	mu       sync.Mutex
	inFlight int
	waiting  []*waiter[T, R]
	waiters  sync.Pool // of *waiter[T, R], each with its channel
	ones     sync.Pool // of *one[T, R]: a lone item's request
}

// one holds the item and result of a request of one item, so that a lone
// item's request allocates neither slice.
type one[T, R any] struct {
	items   [1]T
	results [1]R
}

// waiter is an item that waits in a Line. Whoever takes it out of
// waiting sends it exactly one signal: its result (it was carried by
// another's request) or a batch to send (itself first), whose result it
// takes from its own flush. Once it has its signal, or has taken itself
// out of waiting, nothing else refers to it, and it goes back to the pool
// (the channel, buffered and empty again, with it).
type waiter[T, R any] struct {
	item T
	ch   chan signal[T, R]
}

// signal is what a waiter is sent: a batch to send, or else its result.
type signal[T, R any] struct {
	lead   []*waiter[T, R]
	result R
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
	l.mu.Lock()
	if l.inFlight < l.limits.Flights {
		l.inFlight++
		l.mu.Unlock()
		// Nothing to wait for: no waiter, no channel.
		o, _ := l.ones.Get().(*one[T, R])
		if o == nil {
			o = new(one[T, R])
		}
		o.items[0] = item
		flush(o.items[:], o.results[:])
		r := o.results[0]
		*o = one[T, R]{} // hold on to no caller's item or result
		l.ones.Put(o)
		l.handOff()
		return r, nil
	}
	w, _ := l.waiters.Get().(*waiter[T, R])
	if w == nil {
		w = &waiter[T, R]{ch: make(chan signal[T, R], 1)}
	}
	w.item = item
	l.waiting = append(l.waiting, w)
	l.mu.Unlock()
	if r, ok := l.await(flush, w, ctx.Done()); ok {
		return r, nil
	}
	l.mu.Lock()
	if i := slices.Index(l.waiting, w); i >= 0 {
		l.waiting = slices.Delete(l.waiting, i, i+1)
		l.mu.Unlock()
		l.release(w)
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

// await waits for w's signal and returns w's result, sending the batch w
// is given to send first, or until giveUp is closed (then ok is false and
// w is still the caller's).
func (l *Line[T, R]) await(flush Flush[T, R], w *waiter[T, R], giveUp <-chan struct{}) (r R, ok bool) {
	var sig signal[T, R]
	select {
	case sig = <-w.ch:
	case <-giveUp:
		return r, false
	}
	if sig.lead == nil {
		r = sig.result
	} else {
		r = l.send(flush, sig.lead)
	}
	l.release(w)
	return r, true
}

// release puts w, done with, back in the pool.
func (l *Line[T, R]) release(w *waiter[T, R]) {
	var zero T
	w.item = zero // hold on to no caller's item
	l.waiters.Put(w)
}

// send sends one request for batch, whose first waiter is the caller's
// own, gives each other waiter its result and returns the first's; then
// it hands the flight on (see handOff).
func (l *Line[T, R]) send(flush Flush[T, R], batch []*waiter[T, R]) R {
	items := make([]T, len(batch))
	for i, w := range batch {
		items[i] = w.item
	}
	results := make([]R, len(batch))
	flush(items, results)
	for i, w := range batch[1:] {
		w.ch <- signal[T, R]{result: results[i+1]} // w is not to be touched after this
	}
	l.handOff()
	return results[0]
}

// handOff ends a request: it hands the flight to the items that waited
// meanwhile (the first of them sends the next request) or ends it.
func (l *Line[T, R]) handOff() {
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
	next[0].ch <- signal[T, R]{lead: next}
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
