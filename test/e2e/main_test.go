package e2e_test

import (
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// The proxy runs as a child process: see testenv.UseChildProcess for why.
func TestMain(m *testing.M) {
	testenv.UseChildProcess = true
	os.Exit(testenv.Main(m))
}
