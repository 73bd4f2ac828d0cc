package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// sendBodies sends one message per body to topic, in order.
func sendBodies(t *testing.T, pr rmq.Producer, topic string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte(b)}); err != nil {
			t.Fatalf("send %s: %v", b, err)
		}
	}
}

func bodies(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprint(prefix, i))
	}
	return out
}

// resetCLI runs rmqproxy group reset and returns its output.
func resetCLI(t *testing.T, adminAddr, group, topic, to string, extra ...string) string {
	t.Helper()
	args := append([]string{"group", "reset", group, "--topic", topic, "--to", to, "--admin.address=" + adminAddr}, extra...)
	code, out := testenv.CLI(t, args...)
	if code != 0 {
		t.Fatalf("rmqproxy %s: exit %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// TestResetReplaysFromATimeAndSkipsABacklog: a group that consumed ten
// messages, reset to a time between the 4th and the 5th, gets exactly the
// 5th to the 10th again; reset to latest, it skips a backlog of five and
// gets only what is sent after. An ack with the handle of a delivery from
// before a reset acks nothing of the new run.
func TestResetReplaysFromATimeAndSkipsABacklog(t *testing.T) {
	topic, group := testenv.Name(t, "reset"), testenv.Name(t, "g-reset")
	p := testenv.Start(t, testenv.Config(t))
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pr := testenv.NewProducer(t, p, topic)
	c := testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})

	sendBodies(t, pr, topic, bodies("m", 1, 4)...)
	// The 4th was stored by now (its send answered): at, a millisecond
	// later, is after it; the 5th is sent once the clock has passed at.
	at := time.Now().Add(time.Millisecond)
	testenv.WaitFor(t, time.Second, func() error {
		if time.Now().UnixMilli() <= at.UnixMilli() {
			return fmt.Errorf("the clock has not passed %v yet", at)
		}
		return nil
	})
	sendBodies(t, pr, topic, bodies("m", 5, 10)...)
	if got := testenv.ReceiveBodies(t, c, 10); !slices.Equal(got, bodies("m", 1, 10)) {
		t.Fatalf("first run: %v", got)
	}

	out := resetCLI(t, p.AdminAddr(), group, topic, at.UTC().Format(time.RFC3339Nano))
	if !strings.Contains(out, "OLD-OFFSET") || !strings.Contains(out, "10") || !strings.Contains(out, "4") {
		t.Fatalf("reset output:\n%s", out)
	}
	// The replay: exactly the 5th to the 10th, in order (one queue).
	if got := testenv.ReceiveBodies(t, c, 6); !slices.Equal(got, bodies("m", 5, 10)) {
		t.Fatalf("after the reset to the time of the 5th: %v", got)
	}

	// A backlog of five, one of them in flight, then a skip to the end.
	sendBodies(t, pr, topic, bodies("backlog", 1, 5)...)
	held := testenv.ReceiveFirst(t, c, time.Minute, time.Minute)
	if string(held.GetBody()) != "backlog1" {
		t.Fatalf("first of the backlog: %s", held.GetBody())
	}
	resetCLI(t, p.AdminAddr(), group, topic, "latest", "--queue", "0")
	sendBodies(t, pr, topic, "after")
	if got := testenv.ReceiveBodies(t, c, 1); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("after the skip: %v", got)
	}

	// Back to the beginning: the message held since before is delivered
	// again, and its old handle does not ack the new delivery.
	resetCLI(t, p.AdminAddr(), group, topic, "earliest")
	var again []*rmq.MessageView
	testenv.WaitFor(t, 2*time.Minute, func() error {
		ms, err := c.Receive(t.Context(), 32, time.Minute)
		again = append(again, ms...)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		if len(again) < 16 {
			return fmt.Errorf("received %d of 16 after the reset to the beginning", len(again))
		}
		return nil
	})
	var got []string
	for _, m := range again {
		got = append(got, string(m.GetBody()))
	}
	want := append(append(bodies("m", 1, 10), bodies("backlog", 1, 5)...), "after")
	if !slices.Equal(got, want) {
		t.Fatalf("after the reset to the beginning: %v", got)
	}
	err := c.Ack(t.Context(), held)
	if testenv.Target == testenv.TargetLocal && (err == nil || !strings.Contains(err.Error(), "INVALID_RECEIPT_HANDLE")) {
		t.Fatalf("ack with a handle from before the resets: %v", err)
	}
	for _, m := range again {
		if err := c.Ack(t.Context(), m); err != nil {
			t.Fatalf("ack of %s: %v", m.GetBody(), err)
		}
	}
	if ms := testenv.ReceiveAnswered(t, c, 32, time.Minute); len(ms) != 0 {
		t.Fatalf("after every message was acked again: %d more", len(ms))
	}
}

// TestKill9AfterAResetKeepsIt: a reset survives a kill -9 right after the
// command answered.
func TestKill9AfterAResetKeepsIt(t *testing.T) {
	testenv.LocalOnly(t, "it kills the embedded broker")
	waitsInParallel(t)
	dir := t.TempDir()
	c := startServing(t, dir, fastConsumer...)
	createTopicVia(t, c, "reset-kill", 1)
	ac := adminClient(t, c)
	if _, err := ac.CreateGroup(t.Context(), application.GroupSpec{Name: "g-reset-kill"}); err != nil {
		t.Fatal(err)
	}
	pr := testenv.NewProducer(t, c.Proxy(t), "reset-kill")
	sendBodies(t, pr, "reset-kill", bodies("m", 1, 10)...)
	_ = pr.GracefulStop()
	subs := map[string]*rmq.FilterExpression{"reset-kill": rmq.SUB_ALL}
	cons := testenv.NewSimpleConsumer(t, c.Proxy(t), "g-reset-kill", 2*time.Second, subs)
	if got := testenv.ReceiveBodies(t, cons, 10); !slices.Equal(got, bodies("m", 1, 10)) {
		t.Fatalf("first run: %v", got)
	}
	_ = cons.GracefulStop()
	resetCLI(t, c.AdminAddr, "g-reset-kill", "reset-kill", "earliest")
	c.Kill(t)

	c = startServing(t, dir, fastConsumer...)
	cons = testenv.NewSimpleConsumer(t, c.Proxy(t), "g-reset-kill", 2*time.Second, subs)
	if got := testenv.ReceiveBodies(t, cons, 10); !slices.Equal(got, bodies("m", 1, 10)) {
		t.Fatalf("after the reset and a kill -9: %v", got)
	}
}
