package cluster_test

import (
	"flag"
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// parallel is how many of the package's tests run at once unless go test's
// -parallel says otherwise. Most tests call t.Parallel: they spend their
// time waiting (JVMs starting, long polls, a broker reviving what was not
// acked), on brokers, topics and groups of their own (testenv.Claim), so
// running them side by side cuts the package's wall time without making a
// test's work smaller. go test's default, GOMAXPROCS (2 on CI's machine),
// would leave the waits one after another. Three tests stay sequential and
// run before the others, alone: TestClusterStartStopLeavesNoGoroutines
// (it checks the goroutines of this process, which other tests' clients
// would add to), and TestLongPollsFollowTheBrokersClock and
// TestTwoBrokersFailover (each bounds how long a request may take).
const parallel = "4"

// The proxy runs as a child process (see testenv.UseChildProcess); one
// NameServer and one broker serve the package; some tests start brokers,
// NameServers or Apache proxies of their own.
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
	os.Exit(testenv.MainWithNameServer(m))
}
