package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/goclient"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/childproc"
)

// churnClientEnv, set in the environment of this test binary, makes it
// run one official Go client (see runChurnClient) instead of the tests.
const churnClientEnv = "RMQPROXY_TEST_CHURN_CLIENT"

// churnSpec is what a churn client does.
type churnSpec struct {
	Role     string // producer, simple, push
	Endpoint string
	Topic    string
	TxTopic  string
	Group    string
	LogDir   string
}

// runChurnClient runs the client spec describes: it starts, does its
// work, writes "ready" on stdout and goes on until it is killed.
func runChurnClient(spec string) int {
	var s churnSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	goclient.LogTo(s.LogDir)
	conf := &rmq.Config{Endpoint: s.Endpoint, ConsumerGroup: s.Group}
	ctx := context.Background()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	switch s.Role {
	case "producer":
		pr, err := rmq.NewProducer(conf, rmq.WithTopics(s.Topic, s.TxTopic), rmq.WithTransactionChecker(&rmq.TransactionChecker{
			Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.COMMIT }}))
		if err != nil {
			return fail(err)
		}
		if err := pr.Start(); err != nil {
			return fail(err)
		}
		if _, err := pr.Send(ctx, &rmq.Message{Topic: s.Topic, Body: []byte("churn")}); err != nil {
			return fail(err)
		}
		fmt.Println("ready")
	case "simple":
		c, err := rmq.NewSimpleConsumer(conf, rmq.WithSimpleAwaitDuration(5*time.Second),
			rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{s.Topic: rmq.SUB_ALL}))
		if err != nil {
			return fail(err)
		}
		if err := c.Start(); err != nil {
			return fail(err)
		}
		fmt.Println("ready")
		for {
			ms, _ := c.Receive(ctx, 1, 20*time.Second)
			for _, m := range ms {
				_ = c.Ack(ctx, m)
			}
		}
	case "push":
		pc, err := rmq.NewPushConsumer(conf,
			rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{s.Topic: rmq.SUB_ALL}),
			rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: func(*rmq.MessageView) rmq.ConsumerResult { return rmq.SUCCESS }}))
		if err != nil {
			return fail(err)
		}
		if err := pc.Start(); err != nil {
			return fail(err)
		}
		fmt.Println("ready")
	default:
		return fail(fmt.Errorf("unknown role %q", s.Role))
	}
	select {}
}

// startChurnClient runs a churn client in a process of its own, waits
// until it is ready, and returns it (killed when the test ends).
func startChurnClient(t *testing.T, s churnSpec) *exec.Cmd {
	t.Helper()
	s.LogDir = t.TempDir()
	spec, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), churnClientEnv+"="+string(spec))
	childproc.DieWithParent(cmd) // a client left by a killed test run would run for ever
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := sc.Scan() && sc.Text() == "ready"
		ready <- ok
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			t.Fatalf("churn client %s did not start: %s", s.Role, stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("churn client %s not ready within 2 minutes", s.Role)
	}
	return cmd
}

// metricsOf returns the proxy's /metrics lines.
func metricsOf(t *testing.T, p *testenv.Proxy) []string {
	t.Helper()
	resp, err := http.Get("http://" + p.HealthAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestClientChurnLeavesNothingBehind: official Go clients (producers,
// simple and push consumers) come and go in rounds, half of them saying
// goodbye (GracefulStop) and half killed (processes of their own, some in
// the middle of a long-polling receive). Once they have left and the
// killed ones' sessions expired, the proxy is back where it was: the
// client list holds only the producer that stayed, the client gauges
// count it alone, and only its Telemetry stream is open.
func TestClientChurnLeavesNothingBehind(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	cfg.Messaging.Clients.ExpiryTimeout = 10 * time.Second
	p := testenv.Start(t, cfg)
	ac := p.Admin.(*admin.Client)
	topic, txTopic, group := testenv.Name(t, "churn"), testenv.Name(t, "churn-tx"), testenv.Name(t, "g-churn")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateTopic(t, txTopic, domain.MessageTypeTransaction, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	stay := testenv.NewProducer(t, p, topic)
	if _, err := stay.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("stays")}); err != nil {
		t.Fatal(err)
	}

	const rounds, perRound = 3, 6
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range perRound {
			wg.Go(func() {
				abrupt := i%2 == 1
				role := [...]string{"producer", "simple", "push"}[i%6/2]
				if abrupt {
					cmd := startChurnClient(t, churnSpec{Role: role, Endpoint: p.Addr, Topic: topic, TxTopic: txTopic, Group: group})
					_ = cmd.Process.Kill()
					return
				}
				conf := func(g string) *rmq.Config { return &rmq.Config{Endpoint: p.Addr, ConsumerGroup: g} }
				var stop func() error
				switch role {
				case "producer":
					pr, err := rmq.NewProducer(conf(""), rmq.WithTopics(topic, txTopic), rmq.WithTransactionChecker(&rmq.TransactionChecker{
						Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.COMMIT }}))
					if err != nil {
						t.Error(err)
						return
					}
					if err := pr.Start(); err != nil {
						t.Error(err)
						return
					}
					if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint(round, i))}); err != nil {
						t.Error(err)
					}
					stop = pr.GracefulStop
				case "simple":
					c, err := rmq.NewSimpleConsumer(conf(group), rmq.WithSimpleAwaitDuration(2*time.Second),
						rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}))
					if err != nil {
						t.Error(err)
						return
					}
					if err := c.Start(); err != nil {
						t.Error(err)
						return
					}
					ms, _ := c.Receive(t.Context(), 4, 20*time.Second)
					for _, m := range ms {
						_ = c.Ack(t.Context(), m)
					}
					stop = c.GracefulStop
				case "push":
					pc, err := rmq.NewPushConsumer(conf(group),
						rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}),
						rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: func(*rmq.MessageView) rmq.ConsumerResult { return rmq.SUCCESS }}))
					if err != nil {
						t.Error(err)
						return
					}
					if err := pc.Start(); err != nil {
						t.Error(err)
						return
					}
					stop = pc.GracefulStop
				}
				if err := stop(); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	testenv.WaitFor(t, 2*time.Minute, func() error {
		l, err := ac.Clients(t.Context(), application.ClientFilter{})
		if err != nil {
			return err
		}
		if len(l.Clients) != 1 || l.Clients[0].Kind != "producer" || !l.Clients[0].TelemetryStream {
			return fmt.Errorf("%d clients listed, want the producer that stayed: %+v", len(l.Clients), l.Clients)
		}
		var bad []string
		for _, m := range metricsOf(t, p) {
			name, value, _ := strings.Cut(m, " ")
			switch {
			case strings.HasPrefix(name, "rocketmq_consumer_connections{") && value != "0",
				strings.HasPrefix(name, "rocketmq_producer_connections{") && value != "1",
				strings.HasPrefix(name, "rmqproxy_rpc_inflight{") && strings.Contains(name, `kind="telemetry"`) && value != "1":
				bad = append(bad, m)
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("metrics still count departed clients: %v", bad)
		}
		return nil
	})
}

// TestCheckBackOfAVanishedProducerReachesAnother: a transactional producer
// sends a half message and vanishes (its Telemetry stream cancelled,
// no goodbye); another producer of the topic is connected and answers the
// check-back, so the message is committed and delivered.
func TestCheckBackOfAVanishedProducerReachesAnother(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	cfg.Local.TransactionTimeout = 200 * time.Millisecond
	cfg.Local.TransactionCheckInterval = time.Second
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "tx-vanished"), testenv.Name(t, "g-tx-vanished")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	consumer := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})

	// The live producer, answering COMMIT.
	checked := make(chan string, 16)
	live, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(topic), rmq.WithTransactionChecker(&rmq.TransactionChecker{
		Check: func(m *rmq.MessageView) rmq.TransactionResolution {
			select {
			case checked <- m.GetMessageId():
			default:
			}
			return rmq.COMMIT
		}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.GracefulStop() })

	// The one that vanishes: settings, a half message, then its stream
	// and connection are gone.
	gone := testenv.NewRawClient(t, p)
	ctx, cancel := context.WithCancel(gone.Ctx(t))
	stream, err := gone.Telemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testenv.SendProducerSettings(t, stream, topic)
	m := testenv.RawMessage(topic, []byte("half"), "")
	m.SystemProperties.MessageType = v2.MessageType_TRANSACTION
	resp, err := gone.SendMessage(gone.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send: %v %v", resp, err)
	}
	cancel()
	id := m.GetSystemProperties().GetMessageId()
	testenv.WaitFor(t, 2*time.Minute, func() error {
		ms, err := consumer.Receive(t.Context(), 4, 20*time.Second)
		for _, got := range ms {
			_ = consumer.Ack(t.Context(), got)
			if got.GetMessageId() == id {
				return nil
			}
		}
		return fmt.Errorf("the half message %s is not delivered (%v); checked by the live producer: %d", id, err, len(checked))
	})
}
