package testenv

import "time"

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
