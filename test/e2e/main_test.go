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
	testenv.UseChildProcess = true
	os.Exit(testenv.MainTargets(m))
}
