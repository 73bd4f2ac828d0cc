package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestClientOperations drives rmqproxy client list, stack and verify (the
// CLI, through the admin API) against the official Go client v5.1.4 and a
// raw client: the Go client answers a thread stack request with its
// goroutine dump and a verify request with NOT_IMPLEMENTED; the raw
// client receives the stored message in its VerifyMessageCommand and
// answers for it; a client that does not answer times out with a clear
// message.
func TestClientOperations(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	// The answering clients answer well within it on a loaded machine; the
	// timeout itself is checked on a proxy of its own, below.
	cfg.Messaging.Clients.CommandTimeout = 20 * time.Second // at most 25 s is allowed (the CLI waits 30 s)
	p := testenv.Start(t, cfg)
	cliOf := func(p *testenv.Proxy, want int, args ...string) string {
		t.Helper()
		code, out := testenv.CLI(t, append(args, "--admin.address="+p.AdminAddr())...)
		if code != want {
			t.Fatalf("rmqproxy %v: exit %d, want %d:\n%s", args, code, want, out)
		}
		return out
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		return cliOf(p, want, args...)
	}
	list := func(args ...string) []admin.ConnectedClient {
		t.Helper()
		var l admin.ClientList
		out := cli(0, append([]string{"client", "list", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("client list --json: %v\n%s", err, out)
		}
		return l.Clients
	}
	topic, other, group := testenv.Name(t, "cops-topic"), testenv.Name(t, "cops-other"), testenv.Name(t, "cops-group")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateTopic(t, other, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	producer := testenv.NewProducer(t, p, topic)
	consumer := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	_ = consumer

	// Both official clients are listed once their settings arrived.
	var prod, cons admin.ConnectedClient
	testenv.WaitFor(t, 30*time.Second, func() error {
		prod, cons = admin.ConnectedClient{}, admin.ConnectedClient{}
		for _, cl := range list() {
			switch {
			case cl.Kind == "producer" && cl.TelemetryStream:
				prod = cl
			case cl.Kind == "consumer" && cl.TelemetryStream:
				cons = cl
			}
		}
		if prod.ClientID == "" || cons.ClientID == "" {
			return fmt.Errorf("no producer and consumer with open streams yet")
		}
		return nil
	})
	if prod.ClientType != "PRODUCER" || prod.Language != "GO" || prod.Version != "5.1.4" || strings.Join(prod.Topics, ",") != topic ||
		!strings.HasPrefix(prod.RemoteAddress, "127.0.0.1:") || prod.ConnectedSince.IsZero() || time.Since(prod.ConnectedSince) > time.Minute {
		t.Fatalf("producer listed as %+v", prod)
	}
	if cons.ClientType != "SIMPLE_CONSUMER" || cons.Group != group || strings.Join(cons.Topics, ",") != topic || cons.Language != "GO" {
		t.Fatalf("consumer listed as %+v", cons)
	}
	if got := list("--group", group); len(got) != 1 || got[0].ClientID != cons.ClientID {
		t.Fatalf("--group %s: %+v", group, got)
	}
	if got := list("--topic", topic); len(got) != 2 {
		t.Fatalf("--topic %s: %+v", topic, got)
	}
	if got := list("--topic", other); len(got) != 0 {
		t.Fatalf("--topic %s: %+v", other, got)
	}
	if out := cli(0, "client", "list"); !strings.Contains(out, "CLIENT-ID") || !strings.Contains(out, prod.ClientID) || !strings.Contains(out, group) {
		t.Fatalf("client list table:\n%s", out)
	}

	// stack: the Go client's goroutine dump, as text and as JSON.
	if out := cli(0, "client", "stack", prod.ClientID); !strings.Contains(out, "goroutine ") || !strings.Contains(out, "rocketmq-clients/golang") {
		t.Fatalf("client stack:\n%.2000s", out)
	}
	var ans admin.ClientAnswer
	if out := cli(0, "client", "stack", cons.ClientID, "--json"); json.Unmarshal([]byte(out), &ans) != nil || ans.Code != "OK" || ans.Nonce == "" || !strings.Contains(ans.StackTrace, "goroutine ") {
		t.Fatalf("client stack --json: %.2000s", out)
	}

	// verify: the Go consumer answers NOT_IMPLEMENTED (exit 1, the verdict printed).
	receipt, err := producer.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("verify me")})
	if err != nil {
		t.Fatal(err)
	}
	msgID := receipt[0].MessageID
	// A cluster broker indexes a message a moment after storing it.
	testenv.WaitFor(t, 10*time.Second, func() error {
		if out := cli(1, "client", "verify", cons.ClientID, "--topic", topic, "--messageId", msgID); !strings.Contains(out, "answered NOT_IMPLEMENTED for message "+msgID) {
			return fmt.Errorf("client verify with the Go consumer:\n%s", out)
		}
		return nil
	})
	if out := cli(1, "client", "verify", prod.ClientID, "--topic", topic, "--messageId", msgID); !strings.Contains(out, "only a push or simple consumer") {
		t.Fatalf("client verify with a producer:\n%s", out)
	}
	if out := cli(1, "client", "verify", cons.ClientID, "--topic", topic, "--messageId", "01NOSUCHMESSAGE"); !strings.Contains(out, "message not found: topic "+topic+" has no") {
		t.Fatalf("client verify of an unknown message:\n%s", out)
	}
	if out := cli(2, "client", "verify", cons.ClientID, "--topic", topic); !strings.Contains(out, "needs --topic and --messageId") {
		t.Fatalf("client verify without --messageId:\n%s", out)
	}
	if out := cli(1, "client", "stack", "no-such-client"); !strings.Contains(out, "no client no-such-client is known") {
		t.Fatalf("client stack of an unknown client:\n%s", out)
	}

	// A raw consumer gets the stored message in the verify command and
	// answers for it; an answer with another nonce is ignored.
	raw := testenv.NewRawClient(t, p)
	stream, err := raw.Telemetry(raw.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ct := v2.ClientType_PUSH_CONSUMER
	if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{ClientType: &ct,
		PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: &v2.Resource{Name: group},
			Subscriptions: []*v2.SubscriptionEntry{{Topic: &v2.Resource{Name: topic}, Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}}}}}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetSettings() == nil {
		t.Fatalf("settings reply: %v %v", r, err)
	}
	answered := make(chan *v2.VerifyMessageCommand, 1)
	go func() {
		defer close(answered)
		cmd, err := stream.Recv()
		if err != nil || cmd.GetVerifyMessageCommand() == nil {
			return
		}
		v := cmd.GetVerifyMessageCommand()
		_ = stream.Send(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_OK}, Command: &v2.TelemetryCommand_VerifyMessageResult{VerifyMessageResult: &v2.VerifyMessageResult{Nonce: v.GetNonce() + "0"}}})
		_ = stream.Send(&v2.TelemetryCommand{Status: &v2.Status{Code: v2.Code_FAILED_TO_CONSUME_MESSAGE, Message: "listener said later"},
			Command: &v2.TelemetryCommand_VerifyMessageResult{VerifyMessageResult: &v2.VerifyMessageResult{Nonce: v.GetNonce()}}})
		answered <- v
	}()
	out := cli(1, "client", "verify", raw.ID(), "--topic", topic, "--messageId", msgID)
	if !strings.Contains(out, "answered FAILED_TO_CONSUME_MESSAGE for message "+msgID+" of topic "+topic+": listener said later") {
		t.Fatalf("client verify with the raw consumer:\n%s", out)
	}
	v := <-answered
	if m := v.GetMessage(); m.GetSystemProperties().GetMessageId() != msgID || string(m.GetBody()) != "verify me" || m.GetTopic().GetName() != topic {
		t.Fatalf("verify command carried %v", m)
	}

	// A client that does not answer: the command times out after
	// messaging.clients.commandTimeout, saying so (a proxy with a short
	// one, which no answer is expected within).
	cfg2 := testenv.Config(t)
	cfg2.Messaging.Clients.CommandTimeout = 2 * time.Second
	p2 := testenv.Start(t, cfg2)
	topic2, group2 := testenv.Name(t, "cops-silent-topic"), testenv.Name(t, "cops-silent-group")
	silent := p2.Subscriber(t, topic2, group2, 2)
	start := time.Now()
	if out := cliOf(p2, 1, "client", "stack", silent.ID()); !strings.Contains(out, "client "+silent.ID()+" did not answer the thread stack request within 2s") {
		t.Fatalf("client stack of a silent client:\n%s", out)
	}
	t.Logf("silent client: answered after %v", time.Since(start).Round(time.Millisecond))
}
