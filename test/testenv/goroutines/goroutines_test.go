package goroutines_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestStacksHasEveryGoroutine: the stacks list, each on its own, this
// test's goroutine and a goroutine it holds parked.
func TestStacksHasEveryGoroutine(t *testing.T) {
	release, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		parkedHere(release)
	}()
	defer func() { close(release); <-done }()
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		var self, parked bool
		for _, s := range goroutines.Stacks() {
			if !strings.HasPrefix(s, "goroutine ") {
				return fmt.Errorf("a stack that is not one goroutine's:\n%s", s)
			}
			self = self || strings.Contains(s, "goroutines_test.TestStacksHasEveryGoroutine(")
			parked = parked || strings.Contains(s, "goroutines_test.parkedHere(")
		}
		if !self || !parked {
			return fmt.Errorf("the stacks list this test: %v, the parked goroutine: %v", self, parked)
		}
		return nil
	})
}

func parkedHere(release <-chan struct{}) { <-release }
