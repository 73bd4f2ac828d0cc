package grpc

import (
	"context"
	"io"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

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
