package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestNamespacesWithAuth: with authentication on, a grant on one
// namespace's names (Topic:tenantA%*, Group:tenantA%*) covers that
// namespace only. The official client configured with namespace tenantA
// publishes and consumes there; the same user in namespace tenantB, or in
// none, is refused; so are requests that mix the x-mq-namespace header
// with another namespace in the Resource, name another namespace's topic
// in full, or name its retry or dead-letter topic. Refusals are audited
// under the full names.
func TestNamespacesWithAuth(t *testing.T) {
	s := newSecured(t)
	s.put(t,
		aclEntry(t, "User:alice", "Topic:tenantA%*", "Pub,Sub", "Allow"),
		aclEntry(t, "User:alice", "Group:tenantA%*", "Sub", "Allow"),
	)
	c := s.start(t)
	orders, g := testenv.Name(t, "ns-orders"), testenv.Name(t, "ns-g")
	createTopics(t, c, "tenantA%"+orders, "tenantB%"+orders, orders)
	cfg := func(ns, group string) *rmq.Config {
		cc := clientConfig(c, "alice", aliceSecret, group)
		cc.NameSpace = ns
		return cc
	}
	pa, err := startProducer(t, cfg("tenantA", ""), orders)
	if err != nil {
		t.Fatalf("producer in namespace tenantA: %v", err)
	}
	if err := send(pa, orders); err != nil {
		t.Fatalf("send in namespace tenantA: %v", err)
	}
	_, err = startProducer(t, cfg("tenantB", ""), orders)
	wantCode(t, "producer in namespace tenantB", err, "FORBIDDEN")
	_, err = startProducer(t, cfg("", ""), orders)
	wantCode(t, "producer in no namespace", err, "FORBIDDEN")

	cons, err := rmq.NewSimpleConsumer(cfg("tenantA", g), rmq.WithSimpleAwaitDuration(2*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{orders: rmq.SUB_ALL}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatalf("consumer in namespace tenantA: %v", err)
	}
	t.Cleanup(func() { _ = cons.GracefulStop() })
	testenv.WaitFor(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		mvs, err := cons.Receive(ctx, 16, 20*time.Second)
		if err != nil {
			return err
		}
		for _, mv := range mvs {
			if mv.GetTopic() != orders {
				return fmt.Errorf("received a message of topic %q, want %s", mv.GetTopic(), orders)
			}
			if err := cons.Ack(ctx, mv); err != nil {
				return err
			}
		}
		return nil
	})

	// Hand-made requests, signed as alice with the namespace header tenantA.
	client, signedAs := signedClient(t, c.GRPCAddr)
	sendAs := func(header string, topic *v2.Resource) v2.Code {
		t.Helper()
		ctx, cancel := signedAs("alice", aliceSecret, "ns-raw", 10*time.Second, "x-mq-namespace", header)
		defer cancel()
		m := testenv.RawMessage("", []byte("x"), "")
		m.Topic = topic
		resp, err := client.SendMessage(ctx, &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil {
			t.Fatalf("send to %v: %v", topic, err)
		}
		return resp.GetStatus().GetCode()
	}
	for _, tc := range []struct {
		what   string
		header string
		topic  *v2.Resource
		want   v2.Code
	}{
		{"header and Resource in tenantA", "tenantA", &v2.Resource{ResourceNamespace: "tenantA", Name: orders}, v2.Code_OK},
		{"header only", "tenantA", &v2.Resource{Name: orders}, v2.Code_OK},
		{"tenantB in the Resource, tenantA in the header", "tenantA", &v2.Resource{ResourceNamespace: "tenantB", Name: orders}, v2.Code_FORBIDDEN},
		{"tenantB's full name, no namespace", "", &v2.Resource{Name: "tenantB%" + orders}, v2.Code_FORBIDDEN},
		{"the topic of no namespace", "", &v2.Resource{Name: orders}, v2.Code_FORBIDDEN},
		{"tenantB's retry topic", "", &v2.Resource{Name: "%RETRY%tenantB%" + g}, v2.Code_FORBIDDEN},
		{"tenantB's dead-letter topic", "", &v2.Resource{Name: "%DLQ%tenantB%" + g}, v2.Code_FORBIDDEN},
		{"tenantB's retry topic through a tenantB Resource", "tenantA", &v2.Resource{ResourceNamespace: "tenantB", Name: "%RETRY%" + g}, v2.Code_FORBIDDEN},
		{"a namespace with % reaching tenantB", "tenantB%x", &v2.Resource{Name: orders}, v2.Code_FORBIDDEN},
		// System topics keep their names in every namespace.
		{"a system topic", "tenantA", &v2.Resource{Name: "RMQ_SYS_TRACE_TOPIC"}, v2.Code_FORBIDDEN},
	} {
		if got := sendAs(tc.header, tc.topic); got != tc.want {
			t.Errorf("%s (header %q, Resource %v): %v, want %v", tc.what, tc.header, tc.topic, got, tc.want)
		}
	}

	s.waitAudited(t, domain.AuditQuery{Decision: domain.AuditDeny, Principal: "alice"}, func(e domain.AuditEvent) []string {
		return []string{e.Resource}
	}, "Topic:tenantB%"+orders, "Topic:"+orders, "Group:tenantB%"+g)
}
