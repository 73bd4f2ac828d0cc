package grpc

import (
	"context"
	"io"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/metadata"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// pullAll reads a PullMessage stream to its end: the status and the next
// offset (-1 when none came).
func pullAll(t *testing.T, stream v2.MessagingService_PullMessageClient) (*v2.Status, int64) {
	t.Helper()
	var st *v2.Status
	next := int64(-1)
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return st, next
		}
		if err != nil {
			t.Fatal(err)
		}
		switch c := r.Content.(type) {
		case *v2.PullMessageResponse_Status:
			st = c.Status
		case *v2.PullMessageResponse_NextOffset:
			next = c.NextOffset
		}
	}
}

func pullRequest(offset int64) *v2.PullMessageRequest {
	return &v2.PullMessageRequest{Group: &v2.Resource{Name: "g"}, Offset: offset, BatchSize: 8,
		MessageQueue: &v2.MessageQueue{Topic: &v2.Resource{Name: "t"}, Id: 0, Broker: &v2.Broker{Name: "b"}}}
}

// TestPullNextOffset: a pull that found nothing names the broker's next
// offset; a pull that a shutdown cut short (MESSAGE_NOT_FOUND) names the
// offset it was asked for, never 0 (a client following it would read the
// queue again from its start).
func TestPullNextOffset(t *testing.T) {
	entered := make(chan struct{}, 1)
	b := &fakeBroker{pull: func(ctx context.Context, req ports.PullRequest) (ports.PullResult, error) {
		if req.Offset == 4242 { // a long poll until the proxy stops
			entered <- struct{}{}
			<-ctx.Done()
			return ports.PullResult{}, ctx.Err()
		}
		return ports.PullResult{NextOffset: req.Offset + 8, MinOffset: 0, MaxOffset: req.Offset + 8}, nil
	}}
	ts := startTestServer(t, b)
	ctx, cancel := context.WithTimeout(clientCtx(t.Context(), "c1"), 20*time.Second)
	defer cancel()

	stream, err := ts.client.PullMessage(ctx, pullRequest(100))
	if err != nil {
		t.Fatal(err)
	}
	if st, next := pullAll(t, stream); st.GetCode() != v2.Code_MESSAGE_NOT_FOUND || next != 108 {
		t.Fatalf("a pull that found nothing: %v, next offset %d; want MESSAGE_NOT_FOUND and 108", st, next)
	}

	stream, err = ts.client.PullMessage(ctx, pullRequest(4242))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	stopped := make(chan error, 1)
	go func() {
		sctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		stopped <- ts.srv.Stop(sctx)
	}()
	if st, next := pullAll(t, stream); st.GetCode() != v2.Code_MESSAGE_NOT_FOUND || next != 4242 {
		t.Fatalf("a pull cut short by the shutdown: %v, next offset %d; want MESSAGE_NOT_FOUND and 4242", st, next)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// revocablePolicy is a policy source whose snapshot tests replace
// through Security.Apply; every ACL decision allows.
type revocablePolicy struct{ snap domain.PolicySnapshot }

func (p revocablePolicy) Load(context.Context) (domain.PolicySnapshot, error) { return p.snap, nil }
func (revocablePolicy) Watch(ctx context.Context, _ int64, _ func(domain.PolicySnapshot) error) {
	<-ctx.Done()
}
func (revocablePolicy) Health() error { return nil }
func (revocablePolicy) Compile([]domain.ACLEntry) (ports.Policy, error) {
	return revocablePolicy{}, nil
}
func (revocablePolicy) Decide(string, domain.AccessRequest) domain.AccessDecision {
	return domain.AccessDecision{Allowed: true, Reason: "test"}
}

// TestRevokedPullGetsNoMessages: a pull whose user is revoked while the
// broker reads its messages is answered UNAUTHORIZED with no message frame
// after the status (the broker's messages are not written), as a receive
// refused so releases what it popped instead of writing it.
func TestRevokedPullGetsNoMessages(t *testing.T) {
	entered := make(chan struct{})
	b := &fakeBroker{pull: func(ctx context.Context, req ports.PullRequest) (ports.PullResult, error) {
		close(entered)
		<-ctx.Done() // the revocation ends the pull while it reads
		m := domain.StoredMessage{QueueID: req.Queue.QueueID, QueueOffset: req.Offset}
		m.ID, m.Topic, m.Body = "01AB", req.Queue.Topic, []byte("secret")
		return ports.PullResult{Messages: []domain.StoredMessage{m}, NextOffset: req.Offset + 1, MaxOffset: req.Offset + 1}, nil
	}}
	ts := startTestServer(t, b)
	scfg := application.DefaultSecurityConfig()
	scfg.Enabled = true
	alice := domain.UserRecord{User: domain.User{Name: "alice", Type: domain.UserSuper}, Secrets: []domain.Secret{domain.Secret("alice-secret-0123")}}
	src := revocablePolicy{snap: domain.PolicySnapshot{Revision: 1, Users: []domain.UserRecord{alice}}}
	sec, err := application.NewSecurity(application.SecurityParams{Config: scfg, Source: src, Compiler: src})
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts.srv.svc.UseSecurity(sec, DefaultAuthConfig())

	ctx, cancel := context.WithTimeout(clientCtx(t.Context(), "c1"), 20*time.Second)
	defer cancel()
	authz, dt := application.SignRequest("alice", []byte("alice-secret-0123"), time.Now())
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authz, "x-mq-date-time", dt)
	stream, err := ts.client.PullMessage(ctx, pullRequest(7))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	if err := sec.Apply(domain.PolicySnapshot{Revision: 2}); err != nil { // alice deleted
		t.Fatal(err)
	}
	var st *v2.Status
	var frames []string
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch c := r.Content.(type) {
		case *v2.PullMessageResponse_Status:
			st = c.Status
		case *v2.PullMessageResponse_Message:
			frames = append(frames, "message "+string(c.Message.GetBody()))
		case *v2.PullMessageResponse_NextOffset:
			frames = append(frames, "next offset")
		}
	}
	if st.GetCode() != v2.Code_UNAUTHORIZED || len(frames) != 0 {
		t.Fatalf("a pull revoked while reading: %v, then %q; want UNAUTHORIZED and nothing else", st, frames)
	}
}
