package e2e_test

import (
	"strings"
	"syscall"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestCLIAndGracefulShutdown drives the topic and group commands of the real
// binary against a running rmqproxy, then stops it with SIGTERM: it exits 0
// after closing the broker, and what was sent is there after a restart.
func TestCLIAndGracefulShutdown(t *testing.T) {
	dataDir := t.TempDir()
	c := testenv.StartChild(t, dataDir, "--profile=production")
	admin := "--admin-address=" + c.AdminAddr
	run := func(want int, args ...string) string {
		t.Helper()
		code, out := testenv.CLI(t, append(args, admin)...)
		if code != want {
			t.Fatalf("rmqproxy %v: exit %d, want %d:\n%s", args, code, want, out)
		}
		return out
	}
	run(0, "topic", "create", "cli-topic", "--type", "FIFO", "--queues", "4", "--description", "made by the CLI")
	if out := run(0, "topic", "describe", "cli-topic", "--json"); !strings.Contains(out, `"type": "FIFO"`) || !strings.Contains(out, `"queueCount": 4`) {
		t.Fatalf("describe: %s", out)
	}
	run(0, "topic", "update", "cli-topic", "--queues", "6")
	if out := run(1, "topic", "update", "cli-topic", "--queues", "2"); !strings.Contains(out, "can only grow") {
		t.Fatalf("shrinking: %s", out)
	}
	if out := run(1, "topic", "create", "bad topic"); !strings.Contains(out, "illegal") {
		t.Fatalf("bad name: %s", out)
	}
	run(0, "group", "create", "cli-group", "--max-delivery-attempts", "5", "--retry", "1s,5s", "--orderly")
	if out := run(0, "group", "list"); !strings.Contains(out, "cli-group") {
		t.Fatalf("group list: %s", out)
	}
	run(0, "topic", "create", "kept", "--type", "NORMAL")
	if out := run(0, "topic", "list"); !strings.Contains(out, "cli-topic") || !strings.Contains(out, "kept") {
		t.Fatalf("topic list: %s", out)
	}
	run(0, "topic", "delete", "cli-topic")
	if out := run(1, "topic", "describe", "cli-topic"); !strings.Contains(out, "does not exist") {
		t.Fatalf("deleted topic: %s", out)
	}
	if out := run(2, "topic", "frobnicate"); !strings.Contains(out, "Usage") {
		t.Fatalf("usage: %s", out)
	}

	// The production profile creates nothing on the fly.
	pr := testenv.NewProducer(t, c.Proxy(t), "kept")
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: "kept", Body: []byte("before SIGTERM")}); err != nil {
		t.Fatal(err)
	}
	raw := testenv.NewRawClient(t, c.Proxy(t))
	raw.Subscribe(t, "no-such-group", "kept")
	if st, _ := raw.Receive(t, testenv.ReceiveRequest("no-such-group", "kept", 1, 10*time.Second)); st.GetCode() != v2.Code_CONSUMER_GROUP_NOT_FOUND {
		t.Fatalf("receive for a group that does not exist: %v", st)
	}
	_ = pr.GracefulStop()

	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, logs := c.ExitedWith(t)
	if code != 0 || !strings.Contains(logs, "local broker closed") || !strings.Contains(logs, "rmqproxy stopped") {
		t.Fatalf("SIGTERM: exit %d, logs:\n%s", code, logs)
	}
	c2 := testenv.StartChild(t, dataDir, append(fastConsumer, "--profile=production")...)
	admin = "--admin-address=" + c2.AdminAddr
	run(0, "group", "create", "after-restart")
	if out := drain(t, c2.Proxy(t), "kept", "after-restart"); len(out) != 1 {
		t.Fatalf("after a graceful restart %d messages", len(out))
	}
}
