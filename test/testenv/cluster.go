package testenv

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
)

// nameServer is the NameServer MainWithNameServer started for the test
// binary, or nil; nameServerErr says why there is none.
var (
	nameServer    *rocketmqenv.Cluster
	nameServerErr error
	brokerSeq     atomic.Int32
)

// MainWithNameServer is Main for test binaries that run rmqproxy in
// cluster mode: it starts one Apache RocketMQ NameServer for the whole
// binary (JVMs are slow to start) and stops it after the tests. When java
// or the jars are missing, the cluster tests skip (or fail under
// RMQPROXY_TEST_REQUIRE_SERVICES=1) and the others run.
func MainWithNameServer(m *testing.M) int {
	ns, err := rocketmqenv.LaunchNameServer("")
	if ns != nil {
		defer ns.Close()
	}
	var missing *rocketmqenv.UnavailableError
	if err != nil && !errors.As(err, &missing) {
		fmt.Fprintln(os.Stderr, "starting the RocketMQ NameServer:", err)
		return 1
	}
	nameServer, nameServerErr = ns, err
	return Main(m)
}

// ClusterBroker is the broker a cluster-mode test runs against.
type ClusterBroker = rocketmqenv.Broker

// ClusterConfig starts a broker of its own for this test (in a cluster of
// its own) against the binary's NameServer, and returns Config(t) turned
// to cluster mode in front of it. The broker checks orphaned transactions
// every second after one second (as the local-mode tests configure the
// embedded engine) and allows recalls. It skips the test when RocketMQ
// cannot run here, or fails it under RMQPROXY_TEST_REQUIRE_SERVICES=1.
func ClusterConfig(t testing.TB, extra ...string) (app.Root, *ClusterBroker) {
	t.Helper()
	if nameServer == nil {
		err := nameServerErr
		if err == nil {
			err = errors.New("the test binary did not start a NameServer (use testenv.MainWithNameServer in TestMain)")
		}
		if rocketmqenv.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	n := strconv.Itoa(int(brokerSeq.Add(1)))
	opt := rocketmqenv.Options{BrokerName: "broker-" + n, ClusterName: "cluster-" + n,
		Extra: append([]string{"transactionTimeOut=1000", "transactionCheckInterval=1000", "recallMessageEnable=true"}, extra...)}
	b := nameServer.AddBroker(t, opt)
	cfg := Config(t)
	cfg.Mode = app.ModeCluster
	cfg.Cluster.NameServers = []string{nameServer.NameServer}
	cfg.Cluster.ClusterName = opt.ClusterName
	cfg.Cluster.RouteTTL = 2 * time.Second
	return cfg, b
}
