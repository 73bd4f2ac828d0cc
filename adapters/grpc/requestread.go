package grpc

import (
	"context"
	"errors"
	"log/slog"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
)

// A call holds its stream, and beyond the stream workers a goroutine,
// from its headers on; gRPC reads its request message before any handler
// or interceptor of the server runs, so a client that sends the headers
// of calls but never their requests, and no deadline, would hold them for
// as long as it keeps the connection, outside every admission count
// (grpc.maxConcurrentStreams per connection, times
// grpc.maxConnectionsPerAddress connections). Such a call is ended after
// grpc.requestReadTimeout: tapHeaders arms a timer for each call whose
// deadline is absent or later (the official clients' calls carry shorter
// deadlines, so they pay nothing), and the first interceptor to see the
// request stops it. Telemetry streams are bounded by grpc.settingsTimeout
// instead.

// errRequestReadTimeout ends a call whose request did not arrive in time.
var errRequestReadTimeout = errors.New("the request message did not arrive within grpc.requestReadTimeout of the call's headers")

// requestRead is the timer of a call whose request is awaited.
type requestRead struct{ timer *time.Timer }

type requestReadKey struct{}

// awaitRequest returns ctx, the context of a call of method that is about
// to be served, ending when the call's request has not arrived within
// grpc.requestReadTimeout (see requestArrived).
func (s *Service) awaitRequest(ctx context.Context, method string) context.Context {
	timeout := s.cfg.RequestReadTimeout
	if timeout <= 0 || method == v2.MessagingService_Telemetry_FullMethodName {
		return ctx
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= timeout {
		return ctx // the deadline ends it in time
	}
	ctx, cancel := context.WithCancelCause(ctx)
	r := &requestRead{}
	r.timer = time.AfterFunc(timeout, func() {
		if ctx.Err() != nil {
			return // ended already: the client cancelled it, or the server stops
		}
		cancel(errRequestReadTimeout)
		if n, ok := s.requestReadTimeouts.warn(); ok {
			s.log.LogAttrs(ctx, slog.LevelWarn, "ended calls whose request message did not arrive within grpc.requestReadTimeout of their headers",
				slog.String("method", method), slog.Duration("timeout", timeout), slog.Int64("ended_since_last_warning", n))
		}
	})
	return context.WithValue(ctx, requestReadKey{}, r)
}

// requestArrived stops the timer of the call of ctx, whose request has
// arrived.
func requestArrived(ctx context.Context) {
	if r, ok := ctx.Value(requestReadKey{}).(*requestRead); ok {
		r.timer.Stop()
	}
}

// awaitingRequest returns ss, or, when its call awaits its request, ss
// stopping the call's timer once its first message arrives.
func awaitingRequest(ss grpclib.ServerStream) grpclib.ServerStream {
	if r, ok := ss.Context().Value(requestReadKey{}).(*requestRead); ok {
		return &requestReadStream{ServerStream: ss, r: r}
	}
	return ss
}

// requestReadStream stops its call's timer when a message arrives.
type requestReadStream struct {
	grpclib.ServerStream
	r *requestRead
}

func (s *requestReadStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.r.timer.Stop()
	}
	return err
}
