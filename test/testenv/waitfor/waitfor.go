// Package waitfor waits, in tests, for a condition to hold: it polls the
// condition until it holds or a deadline passes, so that no test sleeps a
// fixed time to let something happen, and none waits forever.
package waitfor

import (
	"errors"
	"testing"
	"time"
)

// Condition polls cond every poll until it returns nil; when within passes
// first, it fails t with cond's last error.
func Condition(t testing.TB, within, poll time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(within, poll, cond); err != nil {
		t.Fatal(err)
	}
}

// True is Condition for a boolean condition; what names what is awaited,
// for the failure message.
func True(t testing.TB, within, poll time.Duration, what string, cond func() bool) {
	t.Helper()
	Condition(t, within, poll, func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	})
}

// Poll polls cond every poll until it returns nil (then Poll returns nil)
// or within passes (then Poll returns an error naming the wait and cond's
// last error).
func Poll(within, poll time.Duration, cond func() error) error {
	tick, deadline := time.NewTicker(poll), time.After(within)
	defer tick.Stop()
	for err := cond(); err != nil; err = cond() {
		select {
		case <-deadline:
			return &TimeoutError{Within: within, Last: err}
		case <-tick.C:
		}
	}
	return nil
}

// TimeoutError says that a condition did not hold within a time.
type TimeoutError struct {
	Within time.Duration
	Last   error // the condition's last answer
}

func (e *TimeoutError) Error() string {
	return "not within " + e.Within.String() + ": " + e.Last.Error()
}

func (e *TimeoutError) Unwrap() error { return e.Last }
