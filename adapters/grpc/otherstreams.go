package grpc

import (
	"context"
	"sync/atomic"
	"time"

	grpclib "google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// notServingGrace bounds how long, once the server stops, a health Watch
// stream is given to send NOT_SERVING before it is ended.
const notServingGrace = time.Second

// endOnShutdown returns ss with a context that also ends when the server
// shuts down, and the function that releases it (call it when the handler
// returns). The streams of the services beside the MessagingService (a
// grpc.health.v1 Watch, server reflection) last as long as their client
// keeps them and end only with their context, so without this an open one
// held the graceful stop until shutdown.grpcDrain ran out. A health Watch
// is ended only once it has sent NOT_SERVING (what the server reports from
// the drain notice on), or after notServingGrace, so that its client learns
// why before the stream ends.
func (s *Service) endOnShutdown(ss grpclib.ServerStream) (grpclib.ServerStream, func()) {
	ctx, cancel := context.WithCancel(ss.Context())
	w := &shutdownStream{ServerStream: ss, ctx: ctx, sent: make(chan struct{}, 1)}
	w.last.Store(-1)
	stop := context.AfterFunc(s.shutdown, func() {
		defer cancel()
		t := time.NewTimer(notServingGrace)
		defer t.Stop()
		// A stream that sent no health status is not a Watch.
		for st := w.last.Load(); st >= 0 && st != int32(healthpb.HealthCheckResponse_NOT_SERVING); st = w.last.Load() {
			select {
			case <-w.sent:
			case <-t.C:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return w, func() { stop(); cancel() }
}

// shutdownStream is a stream whose context ends with the server's
// shutdown (see endOnShutdown).
type shutdownStream struct {
	grpclib.ServerStream
	ctx context.Context
	// last is the health status last sent (-1: none, not a Watch); sent
	// is signalled at every status sent.
	last atomic.Int32
	sent chan struct{}
}

func (w *shutdownStream) Context() context.Context { return w.ctx }

func (w *shutdownStream) SendMsg(m any) error {
	err := w.ServerStream.SendMsg(m)
	if r, ok := m.(*healthpb.HealthCheckResponse); ok && err == nil {
		w.last.Store(int32(r.GetStatus()))
		select {
		case w.sent <- struct{}{}:
		default:
		}
	}
	return err
}
