package client_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestLongPollWithinStressWithOldTimers runs TestLongPollWithinStress in a
// child process with GODEBUG=asynctimerchan=1, the timer semantics before
// Go 1.23, which a user can still select at run time: a timer that fired
// while its call ended another way keeps its value in the channel, and the
// pool must not hand it to the next call.
func TestLongPollWithinStressWithOldTimers(t *testing.T) {
	if os.Getenv("GODEBUG") != "" {
		t.Skip("GODEBUG is set already; this test sets it for a child process")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLongPollWithinStress$", "-test.count=10")
	cmd.Env = append(os.Environ(), "GODEBUG=asynctimerchan=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("TestLongPollWithinStress with GODEBUG=asynctimerchan=1: %v\n%s", err, out)
	}
}
