package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestHangupWhileServingIsHeld: serve holds SIGHUP for its whole run, so
// that a reload signal arriving before the traffic rules module listens
// (a long local-mode recovery) or after it stopped does not end the
// process. A child process holds the signal and sends it to itself; then
// a SIGUSR1, which it waits for: a signal sent to oneself is handled
// before kill returns, so once SIGUSR1 arrives SIGHUP has been handled.
func TestHangupWhileServingIsHeld(t *testing.T) {
	if os.Getenv("RMQPROXY_TEST_HANGUP_CHILD") == "1" {
		defer holdHangup()()
		usr := make(chan os.Signal, 1)
		signal.Notify(usr, syscall.SIGUSR1)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			os.Exit(3)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			os.Exit(3)
		}
		select {
		case <-usr:
			os.Exit(0)
		case <-time.After(30 * time.Second):
			os.Exit(4)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHangupWhileServingIsHeld$")
	cmd.Env = append(os.Environ(), "RMQPROXY_TEST_HANGUP_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child holding SIGHUP: %v\n%s", err, out)
	}
}
