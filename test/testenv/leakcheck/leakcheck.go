// Package leakcheck checks, as goleak does, that tests leave no goroutine
// running, but waits longer for those that are ending: goleak's own retries
// last about 0.4 s in all, which a goroutine on its way out can take on a
// loaded machine (and be reported as a leak). A goroutine still there after
// Within is a leak.
package leakcheck

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// Within is how long a check waits for the goroutines to end.
const Within = 10 * time.Second

// VerifyNone fails t when goroutines other than those opts ignore are
// still running after Within. Use it as goleak.VerifyNone:
//
//	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
func VerifyNone(t testing.TB, opts ...goleak.Option) {
	t.Helper()
	if err := find(Within, opts...); err != nil {
		t.Error(err)
	}
}

// VerifyTestMain runs the tests of m, then, when they passed, fails the
// run when goroutines are still running after Within. Use it as
// goleak.VerifyTestMain:
//
//	func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		if err := find(Within, opts...); err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// find waits up to within for goleak.Find to find no goroutine; it returns
// goleak's last finding otherwise.
func find(within time.Duration, opts ...goleak.Option) error {
	return waitfor.Poll(within, 50*time.Millisecond, func() error { return goleak.Find(opts...) })
}
