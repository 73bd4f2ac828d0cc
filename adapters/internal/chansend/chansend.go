// Package chansend puts a value into a bounded channel, waiting a bounded
// time for room: what the audit sinks do for an event whose action must not
// happen without it.
package chansend

import (
	"context"
	"time"
)

// Within sends v on ch, waiting up to wait, or until ctx ends, for room,
// and reports whether it was sent. A channel with room takes v at once,
// without a timer.
func Within[T any](ctx context.Context, ch chan<- T, v T, wait time.Duration) bool {
	select {
	case ch <- v:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case ch <- v:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
