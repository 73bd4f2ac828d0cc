// Package rocketmqenv runs a real Apache RocketMQ NameServer and Broker for
// tests: the jars test/scripts/install-rocketmq.sh copied from Maven
// Central (release pinned in test/rocketmq/pom.xml), started with java on
// loopback, free ports, small heaps, Remoting TLS disabled, a logback file
// and a store per JVM in the test's temporary directory, and stopped by
// PID when the test ends.
//
// When java or the jars are missing, Start skips the test with the
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
)

// Cluster is a running NameServer with one Broker (a master).
type Cluster struct {
	NameServer  string // "127.0.0.1:port"
	Broker      string // the broker's Remoting address
	BrokerName  string
	ClusterName string
	Dir         string // stores and logs
	procs       []*proc
}

// Options change the broker's settings; Extra lines go into broker.conf.
type Options struct {
	BrokerName  string   // "broker-a"
	ClusterName string   // "RmqproxyCluster"
	Extra       []string // e.g. "autoCreateTopicEnable=true"
}

// LibDir returns where install-rocketmq.sh puts the jars.
func LibDir() string {
	if d := os.Getenv("RMQPROXY_ROCKETMQ_LIB"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "rocketmq", "target", "lib")
}

// unavailable skips (or, when services are required, fails) the test.
func unavailable(t testing.TB, why string) {
	t.Helper()
	msg := "Apache RocketMQ not available: " + why + "; run test/scripts/install-rocketmq.sh"
	if os.Getenv("RMQPROXY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Start starts a NameServer and a Broker and returns once the broker has
// registered with the NameServer.
func Start(t testing.TB, opt Options) *Cluster {
	t.Helper()
	if opt.BrokerName == "" {
		opt.BrokerName = "broker-a"
	}
	if opt.ClusterName == "" {
		opt.ClusterName = "RmqproxyCluster"
	}
	java, err := exec.LookPath("java")
	if err != nil {
		unavailable(t, "no java on PATH")
	}
	lib := LibDir()
	jars, _ := filepath.Glob(filepath.Join(lib, "rocketmq-broker-*.jar"))
	if len(jars) == 0 {
		unavailable(t, "no broker jar in "+lib)
	}
	dir := t.TempDir()
	c := &Cluster{BrokerName: opt.BrokerName, ClusterName: opt.ClusterName, Dir: dir}
	t.Cleanup(func() { c.Stop(t) })
	conf := filepath.Join(dir, "conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		t.Fatal(err)
	}
	for jar, name := range map[string]string{"rocketmq-namesrv-": "rmq.namesrv.logback.xml", "rocketmq-broker-": "rmq.broker.logback.xml"} {
		if err := extract(lib, jar, name, filepath.Join(conf, name)); err != nil {
			t.Fatal(err)
		}
	}

	nsPort := freePorts(t, 0)
	c.NameServer = "127.0.0.1:" + strconv.Itoa(nsPort)
	writeLines(t, filepath.Join(conf, "namesrv.conf"), "listenPort="+strconv.Itoa(nsPort), "bindAddress=127.0.0.1")
	c.start(t, java, lib, "namesrv", "512m", "org.apache.rocketmq.namesrv.NamesrvStartup", "-c", filepath.Join(conf, "namesrv.conf"))

	// The broker listens on P, P-2 (the "fast" port) and P+1 (HA).
	port := freePorts(t, 2)
	c.Broker = "127.0.0.1:" + strconv.Itoa(port)
	store := filepath.Join(dir, "store")
	lines := []string{
		"brokerClusterName=" + opt.ClusterName, "brokerName=" + opt.BrokerName, "brokerId=0",
		"namesrvAddr=" + c.NameServer, "listenPort=" + strconv.Itoa(port), "haListenPort=" + strconv.Itoa(port+1),
		"brokerIP1=127.0.0.1", "brokerIP2=127.0.0.1", "bindAddress=127.0.0.1",
		"storePathRootDir=" + store, "storePathCommitLog=" + filepath.Join(store, "commitlog"),
		"mappedFileSizeCommitLog=134217728", "diskMaxUsedSpaceRatio=95", "autoCreateTopicEnable=false",
		"autoCreateSubscriptionGroup=true", "enablePropertyFilter=true",
	}
	writeLines(t, filepath.Join(conf, "broker.conf"), append(lines, opt.Extra...)...)
	c.start(t, java, lib, "broker", "1g", "org.apache.rocketmq.broker.BrokerStartup", "-c", filepath.Join(conf, "broker.conf"))

	c.waitRegistered(t)
	return c
}

// freePorts returns a free port P such that P-below .. P+1 are free too.
func freePorts(t testing.TB, below int) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ok := p-below > 1024 && p+1 < 65536
		for q := p - below; ok && q <= p+1; q++ {
			if q == p {
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		ln.Close()
		if ok {
			return p
		}
	}
	t.Fatal("no free port range")
	return 0
}

func writeLines(t testing.TB, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
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
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, f); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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

func (c *Cluster) start(t testing.TB, java, lib, name, heap, main string, args ...string) {
	t.Helper()
	home := filepath.Join(c.Dir, name)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	jvm := []string{"-Xms256m", "-Xmx" + heap, "-XX:MaxDirectMemorySize=512m", "-Djava.net.preferIPv4Stack=true",
		"-Dtls.server.mode=disabled", "-Duser.home=" + home,
		"-Drmq.logback.configurationFile=" + filepath.Join(c.Dir, "conf", "rmq."+name+".logback.xml"),
		"-cp", filepath.Join(lib, "*"), main}
	cmd := exec.Command(java, append(jvm, args...)...)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), "ROCKETMQ_HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	pw.Close()
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	c.procs = append(c.procs, p)
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
}

// waitRegistered waits until the NameServer lists the broker.
func (c *Cluster) waitRegistered(t testing.TB) {
	t.Helper()
	cl := client.New(client.Config{ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	defer cl.Close()
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		for _, p := range c.procs {
			select {
			case <-p.done:
				t.Fatalf("%s exited while starting:\n%s", p.name, p.tail())
			default:
			}
		}
		info, err := c.clusterInfo(cl)
		if err == nil {
			if bd, ok := info.BrokerAddrTable[c.BrokerName]; ok && bd.BrokerAddrs[remoting.MasterID] == c.Broker {
				return
			}
			err = fmt.Errorf("broker %s not registered yet: %+v", c.BrokerName, info)
		}
		last = err
		<-tick.C
	}
	t.Fatalf("RocketMQ not ready within 2 minutes: %v\nbroker output:\n%s", last, c.procs[len(c.procs)-1].tail())
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

// Stop stops the JVMs, broker first: SIGTERM to each process group, then
// SIGKILL to a group still running after 30 s.
func (c *Cluster) Stop(t testing.TB) {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		pid := p.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Logf("%s (pid %d) ignored SIGTERM for 30 s; killing it", p.name, pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
	}
	c.procs = nil
}
