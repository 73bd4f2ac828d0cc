package testenv

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
)

// Targets: what the proxy under test serves from.
const (
	// TargetLocal: rmqproxy's embedded broker (mode local).
	TargetLocal = "local"
	// TargetCluster: a real Apache RocketMQ NameServer and Broker, through
	// rmqproxy in mode cluster.
	TargetCluster = "cluster"
)

// Target is the target of the running pass: [Config] and [StartChild]
// configure rmqproxy for it. [MainTargets] sets it.
var Target = TargetLocal

var (
	// nameServer is the NameServer of the test binary's cluster pass, or
	// nil; nameServerErr says why there is none.
	nameServer    *rocketmqenv.Cluster
	nameServerErr error
	// sharedBroker is the broker every test of the cluster pass runs
	// against (JVMs are slow to start: one per pass keeps the suite fast).
	sharedBroker *rocketmqenv.Broker
	brokerSeq    atomic.Int32

	// claims records which test first used each topic and consumer group
	// name in the cluster pass: tests share one broker, so a name two tests
	// use would mix their messages and offsets.
	claimsMu sync.Mutex
	claims   = map[string]string{}

	// runs counts the runs of each test in the cluster pass (go test
	// -count=N runs every test N times against the same broker), for Name.
	runsMu sync.Mutex
	runs   = map[string]testRun{} // test name → its latest run
)

// testRun is a test's latest run: its T and how many runs there were.
type testRun struct {
	t testing.TB
	n int
}

// brokerSettings configure the cluster pass's broker. Transactions: a
// half message is checked back once it is a second old, then every 3
// seconds while no outcome reached the broker (with a 1 s interval, a
// check-back answer that took over a second to come back through the
// proxy on a loaded machine got the half checked, and committed, twice);
// outcomes are written within 100 ms (the default 3 s would let a check
// reach a transaction committed a second earlier). Recalls are allowed.
// Queued sends are shed as "broker busy" only after 10 s (default 200 ms,
// and 1 s for a busy page cache): on a 2-core machine running the whole
// suite a send often waits longer in the broker's queue, and the tests
// that expect rmqproxy's own TOO_MANY_REQUESTS would see the broker's.
var brokerSettings = []string{"transactionTimeOut=1000", "transactionCheckInterval=3000", "transactionOpBatchInterval=100", "recallMessageEnable=true",
	"waitTimeMillsInSendQueue=10000", "osPageCacheBusyTimeOutMills=10000"}

// BrokerConfEnv names the environment variable with broker.conf lines,
// ';'-separated, that every broker the tests start gets after
// brokerSettings and before a test's own lines (a later line wins):
// RMQPROXY_TEST_BROKER_CONF=enableRetryTopicV2=true runs the cluster pass
// against a broker that names its pop retry topics %RETRY%G+T.
const BrokerConfEnv = "RMQPROXY_TEST_BROKER_CONF"

// passBrokerSettings are the broker.conf lines of a broker the tests
// start: brokerSettings, those of BrokerConfEnv, then extra.
func passBrokerSettings(extra ...string) []string {
	out := slices.Clone(brokerSettings)
	for _, l := range strings.Split(os.Getenv(BrokerConfEnv), ";") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return append(out, extra...)
}

// targets returns the targets to run: RMQPROXY_TEST_TARGETS
// ("local,cluster" by default).
func targets() []string {
	v := os.Getenv("RMQPROXY_TEST_TARGETS")
	if v == "" {
		return []string{TargetLocal, TargetCluster}
	}
	return strings.Split(v, ",")
}

// MainTargets runs a test binary's tests once per target, the same tests
// against both: first local mode, then cluster mode in front of a real
// Apache RocketMQ (one NameServer and one broker for the whole pass, since
// JVMs are slow to start: every topic and consumer group name must
// therefore be used by one test only, which [Proxy.CreateTopic],
// [Proxy.CreateGroup], [Proxy.ClientConfig] and [RawClient.Subscribe]
// check). When java or the RocketMQ jars are missing the cluster pass is
// skipped with a message (a failure under RMQPROXY_TEST_REQUIRE_SERVICES=1).
// RMQPROXY_TEST_TARGETS=local (or cluster) runs one pass. Tests that only
// make sense for the embedded broker call [LocalOnly].
func MainTargets(m *testing.M) int {
	return withTestDirs(func() int {
		code := 0
		for _, target := range targets() {
			fmt.Printf("=== target %s\n", target)
			var c int
			switch target {
			case TargetLocal:
				Target = TargetLocal
				c = m.Run()
			case TargetCluster:
				c = mainCluster(m, false)
			default:
				fmt.Fprintf(os.Stderr, "RMQPROXY_TEST_TARGETS: unknown target %q (local or cluster)\n", target)
				c = 2
			}
			code = max(code, c)
		}
		return code
	})
}

// MainWithNameServer runs a test binary whose tests are all cluster-mode
// tests (they call [ClusterConfig]): one pass, target cluster.
func MainWithNameServer(m *testing.M) int {
	return withTestDirs(func() int { return mainCluster(m, true) })
}

func mainCluster(m *testing.M, always bool) int {
	Target = TargetCluster
	defer func() { Target = TargetLocal }()
	ns, err := rocketmqenv.LaunchNameServer("")
	if ns != nil {
		defer ns.Close()
	}
	var missing *rocketmqenv.UnavailableError
	switch {
	case err == nil:
	case !errors.As(err, &missing) || rocketmqenv.Required():
		fmt.Fprintln(os.Stderr, "starting the RocketMQ NameServer:", err)
		return 1
	case !always:
		fmt.Println("SKIP target cluster:", err)
		return 0
	}
	if ns != nil {
		sharedBroker, err = ns.LaunchBroker(rocketmqenv.Options{BrokerName: "broker-a", ClusterName: "rmqproxy-e2e", Extra: passBrokerSettings()})
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting the RocketMQ broker:", err)
			return 1
		}
	}
	nameServer, nameServerErr = ns, err
	code := 0
	defer func() {
		if code != 0 && ns != nil {
			// The JVMs' logs say whether a broker that answered late was
			// collecting garbage, starved of CPU, or busy.
			ns.KeepFiles()
			fmt.Printf("the cluster pass failed: the NameServer's and brokers' logs (GC logs included) are kept in %s\n", ns.Dir)
		}
	}()
	defer func() {
		nameServer, nameServerErr, sharedBroker = nil, nil, nil
		brokerCheckedFor.Clear()
		claimsMu.Lock()
		clear(claims)
		claimsMu.Unlock()
		runsMu.Lock()
		clear(runs)
		runsMu.Unlock()
	}()
	code = m.Run()
	return code
}

// LocalOnly skips the test in the cluster pass: it is about the embedded
// broker (its files, its recovery), which cluster mode does not have.
func LocalOnly(t testing.TB, why string) {
	t.Helper()
	if Target == TargetCluster {
		t.Skip("local mode only: " + why)
	}
}

// ClusterBroker is the broker a cluster-mode test runs against.
type ClusterBroker = rocketmqenv.Broker

// Broker returns the broker of the test in the cluster pass, starting it
// on first use (nil in the local pass).
func Broker(t testing.TB) *ClusterBroker {
	t.Helper()
	if Target != TargetCluster {
		return nil
	}
	return clusterBroker(t)
}

// clusterBroker returns the cluster pass's broker. It skips the test when
// RocketMQ cannot run here, or fails it under
// RMQPROXY_TEST_REQUIRE_SERVICES=1.
func clusterBroker(t testing.TB) *ClusterBroker {
	t.Helper()
	if sharedBroker == nil {
		err := nameServerErr
		if err == nil {
			err = errors.New("the test binary started no NameServer (TestMain must use testenv.MainTargets or MainWithNameServer)")
		}
		if rocketmqenv.Required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ensureSharedBroker(t)
	return sharedBroker
}

// brokerCheckedFor holds the top-level tests for which the shared broker
// was checked (see ensureSharedBroker); ensureMu makes tests running in
// parallel check it one at a time, so that a broker that died is restarted
// once.
var (
	brokerCheckedFor sync.Map // test name → struct{}
	ensureMu         sync.Mutex
)

// ensureSharedBroker checks once per top-level test that the pass's broker
// is registered, so that a broker that died or dropped out under load
// fails one test (the one that was running) rather than every later one:
// a dead broker is restarted on its store, one not listed is waited for.
func ensureSharedBroker(t testing.TB) {
	t.Helper()
	test, _, _ := strings.Cut(t.Name(), "/")
	if _, checked := brokerCheckedFor.LoadOrStore(test, struct{}{}); checked {
		return
	}
	ensureMu.Lock()
	defer ensureMu.Unlock()
	exit, err := sharedBroker.EnsureRunning()
	if exit != "" {
		t.Logf("the cluster pass's broker had exited before %s; restarted it. Its last output:\n%s", test, exit)
	}
	if err != nil {
		t.Fatalf("the cluster pass's broker is not available: %v", err)
	}
}

// AddBenchmarkBroker starts a broker of the test's own, in a cluster of its
// own, with the cluster pass's settings and the JVM's production JIT and
// collector (rocketmqenv.Options.ServerJIT), and returns it with a
// configuration of rmqproxy in front of it; it is killed when the test
// ends.
func AddBenchmarkBroker(t testing.TB) (app.Root, *ClusterBroker) {
	t.Helper()
	clusterBroker(t)
	n := strconv.Itoa(int(brokerSeq.Add(1)))
	b := nameServer.AddBroker(t, rocketmqenv.Options{BrokerName: "broker-" + n, ClusterName: "cluster-" + n, Extra: passBrokerSettings(), ServerJIT: true})
	cfg := Config(t)
	cfg.Cluster.ClusterName = b.Cluster
	return cfg, b
}

// AddClusterBrokers starts n brokers of the test's own, in a cluster of
// their own, with the cluster pass's settings, against the binary's
// NameServer; they are killed when the test ends.
func AddClusterBrokers(t testing.TB, n int) []*ClusterBroker {
	t.Helper()
	return AddClusterBrokersWith(t, n)
}

// AddClusterBrokersWith is AddClusterBrokers with extra broker.conf lines.
func AddClusterBrokersWith(t testing.TB, n int, extra ...string) []*ClusterBroker {
	t.Helper()
	clusterBroker(t)
	cluster := "cluster-" + strconv.Itoa(int(brokerSeq.Add(1)))
	opts := make([]rocketmqenv.Options, n)
	for i := range opts {
		name := "broker-" + strconv.Itoa(int(brokerSeq.Add(1)))
		opts[i] = rocketmqenv.Options{BrokerName: name, ClusterName: cluster, Extra: passBrokerSettings(extra...)}
	}
	return nameServer.AddBrokers(t, opts...) // started at once
}

// AddClusterBrokerTo starts one more broker of the test's own in cluster
// (one of AddClusterBrokersWith's), with the cluster pass's settings and
// extra broker.conf lines; it is killed when the test ends.
func AddClusterBrokerTo(t testing.TB, cluster string, extra ...string) *ClusterBroker {
	t.Helper()
	clusterBroker(t)
	name := "broker-" + strconv.Itoa(int(brokerSeq.Add(1)))
	return nameServer.AddBroker(t, rocketmqenv.Options{BrokerName: name, ClusterName: cluster, Extra: passBrokerSettings(extra...)})
}

// Claim records that the running test uses a topic or consumer group name
// (kind says which) in the cluster pass, and fails the test when another
// test used it before: the pass's tests share one broker.
func Claim(t testing.TB, kind, name string) {
	t.Helper()
	if Target != TargetCluster || name == "" {
		return
	}
	test, _, _ := strings.Cut(t.Name(), "/")
	key := kind + " " + name
	claimsMu.Lock()
	first, used := claims[key]
	if !used {
		claims[key] = test
	}
	claimsMu.Unlock()
	if used && first != test {
		t.Fatalf("%s %q is used by %s too: the cluster pass's tests share one broker, so give it a name no other test uses", kind, name, first)
	}
}

// Name returns the name the running test gives what it calls base on the
// cluster pass's NameServer and brokers (a topic, a consumer group, a broker
// or cluster of its own): base in the test's first run, base-rN in its Nth
// (go test -count=N). The pass's tests share one broker, which keeps what a
// run left (the topic, messages not consumed, the group's offsets and
// retries), so a second run under the same names failed or counted the
// first run's messages. In the local pass it is base.
func Name(t testing.TB, base string) string {
	if Target != TargetCluster {
		return base
	}
	runsMu.Lock()
	r := runs[t.Name()]
	if r.t != t {
		r = testRun{t: t, n: r.n + 1}
		runs[t.Name()] = r
	}
	runsMu.Unlock()
	if r.n == 1 {
		return base
	}
	return base + "-r" + strconv.Itoa(r.n)
}

// clusterFlags are the command-line settings that put a child rmqproxy in
// front of the test's broker.
func clusterFlags(t testing.TB) []string {
	b := clusterBroker(t)
	return []string{"--mode=cluster", "--cluster.nameServers=" + nameServer.NameServer, "--cluster.clusterName=" + b.Cluster,
		"--cluster.routeTTL=2s"}
}

// applyTarget turns cfg to cluster mode in front of the test's broker in
// the cluster pass.
func applyTarget(t testing.TB, cfg *app.Root) {
	if Target != TargetCluster {
		return
	}
	b := clusterBroker(t)
	cfg.Mode = app.ModeCluster
	cfg.Cluster.NameServers = []string{nameServer.NameServer}
	cfg.Cluster.ClusterName = b.Cluster
	cfg.Cluster.RouteTTL = 2 * time.Second
}

// ClusterConfig is [Config] for a test that runs in cluster mode only (a
// binary using [MainWithNameServer]): rmqproxy in front of the pass's
// broker.
func ClusterConfig(t testing.TB) (app.Root, *ClusterBroker) {
	t.Helper()
	if Target != TargetCluster {
		t.Fatal("ClusterConfig needs the cluster target (testenv.MainWithNameServer)")
	}
	return Config(t), clusterBroker(t)
}

// BrokerClosedLog is the log message rmqproxy writes once its broker side
// has closed at shutdown, for the running target.
func BrokerClosedLog() string {
	if Target == TargetCluster {
		return "cluster adapter closed"
	}
	return "local broker closed"
}

// NameServer returns the NameServer of the cluster pass (nil in the local
// pass), for tests that start brokers of their own.
func NameServer() *rocketmqenv.Cluster { return nameServer }

// SkipUnlessRequired skips t with the message, or fails it under
// RMQPROXY_TEST_REQUIRE_SERVICES=1 (the README test command), which must
// skip nothing.
func SkipUnlessRequired(t testing.TB, format string, args ...any) {
	t.Helper()
	if rocketmqenv.Required() {
		t.Fatalf(format+" (RMQPROXY_TEST_REQUIRE_SERVICES=1 forbids skipping)", args...)
	}
	t.Skipf(format, args...)
}

// AddClusterSlave starts a slave (brokerId 1, SLAVE) of master, one of
// AddClusterBrokersWith's: same broker name and cluster, its own ports and
// store; it is killed when the test ends.
func AddClusterSlave(t testing.TB, master *ClusterBroker, extra ...string) *ClusterBroker {
	t.Helper()
	clusterBroker(t)
	return nameServer.AddBroker(t, rocketmqenv.Options{BrokerName: master.Name, ClusterName: master.Cluster, BrokerID: 1, Extra: passBrokerSettings(extra...)})
}
