package e2e_test

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// signalDuringStart sends SIGTERM to c, waits for it to exit, and checks
// that it exited 1, having logged once that the start was cancelled while
// doing inProgress, and that it stopped (the admin API and the gRPC server
// never started). It returns the logs. How soon it exited is logged, not
// bounded (a bound of 10 s in wall time was one a busy machine could
// miss): what the start was doing would not have ended by itself before
// ExitedWith gives up (a 2-minute NameServer request; a recovery the test
// then checks did not finish).
func signalDuringStart(t *testing.T, c *testenv.Child, inProgress string) string {
	t.Helper()
	sent := time.Now()
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, logs := c.ExitedWith(t)
	took := time.Since(sent)
	t.Logf("exit %d %v after SIGTERM; logs:\n%s", code, took, logs)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (a cancelled start)", code)
	}
	var cancelled []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "start cancelled by a signal; stopping what has started" {
			cancelled = append(cancelled, rec)
		}
	}
	if len(cancelled) != 1 || cancelled[0]["signal"] != "terminated" || cancelled[0]["in_progress"] != inProgress {
		t.Errorf("log lines of the cancelled start %v, want one with signal terminated and in_progress %q", cancelled, inProgress)
	}
	if !strings.Contains(logs, `"msg":"rmqproxy stopped","start_cancelled":true`) {
		t.Error("logs lack that rmqproxy stopped after the cancelled start")
	}
	for _, never := range []string{"gRPC MessagingService listening", "admin API listening", `"msg":"rmqproxy started"`} {
		if strings.Contains(logs, never) {
			t.Errorf("logs have %q: the start went on", never)
		}
	}
	return logs
}

// TestSIGTERMWhileWaitingForANameServer: in cluster mode a start waits up
// to cluster.startTimeout for a NameServer to answer; a SIGTERM then ends
// the wait at once (with a NameServer that accepts connections and never
// answers), logged with what the start was doing, and rmqproxy exits 1.
func TestSIGTERMWhileWaitingForANameServer(t *testing.T) {
	if testenv.Target == testenv.TargetCluster {
		t.Skip("runs its own silent NameServer in cluster mode; the local pass covers it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	var conns sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	conns.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, conn) // read nothing, answer nothing
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	})
	defer func() {
		ln.Close()
		conns.Wait()
		for _, c := range open {
			c.Close()
		}
	}()
	c := testenv.StartChildNoWait(t, t.TempDir(), "--mode=cluster", "--cluster.nameServers="+ln.Addr().String(),
		"--cluster.startTimeout=5m", "--cluster.requestTimeout=2m")
	select {
	case <-accepted: // the start is waiting for the NameServer's answer
	case <-time.After(60 * time.Second):
		t.Fatalf("rmqproxy did not connect to the NameServer; logs:\n%s", c.Output())
	}
	signalDuringStart(t, c, "waiting for a NameServer of cluster.nameServers to answer")
}

// TestSIGTERMDuringRecovery: a SIGTERM while local mode recovers its data
// directory cancels the recovery between records, unlocks the directory
// (no commit-log writer runs yet) and exits 1; the next start recovers
// the whole directory and serves every message sent before.
func TestSIGTERMDuringRecovery(t *testing.T) {
	if testenv.Target == testenv.TargetCluster {
		t.Skip("local mode's recovery")
	}
	waitsInParallel(t)
	const (
		topic, group = "start-cancel", "start-cancel-g"
		n            = 300
	)
	dataDir := t.TempDir()
	first := testenv.StartChild(t, dataDir, "--local.snapshotInterval=1h")
	createTopicVia(t, first, topic, 1)
	ac, err := admin.NewClient(first.AdminAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateGroup(t.Context(), application.GroupSpec{Name: group}); err != nil {
		t.Fatal(err)
	}
	testenv.NewRawClient(t, first.Proxy(t)).SendN(t, topic, n)
	first.Kill(t) // no final snapshot: the next start replays every record

	// 100 ms a record: recovery would take over 30 s.
	slow := testenv.StartChildEnvNoWait(t, testenv.BinaryWithTestHooks(t), dataDir, nil, []string{"RMQPROXY_TEST_REPLAY_DELAY=100ms"})
	replayed := regexp.MustCompile(`replaying the commit log after the snapshot \(records read: ([0-9]+)`)
	testenv.WaitFor(t, 60*time.Second, func() error {
		addr := ""
		for _, line := range strings.Split(slow.Output(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "health endpoints listening" {
				addr, _ = rec["address"].(string)
			}
		}
		if addr == "" {
			return fmt.Errorf("the health server does not listen yet")
		}
		st := checkReadiness(t, addr, "localbroker")
		if m := replayed.FindStringSubmatch(st.err); m == nil || m[1] == "0" {
			return fmt.Errorf("not replaying yet: %+v", st)
		}
		return nil
	})
	logs := signalDuringStart(t, slow, "recovering the data directory (local.dataDir)")
	if strings.Contains(logs, `"msg":"local broker opened"`) {
		t.Error("the recovery finished: the signal did not cancel it")
	}

	// The directory is unlocked and intact: the next start recovers it all.
	next := testenv.StartChild(t, dataDir)
	if !strings.Contains(next.Output(), `"msg":"rmqproxy started"`) {
		t.Fatalf("the next start failed; logs:\n%s", next.Output())
	}
	for _, line := range strings.Split(next.Output(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "local broker opened" {
			if r, _ := rec["records_replayed"].(float64); r < n {
				t.Errorf("the next start replayed %v records, want at least %d", r, n)
			}
		}
	}
	raw := testenv.NewRawClient(t, next.Proxy(t))
	raw.Subscribe(t, group, topic)
	got := raw.ReceiveN(t, group, topic, n, time.Minute, 60*time.Second)
	seen := map[string]bool{}
	for _, m := range got {
		seen[string(m.GetBody())] = true
	}
	for i := range n {
		if !seen["m"+strconv.Itoa(i)] {
			t.Fatalf("message m%d lost", i)
		}
	}
}
