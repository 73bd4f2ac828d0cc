package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// openTelemetry opens a Telemetry stream signed as ak and sends simple
// consumer settings for group and topic; it returns the stream after the
// settings reply.
func openTelemetry(t *testing.T, addr, ak, secret, group, topic string) v2.MessagingService_TelemetryClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	md := append(signed(ak, secret, time.Now().UTC(), false),
		"x-mq-client-id", "raw-"+ak, "x-mq-language", "GO", "x-mq-client-version", "5.1.4", "x-mq-protocol", "v2")
	stream, err := v2.NewMessagingServiceClient(conn).Telemetry(metadata.AppendToOutgoingContext(ctx, md...))
	if err != nil {
		t.Fatal(err)
	}
	testenv.SendSettings(t, stream, v2.ClientType_SIMPLE_CONSUMER, group, topic)
	return stream
}

// TestRevokedUserLosesOpenStreams: a user disabled, deleted or given a new
// secret through the policy store loses its open Telemetry streams and
// long polls as soon as the proxies reload the policy (LISTEN/NOTIFY):
// each ends with UNAUTHORIZED instead of running to its timeout, so a
// revoked identity cannot keep consuming. Another user's stream stays
// usable. Go client v5.1.4 for the long polls, raw streams for Telemetry.
func TestRevokedUserLosesOpenStreams(t *testing.T) {
	s := newSecured(t)
	c := s.start(t)
	// A topic and group of its own: a message another test left there
	// would answer the long polls below before the revocation.
	group, topic := testenv.Name(t, "g-revoke"), testenv.Name(t, "orders-revoke")
	createTopics(t, c, topic)
	ctx := t.Context()
	cases := []struct {
		user, secret string
		change       func() error
	}{
		{"dave", "dave-secret-0123456789abcdef", func() error {
			disabled := domain.UserDisabled
			_, err := s.store.UpdateUser(ctx, cliActor, "dave", ports.UserUpdate{Status: &disabled})
			return err
		}},
		{"erin", "erin-secret-0123456789abcdef", func() error { return s.store.DeleteUser(ctx, cliActor, "erin") }},
		{"frank", "frank-secret-0123456789abcdef", func() error {
			_, err := s.store.UpdateUser(ctx, cliActor, "frank", ports.UserUpdate{Secret: domain.Secret("frank-new-secret-0123456789")})
			return err
		}},
	}
	type open struct {
		telemetry v2.MessagingService_TelemetryClient
		received  chan error
	}
	opened := map[string]open{}
	s.put(t, aclEntry(t, "User:alice", "Group:"+group, "Sub", "Allow"))
	for _, tc := range cases {
		if err := s.store.CreateUser(ctx, cliActor, domain.User{Name: tc.user}, domain.Secret(tc.secret)); err != nil {
			t.Fatal(err)
		}
		s.put(t, aclEntry(t, "User:"+tc.user, "Topic:orders-*", "Sub", "Allow"), aclEntry(t, "User:"+tc.user, "Group:"+group, "Sub", "Allow"))
	}
	for _, tc := range append(cases, struct {
		user, secret string
		change       func() error
	}{user: "alice", secret: aliceSecret}) {
		cfg := clientConfig(c, tc.user, tc.secret, group)
		var cons rmq.SimpleConsumer
		// The users were just created: wait for the policy to reach the
		// proxy.
		testenv.WaitFor(t, 10*time.Second, func() error {
			var err error
			cons, err = rmq.NewSimpleConsumer(cfg, rmq.WithSimpleAwaitDuration(25*time.Second),
				rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}))
			if err != nil {
				t.Fatal(err)
			}
			return cons.Start()
		})
		t.Cleanup(func() { _ = cons.GracefulStop() })
		o := open{telemetry: openTelemetry(t, c.GRPCAddr, tc.user, tc.secret, group, topic), received: make(chan error, 1)}
		go func() {
			rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := cons.Receive(rctx, 16, 20*time.Second)
			o.received <- err
		}()
		opened[tc.user] = o
	}
	// Every long poll is in the proxy before the changes.
	testenv.WaitFor(t, 10*time.Second, func() error {
		if n := metricValue(scrapeAt(t, c.HealthAddr), "rmqproxy_longpoll_waiters", nil); n != float64(len(opened)) {
			return fmt.Errorf("%v long polls waiting, want %d", n, len(opened))
		}
		return nil
	})

	for _, tc := range cases {
		if err := tc.change(); err != nil {
			t.Fatalf("%s: %v", tc.user, err)
		}
	}
	for _, tc := range cases {
		o := opened[tc.user]
		// The long poll ends with UNAUTHORIZED (not at its 20 s timeout with
		// no message: that answer would be MESSAGE_NOT_FOUND).
		if err := <-o.received; err == nil || !strings.Contains(err.Error(), "CODE: UNAUTHORIZED") {
			t.Errorf("%s: long poll ended with %v, want UNAUTHORIZED", tc.user, err)
		}
		// The Telemetry stream gets an UNAUTHORIZED status, then its end.
		cmd, err := o.telemetry.Recv()
		if err != nil || cmd.GetStatus().GetCode() != v2.Code_UNAUTHORIZED {
			t.Errorf("%s: telemetry got %v %v, want an UNAUTHORIZED status", tc.user, cmd, err)
		}
		if cmd, err := o.telemetry.Recv(); err == nil {
			t.Errorf("%s: telemetry stream still open after revocation: %v", tc.user, cmd)
		}
	}
	// alice is untouched: her Telemetry stream still answers settings.
	testenv.SendSettings(t, opened["alice"].telemetry, v2.ClientType_SIMPLE_CONSUMER, group, topic)

	// Each revocation is audited.
	testenv.WaitFor(t, 10*time.Second, func() error {
		evs, err := s.store.QueryAudit(t.Context(), domain.AuditQuery{Category: domain.AuditAuthn, Limit: 1000})
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range evs {
			if e.Operation == "revoke" {
				seen[e.Principal+" "+e.Reason] = true
			}
		}
		for _, want := range []string{"dave user_disabled", "erin unknown_user", "frank secret_changed"} {
			if !seen[want] {
				return fmt.Errorf("no revoke event %q in %v", want, seen)
			}
		}
		if seen["alice "+domain.ReasonUserDisabled] || len(seen) != 3 {
			return fmt.Errorf("unexpected revocations: %v", seen)
		}
		return nil
	})
}
