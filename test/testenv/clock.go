package testenv

import (
	"testing"
	"time"
)

// WallNow is time.Now without its monotonic clock reading, for tests that
// hold a time against one the server keeps: delivery times and invisible
// times are wall-clock times (a client sends a delivery time as a Unix
// timestamp, and a RocketMQ broker measures invisible time with
// System.currentTimeMillis). Two time.Now readings compare by the
// monotonic clock, which disagrees with the wall clock when the machine's
// clock is stepped or corrected (CI virtual machines do that: a message
// fired on time by the wall clock was seen "delivered 40ms early" by the
// monotonic one).
func WallNow() time.Time { return time.Now().Round(0) }

// DeliveryTime is the time the server holds for a delivery time of at:
// the wall clock, to the millisecond (the gRPC client sends nanoseconds,
// a RocketMQ broker keeps milliseconds).
func DeliveryTime(at time.Time) time.Time { return at.Round(0).Truncate(time.Millisecond) }

// reportClockSteps adds to a failed test's output how far the wall clock
// moved against the monotonic clock while it ran, so that a failure a
// stepped clock explains says so.
func reportClockSteps(t testing.TB) {
	start := time.Now()
	t.Cleanup(func() {
		now := time.Now()
		moved := now.Round(0).Sub(start.Round(0)) - now.Sub(start)
		if t.Failed() && (moved >= time.Millisecond || moved <= -time.Millisecond) {
			t.Logf("the wall clock moved %v against the monotonic clock while this test ran: delivery and invisible times follow the wall clock", moved)
		}
	})
}
