package e2e_test

import (
	"context"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestPopRetryTopicIsNotAGroup: a broker keeps the messages a consumer
// group G did not ack of topic T in the pop retry topic %RETRY%G_T (or
// %RETRY%G+T), so such a topic holds messages of T. Authorized as "the
// group G_T" (a group name like any other), a user whose grant is a group
// prefix (Group:g-dave-*) but who may not read T read T's retried
// messages through it, and could put messages there that G's consumers
// then take for T's. Retry topics now also need the topic itself (as the
// Apache proxy authorizes them: Topic:%RETRY%...), and a send to a
// dead-letter topic needs Pub on it (reading it stays the group's).
func TestPopRetryTopicIsNotAGroup(t *testing.T) {
	s := newSecured(t)
	ctx := t.Context()
	const daveSecret = "dave-secret-0123456789abcdef0"
	if err := s.store.CreateUser(ctx, cliActor, domain.User{Name: "dave", Type: domain.UserNormal, Status: domain.UserEnabled}, domain.Secret(daveSecret)); err != nil {
		t.Fatal(err)
	}
	public, secret := testenv.Name(t, "dave-public"), testenv.Name(t, "dave-secret")
	shared := testenv.Name(t, "g-dave-shared")
	s.put(t,
		aclEntry(t, "User:dave", "Group:g-dave-*", "Sub", "Allow"),
		aclEntry(t, "User:dave", "Topic:"+public, "Pub,Sub", "Allow"),
	)
	c := s.start(t, fastConsumer...)
	createTopics(t, c, public, secret)

	client, signedAs := signedClient(t, c.GRPCAddr)
	as := func(user, secret string) (context.Context, context.CancelFunc) {
		return signedAs(user, secret, "retry-"+user, 20*time.Second)
	}
	receive := func(user, secret, group, topic string, invisible time.Duration) (*v2.Status, []*v2.Message) {
		t.Helper()
		ctx, cancel := as(user, secret)
		defer cancel()
		stream, err := client.ReceiveMessage(ctx, testenv.ReceiveRequest(group, topic, 16, invisible))
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		var st *v2.Status
		var msgs []*v2.Message
		for {
			resp, err := stream.Recv()
			if err != nil {
				break
			}
			if m := resp.GetMessage(); m != nil {
				msgs = append(msgs, m)
			}
			if x := resp.GetStatus(); x != nil {
				st = x
			}
		}
		return st, msgs
	}
	sendTo := func(topic string) *v2.Status {
		t.Helper()
		ctx, cancel := as("dave", daveSecret)
		defer cancel()
		m := testenv.RawMessage(topic, []byte("forged"), "")
		resp, err := client.SendMessage(ctx, &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil {
			t.Fatalf("send to %s: %v", topic, err)
		}
		return resp.GetStatus()
	}

	// The Super user consumes the secret topic with the shared group and
	// acks nothing: the broker moves what it does not ack to the group's
	// pop retry topic for it.
	{
		ctx, cancel := as("admin", adminSecret)
		m := testenv.RawMessage(secret, []byte("top secret"), "")
		resp, err := client.SendMessage(ctx, &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		cancel()
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("admin sends: %v %v", resp.GetStatus(), err)
		}
	}
	testenv.WaitFor(t, 60*time.Second, func() error {
		if _, msgs := receive("admin", adminSecret, shared, secret, time.Second); len(msgs) == 0 {
			return errNoMessageYet
		}
		return nil
	})

	for _, retry := range []string{"%RETRY%" + shared + "_" + secret, "%RETRY%" + shared + "+" + secret} {
		if st, msgs := receive("dave", daveSecret, testenv.Name(t, "g-dave-reader"), retry, 30*time.Second); st.GetCode() != v2.Code_FORBIDDEN {
			if len(msgs) == 0 && testenv.Target == testenv.TargetCluster {
				// Show what the hole gives: the retried message of the
				// secret topic, once the broker revived it.
				testenv.WaitFor(t, 90*time.Second, func() error {
					if _, msgs = receive("dave", daveSecret, testenv.Name(t, "g-dave-reader"), retry, 30*time.Second); len(msgs) == 0 {
						return errNoMessageYet
					}
					return nil
				})
			}
			var bodies []string
			for _, m := range msgs {
				bodies = append(bodies, string(m.GetBody()))
			}
			t.Errorf("dave (Group:g-dave-* Sub, no grant on %s) receives from %s: %v, read %q; want FORBIDDEN", secret, retry, st, bodies)
		}
		if st := sendTo(retry); st.GetCode() != v2.Code_FORBIDDEN {
			t.Errorf("dave sends to %s: %v, want FORBIDDEN", retry, st)
		}
	}
	// The shared group's dead-letter topic: readable as the group, but a
	// send to it needs Pub on it.
	if st := sendTo(domain.DeadLetterTopic(shared)); st.GetCode() != v2.Code_FORBIDDEN {
		t.Errorf("dave sends to %s: %v, want FORBIDDEN", domain.DeadLetterTopic(shared), st)
	}
	if st, _ := receive("dave", daveSecret, shared, domain.DeadLetterTopic(shared), 30*time.Second); st.GetCode() == v2.Code_FORBIDDEN {
		t.Errorf("dave reads the dead-letter topic of his group %s: %v", shared, st)
	}
	if st := sendTo(public); st.GetCode() != v2.Code_OK {
		t.Errorf("dave sends to %s: %v", public, st)
	}
}

var errNoMessageYet = errorString("no message yet")

type errorString string

func (e errorString) Error() string { return string(e) }
