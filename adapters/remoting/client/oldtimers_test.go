package client_test

import (
	"os"
	"os/exec"
	"strconv"
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
	const runs = 10
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLongPollWithinStress$", "-test.count="+strconv.Itoa(runs), "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG=asynctimerchan=1")
	out, err := cmd.CombinedOutput()
	// Every run must have passed: a child that ran no test (the stress
	// test renamed) prints PASS too.
	if passed := strings.Count(string(out), "--- PASS: TestLongPollWithinStress "); err != nil || passed != runs {
		t.Fatalf("TestLongPollWithinStress with GODEBUG=asynctimerchan=1: %d of %d runs passed (%v)\n%s", passed, runs, err, out)
	}
}
