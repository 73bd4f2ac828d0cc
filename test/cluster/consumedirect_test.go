package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestConsumeMessageDirectlyThroughTheBroker sends the broker, as mqadmin
// queryMsgById -g GROUP -d CLIENT does, a CONSUME_MESSAGE_DIRECTLY for a
// message sent through rmqproxy: the broker reads the message by its
// offset id and relays the request to the client it names, the proxy,
// which asks the group's consumer (the official Go client) over its
// Telemetry stream to consume it. The Go client answers every
// VerifyMessageCommand NOT_IMPLEMENTED, and the broker hands back the
// proxy's answer saying so; a message of a topic the group's consumer does
// not subscribe to is refused saying that. The CR_SUCCESS and CR_LATER
// answers of a consumer that does consume (the Java push consumer) are in
// test/interop's verify scenario, cluster target.
func TestConsumeMessageDirectlyThroughTheBroker(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	group, topic, other := testenv.Name(t, "g-direct"), testenv.Name(t, "direct"), testenv.Name(t, "direct-other")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateTopic(t, other, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	producer := testenv.NewProducer(t, p, topic, other)
	sent := map[string]string{} // topic → message id
	for _, tp := range []string{topic, other} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		r, err := producer.Send(ctx, &rmq.Message{Topic: tp, Body: []byte("consume me directly")})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		sent[tp] = r[0].MessageID
	}

	bc := newBrokerClient(t, broker.Addr)
	offsetID := func(tp string) string { return bc.offsetID(tp, sent[tp]) }
	proxyID := bc.groupClient(group)

	tests := []struct {
		name, topic, clientID string
		code                  remoting.ResponseCode
		remark                []string
	}{
		// The broker relays to the proxy, the proxy to the Go consumer,
		// which does not implement it.
		{"go consumer", topic, proxyID, remoting.ResponseRequestCodeNotSupported, []string{
			"of group " + group + " connected to this proxy answered NOT_IMPLEMENTED",
			"only the official Java push consumer consumes a message on request"}},
		{"topic not subscribed", other, proxyID, remoting.ResponseSystemError, []string{
			"no consumer of group " + group + " connected to this proxy subscribes to topic " + other + " (they subscribe to " + topic + ")"}},
		// The broker itself refuses a client it does not know.
		{"unknown client", topic, "10.0.0.1@nobody", remoting.ResponseSystemError, []string{"not online"}},
	}
	for _, tt := range tests {
		msgID := offsetID(tt.topic)
		resp := bc.do(remoting.RequestConsumeMessageDirectly, &remoting.ConsumeMessageDirectlyRequestHeader{
			ConsumerGroup: group, ClientID: tt.clientID, MsgID: msgID, Topic: tt.topic})
		t.Logf("%s: code %d remark %q", tt.name, resp.Code, resp.Remark)
		if resp.Code != int32(tt.code) {
			t.Errorf("%s: code %d %q, want %d", tt.name, resp.Code, resp.Remark, tt.code)
			continue
		}
		for _, want := range tt.remark {
			if !strings.Contains(resp.Remark, want) {
				t.Errorf("%s: remark %q, want %q in it", tt.name, resp.Remark, want)
			}
		}
	}
}

// brokerClient talks to a broker straight, with the project's Remoting
// client, as admin tools do; every call fails the test when the broker
// does not answer.
type brokerClient struct {
	t    *testing.T
	call testenv.BrokerCall
}

func newBrokerClient(t *testing.T, addr string) brokerClient {
	rc := client.New(client.Config{})
	t.Cleanup(func() { _ = rc.Close() })
	return brokerClient{t, func(ctx context.Context, code remoting.RequestCode, h remoting.Header) (*remoting.Command, error) {
		return rc.Invoke(ctx, addr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
	}}
}

// do sends one request and returns the broker's answer.
func (b brokerClient) do(code remoting.RequestCode, h remoting.Header) *remoting.Command {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.t.Context(), 30*time.Second)
	defer cancel()
	resp, err := b.call(ctx, code, h)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

// offsetID returns the offset message id of the message of topic whose
// unique id is id (see testenv.MessageOffsetID), waiting up to 30 s.
func (b brokerClient) offsetID(topic, id string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.t.Context(), 30*time.Second)
	defer cancel()
	offsetID, err := testenv.MessageOffsetID(ctx, b.call, topic, id)
	if err != nil {
		b.t.Fatal(err)
	}
	return offsetID
}

// groupClient returns the broker's one client of group (the proxy),
// waiting up to 30 s.
func (b brokerClient) groupClient(group string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.t.Context(), 30*time.Second)
	defer cancel()
	id, err := testenv.SoleGroupClient(ctx, b.call, group)
	if err != nil {
		b.t.Fatal(err)
	}
	return id
}

// TestMQAdminQueryMsgByIDReachesThePushConsumer runs the real admin tool
// (rocketmq-tools 5.5.0's mqadmin queryMsgById -t TOPIC -i ID -g GROUP -d CLIENT) against
// a group whose consumer, connected through rmqproxy, is a push consumer
// (the official Go client). The tool first asks the client's running info
// and goes on only for a push-type client: rmqproxy reports the group
// CONSUME_PASSIVELY, so the tool sends CONSUME_MESSAGE_DIRECTLY, which
// reaches the Go consumer; it answers NOT_IMPLEMENTED (the Java push
// consumer's CR_SUCCESS is in test/interop's verify scenario), and the tool
// prints the proxy's answer saying so.
func TestMQAdminQueryMsgByIDReachesThePushConsumer(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	java, lib, err := rocketmqenv.Available()
	if err != nil {
		t.Fatal(err) // ClusterConfig ran the broker from the same jars
	}
	p := testenv.Start(t, cfg)
	group, topic := testenv.Name(t, "g-direct-admin"), testenv.Name(t, "direct-admin")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pc, err := rmq.NewPushConsumer(p.ClientConfig(group),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}),
		rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: func(*rmq.MessageView) rmq.ConsumerResult { return rmq.SUCCESS }}))
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.GracefulStop() })
	producer := testenv.NewProducer(t, p, topic)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	r, err := producer.Send(ctx, &rmq.Message{Topic: topic, Body: []byte("consume me on request")})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	bc := newBrokerClient(t, broker.Addr)
	offsetID := bc.offsetID(topic, r[0].MessageID)
	proxyID := bc.groupClient(group)

	ctx, cancel = context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// mqadmin's own requests time out after a few seconds, which a JVM
	// starting cold on a loaded machine (the suite runs beside this
	// package) can miss: such a run says nothing about the proxy and is
	// run again, until the deadline. Any other output is judged below.
	var out []byte
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, java, "-Xms64m", "-Xmx128m", "-cp", filepath.Join(lib, "*"),
			"org.apache.rocketmq.tools.command.MQAdminStartup", "queryMsgById",
			"-n", cfg.Cluster.NameServers[0], "-t", topic, "-i", offsetID, "-g", group, "-d", proxyID)
		cmd.Env = append(os.Environ(), "ROCKETMQ_HOME="+t.TempDir())
		var err error
		out, err = cmd.CombinedOutput()
		t.Logf("mqadmin queryMsgById -g %s -d %s, attempt %d (exit: %v):\n%s", group, proxyID, attempt, err, out)
		if !strings.Contains(string(out), "RemotingTimeoutException") || ctx.Err() != nil {
			break
		}
	}
	if strings.Contains(string(out), "not push consumer") {
		t.Fatal("mqadmin took the group's client for a non-push consumer and did not send CONSUME_MESSAGE_DIRECTLY")
	}
	if want := "of group " + group + " connected to this proxy answered NOT_IMPLEMENTED"; !strings.Contains(string(out), want) {
		t.Fatalf("mqadmin's output lacks the proxy's answer %q", want)
	}
}
