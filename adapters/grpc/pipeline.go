package grpc

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// kind groups RPCs the way the Apache proxy's thread pools do, so that a
// flood of one kind cannot starve the others.
type kind uint8

const (
	kindRoute kind = iota
	kindProducer
	kindConsumer
	// kindPoll counts receives and pulls for as long as they long-poll, so
	// that waiting consumers cannot starve acks.
	kindPoll
	kindClient
	// kindTelemetry counts open Telemetry streams.
	kindTelemetry
	kindTransaction
	// kindOther counts the streams of the other services (grpc.health.v1
	// Watch, server reflection) for as long as they are open (see
	// countOtherStreams).
	kindOther
	kindCount
)

// admission bounds the requests of each kind served at once.
type admission struct {
	limit    int64
	inflight [kindCount]atomic.Int64
}

func (a *admission) enter(k kind) bool {
	if a.inflight[k].Add(1) > a.limit {
		a.inflight[k].Add(-1)
		return false
	}
	return true
}

func (a *admission) leave(k kind) { a.inflight[k].Add(-1) }

var kindNames = [kindCount]string{"route", "producer", "consumer", "poll", "client", "telemetry", "transaction", "other"}

// observe reports the requests in flight by kind (rmqproxy_rpc_inflight)
// and the receives and pulls waiting for messages
// (rmqproxy_longpoll_waiters), read when metrics are collected.
func (a *admission) observe(meter metric.Meter) error {
	inflight, err := meter.Int64ObservableGauge("rmqproxy_rpc_inflight",
		metric.WithDescription("gRPC requests being served, by kind (the Apache proxy's thread pools); telemetry counts open Telemetry streams."))
	if err != nil {
		return err
	}
	waiters, err := meter.Int64ObservableGauge("rmqproxy_longpoll_waiters",
		metric.WithDescription("Receives and pulls in flight, most of them long-polling for messages."))
	if err != nil {
		return err
	}
	sets := make([]metric.ObserveOption, kindCount)
	for k := range kindCount {
		sets[k] = metric.WithAttributeSet(attribute.NewSet(attribute.String("protocol_type", "grpc"), attribute.String("kind", kindNames[k])))
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for k := range kindCount {
			o.ObserveInt64(inflight, a.inflight[k].Load(), sets[k])
		}
		o.ObserveInt64(waiters, a.inflight[kindPoll].Load())
		return nil
	}, inflight, waiters)
	return err
}

// unary runs the request pipeline shared by every unary RPC: request info,
// client id check, admission, then call; failures become the RPC's response
// with a status. The only gRPC errors are CANCELLED and DEADLINE_EXCEEDED
// for a request the client gave up on, whose answer nobody reads.
func unary[Resp any](s *Service, ctx context.Context, k kind, req any, call func(context.Context) (Resp, error), fail func(*v2.Status) Resp) (Resp, error) {
	ctx, leave, st := s.admitRequest(ctx, k, req)
	if st != nil {
		s.holdThrottledSend(ctx, req, st)
		return fail(st), nil
	}
	// The admission ends before a refusal is held (and when call panics).
	resp, err := func() (Resp, error) {
		defer leave.end()
		return call(ctx)
	}()
	if err != nil {
		if clientGaveUp(ctx, err) {
			return resp, status.FromContextError(ctx.Err()).Err()
		}
		st := s.statusOf(ctx, err)
		s.holdThrottledSend(ctx, req, st)
		return fail(st), nil
	}
	return resp, nil
}

// holdThrottledSend delays the answer to a send refused with
// TOO_MANY_REQUESTS by grpc.throttledSendHold (at most half of what is
// left of its deadline), after its admission ended: a client that resends
// at once without backoff then gets a few refusals a second per send in
// flight instead of thousands, whose cost other clients would pay.
func (s *Service) holdThrottledSend(ctx context.Context, req any, st *v2.Status) {
	if st.GetCode() != v2.Code_TOO_MANY_REQUESTS || s.cfg.ThrottledSendHold <= 0 {
		return
	}
	if _, ok := req.(*v2.SendMessageRequest); !ok {
		return
	}
	hold := s.cfg.ThrottledSendHold
	if dl, ok := ctx.Deadline(); ok {
		hold = min(hold, time.Until(dl)/2)
	}
	s.holdAnswer(ctx, hold)
}

// holdAnswer waits d before a refusal is answered (not at all when d is
// not positive), or less when ctx or the server's shutdown ends first.
func (s *Service) holdAnswer(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.shutdown.Done():
	}
}

// admitRequest authenticates and authorizes req (when auth is enabled),
// then checks the client id and admission of a request of kind k, in the
// Apache proxy's order. On success it returns the context carrying the
// request info (and principal) and the admission, to be ended; otherwise
// the status to answer.
func (s *Service) admitRequest(ctx context.Context, k kind, req any) (context.Context, admitted, *v2.Status) {
	info, ctx := s.callerInfo(ctx)
	if s.auth != nil {
		if s.sec.Enabled() {
			op, _ := accessOf(req, info)
			p, st := s.auth.authenticate(ctx, op)
			if st == nil {
				st = s.authorize(ctx, p, req)
			}
			if st != nil {
				return ctx, admitted{}, st
			}
			ctx = application.WithPrincipal(ctx, p)
			noteAuthenticated(ctx, p.User.Name)
		}
	}
	if info.ClientID == "" {
		return ctx, admitted{}, &v2.Status{Code: v2.Code_CLIENT_ID_REQUIRED, Message: "client id cannot be empty"}
	}
	if !s.admit.enter(k) {
		s.logThrottled(ctx, "flow limit: the requests of kind "+kindNames[k]+" in flight reached grpc.maxInflightPerKind")
		return ctx, admitted{}, &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "flow limit"}
	}
	a := admitted{s: s, k: k}
	if s.traffic == nil {
		return ctx, a, nil
	}
	var err error
	enter := s.traffic.EnterClientRequest
	if finishesWork(req) {
		enter = s.traffic.EnterFinishingRequest
	}
	if a.client, err = enter(ctx, k.direction()); err != nil {
		s.admit.leave(k)
		return ctx, admitted{}, s.statusOf(ctx, err)
	}
	if send, ok := req.(*v2.SendMessageRequest); ok {
		if a.bytes, err = s.traffic.ReserveBytes(bodyBytes(send)); err != nil {
			a.client.Leave()
			s.admit.leave(k)
			return ctx, admitted{}, s.statusOf(ctx, err)
		}
	}
	return ctx, a, nil
}

// finishesWork reports whether req ends or keeps work its client already
// holds (an ack, an invisible-time change, a dead-lettering, a transaction
// end, an offset commit) or keeps the client known (a heartbeat, a
// termination notice). They count in the client and user budgets
// (traffic.maxInflightPerClient, traffic.maxInflightPerUser) apart from
// the other requests (see application.Traffic.EnterFinishingRequest): a
// consumer's Telemetry stream and long polls may fill its budget for as
// long as they wait, and refusing its acks then brought its messages
// back, refusing its heartbeats let its session expire.
func finishesWork(req any) bool {
	switch req.(type) {
	case *v2.AckMessageRequest, *v2.ChangeInvisibleDurationRequest, *v2.ForwardMessageToDeadLetterQueueRequest,
		*v2.EndTransactionRequest, *v2.UpdateOffsetRequest, *v2.HeartbeatRequest, *v2.NotifyClientTerminationRequest:
		return true
	}
	return false
}

// admitted is a request admitRequest let in; end ends its admission. A
// value, not closures over its parts: no allocation per request.
type admitted struct {
	s *Service
	k kind
	// The traffic budgets taken; zero values when none.
	client application.ClientRequest
	bytes  application.BytesReservation
}

// end releases what the admission took, in the reverse order.
func (a admitted) end() {
	a.bytes.Release()
	a.client.Leave()
	a.s.admit.leave(a.k)
}

// direction tells which way the requests of a kind move messages, for the
// traffic counters.
func (k kind) direction() application.Direction {
	if k == kindConsumer || k == kindPoll {
		return application.DirectionReceive
	}
	return application.DirectionSend
}

// bodyBytes is what a send request counts in traffic.maxInflightBytes:
// the bytes of its message bodies.
func bodyBytes(req *v2.SendMessageRequest) int64 {
	var n int64
	for _, m := range req.GetMessages() {
		n += int64(len(m.GetBody()))
	}
	return n
}

// throttledPollHold is how long a receive or pull refused with
// TOO_MANY_REQUESTS is held before the answer (at most until its
// deadline): the Java push consumer polls again 20 ms after a throttled
// receive, which would otherwise make a refused consumer spin.
const throttledPollHold = time.Second

// streamStatus runs the request pipeline of a server-streaming RPC and
// returns the status its first frame carries. call runs with a context that
// also ends when the server shuts down, so that long polls end; the stream
// itself stays writable, and a poll cut short that way is answered as
// "no new message".
func (s *Service) streamStatus(streamCtx context.Context, k kind, req any, call func(ctx context.Context, info ports.RequestInfo) error) *v2.Status {
	ctx, cancel := context.WithCancel(streamCtx)
	defer cancel()
	defer context.AfterFunc(s.shutdown, cancel)()
	ctx, leave, st := s.admitRequest(ctx, k, req)
	if st != nil {
		if st.GetCode() == v2.Code_TOO_MANY_REQUESTS {
			hold := throttledPollHold
			if dl, ok := ctx.Deadline(); ok {
				hold = min(hold, time.Until(dl)-time.Second)
			}
			s.holdAnswer(ctx, hold)
		}
		return st
	}
	defer leave.end()
	// A long poll whose principal is revoked by a policy change (user
	// deleted, disabled, secret changed) ends at once with UNAUTHORIZED.
	if p, ok := application.PrincipalFrom(ctx); ok {
		var cancelCause context.CancelCauseFunc
		ctx, cancelCause = context.WithCancelCause(ctx)
		defer cancelCause(nil)
		defer s.sec.WatchRevocation(p, cancelCause)()
	}
	err := call(ctx, ports.RequestInfoFrom(ctx))
	if cause := context.Cause(ctx); cause != nil && domain.ReasonOf(cause) == domain.ReasonUnauthorized && streamCtx.Err() == nil {
		return s.statusOf(ctx, cause)
	}
	if err != nil && s.shutdown.Err() != nil && streamCtx.Err() == nil {
		return &v2.Status{Code: v2.Code_MESSAGE_NOT_FOUND, Message: "no new message: the proxy is shutting down"}
	}
	return s.statusOf(ctx, err)
}

// countOtherStreams wraps the server's stream interceptor next so that the
// streams of the services beside the MessagingService (a grpc.health.v1
// Watch, server reflection), which last as long as their client keeps
// them, count in admission (kindOther) while they are open, as Telemetry
// streams do; beyond grpc.maxInflightPerKind they are refused with gRPC
// RESOURCE_EXHAUSTED. (Their unary calls, health checks, end at once.)
func (s *Service) countOtherStreams(next grpclib.StreamServerInterceptor) grpclib.StreamServerInterceptor {
	prefix := "/" + v2.MessagingService_ServiceDesc.ServiceName + "/"
	return func(srv any, ss grpclib.ServerStream, info *grpclib.StreamServerInfo, h grpclib.StreamHandler) error {
		if strings.HasPrefix(info.FullMethod, prefix) {
			return next(srv, ss, info, h)
		}
		if !s.admit.enter(kindOther) {
			return status.Errorf(codes.ResourceExhausted,
				"too many streams of %s and the other services beside the MessagingService are open (grpc.maxInflightPerKind); retry later", info.FullMethod)
		}
		defer s.admit.leave(kindOther)
		ss, release := s.endOnShutdown(ss)
		defer release()
		return next(srv, ss, info, h)
	}
}

// recoverUnary turns a panic in a handler into gRPC INTERNAL with an id that
// is logged with the stack, as the Apache proxy answers uncaught exceptions.
func recoverUnary(log *slog.Logger) func(ctx context.Context, req any, info *grpclib.UnaryServerInfo, h grpclib.UnaryHandler) (any, error) {
	return func(ctx context.Context, req any, info *grpclib.UnaryServerInfo, h grpclib.UnaryHandler) (resp any, err error) {
		requestArrived(ctx)
		defer func() {
			if r := recover(); r != nil {
				err = panicError(ctx, log, info.FullMethod, r)
			}
		}()
		return h(ctx, req)
	}
}

func recoverStream(log *slog.Logger) func(srv any, ss grpclib.ServerStream, info *grpclib.StreamServerInfo, h grpclib.StreamHandler) error {
	return func(srv any, ss grpclib.ServerStream, info *grpclib.StreamServerInfo, h grpclib.StreamHandler) (err error) {
		ss = awaitingRequest(ss)
		defer func() {
			if r := recover(); r != nil {
				err = panicError(ss.Context(), log, info.FullMethod, r)
			}
		}()
		return h(srv, ss)
	}
}

func panicError(ctx context.Context, log *slog.Logger, method string, r any) error {
	id := errorID()
	log.LogAttrs(ctx, slog.LevelError, "panic in gRPC handler", slog.String("method", method),
		slog.String("error_id", id), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
	return status.Errorf(codes.Internal, "internal error, id %s", id)
}

// isClientFault reports whether err is a bad-request class failure
// (codes 40000-49999), which ends a Telemetry stream with INVALID_ARGUMENT.
func isClientFault(err error) bool {
	c := codeOf(domain.ReasonOf(err))
	return domain.ReasonOf(err) != domain.ReasonInternal && c >= 40000 && c < 50000
}
