package e2e_test

import (
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// The proxy runs as a child process: see testenv.UseChildProcess for why.
// Every test runs twice: against local mode, then against cluster mode in
// front of a real Apache RocketMQ (testenv.MainTargets).
func TestMain(m *testing.M) {
	if spec := os.Getenv(churnClientEnv); spec != "" {
		os.Exit(runChurnClient(spec))
	}
	testenv.UseChildProcess = true
	os.Exit(testenv.MainTargets(m))
}

// waitsInParallel runs a test that spends most of its time waiting (for
// invisible times, a session's expiry, deliveries that must not come, the
// messages a killed proxy had handed out to come again) in
// parallel with the other tests that call it: after the pass's other
// tests, up to -parallel (GOMAXPROCS) at a time. Such a test runs its own
// proxy (its own ports and data directory) with topics and groups of its
// own, changes nothing the other tests share (the cluster pass's broker
// stays up), and bounds times only from below or with generous deadlines,
// which a busier machine cannot break. A test with an upper bound on a
// time, one that calls t.Setenv, or one that loads or measures the machine
// as a whole stays sequential. -parallel stays at go test's default
// (GOMAXPROCS): at 4, two real-broker tests of test/cluster, which
// test/scripts/test.sh runs beside both passes, timed out waiting for
// their own fresh brokers in one CI run on the 2-core machine.
func waitsInParallel(t *testing.T) { t.Parallel() }
