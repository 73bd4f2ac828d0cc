//go:build rmqproxy_testhooks

package localbroker

import (
	"os"
	"time"
)

// A build with the rmqproxy_testhooks tag (tests only, never a release)
// slows recovery down by RMQPROXY_TEST_REPLAY_DELAY (a duration) per
// commit-log record, so that a test can signal a process while it
// recovers.
func init() {
	if d, err := time.ParseDuration(os.Getenv("RMQPROXY_TEST_REPLAY_DELAY")); err == nil && d > 0 {
		replayHook = func() { time.Sleep(d) }
	}
}
