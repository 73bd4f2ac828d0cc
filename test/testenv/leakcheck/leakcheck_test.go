package leakcheck

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestLateGoroutineIsNoLeak: a goroutine that ends a second after the
// check starts (longer than goleak's own retries) is waited for.
func TestLateGoroutineIsNoLeak(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	release := make(chan struct{})
	go func() { <-release }()
	time.AfterFunc(time.Second, func() { close(release) })
	if err := find(Within, opt); err != nil {
		t.Fatal(err)
	}
}

// TestLeakIsFound: a goroutine that never ends is reported, by its stack.
func TestLeakIsFound(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	release := make(chan struct{})
	defer close(release)
	go leaked(release)
	err := find(time.Second, opt)
	if err == nil || !strings.Contains(err.Error(), "leakcheck.leaked") {
		t.Fatalf("find: %v; want the leaked goroutine", err)
	}
}

func leaked(release chan struct{}) { <-release }
