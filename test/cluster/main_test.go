package cluster_test

import (
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// The proxy runs as a child process (see testenv.UseChildProcess); one
// NameServer serves the package, each test starts its own broker.
func TestMain(m *testing.M) {
	testenv.UseChildProcess = true
	os.Exit(testenv.MainWithNameServer(m))
}
