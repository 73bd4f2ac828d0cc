package coalesce

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// recorder is a Flush that records its requests and, while hold is open,
// keeps them in flight.
type recorder struct {
	hold     chan struct{}
	mu       sync.Mutex
	requests [][]int
}

func (r *recorder) flush(items, out []int) {
	if r.hold != nil {
		<-r.hold
	}
	r.mu.Lock()
	r.requests = append(r.requests, slices.Clone(items))
	r.mu.Unlock()
	for i, v := range items {
		out[i] = -v
	}
}

// waitState waits until l has inFlight requests in flight and waiting
// items waiting.
func waitState(t *testing.T, l *Line[int, int], inFlight, waiting int) {
	t.Helper()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error { // the line has no notification of its state
		if f, w := l.State(); f != inFlight || w != waiting {
			return fmt.Errorf("%d in flight and %d waiting, want %d and %d", f, w, inFlight, waiting)
		}
		return nil
	})
}

// TestWaitingItemsShareARequest: items beyond the flights wait and go in
// one request once a flight returns, bounded by MaxItems and MaxWeight;
// each caller gets its own result; a caller that gives up while waiting
// is not sent.
func TestWaitingItemsShareARequest(t *testing.T) {
	r := &recorder{hold: make(chan struct{})}
	l := New[int, int](Limits[int]{Flights: 2, MaxItems: 4, MaxWeight: 300, Weight: func(v int) int { return v }})
	type result struct{ in, out int }
	results := make(chan result, 20)
	do := func(ctx context.Context, v int) {
		out, err := l.Do(ctx, v, r.flush)
		if err != nil {
			t.Errorf("item %d: %v", v, err)
		}
		results <- result{v, out}
	}
	go do(t.Context(), 1)
	go do(t.Context(), 2)
	waitState(t, l, 2, 0)
	// Six more: 10, 20, 30, 40 fit one request by count; 250 and 60 do
	// not fit beside them by weight (250 > 300 - 100).
	for i, v := range []int{10, 20, 30, 40, 250, 60} {
		go do(t.Context(), v)
		waitState(t, l, 2, i+1)
	}
	gaveUp, cancel := context.WithCancel(t.Context())
	gone := make(chan error, 1)
	go func() { _, err := l.Do(gaveUp, 99, r.flush); gone <- err }()
	waitState(t, l, 2, 7)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the item given up on: %v", err)
	}
	waitState(t, l, 2, 6)
	close(r.hold)
	for range 8 {
		if res := <-results; res.out != -res.in {
			t.Fatalf("item %d got %d", res.in, res.out)
		}
	}
	waitState(t, l, 0, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	var batches [][]int
	for _, req := range r.requests {
		if len(req) > 1 {
			batches = append(batches, req)
		}
	}
	// The two flights' returns take {10,20,30,40} and then {250} or
	// {250,60} (whichever returns second finds 60 still waiting or sent).
	if len(batches) == 0 || !slices.Equal(batches[0], []int{10, 20, 30, 40}) {
		t.Fatalf("requests %v, want the first coalesced one to be [10 20 30 40]", r.requests)
	}
	for _, req := range r.requests {
		sum := 0
		for _, v := range req {
			sum += v
		}
		if len(req) > 1 && sum > 300 {
			t.Fatalf("request %v weighs %d, more than 300", req, sum)
		}
		if slices.Contains(req, 99) {
			t.Fatalf("the item given up on was sent: %v", r.requests)
		}
	}
}

// TestEveryItemGetsItsResult: many concurrent callers, each gets the
// result of its own item, and the line ends idle.
func TestEveryItemGetsItsResult(t *testing.T) {
	r := &recorder{}
	l := New[int, int](Limits[int]{Flights: 3, MaxItems: 8})
	var wg sync.WaitGroup
	for i := 1; i <= 2000; i++ {
		wg.Go(func() {
			if out, err := l.Do(t.Context(), i, r.flush); err != nil || out != -i {
				t.Errorf("item %d: %d, %v", i, out, err)
			}
		})
	}
	wg.Wait()
	if f, w := l.State(); f != 0 || w != 0 {
		t.Fatalf("%d in flight and %d waiting after all returned", f, w)
	}
	n := 0
	for _, req := range r.requests {
		n += len(req)
		if len(req) > 8 {
			t.Fatalf("a request of %d items, more than MaxItems", len(req))
		}
	}
	if n != 2000 {
		t.Fatalf("%d items sent, want 2000 (each once)", n)
	}
}

// TestLinesKeepOneLinePerKey: Lines makes a line per key, once.
func TestLinesKeepOneLinePerKey(t *testing.T) {
	var s Lines[string, int, int]
	if s.Line("a") != s.Line("a") || s.Line("a") == s.Line("b") || s.Len() != 2 {
		t.Fatal("want one line per key")
	}
}

// TestPruneForgetsIdleLines: Prune drops the lines with nothing in flight
// or waiting, keeps a busy one, and a pruned key gets a new line.
func TestPruneForgetsIdleLines(t *testing.T) {
	s := Lines[string, int, int]{Limits: Limits[int]{Flights: 1, MaxItems: 8}}
	idle := s.Line("idle")
	busy := s.Line("busy")
	r := &recorder{hold: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = busy.Do(t.Context(), 1, r.flush) // held in flight until released
	}()
	waitState(t, busy, 1, 0)
	if n := s.Prune(); n != 1 || s.Len() != 1 {
		t.Fatalf("Prune forgot %d lines, %d left; want 1 forgotten (the idle one), 1 left", n, s.Len())
	}
	if s.Line("busy") != busy {
		t.Fatal("the busy line was replaced")
	}
	if s.Line("idle") == idle {
		t.Fatal("the idle line was kept")
	}
	close(r.hold)
	<-done
	if n := s.Prune(); n != 2 || s.Len() != 0 {
		t.Fatalf("Prune forgot %d lines, %d left; want 2 and 0", n, s.Len())
	}
}

// TestUncontendedDoAllocatesNothing: an item that finds a free flight
// goes at once, with nothing allocated for it: no waiter, no channel, and
// its one-item request and result in room the line reuses (cleared after:
// the next flush sees a zero result). A waiting item's waiter and channel
// are reused (see TestWaitingItemsShareARequest for their behaviour).
func TestUncontendedDoAllocatesNothing(t *testing.T) {
	l := New[int, int](Limits[int]{Flights: 1, MaxItems: 8})
	flush := func(items, out []int) {
		if len(items) != 1 || len(out) != 1 || out[0] != 0 {
			t.Errorf("flush got %v and results %v", items, out)
		}
		out[0] = -items[0]
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		if r, err := l.Do(ctx, 7, flush); err != nil || r != -7 {
			t.Fatalf("Do = %d, %v; want -7", r, err)
		}
	})
	if allocs > 0 {
		t.Errorf("an uncontended Do allocates %.0f objects, want none", allocs)
	}
}
