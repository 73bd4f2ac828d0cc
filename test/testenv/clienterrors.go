package testenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ClientErrors keeps the errors official clients return during a run
// (a drain, a restart), counted by kind, and the first of those a client
// does not retry by itself (see Retryable). Safe for concurrent use.
type ClientErrors struct {
	mu     sync.Mutex
	counts map[string]int
	bad    []string
}

// Add records err of operation op.
func (l *ClientErrors) Add(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	key := op + ": " + err.Error()
	var st *rmq.ErrRpcStatus
	if errors.As(err, &st) {
		key = op + ": " + v2.Code(st.GetCode()).String()
	} else if s, ok := status.FromError(err); ok && s.Code() != codes.Unknown {
		key = op + ": gRPC " + s.Code().String()
	}
	l.counts[key]++
	if !Retryable(err) && len(l.bad) < 20 {
		l.bad = append(l.bad, op+": "+err.Error())
	}
}

// Bad returns the first errors recorded that a client does not retry.
func (l *ClientErrors) Bad() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.bad...)
}

// String lists the counts by kind.
func (l *ClientErrors) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.counts)
}

// Retryable reports whether a client error is one the official clients
// retry by themselves or that says "try again elsewhere or later": the
// proxy is throttling, going away or gone, or there was no message.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return true
	}
	var st *rmq.ErrRpcStatus
	if errors.As(err, &st) {
		c := v2.Code(st.GetCode())
		return c == v2.Code_TOO_MANY_REQUESTS || c == v2.Code_MESSAGE_NOT_FOUND
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled:
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "transport is closing") || strings.Contains(msg, "error reading from server: EOF")
}
