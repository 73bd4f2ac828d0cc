package waitfor

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	err := Poll(10*time.Second, time.Millisecond, func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls.Load())
	}
}

func TestPollGivesUpWithTheLastError(t *testing.T) {
	last := errors.New("still 2 lines")
	err := Poll(20*time.Millisecond, time.Millisecond, func() error { return last })
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, last) || err.Error() != "not within 20ms: still 2 lines" {
		t.Fatalf("Poll = %v, want a *TimeoutError wrapping the condition's last error", err)
	}
}
