package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc"
)

// scriptedConsumer answers each Receive with the next of its answers.
type scriptedConsumer struct {
	rmq.SimpleConsumer
	answers []error
	calls   int
}

func (c *scriptedConsumer) Receive(context.Context, int32, time.Duration) ([]*rmq.MessageView, error) {
	err := c.answers[min(c.calls, len(c.answers)-1)]
	c.calls++
	return nil, err
}

// fatalRecorder is a testing.TB whose Fatalf records the failure and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	failed string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestReceiveAnsweredFailsWithoutAnAnswer: a check that nothing is
// delivered cannot pass on receives that all failed; a failed receive is
// retried, and one answered "no message" counts.
func TestReceiveAnsweredFailsWithoutAnAnswer(t *testing.T) {
	defer func(d time.Duration) { receiveAnsweredWithin = d }(receiveAnsweredWithin)
	receiveAnsweredWithin = 300 * time.Millisecond
	noMessage := &rmq.ErrRpcStatus{Code: int32(v2.Code_MESSAGE_NOT_FOUND), Message: "no new message"}
	timeout := errors.New("[error] CODE=DEADLINE_EXCEEDED")
	for _, tc := range []struct {
		name    string
		answers []error
		fails   bool
	}{
		{"no message", []error{noMessage}, false},
		{"a failure, then no message", []error{timeout, noMessage}, false},
		{"failures only", []error{timeout}, true},
	} {
		r := &fatalRecorder{TB: t}
		c := &scriptedConsumer{answers: tc.answers}
		done := make(chan struct{})
		go func() {
			defer close(done)
			ReceiveAnswered(r, c, 16, time.Second)
		}()
		<-done
		if (r.failed != "") != tc.fails {
			t.Errorf("%s: failed %q, want a failure %v", tc.name, r.failed, tc.fails)
		}
	}
}

// scriptedStream is a ReceiveMessage stream that sends its responses, then
// ends.
type scriptedStream struct {
	grpc.ServerStreamingClient[v2.ReceiveMessageResponse]
	responses []*v2.ReceiveMessageResponse
}

func (s *scriptedStream) Recv() (*v2.ReceiveMessageResponse, error) {
	if len(s.responses) == 0 {
		return nil, io.EOF
	}
	r := s.responses[0]
	s.responses = s.responses[1:]
	return r, nil
}

// scriptedService answers each ReceiveMessage with the next of its
// statuses (nil: a stream that ends without one).
type scriptedService struct {
	v2.MessagingServiceClient
	statuses []*v2.Status
	calls    int
}

func (s *scriptedService) ReceiveMessage(context.Context, *v2.ReceiveMessageRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[v2.ReceiveMessageResponse], error) {
	st := s.statuses[min(s.calls, len(s.statuses)-1)]
	s.calls++
	if st == nil {
		return &scriptedStream{}, nil
	}
	return &scriptedStream{responses: []*v2.ReceiveMessageResponse{{Content: &v2.ReceiveMessageResponse_Status{Status: st}}}}, nil
}

// TestRawReceiveAnsweredFailsWithoutAnAnswer is
// TestReceiveAnsweredFailsWithoutAnAnswer for the raw client: a receive
// answered with an error status, or whose stream ended without a status,
// did not look, and only OK or MESSAGE_NOT_FOUND counts.
func TestRawReceiveAnsweredFailsWithoutAnAnswer(t *testing.T) {
	defer func(d time.Duration) { receiveAnsweredWithin = d }(receiveAnsweredWithin)
	receiveAnsweredWithin = 300 * time.Millisecond
	noMessage := &v2.Status{Code: v2.Code_MESSAGE_NOT_FOUND}
	for _, tc := range []struct {
		name     string
		statuses []*v2.Status
		fails    bool
	}{
		{"no message", []*v2.Status{noMessage}, false},
		{"a broken stream, then no message", []*v2.Status{nil, noMessage}, false},
		{"an illegal group", []*v2.Status{{Code: v2.Code_ILLEGAL_CONSUMER_GROUP}}, true},
		{"broken streams only", []*v2.Status{nil}, true},
	} {
		r := &fatalRecorder{TB: t}
		c := &RawClient{MessagingServiceClient: &scriptedService{statuses: tc.statuses}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.ReceiveAnswered(r, ReceiveRequest("g", "t", 16, time.Second))
		}()
		<-done
		if (r.failed != "") != tc.fails {
			t.Errorf("%s: failed %q, want a failure %v", tc.name, r.failed, tc.fails)
		}
	}
}
