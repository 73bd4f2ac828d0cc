package e2e_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestCLIAndGracefulShutdown drives the topic and group commands of the real
// binary against a running rmqproxy, then stops it with SIGTERM: it exits 0
// after closing the broker, and what was sent is there after a restart.
func TestCLIAndGracefulShutdown(t *testing.T) {
	waitsInParallel(t)
	dataDir := t.TempDir()
	c := testenv.StartChild(t, dataDir, "--profile=production")
	admin := "--admin.address=" + c.AdminAddr
	run := func(want int, args ...string) string {
		t.Helper()
		code, out := testenv.CLI(t, append(args, admin)...)
		if code != want {
			t.Fatalf("rmqproxy %v: exit %d, want %d:\n%s", args, code, want, out)
		}
		return out
	}
	topic, group, kept := testenv.Name(t, "cli-topic"), testenv.Name(t, "cli-group"), testenv.Name(t, "kept")
	for _, n := range []string{topic, kept} {
		testenv.Claim(t, "topic", n)
	}
	testenv.Claim(t, "consumer group", group)
	run(0, "topic", "create", topic, "--type", "FIFO", "--queues", "4", "--description", "made by the CLI")
	if out := run(0, "topic", "describe", topic, "--json"); !strings.Contains(out, `"type": "FIFO"`) || !strings.Contains(out, `"queueCount": 4`) ||
		!strings.Contains(out, `"description": "made by the CLI"`) {
		t.Fatalf("describe: %s", out)
	}
	// An update that leaves the description out keeps it; one that sets
	// it replaces it; list and describe show it (in cluster mode the
	// NameServers keep it).
	run(0, "topic", "update", topic, "--queues", "6")
	if out := run(0, "topic", "describe", topic); !strings.Contains(out, "made by the CLI") {
		t.Fatalf("describe after an update without --description: %s", out)
	}
	run(0, "topic", "update", topic, "--description", `orders, "EU" & more`)
	if out := run(0, "topic", "list"); !strings.Contains(out, `orders, "EU" & more`) || strings.Contains(out, "made by the CLI") {
		t.Fatalf("topic list after a new description: %s", out)
	}
	if out := run(1, "topic", "update", topic, "--queues", "2"); !strings.Contains(out, "can only grow") {
		t.Fatalf("shrinking: %s", out)
	}
	if out := run(1, "topic", "create", "bad topic"); !strings.Contains(out, "illegal") {
		t.Fatalf("bad name: %s", out)
	}
	run(0, "group", "create", group, "--maxDeliveryAttempts", "5", "--retry", "1s,5s", "--orderly", "--description", "billing consumers")
	if out := run(0, "group", "list"); !strings.Contains(out, group) || !strings.Contains(out, "billing consumers") {
		t.Fatalf("group list: %s", out)
	}
	run(0, "group", "update", group, "--description", "")
	if out := run(0, "group", "describe", group, "--json"); !strings.Contains(out, `"name": "`+group+`"`) || strings.Contains(out, "billing consumers") {
		t.Fatalf("group describe after the description was cleared: %s", out)
	}
	run(0, "group", "update", group, "--description", "billing consumers, again")
	run(0, "group", "delete", group)
	run(0, "group", "create", group)
	if out := run(0, "group", "describe", group, "--json"); strings.Contains(out, "billing consumers") {
		t.Fatalf("a group created again has the deleted one's description: %s", out)
	}
	run(0, "topic", "create", kept, "--type", "NORMAL")
	if out := run(0, "topic", "list"); !strings.Contains(out, topic) || !strings.Contains(out, kept) {
		t.Fatalf("topic list: %s", out)
	}
	run(0, "topic", "delete", topic)
	if out := run(1, "topic", "describe", topic); !strings.Contains(out, "does not exist") {
		t.Fatalf("deleted topic: %s", out)
	}
	run(0, "topic", "create", topic, "--type", "FIFO")
	if out := run(0, "topic", "describe", topic, "--json"); strings.Contains(out, "EU") {
		t.Fatalf("a topic created again has the deleted one's description: %s", out)
	}
	if out := run(2, "topic", "frobnicate"); !strings.Contains(out, "Usage") {
		t.Fatalf("usage: %s", out)
	}

	// The production profile creates nothing on the fly.
	pr := testenv.NewProducer(t, c.Proxy(t), kept)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: kept, Body: []byte("before SIGTERM")}); err != nil {
		t.Fatal(err)
	}
	if testenv.Target == testenv.TargetLocal { // in cluster mode the brokers' autoCreateSubscriptionGroup decides
		raw := testenv.NewRawClient(t, c.Proxy(t))
		raw.Subscribe(t, "no-such-group", kept)
		if st, _ := raw.Receive(t, testenv.ReceiveRequest("no-such-group", kept, 1, 10*time.Second)); st.GetCode() != v2.Code_CONSUMER_GROUP_NOT_FOUND {
			t.Fatalf("receive for a group that does not exist: %v", st)
		}
	}
	_ = pr.GracefulStop()

	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, logs := c.ExitedWith(t)
	if code != 0 || !strings.Contains(logs, testenv.BrokerClosedLog()) || !strings.Contains(logs, "rmqproxy stopped") {
		t.Fatalf("SIGTERM: exit %d, logs:\n%s", code, logs)
	}
	c2 := testenv.StartChild(t, dataDir, append(fastConsumer, "--profile=production")...)
	admin = "--admin.address=" + c2.AdminAddr
	afterRestart := testenv.Name(t, "after-restart")
	run(0, "group", "create", afterRestart)
	if out := drain(t, c2.Proxy(t), kept, afterRestart); len(out) != 1 {
		t.Fatalf("after a graceful restart %d messages", len(out))
	}
}

// TestSIGTERMWithRequestsInFlight stops rmqproxy with SIGTERM while
// producers are sending and a consumer is long polling: it ends the long
// poll, drains, closes the engine and exits 0 within its stop budgets, and
// every send answered OK is there after a restart.
func TestSIGTERMWithRequestsInFlight(t *testing.T) {
	dataDir := t.TempDir()
	c := testenv.StartChild(t, dataDir, append(fastConsumer, "--shutdown.grpcDrain=20s", "--shutdown.engineClose=20s", "--grpc.address="+freeport.Addr(t))...)
	topic, quiet, quietGroup := testenv.Name(t, "inflight"), testenv.Name(t, "quiet"), testenv.Name(t, "g-quiet")
	createTopicVia(t, c, topic, 4)
	createTopicVia(t, c, quiet, 1)
	p := c.Proxy(t)

	var mu sync.Mutex
	sentOK := map[string]bool{}
	pr := testenv.NewProducer(t, p, topic)
	sending, stopSending := context.WithCancel(t.Context())
	defer stopSending()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() { // sends until told to stop
			defer wg.Done()
			for i := 0; sending.Err() == nil; i++ {
				ctx, cancel := context.WithTimeout(sending, 5*time.Second)
				r, err := pr.Send(ctx, &rmq.Message{Topic: topic, Body: []byte(fmt.Sprintf("w%d-%d", w, i))})
				cancel()
				if err != nil {
					continue // outcome unknown
				}
				mu.Lock()
				sentOK[r[0].MessageID] = true
				mu.Unlock()
			}
		}()
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(sentOK) < 200 {
			return fmt.Errorf("%d sends answered OK", len(sentOK))
		}
		return nil
	})

	// A long poll on an empty topic: it would wait 20s.
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, quietGroup, quiet)
	req := testenv.ReceiveRequest(quietGroup, quiet, 1, 10*time.Second)
	req.LongPollingTimeout = durationpb.New(20 * time.Second)
	stream, err := raw.ReceiveMessage(raw.Ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	// A unary call on the same connection returns after the server has
	// read the long poll's frames: the poll is one of its pending RPCs.
	if _, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: quiet}}); err != nil {
		t.Fatal(err)
	}
	polled := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				polled <- err
				return
			}
		}
	}()

	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, logs := c.ExitedWith(t)
	if code != 0 || !strings.Contains(logs, testenv.BrokerClosedLog()) || !strings.Contains(logs, "rmqproxy stopped") {
		t.Fatalf("SIGTERM: exit %d, logs:\n%s", code, logs)
	}
	if strings.Contains(logs, "ran out of its time budget") || strings.Contains(logs, `"level":"ERROR"`) {
		t.Fatalf("SIGTERM with requests in flight:\n%s", logs)
	}
	select {
	case err := <-polled:
		t.Logf("the long poll ended with %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the long poll did not end with the process")
	}
	mu.Lock()
	beforeExit := len(sentOK)
	mu.Unlock()

	// Restart on the same port: the producer's retries reach it and the
	// senders stop; everything answered OK, before or after, is there.
	c2 := testenv.StartChild(t, dataDir, append(fastConsumer, "--grpc.address="+c.GRPCAddr)...)
	stopSending()
	wg.Wait()
	_ = pr.GracefulStop()
	got := drain(t, c2.Proxy(t), topic, testenv.Name(t, "g-after"))
	mu.Lock()
	defer mu.Unlock()
	missing := 0
	for id := range sentOK {
		if !got[id] {
			missing++
		}
	}
	t.Logf("%d sends answered OK before the process exited, %d in all; %d delivered after the restart", beforeExit, len(sentOK), len(got))
	if missing > 0 {
		t.Fatalf("%d of %d sends answered OK are gone after a graceful stop", missing, len(sentOK))
	}
}

// TestDrainOverrunStillClosesTheEngine: a client holds the gRPC drain up
// (a request whose body never comes) past shutdown.grpcDrain. The overrun
// is logged, the engine still gets its own budget to flush and release the
// data directory, the process exits 0, and it restarts with the data.
func TestDrainOverrunStillClosesTheEngine(t *testing.T) {
	dataDir := t.TempDir()
	c := testenv.StartChild(t, dataDir, "--shutdown.grpcDrain=1s", "--shutdown.engineClose=20s")
	topic := testenv.Name(t, "kept-drain")
	createTopicVia(t, c, topic, 1)
	p := c.Proxy(t)
	pr := testenv.NewProducer(t, p, topic)
	r, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("before SIGTERM")})
	if err != nil {
		t.Fatal(err)
	}
	_ = pr.GracefulStop()

	// A SendMessage whose request message never arrives: the server waits
	// for it, and a graceful stop waits for the server.
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	held, err := conn.NewStream(t.Context(), &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/apache.rocketmq.v2.MessagingService/SendMessage")
	if err != nil {
		t.Fatal(err)
	}
	// As above: a unary call on the same connection proves the server
	// has the held stream.
	mc := v2.NewMessagingServiceClient(conn)
	if _, err := mc.QueryRoute(testenv.NewRawClient(t, p).Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}}); err != nil {
		t.Fatal(err)
	}

	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, logs := c.ExitedWith(t)
	if code != 0 || !strings.Contains(logs, "shutdown stage ran out of its time budget") || !strings.Contains(logs, `"stage":"gRPC drain"`) ||
		!strings.Contains(logs, testenv.BrokerClosedLog()) || !strings.Contains(logs, "rmqproxy stopped") {
		t.Fatalf("SIGTERM with a held drain: exit %d, logs:\n%s", code, logs)
	}
	if err := held.RecvMsg(new(v2.SendMessageResponse)); err == nil {
		t.Fatal("the held request got an answer")
	}

	c2 := testenv.StartChild(t, dataDir, fastConsumer...)
	if got := drain(t, c2.Proxy(t), topic, testenv.Name(t, "g-after-drain")); !got[r[0].MessageID] || len(got) != 1 {
		t.Fatalf("after the restart: %v, want %s", got, r[0].MessageID)
	}
}

// TestCLIHelpAndVersion runs the binary as a new user would first.
func TestCLIHelpAndVersion(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"rmqproxy topic create|", "rmqproxy group create|", "rmqproxy version", "rmqproxy serve --help"}},
		{[]string{"topic", "--help"}, []string{"rmqproxy topic create NAME", "--admin.address", "--wait"}},
		{[]string{"group", "--help"}, []string{"rmqproxy group create NAME", "--maxDeliveryAttempts"}},
		{[]string{"serve", "--help"}, []string{"--grpc.address", "--shutdown.engineClose"}},
		{[]string{"version"}, []string{"rmqproxy "}},
	} {
		code, out := testenv.CLI(t, tt.args...)
		for _, w := range tt.want {
			if code != 0 || !strings.Contains(out, w) {
				t.Errorf("rmqproxy %v: exit %d, output lacks %q:\n%s", tt.args, code, w, out)
			}
		}
	}
	_, v1 := testenv.CLI(t, "version")
	if _, v2 := testenv.CLI(t, "--version"); v1 != v2 {
		t.Errorf("version %q, --version %q", v1, v2)
	}
	if code, out := testenv.CLI(t, "topic", "create", "x", "--tpye", "FIFO"); code != 2 || !strings.Contains(out, "did you mean --type?") {
		t.Errorf("misspelled flag: exit %d:\n%s", code, out)
	}
}

// TestStartAndCreateInOneBlock is README's "./rmqproxy &" followed at once
// by "./rmqproxy topic create": the command waits for the starting proxy.
func TestStartAndCreateInOneBlock(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	testenv.StartChildNoWait(t, t.TempDir(), "--admin.address="+adminAddr)
	topic := testenv.Name(t, "orders-cli")
	testenv.Claim(t, "topic", topic)
	if code, out := testenv.CLI(t, "topic", "create", topic, "--type", "NORMAL", "--admin.address="+adminAddr); code != 0 {
		t.Fatalf("topic create right after the start: exit %d:\n%s", code, out)
	}
	if code, out := testenv.CLI(t, "topic", "list", "--admin.address="+adminAddr); code != 0 || !strings.Contains(out, topic) {
		t.Fatalf("topic list: exit %d:\n%s", code, out)
	}
}

// TestSecondSIGTERMEndsTheDrain: a second SIGTERM during a long drain
// delay ends the drain at once, and the engine still closes (exit 0, the
// broker's clean-close log, and what was sent is there after a restart).
func TestSecondSIGTERMEndsTheDrain(t *testing.T) {
	dataDir := t.TempDir()
	c := testenv.StartChild(t, dataDir, "--shutdown.drainDelay=2m")
	topic, group := testenv.Name(t, "hurried"), testenv.Name(t, "after-hurry")
	createTopicVia(t, c, topic, 1)
	pr := testenv.NewProducer(t, c.Proxy(t), topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("before SIGTERM")}); err != nil {
		t.Fatal(err)
	}
	_ = pr.GracefulStop()
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitfor.Condition(t, 30*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(c.Output(), "draining: reporting not ready") {
			return fmt.Errorf("the drain did not start; logs:\n%s", c.Output())
		}
		return nil
	})
	if err := c.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, logs := c.ExitedWith(t) // 60 s, against a drain delay of 2 minutes
	if code != 0 || !strings.Contains(logs, "second signal") || !strings.Contains(logs, testenv.BrokerClosedLog()) || !strings.Contains(logs, "rmqproxy stopped") {
		t.Fatalf("second SIGTERM: exit %d, logs:\n%s", code, logs)
	}
	c2 := testenv.StartChild(t, dataDir, fastConsumer...)
	ac, err := admin.NewClient(c2.AdminAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Claim(t, "consumer group", group)
	if _, err := ac.CreateGroup(t.Context(), application.GroupSpec{Name: group}); err != nil {
		t.Fatal(err)
	}
	if out := drain(t, c2.Proxy(t), topic, group); len(out) != 1 {
		t.Fatalf("after a hurried stop %d messages, want 1", len(out))
	}
}
