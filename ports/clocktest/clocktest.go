// Package clocktest provides a ports.Clock for tests: it stands still
// until the test moves it, so that expiries, invisible times and reuse
// windows can be crossed without waiting.
package clocktest

import (
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/ports"
)

// Clock is a ports.Clock that moves only when told; it is safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

var _ ports.Clock = (*Clock)(nil)

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
