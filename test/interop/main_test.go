package interop_test

import (
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// Every scenario runs against local mode, then against cluster mode in
// front of a real Apache RocketMQ (testenv.MainTargets).
func TestMain(m *testing.M) { os.Exit(testenv.MainTargets(m)) }
