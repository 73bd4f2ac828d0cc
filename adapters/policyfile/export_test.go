package policyfile

import (
	"context"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// WatchApplied runs src.Watch until the test ends and returns the
// snapshots it applies, in order.
func WatchApplied(t *testing.T, src *Source) <-chan domain.PolicySnapshot {
	t.Helper()
	applied := make(chan domain.PolicySnapshot, 16)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		src.Watch(ctx, 1, func(s domain.PolicySnapshot) error { applied <- s; return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return applied
}
