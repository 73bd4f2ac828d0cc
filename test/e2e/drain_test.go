package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
)

// drainClients creates a topic and a group named after prefix on c (with
// the CLI) and connects a producer and a simple consumer of the official Go
// client to them.
func drainClients(t *testing.T, c *testenv.Child, prefix string) (topic, group string, producer rmq.Producer, consumer rmq.SimpleConsumer) {
	t.Helper()
	topic, group = testenv.Name(t, prefix+"-t"), testenv.Name(t, prefix+"-g")
	createTopicCLI(t, c, topic)
	testenv.Claim(t, "consumer group", group)
	if code, out := testenv.CLI(t, "group", "create", group, "--admin.address="+c.AdminAddr); code != 0 {
		t.Fatalf("group create: exit %d:\n%s", code, out)
	}
	p := c.Proxy(t)
	producer = testenv.NewProducer(t, p, topic)
	consumer = testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	return topic, group, producer, consumer
}

// TestDrainOnSIGTERM: SIGTERM during a produce/consume run of the official
// Go client. The proxy reports not ready first (/readyz 503 naming the
// shutdown, while sends still succeed during shutdown.drainDelay), then
// stops: the process exits by itself, no shutdown stage overruns its
// budget, the clients see only retryable errors, and after a restart on
// the same data every acknowledged send is consumed.
func TestDrainOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	begin := time.Now()
	defer func() { t.Logf("test body took %v", time.Since(begin)) }()
	c := testenv.StartChild(t, data, "--shutdown.drainDelay=3s", "--shutdown.grpcDrain=10s", "--grpc.address="+freeport.Addr(t))
	topic, group, producer, consumer := drainClients(t, c, "drain")

	var (
		mu         sync.Mutex
		acked      = map[string]time.Time{} // message id → when the send was acknowledged
		consumed   = map[string]bool{}
		errs       testenv.ClientErrors
		notReadyAt time.Time
	)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				r, err := producer.Send(sctx, &rmq.Message{Topic: topic, Body: fmt.Appendf(nil, "w%d-%d", w, i)})
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						errs.Add("send", err)
					}
					continue
				}
				mu.Lock()
				acked[r[0].MessageID] = time.Now()
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			ms, err := consumer.Receive(ctx, 16, 20*time.Second)
			if err != nil && ctx.Err() == nil && !testenv.IsNoMessage(err) {
				errs.Add("receive", err)
			}
			for _, m := range ms {
				mu.Lock()
				consumed[m.GetMessageId()] = true
				mu.Unlock()
				if err := consumer.Ack(ctx, m); err != nil && ctx.Err() == nil {
					errs.Add("ack", err)
				}
			}
		}
	})
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked), len(consumed)
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
		if a, r := count(); a < 300 || r < 50 {
			return fmt.Errorf("%d sends acknowledged, %d messages received; client errors %v", a, r, errs.String())
		}
		return nil
	})

	t.Logf("%v sending SIGTERM", time.Since(begin))
	// Watch readiness from the moment of SIGTERM.
	health := c.HealthAddr
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(time.Minute)
		for {
			resp, err := http.Get("http://" + health + "/readyz")
			if err != nil {
				return // the health server is gone
			}
			var body [4096]byte
			n, _ := resp.Body.Read(body[:])
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body[:n]), "shutting down") {
				mu.Lock()
				notReadyAt = time.Now()
				mu.Unlock()
				return
			}
			select {
			case <-tick.C:
			case <-deadline:
				return
			}
		}
	}()
	sigterm := time.Now()
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, logs := c.ExitedWith(t)
	exited := time.Since(sigterm)
	<-watched
	// The clients' loops end with the context; the official client may
	// take its own request timeouts to notice, so they are waited for
	// when the test ends. Nothing is acknowledged by a stopped proxy.
	stop()
	t.Cleanup(wg.Wait)

	if code != 0 || !strings.Contains(logs, `"msg":"rmqproxy stopped"`) {
		t.Fatalf("exit code %d; logs:\n%s", code, logs)
	}
	if strings.Contains(logs, "ran out of its time budget") {
		t.Fatalf("a shutdown stage overran its budget:\n%s", logs)
	}
	if i, j := strings.Index(logs, "draining: reporting not ready"), strings.Index(logs, "admin API stopped"); i < 0 || j < i {
		t.Fatalf("the drain notice did not come first:\n%s", logs)
	}
	mu.Lock()
	if notReadyAt.IsZero() {
		mu.Unlock()
		t.Fatal("/readyz never reported the shutdown")
	}
	// The proxy's own log says when it turned not ready (the same clock):
	// a /readyz answer can take seconds on a loaded machine, so the
	// moment the watcher saw it is later than the change.
	drainedAt := logTime(t, logs, "draining: reporting not ready")
	servedWhileNotReady := 0
	for _, at := range acked {
		if at.After(drainedAt) {
			servedWhileNotReady++
		}
	}
	want := make(map[string]bool, len(acked))
	for id := range acked {
		want[id] = true
	}
	mu.Unlock()
	if servedWhileNotReady == 0 {
		t.Errorf("no send was acknowledged after /readyz reported the shutdown; the drain delay should keep serving")
	}
	t.Logf("SIGTERM → exit %v; %d sends acknowledged (%d after /readyz said 503), client errors by kind: %v",
		exited.Round(time.Millisecond), len(want), servedWhileNotReady, errs.String())
	if bad := errs.Bad(); len(bad) > 0 {
		t.Errorf("errors the clients do not retry: %q", bad)
	}

	// Restart on the same data (the same broker in cluster mode) and the
	// same address, and consume what is left: every acknowledged send must
	// be there. The same address also lets the first clients' pending
	// calls end: the Go client dials a gone endpoint under a lock that all
	// its calls share, so without a proxy there they take minutes to fail.
	t.Logf("%v restarting", time.Since(begin))
	c2 := testenv.StartChild(t, data, "--grpc.address="+c.GRPCAddr)
	consumer2 := testenv.NewSimpleConsumer(t, c2.Proxy(t), group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	testenv.WaitFor(t, 90*time.Second, func() error {
		ms, err := consumer2.Receive(t.Context(), 32, 20*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		mu.Lock()
		for _, m := range ms {
			consumed[m.GetMessageId()] = true
		}
		missing := 0
		for id := range want {
			if !consumed[id] {
				missing++
			}
		}
		mu.Unlock()
		for _, m := range ms {
			_ = consumer2.Ack(t.Context(), m)
		}
		t.Logf("%v received %d", time.Since(begin), len(ms))
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged sends not consumed yet", missing, len(want))
		}
		return nil
	})
}

// logTime returns the time of the first JSON log line of logs that
// contains msg.
func logTime(t *testing.T, logs, msg string) time.Time {
	t.Helper()
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, msg) {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		return rec.Time
	}
	t.Fatalf("no log line says %q:\n%s", msg, logs)
	return time.Time{}
}

// TestNormalDrainLogsNoWarning: a SIGTERM to a proxy with connected
// clients (a producer, and a consumer whose receive long-polls) that
// drains well within its budgets is a normal stop, and an operator's
// alert on WARN lines must not fire for it: every line it logs is at Info
// (or Debug). It logged one Warn, "readiness check failing" for the
// shutdown check, as soon as /readyz or the gRPC health prober evaluated
// the checks during shutdown.drainDelay (a load balancer's probe always
// does). A stage that runs out of its budget still warns
// (TestStageOverrunDoesNotStarveTheNext).
func TestNormalDrainLogsNoWarning(t *testing.T) {
	c := testenv.StartChild(t, filepath.Join(t.TempDir(), "data"), "--shutdown.drainDelay=2s", "--grpc.address="+freeport.Addr(t))
	topic, _, producer, consumer := drainClients(t, c, "calm")
	if _, err := producer.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := consumer.Receive(t.Context(), 1, 20*time.Second)
		if err != nil {
			return err
		}
		return consumer.Ack(t.Context(), ms[0])
	})
	// A receive left long-polling across the stop.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = consumer.Receive(ctx, 1, 20*time.Second) })
	t.Cleanup(wg.Wait)
	t.Cleanup(stop)
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A load balancer's probe during the drain delay.
	testenv.WaitFor(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + c.HealthAddr + "/readyz")
		if err != nil {
			return nil // the health server is gone: the drain is over
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz answered %d, not yet 503", resp.StatusCode)
		}
		return nil
	})
	code, logs := c.ExitedWith(t)
	if code != 0 || !strings.Contains(logs, `"msg":"rmqproxy stopped"`) {
		t.Fatalf("exit code %d; logs:\n%s", code, logs)
	}
	if !strings.Contains(logs, `"check":"shutdown"`) {
		t.Fatalf("the probe did not see the shutdown check fail:\n%s", logs)
	}
	// The drain's lines: from the signal on. A readiness check that
	// failed for its own reason (a loaded broker answering a probe after
	// health.checkTimeout in the cluster pass) is not the drain's.
	var warned []string
	stopping := false
	for line := range strings.Lines(logs) {
		stopping = stopping || strings.Contains(line, `"msg":"stopping"`)
		if !stopping || strings.Contains(line, `"msg":"readiness check failing"`) && !strings.Contains(line, `"check":"shutdown"`) {
			continue
		}
		if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			warned = append(warned, line)
		}
	}
	if len(warned) > 0 {
		t.Errorf("a normal drain logged %d lines above Info:\n%s\nall logs:\n%s", len(warned), strings.Join(warned, ""), logs)
	}
}
