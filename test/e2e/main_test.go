package e2e_test

import (
	"flag"
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// parallel is how many of the tests that call waitsInParallel run at once
// unless go test's -parallel says otherwise. go test's default,
// GOMAXPROCS (2 on CI's machine), left their waits two by two although
// they hardly use the CPU while they wait: with 4 the local pass took
// 211 s instead of 257 s on an idle 2-core machine, and no test took
// longer.
const parallel = "4"

// The proxy runs as a child process: see testenv.UseChildProcess for why.
// Every test runs twice: against local mode, then against cluster mode in
// front of a real Apache RocketMQ (testenv.MainTargets).
func TestMain(m *testing.M) {
	testenv.UseChildProcess = true
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", parallel); err != nil {
			panic(err)
		}
	}
	os.Exit(testenv.MainTargets(m))
}

// waitsInParallel runs a test that spends most of its time waiting (for
// invisible times, a session's expiry, deliveries that must not come, the
// messages a killed proxy had handed out to come again, restarts, long
// polls) in parallel with the other tests that call it: after the pass's
// other tests, up to -parallel (parallel above) at a time. Such a test
// runs its own proxy (its own ports and data directory) with topics and
// groups of its own, changes nothing the other tests share (the cluster
// pass's broker stays up; no t.Setenv, which the environment the children
// inherit would share, and which t.Parallel forbids), and bounds times
// only from below or with generous deadlines, which a busier machine
// cannot break. Tests that bound a time from above (a stop budget, a
// renewal before an invisible time runs out, a recall before a timer
// fires) stay sequential, as do those that check what the machine as a
// whole does (memory under hostile clients, rate limits).
func waitsInParallel(t *testing.T) { t.Parallel() }
