package e2e_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestGRPCMinVersion13: with grpc.tls.minVersion 1.3 (and TLS enforced)
// the official Go client sends, receives and acks as before (it speaks
// TLS 1.3), while a client that speaks TLS 1.2 at most is refused during
// its handshake.
func TestGRPCMinVersion13(t *testing.T) {
	testenv.LocalOnly(t, "the gRPC port's TLS does not depend on the mode")
	waitsInParallel(t)
	cfg := testenv.Config(t)
	cfg.GRPC.TLS.Mode = grpcadapter.TLSEnforcing
	cfg.GRPC.TLS.MinVersion = "1.3"
	p := testenv.Start(t, cfg)

	conn, err := tls.Dial("tcp", p.Addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2"}})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.2 client completed its handshake with a port set to TLS 1.3")
	}
	if !strings.Contains(err.Error(), "protocol version not supported") {
		t.Fatalf("a TLS 1.2 client: %v, want a protocol version alert", err)
	}

	topic, group := testenv.Name(t, "tls13"), testenv.Name(t, "g-tls13")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	pr := testenv.NewProducer(t, p, topic)
	r, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("over TLS 1.3")})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := testenv.ReceiveFirst(t, c, 20*time.Second, 10*time.Second)
	if string(got.GetBody()) != "over TLS 1.3" || got.GetMessageId() != r[0].MessageID {
		t.Fatalf("got %q id %s, want the message sent (%s)", got.GetBody(), got.GetMessageId(), r[0].MessageID)
	}
	if err := c.Ack(t.Context(), got); err != nil {
		t.Fatalf("ack: %v", err)
	}
}
