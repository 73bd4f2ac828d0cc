package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestStolenReceiptHandleReachesNoOtherTopic: a receipt handle names a
// queue, offsets and the message's place in the commit log, but not its
// topic or group; a user who gets hold of the handle of a message of a
// topic she may not consume (here: the Super user's delivery of a message
// of alice's denied topic) gains nothing by presenting it with her own
// group and a topic she may consume. Forwarding it to her group's
// dead-letter queue (where she could read it: the dead-letter topic is
// authorized as her group) is refused (in cluster mode the broker would
// copy whatever message the handle's commit-log offset names); an ack or
// invisible-time change of it under her names leaves the other delivery
// alone; naming the other topic or group is FORBIDDEN and audited.
func TestStolenReceiptHandleReachesNoOtherTopic(t *testing.T) {
	s := newSecured(t)
	c := s.start(t)
	eu := testenv.Name(t, "orders-eu")
	adminGroup := testenv.Name(t, "g-admin")
	createTopics(t, c, eu, s.secret)

	// The Super user sends a message to the topic alice is denied, and
	// receives it: its handle is the one alice steals.
	admin, err := startProducer(t, clientConfig(c, "admin", adminSecret, ""), s.secret)
	if err != nil {
		t.Fatalf("admin's producer: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	_, err = admin.Send(ctx, &rmq.Message{Topic: s.secret, Body: []byte("top secret")})
	cancel()
	if err != nil {
		t.Fatalf("admin sends to %s: %v", s.secret, err)
	}
	stolen := receiveOne(t, clientConfig(c, "admin", adminSecret, adminGroup), s.secret)

	// Alice consumes her own topic with her group (so both exist and her
	// group has deliveries of its own).
	alice, err := startProducer(t, clientConfig(c, "alice", aliceSecret, ""), eu)
	if err != nil {
		t.Fatalf("alice's producer: %v", err)
	}
	if err := send(alice, eu); err != nil {
		t.Fatalf("alice sends to %s: %v", eu, err)
	}
	own := receiveOne(t, clientConfig(c, "alice", aliceSecret, s.group), eu)

	client, signedAs := signedClient(t, c.GRPCAddr)
	as := func(user, secret string) (context.Context, context.CancelFunc) {
		return signedAs(user, secret, "stolen-"+user, 10*time.Second)
	}
	res := func(name string) *v2.Resource { return &v2.Resource{Name: name} }
	forward := func(group, topic string, mv *rmq.MessageView) *v2.Status {
		t.Helper()
		ctx, cancel := as("alice", aliceSecret)
		defer cancel()
		resp, err := client.ForwardMessageToDeadLetterQueue(ctx, &v2.ForwardMessageToDeadLetterQueueRequest{Group: res(group), Topic: res(topic),
			ReceiptHandle: mv.GetReceiptHandle(), MessageId: mv.GetMessageId(), DeliveryAttempt: 1, MaxDeliveryAttempts: 16})
		if err != nil {
			t.Fatalf("forward: %v", err)
		}
		return resp.GetStatus()
	}
	ack := func(group, topic string, mv *rmq.MessageView) *v2.Status {
		t.Helper()
		ctx, cancel := as("alice", aliceSecret)
		defer cancel()
		resp, err := client.AckMessage(ctx, &v2.AckMessageRequest{Group: res(group), Topic: res(topic),
			Entries: []*v2.AckMessageEntry{{MessageId: mv.GetMessageId(), ReceiptHandle: mv.GetReceiptHandle()}}})
		if err != nil {
			t.Fatalf("ack: %v", err)
		}
		if resp.GetStatus().GetCode() != v2.Code_OK || len(resp.GetEntries()) == 0 {
			return resp.GetStatus()
		}
		return resp.GetEntries()[0].GetStatus()
	}
	change := func(group, topic string, mv *rmq.MessageView) *v2.Status {
		t.Helper()
		ctx, cancel := as("alice", aliceSecret)
		defer cancel()
		resp, err := client.ChangeInvisibleDuration(ctx, &v2.ChangeInvisibleDurationRequest{Group: res(group), Topic: res(topic),
			ReceiptHandle: mv.GetReceiptHandle(), MessageId: mv.GetMessageId(), InvisibleDuration: durationpb.New(time.Minute)})
		if err != nil {
			t.Fatalf("change invisible duration: %v", err)
		}
		return resp.GetStatus()
	}

	// Naming the other topic or group: refused by the ACL.
	for _, tc := range []struct {
		what         string
		call         func(group, topic string, mv *rmq.MessageView) *v2.Status
		group, topic string
	}{
		{"forward under admin's group and topic", forward, adminGroup, s.secret},
		{"forward under her group and the denied topic", forward, s.group, s.secret},
		{"ack under admin's group and topic", ack, adminGroup, s.secret},
		{"ack under admin's group and her topic", ack, adminGroup, eu},
		{"change under her group and the denied topic", change, s.group, s.secret},
	} {
		if st := tc.call(tc.group, tc.topic, stolen); st.GetCode() != v2.Code_FORBIDDEN {
			t.Errorf("alice: %s with a stolen handle: %v, want FORBIDDEN", tc.what, st)
		}
	}

	// Her own names with the stolen handle: the dead-letter forward must
	// not move the other topic's message into her group's dead-letter
	// queue, where she could read it (local mode answers OK and moves
	// nothing, as for any handle never delivered to the group; so does
	// cluster mode, where the broker would copy whatever message the
	// handle's commit-log offset names). An ack or an invisible-time change
	// under her names has no access to the other topic either (checked
	// below: the other delivery is untouched).
	stolenForward := forward(s.group, eu, stolen)
	_ = ack(s.group, eu, stolen)
	_ = change(s.group, eu, stolen)
	// A made-up handle under her names: her own delivery's, with a queue
	// offset never delivered to her group (what local mode goes by) and
	// the stolen message's broker and commit-log offset (what a broker copies from,
	// so cluster mode reads that message first: another topic's). It is
	// answered OK with nothing moved, and audited below.
	forgedHandle, err := domain.ParseReceiptHandle(own.GetReceiptHandle())
	if err != nil {
		t.Fatal(err)
	}
	stolenHandle, err := domain.ParseReceiptHandle(stolen.GetReceiptHandle())
	if err != nil {
		t.Fatal(err)
	}
	forgedHandle.QueueOffset += 1_000_000
	forgedHandle.BrokerName, forgedHandle.CommitLogOffset = stolenHandle.BrokerName, stolenHandle.CommitLogOffset
	{
		ctx, cancel := as("alice", aliceSecret)
		resp, err := client.ForwardMessageToDeadLetterQueue(ctx, &v2.ForwardMessageToDeadLetterQueueRequest{Group: res(s.group), Topic: res(eu),
			ReceiptHandle: forgedHandle.String(), MessageId: own.GetMessageId(), DeliveryAttempt: 1, MaxDeliveryAttempts: 16})
		cancel()
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("alice forwards a made-up handle: %v %v, want OK with nothing moved", resp.GetStatus(), err)
		}
	}
	// A made-up handle whose commit-log offset lies beyond the broker's
	// commit log (and whose queue offset was never delivered to her
	// group): local mode answers OK with nothing moved, as above; cluster
	// mode INVALID_RECEIPT_HANDLE, the broker showing no message there
	// (it was a broker error, unaudited). Audited as forged_handle below.
	beyond, err := domain.ParseReceiptHandle(own.GetReceiptHandle())
	if err != nil {
		t.Fatal(err)
	}
	beyond.QueueOffset += 2_000_000
	beyond.CommitLogOffset = 1 << 50
	{
		want := v2.Code_OK
		if testenv.Target == testenv.TargetCluster {
			want = v2.Code_INVALID_RECEIPT_HANDLE
		}
		ctx, cancel := as("alice", aliceSecret)
		resp, err := client.ForwardMessageToDeadLetterQueue(ctx, &v2.ForwardMessageToDeadLetterQueueRequest{Group: res(s.group), Topic: res(eu),
			ReceiptHandle: beyond.String(), MessageId: own.GetMessageId(), DeliveryAttempt: 1, MaxDeliveryAttempts: 16})
		cancel()
		if err != nil || resp.GetStatus().GetCode() != want {
			t.Fatalf("alice forwards a made-up handle with a commit-log offset beyond the log: %v %v, want %v", resp.GetStatus(), err, want)
		}
	}
	// Her own message is forwarded after it: her dead-letter queue (one
	// queue) holds it after anything the stolen forward put there.
	if st := forward(s.group, eu, own); st.GetCode() != v2.Code_OK {
		t.Fatalf("alice forwards her own message: %v", st)
	}
	dlq := domain.DeadLetterTopic(s.group)
	var bodies []string
	testenv.WaitFor(t, 60*time.Second, func() error {
		ctx, cancel := as("alice", aliceSecret)
		defer cancel()
		stream, err := client.ReceiveMessage(ctx, testenv.ReceiveRequest(s.group, dlq, 32, time.Minute))
		if err != nil {
			return err
		}
		var st *v2.Status
		for {
			resp, err := stream.Recv()
			if err != nil {
				break
			}
			if m := resp.GetMessage(); m != nil {
				bodies = append(bodies, string(m.GetBody()))
			}
			if x := resp.GetStatus(); x != nil {
				st = x
			}
		}
		for _, b := range bodies {
			if b == "hello "+eu {
				return nil
			}
		}
		return fmt.Errorf("alice's own message not yet received from %s (last status %v)", dlq, st)
	})
	for _, b := range bodies {
		if b == "top secret" {
			t.Fatalf("alice read a message of %s, which she may not consume, from her dead-letter queue %s: a stolen receipt handle forwarded under her group and topic %s was answered %v and moved it",
				s.secret, dlq, eu, stolenForward)
		}
	}
	// The other delivery is untouched: its consumer's handle still works.
	{
		ctx, cancel := as("admin", adminSecret)
		resp, err := client.ChangeInvisibleDuration(ctx, &v2.ChangeInvisibleDurationRequest{Group: res(adminGroup), Topic: res(s.secret),
			ReceiptHandle: stolen.GetReceiptHandle(), MessageId: stolen.GetMessageId(), InvisibleDuration: durationpb.New(time.Minute)})
		cancel()
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("admin changes the invisible time of its delivery after alice's attempts: %v %v", resp.GetStatus(), err)
		}
	}

	// The denials are audited under alice with the operation and the
	// resource refused; so are the forwards of the made-up handles, which
	// no policy refused (they were only logged), with her client id, the
	// reason and the group and topic they named.
	forgedReason := ports.ForwardForgedHandle // never delivered to her group
	if testenv.Target == testenv.TargetCluster {
		forgedReason = ports.ForwardForeignMessage // the broker shows a message of another topic
	}
	s.waitAudited(t, domain.AuditQuery{Decision: domain.AuditDeny, Principal: "alice"}, func(e domain.AuditEvent) []string {
		return []string{e.Operation + " " + e.Resource, e.Operation + " " + e.Reason + " " + e.Resource + " " + e.Actions + " " + e.ClientID}
	},
		"ForwardMessageToDeadLetterQueue Group:"+adminGroup,
		"ForwardMessageToDeadLetterQueue Topic:"+s.secret,
		"AckMessage Group:"+adminGroup,
		"ChangeInvisibleDuration Topic:"+s.secret,
		"ForwardMessageToDeadLetterQueue "+forgedReason+" Group:"+s.group+" Sub stolen-alice",
		"ForwardMessageToDeadLetterQueue "+forgedReason+" Topic:"+eu+" Sub stolen-alice",
		"ForwardMessageToDeadLetterQueue "+ports.ForwardForgedHandle+" Group:"+s.group+" Sub stolen-alice",
		"ForwardMessageToDeadLetterQueue "+ports.ForwardForgedHandle+" Topic:"+eu+" Sub stolen-alice",
	)
}

// receiveOne starts a simple consumer of topic with cfg and returns the
// first message it receives, left unacknowledged (invisible for a minute).
func receiveOne(t *testing.T, cfg *rmq.Config, topic string) *rmq.MessageView {
	t.Helper()
	cons, err := rmq.NewSimpleConsumer(cfg, rmq.WithSimpleAwaitDuration(2*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil {
		t.Fatalf("consumer of %s: %v", topic, err)
	}
	t.Cleanup(func() { _ = cons.GracefulStop() })
	var got *rmq.MessageView
	testenv.WaitFor(t, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		mvs, err := cons.Receive(ctx, 1, time.Minute)
		if err != nil {
			return err
		}
		if len(mvs) == 0 {
			return fmt.Errorf("no message of %s yet", topic)
		}
		got = mvs[0]
		return nil
	})
	return got
}

// TestAnotherUsersClientIDIsRefusedAndAudited: client ids are the
// clients' choice, so a user may name another user's client. The proxy
// refuses what would act on that client (end it, keep it alive, replace
// its settings and Telemetry stream, receive or settle messages under it)
// with FORBIDDEN (settings: the stream ends, as for any refused
// settings), and each refusal is in the audit log under the user who
// tried, with the operation, the client id, reason foreign_client_id and
// the group and topic the request named (they were left out).
func TestAnotherUsersClientIDIsRefusedAndAudited(t *testing.T) {
	s := newSecured(t)
	s.put(t, aclEntry(t, "User:carol", "Group:"+s.group, "Sub", "Allow"), aclEntry(t, "User:carol", "Topic:"+s.local, "Sub", "Allow"))
	c := s.start(t)
	createTopics(t, c, s.local)
	client, signedAs := signedClient(t, c.GRPCAddr)
	id := testenv.Name(t, "alices-client")
	as := func(user, secret string) (context.Context, context.CancelFunc) {
		return signedAs(user, secret, id, 10*time.Second)
	}
	producer := v2.ClientType_PRODUCER
	heartbeat := func(user, secret string) *v2.Status {
		t.Helper()
		ctx, cancel := as(user, secret)
		defer cancel()
		resp, err := client.Heartbeat(ctx, &v2.HeartbeatRequest{ClientType: producer})
		if err != nil {
			t.Fatalf("heartbeat as %s: %v", user, err)
		}
		return resp.GetStatus()
	}
	// Alice's producer registers the id.
	if st := heartbeat("alice", aliceSecret); st.GetCode() != v2.Code_OK {
		t.Fatalf("alice's heartbeat: %v", st)
	}
	// Carol names it.
	if st := heartbeat("carol", carolSecret); st.GetCode() != v2.Code_FORBIDDEN {
		t.Errorf("carol's heartbeat as alice's client: %v, want FORBIDDEN", st)
	}
	{
		ctx, cancel := as("carol", carolSecret)
		resp, err := client.NotifyClientTermination(ctx, &v2.NotifyClientTerminationRequest{})
		cancel()
		if err != nil || resp.GetStatus().GetCode() != v2.Code_FORBIDDEN {
			t.Errorf("carol ends alice's client: %v %v, want FORBIDDEN", resp.GetStatus(), err)
		}
	}
	{
		ctx, cancel := as("carol", carolSecret)
		h := domain.ReceiptHandle{BrokerName: "b", RetrieveTime: time.Now().UnixMilli(), InvisibleTime: 60000, CommitLogOffset: 1}.String()
		resp, err := client.AckMessage(ctx, &v2.AckMessageRequest{Group: &v2.Resource{Name: s.group}, Topic: &v2.Resource{Name: s.local},
			Entries: []*v2.AckMessageEntry{{MessageId: "m", ReceiptHandle: h}}})
		cancel()
		if err != nil || resp.GetStatus().GetCode() != v2.Code_FORBIDDEN {
			t.Errorf("carol acks as alice's client: %v %v, want FORBIDDEN", resp.GetStatus(), err)
		}
	}
	{
		// Telemetry settings under her id: the stream gets FORBIDDEN and
		// ends; a receive under it is refused.
		ctx, cancel := as("carol", carolSecret)
		stream, err := client.Telemetry(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ct := v2.ClientType_SIMPLE_CONSUMER
		if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{ClientType: &ct,
			PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: &v2.Resource{Name: s.group},
				Subscriptions: []*v2.SubscriptionEntry{{Topic: &v2.Resource{Name: s.local}, Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}}}}}}}); err != nil {
			t.Fatal(err)
		}
		// The stream ends with an error, as for any settings refused
		// (a gRPC status, not a settings reply).
		var end error
		for {
			cmd, err := stream.Recv()
			if err != nil {
				end = err
				break
			}
			if cmd.GetSettings() != nil {
				t.Errorf("carol's Telemetry settings as alice's client were accepted: %v", cmd)
			}
		}
		cancel()
		if status.Code(end) != codes.InvalidArgument || !strings.Contains(end.Error(), "another user") {
			t.Errorf("carol's Telemetry settings as alice's client: stream ended with %v, want INVALID_ARGUMENT naming another user's client", end)
		}
		var got *v2.Status
		ctx, cancel = as("carol", carolSecret)
		rs, err := client.ReceiveMessage(ctx, testenv.ReceiveRequest(s.group, s.local, 1, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		got = nil
		for {
			resp, err := rs.Recv()
			if err != nil {
				break
			}
			if st := resp.GetStatus(); st != nil {
				got = st
			}
		}
		cancel()
		if got.GetCode() != v2.Code_FORBIDDEN {
			t.Errorf("carol receives as alice's client: %v, want FORBIDDEN", got)
		}
	}
	// Alice's client is still hers.
	if st := heartbeat("alice", aliceSecret); st.GetCode() != v2.Code_OK {
		t.Fatalf("alice's heartbeat after carol's attempts: %v", st)
	}
	var want []string
	for _, op := range []string{"Heartbeat", "NotifyClientTermination", "AckMessage", "Telemetry", "ReceiveMessage"} {
		want = append(want, op+" foreign_client_id "+id)
	}
	// With the group and topic each request named.
	for _, op := range []string{"AckMessage", "Telemetry", "ReceiveMessage"} {
		for _, res := range []string{"Group:" + s.group, "Topic:" + s.local} {
			want = append(want, op+" foreign_client_id "+id+" "+res+" Sub")
		}
	}
	s.waitAudited(t, domain.AuditQuery{Decision: domain.AuditDeny, Principal: "carol"}, func(e domain.AuditEvent) []string {
		return []string{e.Operation + " " + e.Reason + " " + e.ClientID, e.Operation + " " + e.Reason + " " + e.ClientID + " " + e.Resource + " " + e.Actions}
	}, want...)
}

// TestAllowedReceiveAuditsItsTopic: with auth.auditAllowed, an allowed
// receive is audited with the topic it read as well as its group (it was
// audited with its first resource, the group, only).
func TestAllowedReceiveAuditsItsTopic(t *testing.T) {
	s := newSecured(t)
	c := s.start(t, "--auth.auditAllowed")
	eu := testenv.Name(t, "orders-eu")
	createTopics(t, c, eu)
	alice, err := startProducer(t, clientConfig(c, "alice", aliceSecret, ""), eu)
	if err != nil {
		t.Fatalf("alice's producer: %v", err)
	}
	if err := send(alice, eu); err != nil {
		t.Fatalf("alice sends to %s: %v", eu, err)
	}
	receiveOne(t, clientConfig(c, "alice", aliceSecret, s.group), eu)
	s.waitAudited(t, domain.AuditQuery{Decision: domain.AuditAllow, Principal: "alice"}, func(e domain.AuditEvent) []string {
		return []string{e.Operation + " " + e.Resource + " " + e.Actions}
	}, "ReceiveMessage Group:"+s.group+" Sub", "ReceiveMessage Topic:"+eu+" Sub", "SendMessage Topic:"+eu+" Pub")
}
