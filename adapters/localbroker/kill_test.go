package localbroker

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// The child side of TestKill9: it sends and acks as fast as it can and
// reports every send and ack that returned OK on stdout, until killed.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv("RMQPROXY_TEST_KILL9_DIR")
	if dir == "" {
		t.Skip("helper process of TestKill9")
	}
	cfg := testConfig(dir)
	cfg.SegmentSize = 32 << 10
	cfg.MaxRecordSize = 8 << 10
	cfg.SnapshotInterval = 20 * time.Millisecond // snapshots race with the kill too
	e, err := Open(context.Background(), cfg, nil, ports.SystemClock{})
	if err != nil {
		fmt.Println("open-failed", err)
		os.Exit(1)
	}
	var out sync.Mutex
	say := func(format string, a ...any) {
		out.Lock()
		fmt.Printf(format+"\n", a...)
		out.Unlock()
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-w%d-%d", os.Getenv("RMQPROXY_TEST_KILL9_ROUND"), w, i)
				q := domain.QueueRef{Topic: "t", BrokerName: cfg.BrokerName, QueueID: int32(w)}
				if _, err := e.Send(context.Background(), q, []domain.Message{{Topic: "t", ID: id, Body: []byte(id)}}); err == nil {
					say("sent %s", id)
				}
			}
		})
	}
	wg.Go(func() {
		// Delay messages due a moment later: some fire before the kill,
		// some are pending when it comes.
		for i := 0; ; i++ {
			id := fmt.Sprintf("r%s-d-%d", os.Getenv("RMQPROXY_TEST_KILL9_ROUND"), i)
			q := domain.QueueRef{Topic: "d", BrokerName: cfg.BrokerName, QueueID: int32(i % 2)}
			m := domain.Message{Topic: "d", ID: id, Body: []byte(id), DeliverAt: time.Now().Add(time.Duration(i%10) * 50 * time.Millisecond)}
			if _, err := e.Send(context.Background(), q, []domain.Message{m}); err == nil {
				say("delayed %s", id)
			}
		}
	})
	wg.Go(func() {
		for {
			ms, _ := e.Pop(context.Background(), ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 8, InvisibleTime: time.Hour, PollTimeout: time.Second})
			for _, m := range ms {
				h, _ := domain.ParseReceiptHandle(m.ReceiptHandle)
				if e.Ack(context.Background(), ports.AckRequest{Group: "g", Topic: "t", Handle: h}) == nil {
					say("acked %s", m.ID)
				}
			}
		}
	})
	wg.Wait()
}

// TestKill9 kills a process that is sending and acking with SIGKILL and
// checks, after recovery, that every send and every ack it reported is
// kept: each reported message is present, and no reported ack is undone.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
		cmd.Env = append(os.Environ(), "RMQPROXY_TEST_KILL9_DIR="+dir, fmt.Sprintf("RMQPROXY_TEST_KILL9_ROUND=%d", round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sent, acked, delayed := map[string]bool{}, map[string]bool{}, map[string]bool{}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && (len(sent) < 300 || len(acked) < 100 || len(delayed) < 100) {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "sent":
				sent[f[1]] = true
			case len(f) == 2 && f[0] == "acked":
				acked[f[1]] = true
			case len(f) == 2 && f[0] == "delayed":
				delayed[f[1]] = true
			default:
				t.Logf("child: %s", sc.Text())
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		go func() { // drain so the child is never blocked writing
			for sc.Scan() {
			}
		}()
		_ = cmd.Wait()
		if len(sent) < 300 {
			t.Fatalf("round %d: child reported only %d sends", round, len(sent))
		}
		// Recover with a clock far ahead so that every unacked delivery is
		// visible again, and read everything.
		clock := clocktest.New(time.Now().Add(2 * time.Hour * time.Duration(round+1)))
		cfg := testConfig(dir)
		cfg.SegmentSize = 32 << 10
		cfg.MaxRecordSize = 8 << 10
		e, err := Open(context.Background(), cfg, nil, clock)
		if err != nil {
			t.Fatalf("round %d: recovery failed: %v", round, err)
		}
		seen := map[string]bool{}
		for {
			ms, err := e.Pop(t.Context(), ports.PopRequest{Group: fmt.Sprintf("audit%d", round), Topic: "t", QueueID: -1, MaxMessages: 256, InvisibleTime: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				seen[m.ID] = true
			}
		}
		redelivered := map[string]bool{}
		for {
			ms, err := e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "t", QueueID: -1, MaxMessages: 256, InvisibleTime: 3 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) == 0 {
				break
			}
			for _, m := range ms {
				redelivered[m.ID] = true
			}
		}
		for id := range sent {
			if !seen[id] {
				t.Errorf("round %d: send of %s was answered OK but the message is lost", round, id)
			}
		}
		for id := range acked {
			if redelivered[id] {
				t.Errorf("round %d: ack of %s was answered OK but the message was delivered again", round, id)
			}
		}
		// Every delay message whose send was answered OK is delivered (the
		// overdue ones fire at start), each exactly once.
		fired := map[string]int{}
		missing := func() int {
			n := 0
			for id := range delayed {
				if fired[id] == 0 {
					n++
				}
			}
			return n
		}
		deadline := time.Now().Add(20 * time.Second)
		for missing() > 0 && time.Now().Before(deadline) {
			ms, err := e.Pop(t.Context(), ports.PopRequest{Group: fmt.Sprintf("daudit%d", round), Topic: "d", QueueID: -1, MaxMessages: 256, InvisibleTime: time.Hour, PollTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				fired[m.ID]++
			}
		}
		if n := missing(); n > 0 {
			t.Errorf("round %d: %d of %d delay messages answered OK were never delivered", round, n, len(delayed))
		}
		for id, n := range fired {
			if n > 1 {
				t.Errorf("round %d: delay message %s delivered %d times to one group", round, id, n)
			}
		}
		// Leave the redelivered messages in flight for the next round; the
		// child's group continues from this state.
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d sends, %d acks and %d delay sends reported before SIGKILL, all kept", round, len(sent), len(acked), len(delayed))
	}
}
