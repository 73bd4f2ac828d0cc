//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/config"
)

// raiseHangup sends SIGHUP to the calling thread and then a SIGUSR1,
// which it waits for on usr. A signal a thread sends to itself (tgkill,
// Linux only: hence this file's build constraint) is handled on that
// thread before the system call returns: the Go runtime then finds SIGHUP
// caught, or ends the process at once if nothing catches it. A signal sent
// to the process instead (kill) may be handled by another thread later,
// so that SIGUSR1 could arrive first and SIGHUP only after serve has
// returned and released its hold: the child then died of SIGHUP although
// serve held it (seen once under load). It exits the process on failure.
func raiseHangup(usr <-chan os.Signal) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := os.Getpid(), syscall.Gettid()
	if syscall.Tgkill(pid, tid, syscall.SIGHUP) != nil || syscall.Tgkill(pid, tid, syscall.SIGUSR1) != nil {
		os.Exit(3)
	}
	select {
	case <-usr:
	case <-time.After(30 * time.Second):
		os.Exit(4)
	}
}

// hangupChild returns the command that runs this test binary's test
// named run in a child process with SIGHUP at its default action. When
// this process ignores SIGHUP (started under nohup) its children would
// inherit that, and SIGHUP could not end them whatever the code does: the
// child is then started through python3, which resets the signal to its
// default before it execs. Without python3 the test cannot run: it fails
// under the README test command (RMQPROXY_TEST_REQUIRE_SERVICES=1) and is
// skipped otherwise.
func hangupChild(t *testing.T, run string) *exec.Cmd {
	t.Helper()
	args := []string{os.Args[0], "-test.run=^" + run + "$"}
	if !signal.Ignored(syscall.SIGHUP) {
		return exec.Command(args[0], args[1:]...)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("RMQPROXY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("SIGHUP is ignored (nohup?) and there is no python3 to start the child with it at its default: the test could not fail")
		}
		t.Skip("SIGHUP is ignored (nohup?) and there is no python3 to start the child with it at its default: the test could not fail")
	}
	reset := "import os, signal, sys; signal.signal(signal.SIGHUP, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
	return exec.Command(py, append([]string{"-c", reset}, args...)...)
}

// TestHangupWhileServingIsHeld: holdHangup catches SIGHUP, also after
// another handler of it stopped (the traffic rules module's). A child
// process holds the signal and sends it to itself (raiseHangup).
func TestHangupWhileServingIsHeld(t *testing.T) {
	if os.Getenv("RMQPROXY_TEST_HANGUP_CHILD") == "1" {
		holdHangup()
		holdHangup() // a second serve in the process: still held once
		other := make(chan os.Signal, 1)
		signal.Notify(other, syscall.SIGHUP)
		signal.Stop(other)
		usr := make(chan os.Signal, 1)
		signal.Notify(usr, syscall.SIGUSR1)
		raiseHangup(usr)
		os.Exit(0)
	}
	cmd := hangupChild(t, "TestHangupWhileServingIsHeld")
	cmd.Env = append(os.Environ(), "RMQPROXY_TEST_HANGUP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child holding SIGHUP: %v\n%s", err, out)
	}
}

// hangupLog is serve's log in the child of TestServeHoldsHangup: it sends
// SIGHUP to the process while serve logs the lines of hangupMoments; and
// once serve has started, it asks for the stop.
type hangupLog struct {
	usr  <-chan os.Signal
	mu   sync.Mutex
	buf  bytes.Buffer
	seen []string
	stop func()
}

// hangupMoments are log lines of serve's start and stop: the local broker
// opening (after its recovery), closing, and "rmqproxy stopped", logged
// once every module has stopped. At the last one the traffic rules module,
// which listens for SIGHUP while it runs, has stopped: only serve's own
// hold keeps the signal from ending the process. (With today's wiring the
// module listens already when the local broker opens and still when it
// closes.)
var hangupMoments = []string{`msg="local broker opened"`, `msg="local broker closed"`, `msg="rmqproxy stopped"`}

func (l *hangupLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	for _, m := range hangupMoments {
		if bytes.Contains(p, []byte(m)) {
			raiseHangup(l.usr)
			l.mu.Lock()
			l.seen = append(l.seen, m)
			l.mu.Unlock()
		}
	}
	if bytes.Contains(p, []byte(`msg="rmqproxy started"`)) {
		l.stop()
	}
	return len(p), nil
}

// TestServeHoldsHangup: from serve's start until the process exits SIGHUP
// is held, so that a reload signal arriving while the traffic rules module
// does not listen (before it started, after it stopped, after serve
// returned) does not end the process. A child process runs the serve
// command in local mode and sends itself SIGHUP at moments of the start
// and of the stop (hangupMoments), and once more after run returned.
func TestServeHoldsHangup(t *testing.T) {
	if dir := os.Getenv("RMQPROXY_TEST_SERVE_HANGUP_DIR"); dir != "" {
		usr := make(chan os.Signal, 1)
		signal.Notify(usr, syscall.SIGUSR1)
		// SIGTERM is sent once serve has logged that it started (one
		// during the start would cancel it), and again until serve ends;
		// the child's own handler keeps one that comes after serve
		// stopped listening from ending the process.
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		served := make(chan struct{})
		var once sync.Once
		log := &hangupLog{usr: usr, stop: func() {
			once.Do(func() {
				go func() {
					tick := time.NewTicker(50 * time.Millisecond)
					defer tick.Stop()
					for {
						_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
						select {
						case <-served:
							return
						case <-tick.C:
						}
					}
				}()
			})
		}}
		code := run([]string{"serve", "--local.dataDir=" + filepath.Join(dir, "data"), "--grpc.address=127.0.0.1:0",
			"--grpc.tls.mode=disabled", "--health.address=127.0.0.1:0", "--admin.address=127.0.0.1:0"},
			config.Sources{}, os.Stdout, log)
		close(served)
		// Between run's return and the exit (what main does next) a
		// hangup must not end the process either.
		raiseHangup(usr)
		log.mu.Lock()
		defer log.mu.Unlock()
		if code != 0 || len(log.seen) != len(hangupMoments) {
			fmt.Printf("run: exit status %d; SIGHUP sent at %q of %q\n%s", code, log.seen, hangupMoments, log.buf.String())
			os.Exit(5)
		}
		os.Exit(0)
	}
	cmd := hangupChild(t, "TestServeHoldsHangup")
	cmd.Env = append(os.Environ(), "RMQPROXY_TEST_SERVE_HANGUP_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("serve with SIGHUP at %s: %v\n%s", strings.Join(hangupMoments, ", "), err, out)
	}
}
