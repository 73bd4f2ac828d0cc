package testenv_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNothingLeftBehind runs a test package that builds and runs the
// rmqproxy binary and sends with the official Go client, in a fresh TMPDIR
// and HOME, and checks that it leaves neither the binary nor the client's
// log behind, and that it removes what a killed earlier run left (and only
// that).
func TestNothingLeftBehind(t *testing.T) {
	tmp, home := t.TempDir(), t.TempDir()
	// A directory of a test process that is gone, and one of a live one.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(tmp, "rmqproxy-test-"+strconv.Itoa(dead.Process.Pid)+"-bin-123")
	live := filepath.Join(tmp, "rmqproxy-test-"+strconv.Itoa(os.Getpid())+"-bin-456")
	for _, d := range []string{stale, live} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	goEnv := func(key string) string {
		out, err := exec.Command("go", "env", key).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	// Each connection of the Go client logs every call to this file,
	// whatever TMPDIR and its log root say (zaplog's default).
	const rpcLog = "/tmp/rocketmq-logger.log"
	before, _ := os.Stat(rpcLog)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "./testdata/leftovers")
	// The build cache and module cache stay where they are (else this
	// would rebuild everything); temporary files and $HOME are fresh.
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+home,
		"GOCACHE="+goEnv("GOCACHE"), "GOMODCACHE="+goEnv("GOMODCACHE"), "GOPATH="+goEnv("GOPATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test ./testdata/leftovers: %v\n%s", err, out)
	}

	var left []string
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if len(left) != 1 || left[0] != filepath.Base(live) {
		t.Errorf("TMPDIR holds %q after the run; want only %s (a live process's)", left, filepath.Base(live))
	}
	if _, err := os.Stat(filepath.Join(home, "logs")); !os.IsNotExist(err) {
		t.Errorf("the Go client wrote to $HOME/logs: %v", err)
	}
	if after, err := os.Stat(rpcLog); err == nil && (before == nil || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime())) {
		t.Errorf("the Go client logged its calls to %s (%d bytes now)", rpcLog, after.Size())
	}
}
