package e2e_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// rpcCode is the status code of an official client's error, or 0.
func rpcCode(err error) v2.Code {
	var st *rmq.ErrRpcStatus
	if errors.As(err, &st) {
		return v2.Code(st.GetCode())
	}
	return 0
}

func writeRules(t *testing.T, path, rules string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestRateLimitThrottlesOnlyTheClientOverIt: a producer flooding a topic
// limited to 5 messages/s gets TOO_MANY_REQUESTS (after the official Go
// client's own backed-off retries), while a producer of another topic,
// sending at the same time within its per-client limit, never does; a
// consumer group limited to almost nothing is held for its polling time
// and then throttled, while another group on the same topic is served.
func TestRateLimitThrottlesOnlyTheClientOverIt(t *testing.T) {
	cfg := testenv.Config(t)
	noisyTopic, quietTopic := testenv.Name(t, "rl-noisy"), testenv.Name(t, "rl-quiet")
	slowGroup, fastGroup := testenv.Name(t, "rl-slow"), testenv.Name(t, "rl-fast")
	rules := filepath.Join(t.TempDir(), "traffic.yaml")
	writeRules(t, rules, `
clients:
  send: {messagesPerSecond: 1000, burstMessages: 1000}
topics:
  `+noisyTopic+`: {send: {messagesPerSecond: 5}}
groups:
  `+slowGroup+`: {receive: {messagesPerSecond: 0.001, burstMessages: 2}}
`)
	cfg.Traffic.RulesFile = rules
	p := testenv.Start(t, cfg)
	p.CreateTopic(t, noisyTopic, domain.MessageTypeNormal, 2)
	p.CreateTopic(t, quietTopic, domain.MessageTypeNormal, 2)
	noisy := testenv.NewProducer(t, p, noisyTopic)
	quiet := testenv.NewProducer(t, p, quietTopic)

	var wg sync.WaitGroup
	throttled := make(chan struct{})
	var noisyOK int
	var noisyErr error
	wg.Go(func() {
		defer close(throttled)
		for range 2000 {
			_, err := noisy.Send(t.Context(), &rmq.Message{Topic: noisyTopic, Body: []byte("noisy")})
			if err != nil {
				noisyErr = err
				return
			}
			noisyOK++
		}
	})
	quietErrs := make(chan error, 100)
	wg.Go(func() {
		// 100 sends: within the per-client burst, whatever the timing.
		for i := range 100 {
			if _, err := quiet.Send(t.Context(), &rmq.Message{Topic: quietTopic, Body: []byte("quiet")}); err != nil {
				quietErrs <- fmt.Errorf("quiet send %d: %w", i, err)
			}
			if i == 50 {
				<-throttled // the rest go while the noisy one is throttled
			}
		}
	})
	wg.Wait()
	close(quietErrs)
	for err := range quietErrs {
		t.Error(err)
	}
	if rpcCode(noisyErr) != v2.Code_TOO_MANY_REQUESTS || !strings.Contains(noisyErr.Error(), `topic "`+noisyTopic+`" may send 5 messages per second`) {
		t.Fatalf("the flooding producer: %d sent, then %v; want TOO_MANY_REQUESTS naming the topic limit", noisyOK, noisyErr)
	}
	t.Logf("the flooding producer sent %d messages before a send failed with %v", noisyOK, noisyErr)

	// Receive: the slow group's tokens (2) go in one batch; its next
	// receive cannot recover within the await time.
	slow := testenv.NewSimpleConsumer(t, p, slowGroup, 2*time.Second, map[string]*rmq.FilterExpression{quietTopic: rmq.SUB_ALL})
	fast := testenv.NewSimpleConsumer(t, p, fastGroup, 2*time.Second, map[string]*rmq.FilterExpression{quietTopic: rmq.SUB_ALL})
	var got []*rmq.MessageView
	testenv.WaitFor(t, 20*time.Second, func() error {
		ms, err := slow.Receive(t.Context(), 32, 20*time.Second)
		got = append(got, ms...)
		if len(got) == 0 {
			return fmt.Errorf("slow group received nothing yet: %v", err)
		}
		return nil
	})
	if len(got) > 2 {
		t.Fatalf("the slow group got %d messages in one batch; its burst is 2", len(got))
	}
	_, err := slow.Receive(t.Context(), 32, 20*time.Second)
	if rpcCode(err) != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("slow group's next receive: %v; want TOO_MANY_REQUESTS", err)
	}
	n := 0
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := fast.Receive(t.Context(), 32, 20*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return fmt.Errorf("fast group: %w", err)
		}
		n += len(ms)
		for _, m := range ms {
			_ = fast.Ack(t.Context(), m)
		}
		if n < 100 {
			return fmt.Errorf("fast group received %d of 100", n)
		}
		return nil
	})
}

// TestTrafficRulesReloadOnSIGHUP: a running proxy picks up a changed rules
// file on SIGHUP (the file watch is off here), and a broken file keeps the
// rules in force.
func TestTrafficRulesReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	topic := testenv.Name(t, "rl-reload")
	rules := filepath.Join(dir, "traffic.yaml")
	writeRules(t, rules, "topics:\n  "+topic+": {send: {messagesPerSecond: 10000}}\n")
	c := testenv.StartChild(t, filepath.Join(dir, "data"), "--traffic.rulesFile="+rules, "--traffic.reloadInterval=0s")
	p := c.Proxy(t)
	createTopicCLI(t, c, topic)
	pr := testenv.NewProducer(t, p, topic)
	for i := range 20 {
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
			t.Fatalf("send %d under the first rules: %v", i, err)
		}
	}
	writeRules(t, rules, "topics:\n  "+topic+": {send: {messagesPerSecond: 1, burstMessages: 1}}\n")
	if err := c.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(c.Output(), `"msg":"traffic rules reloaded"`) {
			return errors.New("no reload logged")
		}
		return nil
	})
	var err error
	for range 10 {
		if _, err = pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
			break
		}
	}
	if rpcCode(err) != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("sends after the reload: %v; want TOO_MANY_REQUESTS", err)
	}
	writeRules(t, rules, "topics:\n  "+topic+": {send: {messagesPerSecnd: 1}}\n")
	if err := c.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(c.Output(), "traffic rules file not reloaded") {
			return errors.New("the broken file is not reported")
		}
		return nil
	})
	if got := checkReadiness(t, c.HealthAddr, "traffic rules"); got.state != "degraded" || !strings.Contains(got.err, "messagesPerSecnd") {
		t.Fatalf("/readyz with a broken rules file: traffic rules %s: %s", got.state, got.err)
	}
	// Degraded is still ready (200). Only in local mode: in the cluster pass
	// the broker's own check may time out on a loaded machine.
	if code, body := readyz(t, c.HealthAddr); testenv.Target == testenv.TargetLocal && code != 200 {
		t.Fatalf("/readyz with a broken rules file: %d %s", code, body)
	}
}

// createTopicCLI creates a NORMAL topic on a child proxy with the CLI.
func createTopicCLI(t *testing.T, c *testenv.Child, name string) {
	t.Helper()
	testenv.Claim(t, "topic", name)
	if code, out := testenv.CLI(t, "topic", "create", name, "--type", "NORMAL", "--admin.address="+c.AdminAddr); code != 0 {
		t.Fatalf("topic create %s: exit %d:\n%s", name, code, out)
	}
}
