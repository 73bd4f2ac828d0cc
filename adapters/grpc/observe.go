package grpc

import (
	"context"
	"log/slog"
	"strings"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// The request chain (see NewServer): observe (span, metrics, access log,
// and panic containment, which it does itself so that the chain of two
// interceptors does not cost an allocation per request), then whatever
// limits are added after it, then the handler; without telemetry, only
// the recovering interceptor. Observing before the limits makes a refused
// request show in the metrics and the access log with its code
// (TOO_MANY_REQUESTS), like any other, and a panic shows as INTERNAL.

// rpcMethod describes one MessagingService method for spans and metrics.
type rpcMethod struct {
	name string // SendMessage
	// op is messaging.operation.name and the first word of span names
	// ("send my-topic"); opType is messaging.operation.type, if the
	// method moves messages.
	op       string
	opType   attribute.KeyValue
	longPoll bool
	// stream: server-streaming methods observed frame by frame; Telemetry
	// is not observed (it lives as long as the client).
	stream bool
}

var rpcMethods = func() map[string]*rpcMethod {
	m := map[string]*rpcMethod{}
	add := func(name, op string, opType attribute.KeyValue, longPoll, stream bool) {
		m["/"+v2.MessagingService_ServiceDesc.ServiceName+"/"+name] = &rpcMethod{name: name, op: op, opType: opType, longPoll: longPoll, stream: stream}
	}
	none := attribute.KeyValue{}
	add("QueryRoute", "query_route", none, false, false)
	add("QueryAssignment", "query_assignment", none, false, false)
	add("SendMessage", "send", observe.OpSend, false, false)
	add("ReceiveMessage", "receive", observe.OpReceive, true, true)
	add("PullMessage", "pull", observe.OpReceive, true, true)
	add("AckMessage", "ack", observe.OpSettle, false, false)
	add("ChangeInvisibleDuration", "change_invisible_duration", observe.OpSettle, false, false)
	add("ForwardMessageToDeadLetterQueue", "forward_to_dlq", observe.OpSettle, false, false)
	add("EndTransaction", "end_transaction", observe.OpSettle, false, false)
	add("RecallMessage", "recall", observe.OpSettle, false, false)
	add("Heartbeat", "heartbeat", none, false, false)
	add("NotifyClientTermination", "notify_client_termination", none, false, false)
	add("UpdateOffset", "update_offset", none, false, false)
	add("GetOffset", "get_offset", none, false, false)
	add("QueryOffset", "query_offset", none, false, false)
	return m
}()

// observer traces, measures and logs requests; see [observe.Telemetry].
type observer struct {
	tel      *observe.Telemetry
	log      *slog.Logger // access log
	panicLog *slog.Logger
}

// newObserver returns nil when tel observes nothing, so that the
// interceptors are left out of the chain. The access log is base with
// component=access (base must carry no component: a JSON line would name
// two); panics are logged on log.
func newObserver(tel *observe.Telemetry, base, log *slog.Logger) *observer {
	if !tel.Active() {
		return nil
	}
	return &observer{tel: tel, log: base.With("component", "access"), panicLog: log}
}

// call runs the handler, turning a panic into gRPC INTERNAL as
// recoverUnary does.
func (o *observer) call(ctx context.Context, req any, info *grpclib.UnaryServerInfo, h grpclib.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, panicError(ctx, o.panicLog, info.FullMethod, r)
		}
	}()
	return h(ctx, req)
}

func (o *observer) callStream(srv any, ss grpclib.ServerStream, info *grpclib.StreamServerInfo, h grpclib.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError(ss.Context(), o.panicLog, info.FullMethod, r)
		}
	}()
	return h(srv, ss)
}

func (o *observer) unary(ctx context.Context, req any, info *grpclib.UnaryServerInfo, h grpclib.UnaryHandler) (any, error) {
	requestArrived(ctx)
	m := rpcMethods[info.FullMethod]
	if m == nil {
		return o.call(ctx, req, info, h)
	}
	start := time.Now()
	var span trace.Span
	if o.tel.Tracing() {
		ctx, span = o.startUnarySpan(ctx, m, req)
	}
	var note *accessNote
	if o.tel.AccessLog {
		ctx, note = withAccessNote(ctx)
	}
	resp, err := o.call(ctx, req, info, h)
	d := time.Since(start)
	code := responseCode(resp, err)
	name := code.String()
	if err != nil {
		name = grpcCodeName(err)
	}
	if o.tel.Measuring() {
		o.measureUnary(ctx, m, req, resp, code, name, d)
	}
	if span != nil {
		endSpan(span, resp, err, code)
	}
	if o.tel.AccessLog {
		var st *v2.Status
		if r, ok := resp.(interface{ GetStatus() *v2.Status }); ok {
			st = r.GetStatus()
		}
		o.accessLog(ctx, m, req, resp, st, name, d, 0, nil, note)
	}
	return resp, err
}

func (o *observer) stream(srv any, ss grpclib.ServerStream, info *grpclib.StreamServerInfo, h grpclib.StreamHandler) error {
	ss = awaitingRequest(ss)
	m := rpcMethods[info.FullMethod]
	if m == nil || !m.stream {
		return o.callStream(srv, ss, info, h)
	}
	w := &observedStream{ServerStream: ss, o: o, m: m, ctx: ss.Context(), start: time.Now(), code: v2.Code_CODE_UNSPECIFIED}
	if o.tel.Tracing() {
		var span trace.Span
		w.ctx, span = o.tel.Tracer.Start(incomingTraceContext(w.ctx), m.op, trace.WithSpanKind(trace.SpanKindServer))
		if span.IsRecording() {
			id := clientIDOf(w.ctx)
			span.SetAttributes(observe.SystemRocketMQ, observe.KeyOperationName.String(m.op), m.opType,
				observe.KeyRPCSystem.String("grpc"), observe.KeyRPCService.String(v2.MessagingService_ServiceDesc.ServiceName),
				observe.KeyRPCMethod.String(m.name), observe.KeyClientID.String(id), observe.KeyLegacyClientID.String(id))
			w.span = span
		} else {
			defer span.End()
		}
	}
	var note *accessNote
	if o.tel.AccessLog {
		w.ctx, note = withAccessNote(w.ctx)
	}
	err := o.callStream(srv, w, info, h)
	d := time.Since(w.start)
	code := w.codeName(err)
	if o.tel.Measuring() {
		o.tel.Metrics.RPC(w.ctx, "grpc", m.name, code, m.longPoll, d)
	}
	if w.span != nil {
		// As a unary span: the gRPC code, and the RocketMQ status of the
		// status frame (its message when not OK).
		w.span.SetAttributes(observe.KeyBatchCount.Int(w.count), observe.KeyGRPCStatusCode.Int(int(status.Code(err))))
		if w.code != v2.Code_CODE_UNSPECIFIED {
			w.span.SetAttributes(observe.KeyStatusCode.Int(int(w.code)))
			if w.code != v2.Code_OK {
				w.span.SetAttributes(observe.KeyStatusMessage.String(w.st.GetMessage()))
			}
		}
		if err != nil || (w.code != v2.Code_OK && w.code != v2.Code_MESSAGE_NOT_FOUND && w.code != v2.Code_CODE_UNSPECIFIED) {
			w.span.SetStatus(otelcodes.Error, code)
		}
		w.span.End()
	}
	if o.tel.AccessLog {
		o.accessLog(w.ctx, m, w.req, nil, w.st, code, d, w.count, w.ids, note)
	}
	return err
}

// observedStream watches the frames of a server-streaming call: its
// request, its status frame and the messages it delivers.
type observedStream struct {
	grpclib.ServerStream
	o     *observer
	m     *rpcMethod
	ctx   context.Context
	span  trace.Span
	start time.Time
	req   any
	code  v2.Code
	st    *v2.Status // the status frame
	count int
	ids   []string // of the messages delivered, for the access log
}

func (w *observedStream) Context() context.Context { return w.ctx }

func (w *observedStream) RecvMsg(msg any) error {
	err := w.ServerStream.RecvMsg(msg)
	if err == nil && w.req == nil {
		w.req = msg
		if w.span != nil {
			topic, group := streamTarget(w.ctx, msg)
			w.span.SetName(w.m.op + " " + topic)
			w.span.SetAttributes(observe.KeyDestination.String(topic), observe.KeyConsumerGroup.String(group), observe.KeyLegacyGroup.String(group))
		}
	}
	return err
}

func (w *observedStream) SendMsg(msg any) error {
	err := w.ServerStream.SendMsg(msg)
	var st *v2.Status
	var pm *v2.Message
	switch f := msg.(type) {
	case *v2.ReceiveMessageResponse:
		st, pm = f.GetStatus(), f.GetMessage()
	case *v2.PullMessageResponse:
		st, pm = f.GetStatus(), f.GetMessage()
	}
	if st != nil {
		w.code, w.st = st.GetCode(), st
	}
	if pm == nil || err != nil {
		return err
	}
	w.count++
	sp := pm.GetSystemProperties()
	if w.o.tel.AccessLog {
		w.ids = append(w.ids, sp.GetMessageId())
	}
	if w.o.tel.Measuring() {
		_, group := streamTarget(w.ctx, w.req)
		w.o.tel.Metrics.MessagesOut(w.ctx, resourceLabel(w.ctx, pm.GetTopic()), group, sp.GetDeliveryAttempt() > 1, 1, int64(len(pm.GetBody())))
	}
	if w.span != nil {
		// The consumer's span links to the producer's: the message carries
		// the trace context of its send.
		if sc, ok := messageTraceContext(pm); ok {
			w.span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{observe.KeyMessageID.String(sp.GetMessageId())}})
		}
		if w.count == 1 {
			w.span.SetAttributes(observe.KeyMessageID.String(sp.GetMessageId()))
		}
	}
	return nil
}

func (w *observedStream) codeName(err error) string {
	if err != nil {
		return grpcCodeName(err)
	}
	return w.code.String()
}

// streamTarget returns the topic and group a receive or pull is for.
func streamTarget(ctx context.Context, req any) (topic, group string) {
	switch r := req.(type) {
	case *v2.ReceiveMessageRequest:
		return resourceLabel(ctx, r.GetMessageQueue().GetTopic()), resourceLabel(ctx, r.GetGroup())
	case *v2.PullMessageRequest:
		return resourceLabel(ctx, r.GetMessageQueue().GetTopic()), resourceLabel(ctx, r.GetGroup())
	}
	return "", ""
}

// resourceLabel is the name a resource is shown under in spans, metrics
// and the access log: the name it is served under (namespace%name, the
// namespace from the Resource or else the request's x-mq-namespace, as
// resourceName), so that tenants are told apart.
func resourceLabel(ctx context.Context, r *v2.Resource) string {
	return resourceName(r, ports.RequestInfoFrom(ctx))
}

// responseCode is the RocketMQ status of a unary response, or
// CODE_UNSPECIFIED when the call failed with a gRPC error.
func responseCode(resp any, err error) v2.Code {
	if err != nil {
		return v2.Code_CODE_UNSPECIFIED
	}
	if r, ok := resp.(interface{ GetStatus() *v2.Status }); ok {
		return r.GetStatus().GetCode()
	}
	return v2.Code_CODE_UNSPECIFIED
}

// grpcCodeName is the response_code of a request that failed with a gRPC
// error: GRPC_ and the code's canonical name (GRPC_DEADLINE_EXCEEDED).
func grpcCodeName(err error) string {
	c := status.Code(err)
	if int(c) < len(grpcCodeNames) {
		return grpcCodeNames[c]
	}
	return "GRPC_" + strings.ToUpper(c.String())
}

// grpcCodeNames are the response_code values of the gRPC codes, by code.
var grpcCodeNames = [...]string{
	codes.OK:                 "GRPC_OK",
	codes.Canceled:           "GRPC_CANCELLED",
	codes.Unknown:            "GRPC_UNKNOWN",
	codes.InvalidArgument:    "GRPC_INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "GRPC_DEADLINE_EXCEEDED",
	codes.NotFound:           "GRPC_NOT_FOUND",
	codes.AlreadyExists:      "GRPC_ALREADY_EXISTS",
	codes.PermissionDenied:   "GRPC_PERMISSION_DENIED",
	codes.ResourceExhausted:  "GRPC_RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "GRPC_FAILED_PRECONDITION",
	codes.Aborted:            "GRPC_ABORTED",
	codes.OutOfRange:         "GRPC_OUT_OF_RANGE",
	codes.Unimplemented:      "GRPC_UNIMPLEMENTED",
	codes.Internal:           "GRPC_INTERNAL",
	codes.Unavailable:        "GRPC_UNAVAILABLE",
	codes.DataLoss:           "GRPC_DATA_LOSS",
	codes.Unauthenticated:    "GRPC_UNAUTHENTICATED",
}

func clientIDOf(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, mdClientID); len(v) > 0 {
		return v[0]
	}
	return ""
}

// incomingTraceContext makes the caller's W3C trace context (traceparent
// and tracestate metadata, as OpenTelemetry's gRPC instrumentation sends
// them) the parent of the request's span.
func incomingTraceContext(ctx context.Context) context.Context {
	tp := metadata.ValueFromIncomingContext(ctx, "traceparent")
	if len(tp) == 0 {
		return ctx
	}
	var ts string
	if v := metadata.ValueFromIncomingContext(ctx, "tracestate"); len(v) > 0 {
		ts = v[0]
	}
	if sc, ok := observe.ParseTraceParent(tp[0], ts); ok {
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx
}

// messageTraceContext is the W3C trace context a message carries: its
// trace_context system property (the C++ client's, or the one the proxy
// wrote at its send), else its traceparent and tracestate user properties,
// where OpenTelemetry's instrumentation of the Java client (the Java
// agent) puts its producer span's context.
func messageTraceContext(pm *v2.Message) (trace.SpanContext, bool) {
	if sc, ok := observe.ParseTraceParent(pm.GetSystemProperties().GetTraceContext(), ""); ok {
		return sc, true
	}
	props := pm.GetUserProperties()
	if tp := props["traceparent"]; tp != "" {
		return observe.ParseTraceParent(tp, props["tracestate"])
	}
	return trace.SpanContext{}, false
}

// startUnarySpan starts the span of a unary request. A send's span is the
// child of the caller's trace context, or else, for a single message, of
// the trace context the producer put in the message (see
// messageTraceContext); it links to the contexts of the other messages of a batch. The
// send's own context is then written into every message that carries
// none, so that the consumer's receive span can link to it.
//
// The sampler decides on the parent alone, so the span starts bare and
// gets its name, attributes and links only when it records: a request
// that is not sampled builds none of them.
func (o *observer) startUnarySpan(ctx context.Context, m *rpcMethod, req any) (context.Context, trace.Span) {
	parent := incomingTraceContext(ctx)
	send, _ := req.(*v2.SendMessageRequest)
	if send != nil && len(send.GetMessages()) == 1 && !trace.SpanContextFromContext(parent).IsValid() {
		if sc, ok := messageTraceContext(send.GetMessages()[0]); ok {
			parent = trace.ContextWithRemoteSpanContext(parent, sc)
		}
	}
	ctx, span := o.tel.Tracer.Start(parent, m.op, trace.WithSpanKind(trace.SpanKindServer))
	if !span.IsRecording() {
		return ctx, span
	}
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs, observe.SystemRocketMQ, observe.KeyOperationName.String(m.op),
		observe.KeyRPCSystem.String("grpc"), observe.KeyRPCService.String(v2.MessagingService_ServiceDesc.ServiceName), observe.KeyRPCMethod.String(m.name))
	if m.opType.Valid() {
		attrs = append(attrs, m.opType)
	}
	if id := clientIDOf(ctx); id != "" {
		attrs = append(attrs, observe.KeyClientID.String(id), observe.KeyLegacyClientID.String(id))
	}
	topic, group := "", ""
	switch r := req.(type) {
	case *v2.SendMessageRequest:
		msgs := r.GetMessages()
		if len(msgs) > 0 {
			topic = resourceLabel(ctx, msgs[0].GetTopic())
		}
		attrs = append(attrs, observe.KeyBatchCount.Int(len(msgs)))
		if len(msgs) == 1 {
			attrs = append(attrs, messageAttrs(ctx, msgs[0])...)
		}
		parentSpan := trace.SpanContextFromContext(parent).SpanID()
		for _, pm := range msgs {
			if sc, ok := messageTraceContext(pm); ok && sc.SpanID() != parentSpan {
				span.AddLink(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{observe.KeyMessageID.String(pm.GetSystemProperties().GetMessageId())}})
			}
		}
	case *v2.AckMessageRequest:
		topic, group = resourceLabel(ctx, r.GetTopic()), resourceLabel(ctx, r.GetGroup())
		attrs = append(attrs, observe.KeyBatchCount.Int(len(r.GetEntries())))
		if len(r.GetEntries()) == 1 {
			attrs = append(attrs, observe.KeyMessageID.String(r.GetEntries()[0].GetMessageId()))
		}
	case *v2.ChangeInvisibleDurationRequest:
		topic, group = resourceLabel(ctx, r.GetTopic()), resourceLabel(ctx, r.GetGroup())
		attrs = append(attrs, observe.KeyMessageID.String(r.GetMessageId()))
	case *v2.ForwardMessageToDeadLetterQueueRequest:
		topic, group = resourceLabel(ctx, r.GetTopic()), resourceLabel(ctx, r.GetGroup())
		attrs = append(attrs, observe.KeyMessageID.String(r.GetMessageId()), observe.KeyDeliveryAttempt.Int(int(r.GetDeliveryAttempt())))
	case *v2.EndTransactionRequest:
		topic = resourceLabel(ctx, r.GetTopic())
		attrs = append(attrs, observe.KeyMessageID.String(r.GetMessageId()))
	case *v2.RecallMessageRequest:
		topic = resourceLabel(ctx, r.GetTopic())
	case *v2.QueryRouteRequest:
		topic = resourceLabel(ctx, r.GetTopic())
	case *v2.QueryAssignmentRequest:
		topic, group = resourceLabel(ctx, r.GetTopic()), resourceLabel(ctx, r.GetGroup())
	case *v2.HeartbeatRequest:
		group = resourceLabel(ctx, r.GetGroup())
	case *v2.NotifyClientTerminationRequest:
		group = resourceLabel(ctx, r.GetGroup())
	case *v2.UpdateOffsetRequest:
		topic, group = resourceLabel(ctx, r.GetMessageQueue().GetTopic()), resourceLabel(ctx, r.GetGroup())
	case *v2.GetOffsetRequest:
		topic, group = resourceLabel(ctx, r.GetMessageQueue().GetTopic()), resourceLabel(ctx, r.GetGroup())
	case *v2.QueryOffsetRequest:
		topic = resourceLabel(ctx, r.GetMessageQueue().GetTopic())
	}
	if topic != "" {
		attrs = append(attrs, observe.KeyDestination.String(topic))
		if m.opType.Valid() {
			span.SetName(m.op + " " + topic)
		}
	}
	if group != "" {
		attrs = append(attrs, observe.KeyConsumerGroup.String(group), observe.KeyLegacyGroup.String(group))
	}
	span.SetAttributes(attrs...)
	if send != nil {
		if tp := observe.TraceParent(span.SpanContext()); tp != "" {
			for _, pm := range send.GetMessages() {
				if pm.GetSystemProperties().GetTraceContext() != "" {
					continue
				}
				if pm.SystemProperties == nil {
					pm.SystemProperties = &v2.SystemProperties{}
				}
				pm.SystemProperties.TraceContext = &tp
			}
		}
	}
	return ctx, span
}

// messageAttrs are the attributes of a single message sent.
func messageAttrs(ctx context.Context, pm *v2.Message) []attribute.KeyValue {
	sp := pm.GetSystemProperties()
	a := []attribute.KeyValue{
		observe.KeyMessageID.String(sp.GetMessageId()),
		observe.KeyBodySize.Int(len(pm.GetBody())),
		observe.KeyMessageType.String(messageTypeLabel(sp.GetMessageType())),
	}
	if ns, _ := domain.SplitNamespace(resourceLabel(ctx, pm.GetTopic())); ns != "" {
		a = append(a, observe.KeyNamespace.String(ns))
	}
	if t := sp.GetTag(); t != "" {
		a = append(a, observe.KeyMessageTag.String(t))
	}
	if k := sp.GetKeys(); len(k) > 0 {
		a = append(a, observe.KeyMessageKeys.StringSlice(k))
	}
	if g := sp.GetMessageGroup(); g != "" {
		a = append(a, observe.KeyMessageGroup.String(g))
	}
	if ts := sp.GetDeliveryTimestamp(); ts != nil {
		a = append(a, observe.KeyDeliveryTime.Int64(ts.AsTime().UnixMilli()))
	}
	return a
}

// endSpan sets what the response tells and ends the span. A non-OK status
// is an error, except "no new message" for a receive.
func endSpan(span trace.Span, resp any, err error, code v2.Code) {
	if !span.IsRecording() {
		span.End()
		return
	}
	if err != nil {
		span.SetAttributes(observe.KeyGRPCStatusCode.Int(int(status.Code(err))))
		span.SetStatus(otelcodes.Error, err.Error())
		span.End()
		return
	}
	span.SetAttributes(observe.KeyGRPCStatusCode.Int(0), observe.KeyStatusCode.Int(int(code)))
	if r, ok := resp.(*v2.SendMessageResponse); ok && len(r.GetEntries()) == 1 {
		span.SetAttributes(observe.KeyMessageID.String(r.GetEntries()[0].GetMessageId()))
	}
	if code != v2.Code_OK && code != v2.Code_MESSAGE_NOT_FOUND {
		msg := ""
		if r, ok := resp.(interface{ GetStatus() *v2.Status }); ok {
			msg = r.GetStatus().GetMessage()
		}
		span.SetAttributes(observe.KeyStatusMessage.String(msg))
		span.SetStatus(otelcodes.Error, code.String())
	}
	span.End()
}

// measureUnary records a unary request's metrics: its latency, and the
// messages it stored or settled, counted from the entries answered OK (a
// send's: stored, see storedCode).
// Acks are counted here only when the broker does not count them (see
// observe.Metrics.AckEntries). ForwardMessageToDeadLetterQueue is not
// counted here: an OK answer does not say a message moved (a client's
// retry of a forward that took effect is answered OK again), so the
// broker that makes the move counts it (the local engine's DeadLetter
// hook; in cluster mode the RocketMQ broker).
func (o *observer) measureUnary(ctx context.Context, m *rpcMethod, req, resp any, code v2.Code, name string, d time.Duration) {
	mt := o.tel.Metrics
	mt.RPC(ctx, "grpc", m.name, name, false, d)
	switch r := req.(type) {
	case *v2.SendMessageRequest:
		out, _ := resp.(*v2.SendMessageResponse)
		entries := out.GetEntries()
		for i, pm := range r.GetMessages() {
			// A failed send is answered without entries: its status says
			// whether the messages were stored all the same.
			c := code
			if i < len(entries) {
				c = entries[i].GetStatus().GetCode()
			} else if len(entries) > 0 {
				continue
			}
			if storedCode(c) {
				mt.MessageIn(ctx, resourceLabel(ctx, pm.GetTopic()), messageTypeLabel(pm.GetSystemProperties().GetMessageType()), len(pm.GetBody()))
			}
		}
	case *v2.AckMessageRequest:
		out, _ := resp.(*v2.AckMessageResponse)
		n := 0
		for _, e := range out.GetEntries() {
			if e.GetStatus().GetCode() == v2.Code_OK {
				n++
			}
		}
		mt.AckEntries(ctx, resourceLabel(ctx, r.GetTopic()), resourceLabel(ctx, r.GetGroup()), n)
	case *v2.EndTransactionRequest:
		if code == v2.Code_OK {
			switch r.GetResolution() {
			case v2.TransactionResolution_COMMIT:
				mt.Settle(ctx, observe.SettledCommit, resourceLabel(ctx, r.GetTopic()), "", 1)
			case v2.TransactionResolution_ROLLBACK:
				mt.Settle(ctx, observe.SettledRollback, resourceLabel(ctx, r.GetTopic()), "", 1)
			}
		}
	}
}

// storedCode reports whether a send answered c stored its message: OK, or
// stored but not as durable as configured (a RocketMQ broker's
// FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT and SLAVE_NOT_AVAILABLE, which
// the broker counts as stored too, and the local broker's wait for its
// fsync cut short), whose message is delivered like any other.
func storedCode(c v2.Code) bool {
	switch c {
	case v2.Code_OK, v2.Code_MASTER_PERSISTENCE_TIMEOUT, v2.Code_SLAVE_PERSISTENCE_TIMEOUT, v2.Code_HA_NOT_AVAILABLE:
		return true
	}
	return false
}

// entryCodes is the entry_codes attribute of a response whose entries
// were answered differently (MULTIPLE_RESULTS): each entry's code, in the
// order of message_ids.
func entryCodes[E interface{ GetStatus() *v2.Status }](entries []E) slog.Attr {
	codes := make([]string, len(entries))
	for i, e := range entries {
		codes[i] = e.GetStatus().GetCode().String()
	}
	return slog.Any("entry_codes", codes)
}

// messageTypeLabel is upstream's message_type label value.
func messageTypeLabel(t v2.MessageType) string {
	switch t {
	case v2.MessageType_FIFO:
		return "fifo"
	case v2.MessageType_DELAY:
		return "delay"
	case v2.MessageType_TRANSACTION:
		return "transaction"
	}
	return "normal"
}

// maxLoggedBody is how much of a body the access log shows with LogBodies.
const maxLoggedBody = 256

// accessLog writes one line per request: who, what, outcome, how long.
// Metadata other than the client and request ids never appears (it may
// hold credentials), and bodies only with the debugging switch. resp is a
// unary request's response (nil for a stream or an error); st is the
// status answered (a unary response's, a stream's status frame), nil for
// none; delivered and ids are the count and ids of the messages a stream
// delivered; note is what the handler noted about its caller.
func (o *observer) accessLog(ctx context.Context, m *rpcMethod, req, resp any, st *v2.Status, code string, d time.Duration, delivered int, ids []string, note *accessNote) {
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs, slog.String("rpc", m.name), slog.String("code", code), slog.Duration("duration", d),
		slog.String("client_id", clientIDOf(ctx)))
	// Who: the authenticated user (with authentication on) and the
	// connection's address, which the client cannot choose.
	if note != nil && note.user != "" {
		attrs = append(attrs, slog.String("user", note.user))
	}
	if info, ok := ports.LookupRequestInfo(ctx); ok && info.RemoteAddr.IsValid() {
		attrs = append(attrs, slog.String("remote_addr", info.RemoteAddr.String()))
	}
	if v := metadata.ValueFromIncomingContext(ctx, mdRequestID); len(v) > 0 {
		attrs = append(attrs, slog.String("request_id", v[0]))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	switch r := req.(type) {
	case *v2.SendMessageRequest:
		msgs := r.GetMessages()
		ids := make([]string, 0, len(msgs))
		for _, pm := range msgs {
			ids = append(ids, pm.GetSystemProperties().GetMessageId())
		}
		if len(msgs) > 0 {
			attrs = append(attrs, slog.String("topic", resourceLabel(ctx, msgs[0].GetTopic())))
		}
		attrs = append(attrs, slog.Any("message_ids", ids))
		if out, ok := resp.(*v2.SendMessageResponse); ok && code == v2.Code_MULTIPLE_RESULTS.String() {
			attrs = append(attrs, entryCodes(out.GetEntries()))
		}
		if o.tel.LogBodies {
			bodies := make([]string, 0, len(msgs))
			for _, pm := range msgs {
				b := pm.GetBody()
				if len(b) > maxLoggedBody {
					b = b[:maxLoggedBody]
				}
				bodies = append(bodies, string(b))
			}
			attrs = append(attrs, slog.Any("bodies", bodies))
		}
	case *v2.ReceiveMessageRequest, *v2.PullMessageRequest:
		topic, group := streamTarget(ctx, r)
		if ids == nil {
			ids = []string{}
		}
		attrs = append(attrs, slog.String("topic", topic), slog.String("group", group), slog.Int("messages", delivered), slog.Any("message_ids", ids))
	case *v2.AckMessageRequest:
		entries := r.GetEntries()
		ids := make([]string, len(entries))
		for i, e := range entries {
			ids[i] = e.GetMessageId()
		}
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetTopic())), slog.String("group", resourceLabel(ctx, r.GetGroup())),
			slog.Int("entries", len(entries)), slog.Any("message_ids", ids))
		if out, ok := resp.(*v2.AckMessageResponse); ok && code == v2.Code_MULTIPLE_RESULTS.String() {
			attrs = append(attrs, entryCodes(out.GetEntries()))
		}
	case *v2.ChangeInvisibleDurationRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetTopic())), slog.String("group", resourceLabel(ctx, r.GetGroup())), slog.String("message_id", r.GetMessageId()))
	case *v2.ForwardMessageToDeadLetterQueueRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetTopic())), slog.String("group", resourceLabel(ctx, r.GetGroup())), slog.String("message_id", r.GetMessageId()))
	case *v2.EndTransactionRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetTopic())), slog.String("message_id", r.GetMessageId()),
			slog.String("transaction_id", r.GetTransactionId()), slog.String("resolution", r.GetResolution().String()))
	case *v2.RecallMessageRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetTopic())))
	case *v2.QueryRouteRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetTopic())))
	case *v2.QueryAssignmentRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetTopic())), slog.String("group", resourceLabel(ctx, r.GetGroup())))
	case *v2.HeartbeatRequest:
		// Producers name no group: some send none, some a Resource of
		// no name, which is no group either (it was logged as group="").
		if r.GetGroup().GetName() != "" {
			attrs = append(attrs, slog.String("group", resourceLabel(ctx, r.GetGroup())))
		}
	case *v2.NotifyClientTerminationRequest:
		if r.GetGroup().GetName() != "" {
			attrs = append(attrs, slog.String("group", resourceLabel(ctx, r.GetGroup())))
		}
	case *v2.UpdateOffsetRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetMessageQueue().GetTopic())), slog.String("group", resourceLabel(ctx, r.GetGroup())),
			slog.Int("queue_id", int(r.GetMessageQueue().GetId())), slog.Int64("offset", r.GetOffset()))
	case *v2.GetOffsetRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetMessageQueue().GetTopic())), slog.String("group", resourceLabel(ctx, r.GetGroup())),
			slog.Int("queue_id", int(r.GetMessageQueue().GetId())))
	case *v2.QueryOffsetRequest:
		attrs = append(attrs, slog.String("topic", resourceLabel(ctx, r.GetMessageQueue().GetTopic())), slog.Int("queue_id", int(r.GetMessageQueue().GetId())))
	}
	if st != nil && code != "OK" {
		attrs = append(attrs, slog.String("status_message", st.GetMessage()))
	}
	// Straight to the handler, at Info: log.access asks for every line,
	// and Logger.LogAttrs drops one below the handler's level (log.level
	// warn or error would turn the access log off).
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	r.AddAttrs(attrs...)
	_ = o.log.Handler().Handle(ctx, r)
}
