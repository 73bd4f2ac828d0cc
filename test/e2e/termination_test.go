package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestStoppedClientsFreeTheirTelemetryStreams: the official Go client
// v5.1.4 says goodbye (NotifyClientTermination) when it stops but keeps
// its connection, and with it its Telemetry stream, open until its idle
// check closes the connection half an hour later. The proxy ends the
// stream of a client that terminated, so that stopped clients do not hold
// Telemetry admission slots (grpc.maxInflightPerKind): with two slots,
// producers started and stopped one after another all start.
func TestStoppedClientsFreeTheirTelemetryStreams(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	cfg.GRPC.MaxInflightPerKind = 2
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "stopped-streams")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	for i := range 5 {
		pr, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(topic))
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Start(); err != nil {
			t.Fatalf("producer %d (after %d started and stopped): %v", i+1, i, err)
		}
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
			t.Fatalf("producer %d send: %v", i+1, err)
		}
		if err := pr.GracefulStop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGoodbyeLeavesTheStreamToTheClient: after NotifyClientTermination the
// official clients close their Telemetry stream themselves, and two of
// them misbehave when the proxy completes it first: the Node.js client
// (1.0.8) reopens it a second later although it was shut down (a new
// connection, its settings again, the client known again), and the Python
// client (5.1.2) logs an error for the end it did not expect. So the proxy
// leaves the stream to the client for grpcadapter.GoodbyeGrace (its
// admission slot is free at once, see
// TestStoppedClientsFreeTheirTelemetryStreams) and only then completes it,
// for clients that keep it open (the Go client).
func TestGoodbyeLeavesTheStreamToTheClient(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "goodbye"), testenv.Name(t, "g-goodbye")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	for _, closes := range []bool{true, false} {
		raw := testenv.NewRawClient(t, p)
		stream, err := raw.Telemetry(raw.Ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		testenv.SendSettings(t, stream, v2.ClientType_SIMPLE_CONSUMER, group, topic)
		ended := make(chan error, 1)
		go func() {
			for {
				if _, err := stream.Recv(); err != nil {
					ended <- err
					return
				}
			}
		}()
		// Before the goodbye: the proxy starts the grace when it gets it,
		// so no stream can end less than the grace after this, however
		// long the answer takes to come back on a loaded machine.
		said := time.Now()
		resp, err := raw.NotifyClientTermination(raw.Ctx(t), &v2.NotifyClientTerminationRequest{Group: &v2.Resource{Name: group}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("goodbye: %v %v", resp, err)
		}
		if closes {
			// The client closes its stream within the grace (here: after
			// half of it); until then the proxy leaves it open.
			select {
			case err := <-ended:
				t.Fatalf("the proxy completed the stream %v after the goodbye, before the client closed it (%v)", time.Since(said), err)
			case <-time.After(grpcadapter.GoodbyeGrace / 2):
			}
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-ended:
				if !errors.Is(err, io.EOF) {
					t.Errorf("the stream the client closed ended with %v, want a normal end", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the proxy did not complete the stream the client closed")
			}
			continue
		}
		// A client that keeps its stream open has it completed after the grace.
		select {
		case err := <-ended:
			if d := time.Since(said); !errors.Is(err, io.EOF) || d < grpcadapter.GoodbyeGrace {
				t.Errorf("the stream of a client that kept it open ended %v after the goodbye with %v, want a normal end after %v", d, err, grpcadapter.GoodbyeGrace)
			}
		case <-time.After(grpcadapter.GoodbyeGrace + 10*time.Second):
			t.Fatalf("the stream of a client that said goodbye is still open %v later", time.Since(said))
		}
	}
}

// TestHeartbeatAfterGoodbyeDoesNotBringTheClientBack: the official Go
// client v5.1.4 says goodbye (NotifyClientTermination) before it takes
// itself off its heartbeat timer, so a heartbeat may come right after the
// goodbye. The Apache proxy answers a heartbeat of a client whose settings
// it dropped with UNRECOGNIZED_CLIENT_TYPE and does not register it; here
// that heartbeat registered the client again, and for up to the session
// expiry it took its share of an orderly group's queues (left unread) and
// was listed as a consumer of the group. New settings on a Telemetry
// stream still register it.
func TestHeartbeatAfterGoodbyeDoesNotBringTheClientBack(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "late-heartbeat"), testenv.Name(t, "g-late-heartbeat")
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 4)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	stays, leaves := testenv.NewRawClient(t, p), testenv.NewRawClient(t, p)
	stays.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	leaves.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	assigned := func() int {
		t.Helper()
		resp, err := stays.QueryAssignment(stays.Ctx(t), &v2.QueryAssignmentRequest{Topic: &v2.Resource{Name: topic}, Group: &v2.Resource{Name: group}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("query assignment: %v %v", resp, err)
		}
		return len(resp.GetAssignments())
	}
	if n := assigned(); n != 2 {
		t.Fatalf("with two push consumers the one staying got %d of 4 queues", n)
	}
	bye, err := leaves.NotifyClientTermination(leaves.Ctx(t), &v2.NotifyClientTerminationRequest{Group: &v2.Resource{Name: group}})
	if err != nil || bye.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("goodbye: %v %v", bye, err)
	}
	hb, err := leaves.Heartbeat(leaves.Ctx(t), &v2.HeartbeatRequest{ClientType: v2.ClientType_PUSH_CONSUMER, Group: &v2.Resource{Name: group}})
	if err != nil {
		t.Fatal(err)
	}
	if c := hb.GetStatus().GetCode(); c != v2.Code_UNRECOGNIZED_CLIENT_TYPE {
		t.Errorf("a heartbeat right after the goodbye was answered %v, want UNRECOGNIZED_CLIENT_TYPE as the Apache proxy answers", hb.GetStatus())
	}
	if n := assigned(); n != 4 {
		t.Fatalf("after the other consumer's goodbye and a late heartbeat of it, the one staying got %d of 4 queues", n)
	}
	// The same client id starting again (its settings) is registered.
	leaves.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	if n := assigned(); n != 2 {
		t.Fatalf("after the client sent its settings again the other got %d of 4 queues", n)
	}
	hb, err = leaves.Heartbeat(leaves.Ctx(t), &v2.HeartbeatRequest{ClientType: v2.ClientType_PUSH_CONSUMER, Group: &v2.Resource{Name: group}})
	if err != nil || hb.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("heartbeat after new settings: %v %v", hb, err)
	}
}

// TestOneClientIDOnTwoConnections: two processes using one client id (two
// connections, a Telemetry stream each). The stream that sent settings
// last gets the commands (as the Apache proxy's channel of a client id
// writes to its latest stream); when it ends, the other's still open
// stream gets them: a check-back of the producer whose stream stayed
// open was dropped ("no producer connected") until its next settings.
// And a goodbye ends only the stream of its own connection: one process's
// goodbye completed the stream the other had opened last.
func TestOneClientIDOnTwoConnections(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Local.TransactionTimeout = time.Second
	cfg.Local.TransactionCheckInterval = time.Second
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "one-id-tx")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 1)
	producer := func(c *testenv.RawClient) v2.MessagingService_TelemetryClient {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		t.Cleanup(cancel)
		stream, err := c.Telemetry(c.WithHeaders(ctx))
		if err != nil {
			t.Fatal(err)
		}
		testenv.SendProducerSettings(t, stream, topic)
		return stream
	}
	first := testenv.NewRawClient(t, p)
	firstStream := producer(first)
	secondCtx, secondGone := context.WithCancel(t.Context())
	second := testenv.NewRawClientAs(t, p, first)
	secondStream, err := second.Telemetry(second.WithHeaders(secondCtx))
	if err != nil {
		t.Fatal(err)
	}
	testenv.SendProducerSettings(t, secondStream, topic)
	// The second process dies (its stream ends); the first sends an
	// orphaned half message: its check-back comes to the first's stream.
	secondGone()
	m := testenv.RawMessage(topic, []byte("orphan"), "")
	m.SystemProperties.MessageType = v2.MessageType_TRANSACTION
	resp, err := first.SendMessage(first.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("half message: %v %v", resp, err)
	}
	checked := make(chan error, 1)
	go func() {
		for {
			cmd, err := firstStream.Recv()
			if err != nil {
				checked <- fmt.Errorf("the first stream ended: %w", err)
				return
			}
			if cmd.GetRecoverOrphanedTransactionCommand() != nil {
				checked <- nil
				return
			}
		}
	}()
	select {
	case err := <-checked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no check-back reached the open stream of the client id within 30 s (broker checks every second)")
	}

	// A third process with the id registers, then the first sends its
	// settings again (the latest); the third says goodbye: the first's
	// stream stays open and is served.
	third := testenv.NewRawClientAs(t, p, first)
	producer(third)
	testenv.SendProducerSettings(t, firstStream, topic)
	bye, err := third.NotifyClientTermination(third.Ctx(t), &v2.NotifyClientTerminationRequest{})
	if err != nil || bye.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("goodbye: %v %v", bye, err)
	}
	testenv.SendProducerSettings(t, firstStream, topic)
}
