package testenv

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
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
