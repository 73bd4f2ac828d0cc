package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/test/testenv/childproc"
)

// builds holds the binaries built in this test run: with the race
// detector or without it, with the test hooks or without them.
var builds = map[buildKind]*build{}

type buildKind struct{ race, hooks bool }

var buildsMu sync.Mutex

type build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// childRace reports whether children are built with the race detector:
// when the tests run with it, or RMQPROXY_TEST_CHILD_RACE=1.
func childRace() bool { return raceEnabled || os.Getenv("RMQPROXY_TEST_CHILD_RACE") == "1" }

// Binary builds cmd/rmqproxy once per test run (with the race detector
// when the children are checked for races, see childRace), into a
// temporary directory that [Main] removes when the run ends.
func Binary(t testing.TB) string {
	t.Helper()
	return buildBinary(t, buildKind{race: childRace()})
}

// BinaryWithTestHooks is Binary built with the rmqproxy_testhooks tag,
// whose hooks slow the child down where a test asks it to through the
// environment (RMQPROXY_TEST_REPLAY_DELAY: per commit-log record that
// local-mode recovery reads). Releases never have them.
func BinaryWithTestHooks(t testing.TB) string {
	t.Helper()
	return buildBinary(t, buildKind{race: childRace(), hooks: true})
}

// BinaryWithoutRace is Binary never built with the race detector: for
// tests that bound the child's memory, which the detector's shadow memory
// would multiply (10,000 streams: 128 MiB without, 634 MiB with it).
func BinaryWithoutRace(t testing.TB) string {
	t.Helper()
	return buildBinary(t, buildKind{})
}

func buildBinary(t testing.TB, kind buildKind) string {
	t.Helper()
	buildsMu.Lock()
	b := builds[kind]
	if b == nil {
		b = &build{}
		builds[kind] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", tempPrefix("bin"))
		if err != nil {
			b.err = err
			return
		}
		b.dir = dir
		b.path = filepath.Join(dir, "rmqproxy")
		args := []string{"build", "-o", b.path}
		if kind.race {
			args = append(args, "-race")
		}
		if kind.hooks {
			args = append(args, "-tags=rmqproxy_testhooks")
		}
		out, err := exec.Command("go", append(args, "github.com/rmqproxy/rmqproxy/cmd/rmqproxy")...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// childEnv is the environment of the rmqproxy processes the tests start:
// this process's, with the race detector's exit sleep turned off. A binary
// built with the race detector sleeps atexit_sleep_ms (default 1 s) before
// it exits with status 0, so that goroutines still running may reach more
// racy accesses; a race report under way is waited for either way. Each CLI
// command that succeeded and each proxy that stopped cleanly paid that
// second. A GORACE that sets atexit_sleep_ms itself is kept.
func childEnv() []string {
	env := os.Environ()
	gorace := os.Getenv("GORACE")
	if strings.Contains(gorace, "atexit_sleep_ms") {
		return env
	}
	return append(env, "GORACE="+strings.TrimSpace(gorace+" atexit_sleep_ms=0"))
}

// removeBinary deletes what Binary built.
func removeBinary() {
	buildsMu.Lock()
	defer buildsMu.Unlock()
	for _, b := range builds {
		if b.dir != "" {
			_ = os.RemoveAll(b.dir)
		}
	}
}

// Child is rmqproxy running as a separate process, so that it can be
// killed with SIGKILL like a crashing machine would kill it.
type Child struct {
	cmd        *exec.Cmd
	GRPCAddr   string
	AdminAddr  string
	HealthAddr string
	exited     chan struct{}
	ready      chan struct{} // closed when it logs "rmqproxy started"
	mu         sync.Mutex
	logs       strings.Builder
}

// StartChild runs rmqproxy on dataDir with extra flags and waits until it
// serves, or until it exits (then the returned child has exited closed and
// its logs explain why). In the cluster pass it runs in cluster mode in
// front of the pass's broker, unless extra sets --mode or --config itself.
func StartChild(t testing.TB, dataDir string, extra ...string) *Child {
	t.Helper()
	return waitStarted(t, startChild(t, Binary(t), dataDir, extra))
}

// StartMeasuredChild is StartChild with a binary built without the race
// detector (BinaryWithoutRace), for tests that bound its memory.
func StartMeasuredChild(t testing.TB, dataDir string, extra ...string) *Child {
	t.Helper()
	return waitStarted(t, startChild(t, BinaryWithoutRace(t), dataDir, extra))
}

func waitStarted(t testing.TB, c *Child) *Child {
	t.Helper()
	select {
	case <-c.ready:
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("rmqproxy did not start within 60s; logs:\n%s", c.Output())
	}
	return c
}

// StartChildNoWait starts rmqproxy as StartChild does but returns at once,
// while it is still starting, as "./rmqproxy &" in a shell does. It is
// killed when the test ends.
func StartChildNoWait(t testing.TB, dataDir string, extra ...string) *Child {
	t.Helper()
	return startChild(t, Binary(t), dataDir, extra)
}

// StartChildEnvNoWait is StartChildNoWait with the given binary (Binary,
// BinaryWithTestHooks) and environment variables added to the child's.
func StartChildEnvNoWait(t testing.TB, binary, dataDir string, extra, env []string) *Child {
	t.Helper()
	return startChildEnv(t, binary, dataDir, extra, env)
}

func startChild(t testing.TB, binary, dataDir string, extra []string) *Child {
	t.Helper()
	return startChildEnv(t, binary, dataDir, extra, nil)
}

// startChildEnv is startChild with environment variables added to the
// child's (this process's).
func startChildEnv(t testing.TB, binary, dataDir string, extra, env []string) *Child {
	t.Helper()
	reportClockSteps(t)
	args := []string{
		"--grpc.address=127.0.0.1:0", "--admin.address=127.0.0.1:0", "--health.address=127.0.0.1:0",
		"--local.dataDir=" + dataDir,
		"--log.format=json", "--log.level=info",
	}
	if Target == TargetCluster && !slices.ContainsFunc(extra, func(a string) bool {
		return strings.HasPrefix(a, "--mode=") || strings.HasPrefix(a, "--config=")
	}) {
		args = append(args, clusterFlags(t)...)
	}
	args = append(args, extra...)
	c := &Child{cmd: exec.Command(binary, args...), exited: make(chan struct{}), ready: make(chan struct{})}
	c.cmd.Env = append(childEnv(), env...)
	childproc.DieWithParent(c.cmd)
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go c.readLogs(stderr, c.ready)
	t.Cleanup(func() { c.Kill(t) })
	return c
}

// readLogs keeps the child's log and notes the addresses it listens on.
func (c *Child) readLogs(r io.Reader, ready chan struct{}) {
	defer close(c.exited)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		c.mu.Lock()
		c.logs.WriteString(line + "\n")
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			addr, _ := rec["address"].(string)
			switch rec["msg"] {
			case "gRPC MessagingService listening":
				c.GRPCAddr = addr
			case "admin API listening":
				c.AdminAddr = addr
			case "health endpoints listening":
				c.HealthAddr = addr
			case "rmqproxy started":
				if !signalled {
					signalled = true
					close(ready)
				}
			}
		}
		c.mu.Unlock()
	}
	_ = c.cmd.Wait()
}

func (c *Child) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs.String()
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *Child) Kill(t testing.TB) {
	if c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("rmqproxy pid %d did not exit after SIGKILL", c.cmd.Process.Pid)
	}
}

// ExitedWith waits for the process to end on its own and returns its logs.
func (c *Child) ExitedWith(t testing.TB) (int, string) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("rmqproxy did not exit; logs:\n%s", c.Output())
	}
	return c.cmd.ProcessState.ExitCode(), c.Output()
}

func (c *Child) Proxy(t testing.TB) *Proxy {
	t.Helper()
	if c.GRPCAddr == "" {
		t.Fatalf("rmqproxy is not serving; logs:\n%s", c.Output())
	}
	return &Proxy{t: t, Addr: c.GRPCAddr}
}

// PID is the process id of the child.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Signal sends sig to the process.
func (c *Child) Signal(sig os.Signal) error { return c.cmd.Process.Signal(sig) }

// CLI runs the rmqproxy binary with args (for the topic and group commands)
// and returns its exit code and combined output.
func CLI(t testing.TB, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary(t), args...)
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("run rmqproxy %v: %v", args, err)
		return -1, ""
	}
}

// startChildWithConfig runs the binary with cfg written to a YAML file (the
// same file format operators use) and returns it as a Proxy whose admin
// calls go through the admin HTTP API. Error-level logs of the child fail
// the test.
func startChildWithConfig(t testing.TB, cfg app.Root) *Proxy {
	t.Helper()
	env := moveSecrets(&cfg)
	var buf bytes.Buffer
	if err := config.Print(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rmqproxy.yaml")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// Info level at least: the child reports its addresses and readiness
	// in Info records.
	c := waitStarted(t, startChildEnv(t, Binary(t), cfg.Local.DataDir, []string{"--config=" + file, "--log.level=info"}, env))
	ac, err := admin.NewClient(c.AdminAddr, nil)
	if err != nil {
		t.Fatalf("rmqproxy did not start: %v; logs:\n%s", err, c.Output())
	}
	t.Cleanup(func() {
		for _, line := range strings.Split(c.Output(), "\n") {
			if strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("unexpected error log from rmqproxy: %s", line)
			}
		}
	})
	p := c.Proxy(t)
	p.Admin = ac
	p.DataDir = cfg.Local.DataDir
	p.child = c
	return p
}

// moveSecrets empties cfg's secrets, which config.Print writes as REDACTED
// (a value rmqproxy refuses), and returns them as the environment
// variables that give them to the child.
func moveSecrets(cfg *app.Root) []string {
	var env []string
	move := func(s *string, name string) {
		if *s != "" {
			env = append(env, name+"="+*s)
			*s = ""
		}
	}
	move(&cfg.Admin.SecretKey, "RMQPROXY_ADMIN_SECRET_KEY")
	move(&cfg.Postgres.DSN, "RMQPROXY_POSTGRES_DSN")
	move(&cfg.Postgres.SecretKeys, "RMQPROXY_POSTGRES_SECRET_KEYS")
	move(&cfg.OTLP.Headers, "RMQPROXY_OTLP_HEADERS")
	move(&cfg.Cluster.ACL.SecretKey, "RMQPROXY_CLUSTER_ACL_SECRET_KEY")
	return env
}
