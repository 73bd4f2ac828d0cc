package interop_test

import (
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
