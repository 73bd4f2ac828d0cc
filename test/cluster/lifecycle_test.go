package cluster_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.uber.org/fx"
	"go.uber.org/goleak"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

// TestClusterStartStopLeavesNoGoroutines: a whole start and stop of the
// proxy in cluster mode, in this process, with a producer and a consumer
// registered at the broker (heartbeats), a send, a receive and a long poll
// open when it stops, leaves no goroutine behind: the heartbeat loop, the
// Remoting connections and their readers and writers all end.
func TestClusterStartStopLeavesNoGoroutines(t *testing.T) {
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.HeartbeatInterval = 200 * time.Millisecond
	topic, group := testenv.Name(t, "lifecycle-t"), testenv.Name(t, "lifecycle-g")
	// The official Go clients of the package's other tests start their
	// periodic tasks after fixed delays (up to 60 s after a client starts)
	// and never stop those (v5.1.4): a ticker of theirs may appear while
	// this test runs. This test starts no such client.
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/apache/rocketmq-clients/golang/v5/pkg/ticker.Tick.func1"))
	var (
		srv *grpcadapter.Server
		adm *application.Admin
	)
	a := fx.New(app.Options(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), fx.Populate(&srv, &adm))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Claim(t, "topic", topic)
	testenv.Claim(t, "consumer group", group)
	if _, err := adm.CreateTopic(ctx, application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal, QueueCount: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateGroup(ctx, application.GroupSpec{Name: group}); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	c := &testenv.RawClient{MessagingServiceClient: v2.NewMessagingServiceClient(conn)}
	cctx := metadata.AppendToOutgoingContext(ctx,
		"x-mq-client-id", "lifecycle-cluster-1", "x-mq-language", "GO", "x-mq-client-version", "5.1.4", "x-mq-protocol", "v2")
	testenv.WaitFor(t, time.Minute, func() error {
		resp, err := c.SendMessage(cctx, &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte("m"), "")}})
		if err != nil {
			return err
		}
		if resp.GetStatus().GetCode() != v2.Code_OK {
			return fmt.Errorf("send: %v", resp.GetStatus())
		}
		return nil
	})
	stream, err := c.Telemetry(cctx)
	if err != nil {
		t.Fatal(err)
	}
	testenv.SendSettings(t, stream, v2.ClientType_SIMPLE_CONSUMER, group, topic)
	req := testenv.ReceiveRequest(group, topic, 32, time.Minute)
	testenv.WaitFor(t, time.Minute, func() error {
		if st, msgs, err := c.ReceiveWith(cctx, req); err != nil || len(msgs) == 0 {
			return fmt.Errorf("receive: %v %v", st, err)
		}
		return nil
	})
	req.LongPollingTimeout = durationpb.New(20 * time.Second)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		_, _, _ = c.ReceiveWith(cctx, req)
	}()
	if err := a.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	<-polled
	conn.Close()
}
