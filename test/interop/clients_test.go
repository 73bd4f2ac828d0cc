package interop_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The pinned client versions; test/scripts/install-clients.sh installs
// them from test/java/pom.xml, test/node/package-lock.json and
// test/python/requirements.txt.
const (
	javaClientVersion   = "5.2.0"
	nodeClientVersion   = "1.0.8"
	pythonClientVersion = "5.1.2"
	installCommand      = "test/scripts/install-clients.sh"
)

// language is one official client and the interop program written with it.
type language struct {
	name string
	// missing says what is not installed, or "" when the program can run.
	missing func(root string) string
	// command builds the program's command line; logDir receives the
	// client's own log files.
	command func(ctx context.Context, root, logDir string, args []string) *exec.Cmd
}

var languages = []language{
	{
		name: "java",
		missing: func(root string) string {
			if _, err := exec.LookPath("java"); err != nil {
				return "java (a JDK 17+) is not on PATH"
			}
			dir := filepath.Join(root, "test", "java")
			jar := filepath.Join(dir, "target", "lib", "rocketmq-client-java-"+javaClientVersion+".jar")
			if _, err := os.Stat(jar); err != nil {
				return "the Java client is not built (" + rel(root, jar) + " is missing)"
			}
			built, err := os.ReadFile(filepath.Join(dir, "target", ".sources.sha256"))
			if err != nil {
				return "the Java interop program is not built (" + rel(root, filepath.Join(dir, "target")) + ")"
			}
			if sum, err := sourcesDigest(filepath.Join(dir, "src")); err != nil || sum != strings.TrimSpace(string(built)) {
				return "the Java interop program was built from other sources than " + rel(root, filepath.Join(dir, "src")) + " (run test/scripts/install-clients.sh)"
			}
			return ""
		},
		command: func(ctx context.Context, root, logDir string, args []string) *exec.Cmd {
			dir := filepath.Join(root, "test", "java", "target")
			cp := filepath.Join(dir, "classes") + string(os.PathListSeparator) + filepath.Join(dir, "lib", "*")
			// A small heap and quick startup: the suite shares 2 cores with the proxy.
			return exec.CommandContext(ctx, "java", append([]string{
				"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xms32m", "-Xmx256m",
				"-Drocketmq.log.root=" + logDir,
				"-cp", cp, "rmqproxy.interop.Main",
			}, args...)...)
		},
	},
	{
		name: "node",
		missing: func(root string) string {
			if _, err := exec.LookPath("node"); err != nil {
				return "node (Node.js 18+) is not on PATH"
			}
			pkg := filepath.Join(root, "test", "node", "node_modules", "rocketmq-client-nodejs", "package.json")
			if v := packageVersion(pkg); v != nodeClientVersion {
				return fmt.Sprintf("rocketmq-client-nodejs %s is not installed in test/node (found %q)", nodeClientVersion, v)
			}
			return ""
		},
		command: func(ctx context.Context, root, logDir string, args []string) *exec.Cmd {
			cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(root, "test", "node", "interop.js")}, args...)...)
			// The client logs to $HOME/logs/rocketmq.
			cmd.Env = append(os.Environ(), "HOME="+logDir)
			return cmd
		},
	},
	{
		name: "python",
		missing: func(root string) string {
			py := filepath.Join(root, "test", "python", ".venv", "bin", "python")
			if _, err := os.Stat(py); err != nil {
				return "the Python venv test/python/.venv does not exist"
			}
			dist, _ := filepath.Glob(filepath.Join(root, "test", "python", ".venv", "lib", "python*", "site-packages",
				"rocketmq_python_client-"+pythonClientVersion+".dist-info"))
			if len(dist) == 0 {
				return "rocketmq-python-client " + pythonClientVersion + " is not installed in test/python/.venv"
			}
			return ""
		},
		command: func(ctx context.Context, root, logDir string, args []string) *exec.Cmd {
			dir := filepath.Join(root, "test", "python")
			cmd := exec.CommandContext(ctx, filepath.Join(dir, ".venv", "bin", "python"),
				append([]string{filepath.Join(dir, "interop.py")}, args...)...)
			// The client logs to $HOME/logs/rocketmq_python.
			cmd.Env = append(os.Environ(), "HOME="+logDir, "PYTHONUNBUFFERED=1")
			return cmd
		},
	},
}

// repoRoot is the repository root (tests run in their package directory).
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// requireClient skips the test when lang's program cannot run, or fails it
// when the environment promises every service
// (RMQPROXY_TEST_REQUIRE_SERVICES=1, as test/scripts/test.sh sets).
func requireClient(t *testing.T, lang language) {
	t.Helper()
	m := lang.missing(repoRoot(t))
	if m == "" {
		return
	}
	msg := fmt.Sprintf("%s interop client unavailable: %s; install it with %s", lang.name, m, installCommand)
	if os.Getenv("RMQPROXY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// event is one line a program printed. Fields a line does not have are zero.
type event struct {
	Event      string            `json:"event"`
	ID         string            `json:"id"`
	Consumer   string            `json:"consumer"`
	Topic      string            `json:"topic"`
	Body       string            `json:"body"`
	Tag        string            `json:"tag"`
	Keys       []string          `json:"keys"`
	Props      map[string]string `json:"props"`
	Group      string            `json:"group"`
	Seq        *int              `json:"seq"`
	Attempt    int               `json:"attempt"`
	DeliverAt  int64             `json:"deliver_at"`
	TS         int64             `json:"ts"`
	Outcome    string            `json:"outcome"`
	Resolution string            `json:"resolution"`
	Case       string            `json:"case"`
	Message    string            `json:"message"`
	// verify: the admin API's HTTP status and answer, and the client asked.
	Status int    `json:"status"`
	Answer string `json:"answer"` // also: a recall's answer (message id)
	Client string `json:"client"`
}

// program runs lang's interop program for one scenario and returns the
// events it printed. It fails the test if the program exits non-zero, runs
// past timeout, or ends without its "done" event; the program's stderr,
// unparsed output and client log tails are logged then.
func program(t *testing.T, lang language, timeout time.Duration, args ...string) []event {
	t.Helper()
	root, logDir := repoRoot(t), t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := lang.command(ctx, root, logDir, args)
	cmd.Dir = root
	cmd.WaitDelay = 10 * time.Second
	var stderr logbuf.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", lang.name, err)
	}
	pid := cmd.Process.Pid
	// Normally Wait below has reaped it; this covers a test that stops early.
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	var events []event
	var arrived []time.Duration // when each event's line was read, since start
	var transcript strings.Builder
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		transcript.WriteString(line + "\n")
		if !strings.HasPrefix(line, "{") {
			continue // a client's own console output
		}
		var e event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("%s printed a line that is not an event: %q: %v", lang.name, line, err)
			continue
		}
		events = append(events, e)
		arrived = append(arrived, time.Since(start))
	}
	waitErr := cmd.Wait()
	t.Logf("%s %s: pid %d ran %v", lang.name, strings.Join(args, " "), pid, time.Since(start).Round(time.Millisecond))
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("%s stderr:\n%s", lang.name, tail(s, 60))
	}
	if errs := clientErrors(logDir); len(errs) > 0 {
		t.Logf("%s client logged %d errors:\n%s", lang.name, len(errs), tail(strings.Join(errs, "\n"), 20))
	}
	report := func() {
		// The summary first: CI output may keep only the start of a
		// failure's log, and the transcript below can be long.
		t.Logf("%s events: %s", lang.name, summarize(events, arrived))
		t.Logf("%s stdout:\n%s", lang.name, tail(transcript.String(), 200))
		logTails(t, logDir)
	}
	switch {
	case ctx.Err() != nil:
		report()
		t.Fatalf("%s did not finish within %v (killed pid %d)", lang.name, timeout, pid)
	case waitErr != nil:
		report()
		t.Fatalf("%s exited with %v", lang.name, waitErr)
	case len(events) == 0 || events[len(events)-1].Event != "done":
		report()
		t.Fatalf("%s ended without its done event", lang.name)
	}
	t.Cleanup(func() {
		if t.Failed() {
			report()
		}
	})
	return events
}

// summarize says, per kind of event, how many a program printed and when
// the first and last of them came (since the program started), and which
// sent messages it never received: enough to tell a slow run from a lost
// message without reading the transcript.
func summarize(events []event, arrived []time.Duration) string {
	type span struct {
		n           int
		first, last time.Duration
	}
	kinds := map[string]*span{}
	var order []string
	received := map[string]bool{}
	for i, e := range events {
		s := kinds[e.Event]
		if s == nil {
			s = &span{first: arrived[i]}
			kinds[e.Event] = s
			order = append(order, e.Event)
		}
		s.n++
		s.last = arrived[i]
		if e.Event == "received" {
			received[e.ID] = true
		}
	}
	var b strings.Builder
	for _, k := range order {
		s := kinds[k]
		fmt.Fprintf(&b, "%s %d (%v..%v); ", k, s.n, s.first.Round(time.Millisecond), s.last.Round(time.Millisecond))
	}
	var missing []string
	for _, e := range only(events, "sent") {
		if !received[e.ID] {
			m := e.ID
			if e.Seq != nil {
				m = fmt.Sprintf("%s (group %q seq %d)", e.ID, e.Group, *e.Seq)
			}
			missing = append(missing, m)
		}
	}
	fmt.Fprintf(&b, "sent but not received: %d %v", len(missing), missing)
	return b.String()
}

// clientErrors returns the lines of the client's log files that report an
// error (the clients log at level ERROR what went wrong in their exchange
// with the proxy; the known ones are in docs/compatibility.md).
func clientErrors(dir string) []string {
	var errs []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "ERROR") {
				errs = append(errs, line)
			}
		}
		return nil
	})
	return errs
}

// logTails logs the last lines of each log file the client wrote.
func logTails(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			t.Logf("client log %s:\n%s", filepath.Base(path), tail(string(b), 80))
		}
		return nil
	})
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = append([]string{fmt.Sprintf("[... %d lines]", len(parts)-lines)}, parts[len(parts)-lines:]...)
	}
	return strings.Join(parts, "\n")
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

// sourcesDigest is the SHA-256 of the files under dir, concatenated in
// byte order of their paths: what install-clients.sh records in
// target/.sources.sha256 when it builds (or finds built) the Java program.
func sourcesDigest(dir string) (string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func packageVersion(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		return ""
	}
	return pkg.Version
}

// only returns the events named name.
func only(events []event, name string) []event {
	var out []event
	for _, e := range events {
		if e.Event == name {
			out = append(out, e)
		}
	}
	return out
}
