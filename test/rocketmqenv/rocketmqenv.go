// Package rocketmqenv runs a real Apache RocketMQ NameServer and Broker for
// tests (more brokers, which can be killed and restarted, and the Apache
// RocketMQ proxy in cluster mode for differential tests and benchmarks): the
// jars test/scripts/install-rocketmq.sh copied from Maven Central (release
// pinned in test/rocketmq/pom.xml), started with java on loopback, free
// ports, small heaps, Remoting TLS disabled unless a test passes the JVM
// flags for it, a logback file per JVM in the test's temporary directory,
// a store per broker on a tmpfs when there is one (/dev/shm; else beside
// its logs), and stopped by PID when the test ends.
//
// On Linux every JVM runs with LD_PRELOAD=libloopbind.so (built into the
// jars' directory from test/scripts/loopbind.c by install-rocketmq.sh):
// the broker's HA port and the Apache proxy's gRPC and Remoting ports have
// no bind address setting and would listen on every interface, while tests
// bind loopback only.
//
// When java, the jars or that library are missing, Start skips the test with the
// command that installs them, or fails it under
// RMQPROXY_TEST_REQUIRE_SERVICES=1 (as test/scripts/test.sh runs).
package rocketmqenv

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/testenv/childproc"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
)

// Cluster is a running NameServer with one Broker (a master), or with
// the brokers AddBroker started.
type Cluster struct {
	NameServer  string // "127.0.0.1:port"
	Broker      string // the (first) broker's Remoting address
	BrokerName  string
	ClusterName string
	Dir         string // stores and logs
	java, lib   string
	ipv6        bool // NameServer and brokers on ::1 (StartNameServerIPv6)
	mu          sync.Mutex
	procs       []*proc
	ownsDir     bool
	stores      string // the brokers' stores on a tmpfs, or "" (see storeDir)
}

// Options change the broker's settings; Extra lines go into broker.conf.
type Options struct {
	BrokerName  string   // "broker-a"
	ClusterName string   // "RmqproxyCluster"
	Extra       []string // e.g. "autoCreateTopicEnable=true"
	// ServerJIT runs the JVM with its production defaults (tiered C1+C2
	// JIT, the default collector) instead of the quick-start C1-only,
	// serial-GC flags tests use. Benchmarks set it: C1-only code is
	// several times slower once warm.
	ServerJIT bool
	// JVM flags added to the broker's, e.g. its TLS system properties
	// ("-Dtls.server.mode=enforcing"; the default is disabled).
	JVM []string
	// BrokerID 0 (the default) starts a master (ASYNC_MASTER); a higher
	// id starts a slave (SLAVE) of the master with the same BrokerName,
	// with its own ports and store.
	BrokerID int64
}

// LibDir returns where install-rocketmq.sh puts the jars, or the directory
// RMQPROXY_TEST_ROCKETMQ_LIB names (a RMQPROXY_TEST_ name: rmqproxy refuses
// unknown RMQPROXY_ variables, and the children inherit the environment).
func LibDir() string {
	if d := os.Getenv("RMQPROXY_TEST_ROCKETMQ_LIB"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "rocketmq", "target", "lib")
}

// UnavailableError says why RocketMQ cannot run here (no java, no jars).
type UnavailableError struct{ Why string }

func (e *UnavailableError) Error() string {
	return "Apache RocketMQ not available: " + e.Why + "; run test/scripts/install-rocketmq.sh"
}

// Required reports whether tests must not skip for a missing service
// (RMQPROXY_TEST_REQUIRE_SERVICES=1, as test/scripts/test.sh runs).
func Required() bool { return os.Getenv("RMQPROXY_TEST_REQUIRE_SERVICES") == "1" }

// Available returns an *UnavailableError when java, the jars or (on
// Linux) the loopback shim are missing.
func Available() (java, lib string, err error) {
	java, lerr := exec.LookPath("java")
	if lerr != nil {
		return "", "", &UnavailableError{"no java on PATH"}
	}
	lib = LibDir()
	jars, _ := filepath.Glob(filepath.Join(lib, "rocketmq-broker-*.jar"))
	if len(jars) == 0 {
		return "", "", &UnavailableError{"no broker jar in " + lib}
	}
	if so := loopbind(lib); so != "" {
		if _, err := os.Stat(so); err != nil {
			return "", "", &UnavailableError{"no " + filepath.Base(so) + " in " + lib + " (it keeps the JVMs on loopback)"}
		}
	}
	return java, lib, nil
}

// loopbind returns the LD_PRELOAD library that turns the JVMs' binds to
// the wildcard address into binds to loopback (see
// test/scripts/loopbind.c), or "" where it is not used (not Linux).
func loopbind(lib string) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	return filepath.Join(lib, "libloopbind.so")
}

// unavailable skips (or, when services are required, fails) the test.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatal(err)
	}
	t.Skip(err)
}

func (o *Options) defaults() {
	if o.BrokerName == "" {
		o.BrokerName = "broker-a"
	}
	if o.ClusterName == "" {
		o.ClusterName = "RmqproxyCluster"
	}
}

// Start starts a NameServer and a Broker and returns once the broker has
// registered with the NameServer; both stop when the test ends.
func Start(t testing.TB, opt Options) *Cluster {
	t.Helper()
	if _, _, err := Available(); err != nil {
		unavailable(t, err)
	}
	c, err := LaunchNameServer(t.TempDir())
	if c != nil {
		t.Cleanup(c.Close)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.launchBroker(opt); err != nil {
		t.Fatal(err)
	}
	return c
}

// StartNameServer starts a NameServer of the test's own (no broker), with
// JVM flags added to its own, and returns once it answers; it stops when
// the test ends.
func StartNameServer(t testing.TB, jvm ...string) *Cluster {
	t.Helper()
	if _, _, err := Available(); err != nil {
		unavailable(t, err)
	}
	c, err := LaunchNameServerWith(t.TempDir(), jvm)
	if c != nil {
		t.Cleanup(c.Close)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartNameServerIPv6 is StartNameServer on the IPv6 loopback: the
// NameServer listens on [::1] (NameServer is "[::1]:port") and the
// brokers AddBroker starts listen on ::1 and register as "::1:port" (as
// RocketMQ writes an IPv6 brokerIP1 with its port). The test is skipped
// when this machine has no IPv6 loopback.
func StartNameServerIPv6(t testing.TB) *Cluster {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback on this machine: %v", err)
	}
	ln.Close()
	if _, _, err := Available(); err != nil {
		unavailable(t, err)
	}
	c, err := launchNameServer(t.TempDir(), nil, true)
	if c != nil {
		t.Cleanup(c.Close)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// host is the address the cluster's processes listen on and register.
func (c *Cluster) host() string {
	if c.ipv6 {
		return "::1"
	}
	return "127.0.0.1"
}

// jvmStack is the JVM flag of the IP stack the cluster's processes use.
func (c *Cluster) jvmStack() string {
	if c.ipv6 {
		return "-Djava.net.preferIPv4Stack=false"
	}
	return "-Djava.net.preferIPv4Stack=true"
}

// LaunchNameServer starts a NameServer (no broker) with its files in dir
// (a new temporary directory, removed by Close, when dir is "") and
// returns once it answers. It is for
// TestMain, which has no *testing.T: the caller must Close the cluster.
// Missing java or jars give an *UnavailableError.
func LaunchNameServer(dir string) (*Cluster, error) { return LaunchNameServerWith(dir, nil) }

// LaunchNameServerWith is LaunchNameServer with JVM flags added to the
// NameServer's (e.g. "-Dtls.server.mode=permissive").
func LaunchNameServerWith(dir string, jvm []string) (*Cluster, error) {
	return launchNameServer(dir, jvm, false)
}

func launchNameServer(dir string, jvm []string, ipv6 bool) (*Cluster, error) {
	java, lib, err := Available()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, java: java, lib: lib, ipv6: ipv6}
	if dir == "" {
		if c.Dir, err = os.MkdirTemp("", "rmqproxy-rocketmq"); err != nil {
			return nil, err
		}
		c.ownsDir = true
	}
	conf := filepath.Join(c.Dir, "conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return c, err
	}
	for jar, name := range map[string]string{"rocketmq-namesrv-": "rmq.namesrv.logback.xml", "rocketmq-broker-": "rmq.broker.logback.xml"} {
		if err := extract(lib, jar, name, filepath.Join(conf, name)); err != nil {
			return c, err
		}
	}
	return c, onFreePorts(func() error { return c.launchNameServerOnce(conf, jvm) })
}

// onFreePorts runs launch, which starts a process on ports freePorts found
// free, again (at most 3 times in all) while it fails because one of them
// was taken before the process bound it (e.g. as the local port of another
// process's connection).
func onFreePorts(launch func() error) error {
	for attempt := 1; ; attempt++ {
		err := launch()
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			return err
		}
	}
}

// launchNameServerOnce starts the NameServer on a free port and waits
// until it answers; one that exited while starting is forgotten.
func (c *Cluster) launchNameServerOnce(conf string, jvm []string) error {
	nsPort, err := freeport.Range(0)
	if err != nil {
		return err
	}
	c.NameServer = net.JoinHostPort(c.host(), strconv.Itoa(nsPort))
	// Its KV configuration (rmqproxy's topic and group descriptions) is
	// rewritten with fsyncs at every PUT_KV_CONFIG, under the NameServer's
	// lock: on the tmpfs of the brokers' stores (see storeDir), not on
	// the busy disk where CI runs saw those writes outlast
	// cluster.requestTimeout.
	kv := filepath.Join(c.storeDir("namesrv", false), "kvConfig.json")
	if err := writeLines(filepath.Join(conf, "namesrv.conf"), "listenPort="+strconv.Itoa(nsPort), "bindAddress="+c.host(), "kvConfigPath="+kv); err != nil {
		return err
	}
	p, err := c.start("namesrv", "512m", "org.apache.rocketmq.namesrv.NamesrvStartup", false, jvm, "-c", filepath.Join(conf, "namesrv.conf"))
	if err != nil {
		return err
	}
	if err := c.awaitNameServer(); err != nil {
		if p.exited() {
			c.mu.Lock()
			c.procs = slices.DeleteFunc(c.procs, func(q *proc) bool { return q == p })
			c.mu.Unlock()
		}
		return err
	}
	return nil
}

// ApacheProxy is an Apache RocketMQ proxy in cluster mode, started by
// StartApacheProxy, for differential tests.
type ApacheProxy struct {
	GRPC string // "127.0.0.1:port": TLS or plaintext, as the proxy sniffs
	p    *proc
}

// StartApacheProxy starts the Apache proxy (rocketmq-proxy, cluster mode)
// in front of c's NameServer and the brokers of clusterName, and returns
// once its gRPC port accepts connections (clients should still wait for a
// first QueryRoute to answer). It is killed when the test ends.
func (c *Cluster) StartApacheProxy(t testing.TB, clusterName string) *ApacheProxy {
	t.Helper()
	return c.StartApacheProxyJIT(t, clusterName, false)
}

// StartApacheProxyJIT is StartApacheProxy with the JVM's production JIT
// and collector when serverJIT is set (see Options.ServerJIT).
func (c *Cluster) StartApacheProxyJIT(t testing.TB, clusterName string, serverJIT bool) *ApacheProxy {
	t.Helper()
	ap, err := c.startApacheProxy(clusterName, serverJIT, func(p *proc) { t.Cleanup(p.killIfRunning) })
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// StartApacheProxyAsync is StartApacheProxy started in the background, so
// that the test can start its other processes meanwhile (a JVM takes many
// seconds to start): the function it returns waits until the proxy's
// gRPC port accepts connections and returns it, failing the test when it
// did not start; call it on the test's goroutine. The proxy is killed when
// the test ends, whether it was waited for or not.
func (c *Cluster) StartApacheProxyAsync(t testing.TB, clusterName string) func() *ApacheProxy {
	t.Helper()
	var (
		mu      sync.Mutex
		started []*proc
		ap      *ApacheProxy
		err     error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ap, err = c.startApacheProxy(clusterName, false, func(p *proc) {
			mu.Lock()
			started = append(started, p)
			mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		<-done
		for _, p := range started {
			p.killIfRunning()
		}
	})
	return func() *ApacheProxy {
		t.Helper()
		<-done
		if err != nil {
			t.Fatal(err)
		}
		return ap
	}
}

// startApacheProxy starts the Apache proxy (again on other ports when a
// port was taken before it bound it) and waits until its gRPC port accepts
// connections; started is called with each JVM it starts, which the caller
// must kill.
func (c *Cluster) startApacheProxy(clusterName string, serverJIT bool, started func(*proc)) (*ApacheProxy, error) {
	conf := filepath.Join(c.Dir, "conf")
	if err := extract(c.lib, "rocketmq-proxy-", "rmq.proxy.logback.xml", filepath.Join(conf, "rmq.proxy.logback.xml")); err != nil {
		return nil, err
	}
	var ap *ApacheProxy
	var err error
	// At start the Apache proxy creates its heartbeat syncer's broadcast
	// topic on the cluster's brokers and then asks the NameServer three
	// times in a row, without a pause, whether it is routed; it exits when
	// not (AbstractSystemMessageSyncer.createSysTopic). On a machine loaded
	// by the rest of the suite the broker's registration of the topic
	// arrives later, and the proxy exited ("create system broadcast topic
	// ... failed"), twice in CI on 2026-12-06. The topic is on the broker
	// by then: a second start finds it and goes on.
	for attempt := 1; attempt <= 3; attempt++ {
		err = onFreePorts(func() error {
			var err error
			ap, err = c.launchApacheProxy(conf, clusterName, serverJIT)
			if ap != nil {
				started(ap.p)
			}
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "create system broadcast topic") {
			break
		}
	}
	return ap, err
}

// launchApacheProxy starts the Apache proxy on free ports and waits until
// its gRPC port accepts connections.
func (c *Cluster) launchApacheProxy(conf, clusterName string, serverJIT bool) (*ApacheProxy, error) {
	grpcPort, err := freeport.Range(0)
	if err != nil {
		return nil, err
	}
	remotingPort, err := freeport.Range(0)
	for err == nil && remotingPort >= grpcPort-1 && remotingPort <= grpcPort+1 {
		remotingPort, err = freeport.Range(0)
	}
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("proxy-%d", grpcPort)
	file := filepath.Join(conf, name+".json")
	cfg := fmt.Sprintf(`{"rocketMQClusterName":%q,"namesrvAddr":%q,"grpcServerPort":%d,"remotingListenPort":%d,"proxyMode":"cluster","localServeAddr":"127.0.0.1"}`,
		clusterName, c.NameServer, grpcPort, remotingPort)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p, err := c.start(name, "512m", "org.apache.rocketmq.proxy.ProxyStartup", serverJIT, nil, "-pc", file, "-pm", "cluster")
	if err != nil {
		return nil, err
	}
	ap := &ApacheProxy{GRPC: "127.0.0.1:" + strconv.Itoa(grpcPort), p: p}
	// Its JVM starts beside the brokers of the tests running in parallel
	// and the rest of the suite: on two cores it took longer than two
	// minutes in two CI runs of 2026-12-07 (this stop added tests that
	// start brokers of their own).
	deadline := time.Now().Add(startWait)
	for {
		if p.exited() {
			return ap, fmt.Errorf("the Apache proxy exited while starting:\n%s", p.tail())
		}
		conn, err := net.DialTimeout("tcp", ap.GRPC, time.Second)
		if err == nil {
			conn.Close()
			return ap, nil
		}
		if time.Now().After(deadline) {
			return ap, fmt.Errorf("the Apache proxy did not listen within %v:\n%s", startWait, p.tail())
		}
		time.Sleep(200 * time.Millisecond) // polling a port, which has no readiness notification
	}
}

// startWait is how long the Apache proxy may take to listen.
const startWait = 4 * time.Minute

// PID is the Apache proxy JVM's process id (benchmarks read its CPU time).
func (a *ApacheProxy) PID() int { return a.p.cmd.Process.Pid }

// Broker is one broker JVM started by AddBroker.
type Broker struct {
	Name, Cluster, Addr string
	ID                  int64 // Options.BrokerID: 0 for a master
	c                   *Cluster
	mu                  sync.Mutex
	p                   *proc
	proc, conf          string // the JVM's name and config file, for Restart
	serverJIT           bool
	jvm                 []string // Options.JVM, for restarts
}

// LogFile is the path of one of the broker's log files ("pop.log",
// "broker.log", ...): the JVM's home is its directory under the cluster's,
// until the cluster is closed.
func (b *Broker) LogFile(name string) string {
	return filepath.Join(b.c.Dir, b.proc, "logs", "rocketmqlogs", name)
}

// PID is the running broker JVM's process id (benchmarks read its CPU
// time).
func (b *Broker) PID() int { return b.current().cmd.Process.Pid }

func (b *Broker) current() *proc {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p
}

// Stop stops the broker as an operator would (SIGTERM, SIGKILL after 30
// s); its store stays for Restart. Unlike Kill it does not wait for the
// NameServer to forget it.
func (b *Broker) Stop() { b.current().kill(syscall.SIGTERM, 30*time.Second) }

// Restart starts the stopped (or killed) broker again on the same ports
// and store, and returns once the NameServer lists it.
func (b *Broker) Restart() error {
	if !b.current().exited() {
		return fmt.Errorf("broker %s is running", b.Name)
	}
	p, err := b.c.start(b.proc, "1g", "org.apache.rocketmq.broker.BrokerStartup", b.serverJIT, b.jvm, "-c", b.conf)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.p = p
	b.mu.Unlock()
	return b.c.waitRegistered(b)
}

// EnsureRunning returns once the NameServer lists the broker: at once when
// it does, after a wait when the broker is alive but not listed (a broker
// starved of CPU can miss its registrations), and after a restart on the
// same ports and store when its process has exited; exit then holds the
// end of the dead process's output.
func (b *Broker) EnsureRunning() (exit string, err error) {
	if p := b.current(); p.exited() {
		exit = p.tail()
		return exit, b.Restart()
	}
	return "", b.c.waitRegistered(b)
}

// AddBroker starts a broker (a master) against c's NameServer and returns
// once the NameServer lists it. When the test ends it is killed (SIGKILL:
// its store is temporary) and the NameServer has forgotten it.
func (c *Cluster) AddBroker(t testing.TB, opt Options) *Broker {
	t.Helper()
	b, err := c.launchBroker(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Kill(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// AddBrokers is AddBroker for several brokers, started at once (each JVM
// takes seconds to start, mostly waiting on its own start-up).
func (c *Cluster) AddBrokers(t testing.TB, opts ...Options) []*Broker {
	t.Helper()
	out := make([]*Broker, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, opt := range opts {
		wg.Go(func() { out[i], errs[i] = c.launchBroker(opt) })
	}
	wg.Wait()
	for _, b := range out {
		if b != nil {
			t.Cleanup(func() {
				if err := b.Kill(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Kill stops the broker with SIGKILL and waits until the NameServer no
// longer lists it (it drops a broker whose connection closed).
func (b *Broker) Kill() error {
	p := b.current()
	if p.exited() {
		return nil
	}
	p.kill(syscall.SIGKILL, 0)
	cl := client.New(client.Config{ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	defer cl.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := b.c.clusterInfo(cl)
		if err == nil {
			if bd, ok := info.BrokerAddrTable[b.Name]; !ok || bd.BrokerAddrs[b.ID] != b.Addr {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the NameServer still lists killed broker %s after a minute (%v)", b.Name, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the NameServer, which has no change notification
	}
}

// LaunchBroker starts a broker (a master) against c's NameServer and
// returns once the NameServer lists it; Close stops it. It is for
// TestMain, which has no *testing.T; tests use AddBroker.
func (c *Cluster) LaunchBroker(opt Options) (*Broker, error) { return c.launchBroker(opt) }

// launchBroker starts a broker and waits until it is registered. A
// broker that lost its ports to another process between the check and its
// bind is started again on others.
func (c *Cluster) launchBroker(opt Options) (*Broker, error) {
	var b *Broker
	err := onFreePorts(func() error {
		var err error
		b, err = c.launchBrokerOnce(opt)
		return err
	})
	return b, err
}

func (c *Cluster) launchBrokerOnce(opt Options) (*Broker, error) {
	opt.defaults()
	port, err := freeport.Range(2) // the broker listens on P, P-2 (the "fast" port) and P+1 (HA)
	if err != nil {
		return nil, err
	}
	addr := c.host() + ":" + strconv.Itoa(port) // as the broker registers it: "::1:port" on IPv6
	name, role := "broker-"+opt.BrokerName, "ASYNC_MASTER"
	if opt.BrokerID != 0 {
		name, role = fmt.Sprintf("%s-%d", name, opt.BrokerID), "SLAVE"
	}
	store := c.storeDir(name, opt.ServerJIT)
	lines := []string{
		"brokerClusterName=" + opt.ClusterName, "brokerName=" + opt.BrokerName,
		"brokerId=" + strconv.FormatInt(opt.BrokerID, 10), "brokerRole=" + role,
		"namesrvAddr=" + c.NameServer, "listenPort=" + strconv.Itoa(port), "haListenPort=" + strconv.Itoa(port+1),
		"brokerIP1=" + c.host(), "brokerIP2=" + c.host(), "bindAddress=" + c.host(),
		"storePathRootDir=" + store, "storePathCommitLog=" + filepath.Join(store, "commitlog"),
		"mappedFileSizeCommitLog=134217728", "diskMaxUsedSpaceRatio=95", "autoCreateTopicEnable=false",
		"autoCreateSubscriptionGroup=true", "enablePropertyFilter=true",
		// A broker closes its connection to the NameServer when one of its
		// requests there times out (3 s for some), and the NameServer then
		// drops the broker and every route through it until the broker's
		// next full registration (30 s): on a machine loaded by the rest of
		// the suite, tests then failed with "no master broker registered".
		// rmqproxy's handling of a dropped broker has tests of its own
		// (TestSendWhileTheNameServerDroppedTheBroker unregisters it).
		"clientCloseSocketIfTimeout=false",
	}
	conf := filepath.Join(c.Dir, "conf", name+".conf")
	if err := writeLines(conf, append(lines, opt.Extra...)...); err != nil {
		return nil, err
	}
	p, err := c.start(name, "1g", "org.apache.rocketmq.broker.BrokerStartup", opt.ServerJIT, opt.JVM, "-c", conf)
	if err != nil {
		return nil, err
	}
	b := &Broker{Name: opt.BrokerName, Cluster: opt.ClusterName, Addr: addr, ID: opt.BrokerID, c: c, p: p, proc: name, conf: conf, serverJIT: opt.ServerJIT, jvm: opt.JVM}
	if err := c.waitRegistered(b); err != nil {
		p.kill(syscall.SIGKILL, 0)
		return nil, err
	}
	c.mu.Lock()
	if c.Broker == "" && opt.BrokerID == 0 {
		c.Broker, c.BrokerName, c.ClusterName = addr, opt.BrokerName, opt.ClusterName
	}
	c.mu.Unlock()
	return b, nil
}

func writeLines(path string, lines ...string) error {
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// extract copies one file out of the jar whose name starts with prefix.
func extract(lib, prefix, name, to string) error {
	jars, _ := filepath.Glob(filepath.Join(lib, prefix+"*.jar"))
	if len(jars) == 0 {
		return fmt.Errorf("no %s*.jar in %s", prefix, lib)
	}
	zr, err := zip.OpenReader(jars[0])
	if err != nil {
		return err
	}
	defer zr.Close()
	f, err := zr.Open(name)
	if err != nil {
		return fmt.Errorf("%s in %s: %w", name, jars[0], err)
	}
	defer f.Close()
	// Written beside to and renamed into place: tests running in parallel
	// extract the same file while a JVM started by another may be reading
	// it.
	out, err := os.CreateTemp(filepath.Dir(to), filepath.Base(to)+".*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, f); err != nil {
		out.Close()
		os.Remove(out.Name())
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(out.Name())
		return err
	}
	return os.Rename(out.Name(), to)
}

// proc is one JVM.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  []string // last lines of stdout and stderr
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.out, "\n")
}

// exited reports whether the JVM has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// killIfRunning kills the JVM (SIGKILL) unless it has ended.
func (p *proc) killIfRunning() {
	if !p.exited() {
		p.kill(syscall.SIGKILL, 0)
	}
}

// kill sends sig to the JVM's process group and waits for it to end; when
// grace > 0 and it is still running after grace, SIGKILL follows.
func (p *proc) kill(sig syscall.Signal, grace time.Duration) {
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, sig)
	if grace > 0 {
		select {
		case <-p.done:
			return
		case <-time.After(grace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	}
	<-p.done
}

func (c *Cluster) start(name, heap, main string, serverJIT bool, jvmExtra []string, args ...string) (*proc, error) {
	home := filepath.Join(c.Dir, name)
	// The JVM's temporary files (Netty's self-signed certificates of a
	// TLS-serving proxy, "keyutil_*", which it never deletes) go under the
	// cluster's directory, removed with it, not into the system's /tmp.
	tmp := filepath.Join(home, "tmp")
	for _, d := range []string{tmp, filepath.Join(home, "logs")} { // logs: the GC log's, before logback makes it
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logConf := "rmq.broker.logback.xml"
	tls := "-Dtls.server.mode=disabled" // Remoting TLS: certificate generation dominates a start
	switch {
	case name == "namesrv":
		logConf = "rmq.namesrv.logback.xml"
	case strings.HasPrefix(name, "proxy"):
		// The proxy's gRPC port serves TLS and plaintext, as clients expect.
		logConf, tls = "rmq.proxy.logback.xml", "-Dtls.server.mode=permissive"
	}
	quick := []string{"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"} // fast start, slow steady state
	if serverJIT {
		quick = nil
	}
	jvm := append([]string{"-Xms256m", "-Xmx" + heap, "-XX:MaxDirectMemorySize=512m", c.jvmStack()}, quick...)
	jvm = append(jvm, "-XX:-UsePerfData", tls, "-Duser.home="+home, "-Djava.io.tmpdir="+tmp,
		"-Drmq.logback.configurationFile="+filepath.Join(c.Dir, "conf", logConf),
		// Each collection's pause and CPU time, and each safepoint, beside
		// the JVM's own logs (see KeepFiles): a pause whose real time far
		// exceeds its CPU time is a JVM starved of CPU.
		"-Xlog:gc,gc+cpu,safepoint:file="+filepath.Join(home, "logs", "gc-%p.log")+":time,uptime,level,tags:filecount=2,filesize=5m")
	jvm = append(jvm, jvmExtra...) // after the defaults: a repeated -D takes the last value
	jvm = append(jvm, "-cp", filepath.Join(c.lib, "*"), main)
	cmd := exec.Command(c.java, append(jvm, args...)...)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "ROCKETMQ_HOME="+home)
	if so := loopbind(c.lib); so != "" {
		if pre := os.Getenv("LD_PRELOAD"); pre != "" {
			so += ":" + pre
		}
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+so) // the last value of a name counts
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	childproc.DieWithParent(cmd)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pw.Close()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	go func() { // ends when the JVM closes its output
		defer close(p.done)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			if len(p.out) > 50 {
				p.out = p.out[1:]
			}
			p.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	return p, nil
}

// awaitNameServer waits until the NameServer answers a request, or fails
// when it exited.
func (c *Cluster) awaitNameServer() error {
	cl := client.New(client.Config{ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	defer cl.Close()
	// Its JVM starts beside the brokers of the tests running in parallel
	// and the rest of the suite: on two cores it took longer than two
	// minutes in two CI runs of 2026-12-07 (this stop added tests that
	// start brokers of their own).
	deadline := time.Now().Add(startWait)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := c.clusterInfo(cl)
		if err == nil {
			return nil
		}
		c.mu.Lock()
		procs := slices.Clone(c.procs)
		c.mu.Unlock()
		for _, p := range procs {
			if p.name == "namesrv" && p.exited() {
				return fmt.Errorf("the NameServer exited while starting:\n%s", p.tail())
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the NameServer did not answer within 2 minutes: %v", err)
		}
		<-tick.C
	}
}

// waitRegistered waits until the NameServer lists the broker.
func (c *Cluster) waitRegistered(b *Broker) error {
	cl := client.New(client.Config{ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	defer cl.Close()
	// Its JVM starts beside the brokers of the tests running in parallel
	// and the rest of the suite: on two cores it took longer than two
	// minutes in two CI runs of 2026-12-07 (this stop added tests that
	// start brokers of their own).
	deadline := time.Now().Add(startWait)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		c.mu.Lock()
		procs := slices.Clone(c.procs)
		c.mu.Unlock()
		for _, p := range procs {
			if p.exited() && (p == b.current() || p.name == "namesrv") {
				return fmt.Errorf("%s exited while starting:\n%s", p.name, p.tail())
			}
		}
		info, err := c.clusterInfo(cl)
		if err == nil {
			if bd, ok := info.BrokerAddrTable[b.Name]; ok && bd.BrokerAddrs[b.ID] == b.Addr {
				return nil
			}
			err = fmt.Errorf("broker %s not registered yet: %+v", b.Name, info)
		}
		last = err
		<-tick.C
	}
	return fmt.Errorf("RocketMQ not ready within 2 minutes: %v\nbroker output:\n%s", last, b.current().tail())
}

func (c *Cluster) clusterInfo(cl *client.Client) (*remoting.ClusterInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := cl.Invoke(ctx, c.NameServer, remoting.NewRequest(remoting.RequestGetBrokerClusterInfo, nil, nil))
	if err != nil {
		return nil, err
	}
	if err := remoting.Expect(resp); err != nil {
		return nil, err
	}
	var info remoting.ClusterInfo
	if err := remoting.DecodeJSONBody(resp.Body, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Processes returns the process id of each running JVM the cluster
// started (NameServer, brokers, Apache proxies), by its name ("namesrv",
// "broker-NAME", "proxy-PORT").
func (c *Cluster) Processes() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.procs))
	for _, p := range c.procs {
		if !p.exited() {
			m[p.name] = p.cmd.Process.Pid
		}
	}
	return m
}

// KeepFiles makes Close leave the directory LaunchNameServer made (the
// JVMs' configuration and logs, GC logs included; not the brokers' stores
// on a tmpfs), for a failed test run to be looked into.
func (c *Cluster) KeepFiles() {
	c.mu.Lock()
	c.ownsDir = false
	c.mu.Unlock()
}

// Close stops the JVMs, the NameServer last: SIGTERM to each process
// group, then SIGKILL to a group still running after 30 s. The brokers and
// proxies stop at once (each shutdown takes seconds), then the NameServer.
// It removes the directory when LaunchNameServer made it, and the
// brokers' stores on a tmpfs (see storeDir).
func (c *Cluster) Close() {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	owns := c.ownsDir
	c.mu.Unlock()
	term := func(p *proc) {
		if !p.exited() {
			p.kill(syscall.SIGTERM, 30*time.Second)
		}
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		if p.name != "namesrv" {
			wg.Go(func() { term(p) })
		}
	}
	wg.Wait()
	for _, p := range procs {
		if p.name == "namesrv" {
			term(p)
		}
	}
	if owns {
		_ = os.RemoveAll(c.Dir)
	}
	c.mu.Lock()
	stores := c.stores
	c.stores = ""
	c.mu.Unlock()
	if stores != "" {
		_ = os.RemoveAll(stores)
	}
}
