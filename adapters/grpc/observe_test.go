package grpc

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

func TestObserverOffIsLeftOut(t *testing.T) {
	for _, tel := range []*observe.Telemetry{nil, {}} {
		if o := newObserver(tel, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler)); o != nil {
			t.Errorf("newObserver(%+v) = %v, want nil (no interceptor)", tel, o)
		}
	}
}

// With metrics on and tracing off, observing a send allocates nothing
// once its label combination has been seen.
func TestObserveSendWithoutAllocating(t *testing.T) {
	m, _ := testMetrics(t)
	o := newObserver(&observe.Telemetry{Metrics: m}, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler))
	req := &v2.SendMessageRequest{Messages: []*v2.Message{{Topic: &v2.Resource{Name: "t"}, Body: make([]byte, 1024),
		SystemProperties: &v2.SystemProperties{MessageId: "id", MessageType: v2.MessageType_NORMAL}}}}
	resp := &v2.SendMessageResponse{Status: okStatus(), Entries: []*v2.SendResultEntry{{Status: okStatus(), MessageId: "id"}}}
	info := &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/SendMessage"}
	h := func(context.Context, any) (any, error) { return resp, nil }
	ctx := context.Background()
	call := func() { _, _ = o.unary(ctx, req, info, h) }
	call()
	if n := testing.AllocsPerRun(100, call); n != 0 {
		t.Errorf("observing a send allocates %v times, want 0", n)
	}
}

// The observer contains a handler's panic as recoverUnary does: gRPC
// INTERNAL, counted in the metrics.
func TestObserverRecoversPanics(t *testing.T) {
	o := newObserver(&observe.Telemetry{AccessLog: true}, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler))
	info := &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/SendMessage"}
	_, err := o.unary(context.Background(), &v2.SendMessageRequest{}, info, func(context.Context, any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("panic answered %v, want INTERNAL", err)
	}
	sinfo := &grpclib.StreamServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/Telemetry"}
	err = o.stream(nil, ctxStream{ctx: context.Background()}, sinfo, func(any, grpclib.ServerStream) error { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("stream panic answered %v, want INTERNAL", err)
	}
}

type ctxStream struct {
	grpclib.ServerStream
	ctx context.Context
}

func (c ctxStream) Context() context.Context { return c.ctx }

// A request that fails with a gRPC error is counted under GRPC_ and the
// code's canonical name (GRPC_DEADLINE_EXCEEDED), as docs/observability.md
// says, not under its Go name run together (GRPC_DEADLINEEXCEEDED).
func TestGRPCErrorResponseCode(t *testing.T) {
	o, latency := meteredObserver(t)
	info := &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/SendMessage"}
	for _, c := range []codes.Code{codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled} {
		_, _ = o.unary(context.Background(), &v2.SendMessageRequest{}, info, func(context.Context, any) (any, error) {
			return nil, status.Error(c, "x")
		})
	}
	got := map[string]bool{}
	for _, p := range latency() {
		v, _ := p.Attributes.Value(observe.LabelResponseCode)
		got[v.AsString()] = true
	}
	for _, want := range []string{"GRPC_DEADLINE_EXCEEDED", "GRPC_RESOURCE_EXHAUSTED", "GRPC_CANCELLED"} {
		if !got[want] {
			t.Errorf("response_code %s not recorded (got %v)", want, got)
		}
	}
}

// The metrics and the access log name a resource as the request is
// served: a client that sends its namespace only in x-mq-namespace (bare
// names in its Resources, as the Node.js client does) is counted and
// logged under namespace%name, not under the bare name, which is another
// tenant's topic (the one of no namespace).
func TestObservedNamesUseTheNamespaceHeader(t *testing.T) {
	m, _ := testMetrics(t)
	var logs logbuf.Buffer
	o := newObserver(&observe.Telemetry{Metrics: m, AccessLog: true}, slog.New(slog.NewTextHandler(&logs, nil)), slog.New(slog.DiscardHandler))
	ctx := ports.WithRequestInfo(context.Background(), ports.RequestInfo{Namespace: "tenantA"})
	send := &v2.SendMessageRequest{Messages: []*v2.Message{{Topic: &v2.Resource{Name: "orders"}, Body: []byte("x"),
		SystemProperties: &v2.SystemProperties{MessageId: "id", MessageType: v2.MessageType_NORMAL}}}}
	sendResp := &v2.SendMessageResponse{Status: okStatus(), Entries: []*v2.SendResultEntry{{Status: okStatus(), MessageId: "id"}}}
	_, _ = o.unary(ctx, send, &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/SendMessage"},
		func(context.Context, any) (any, error) { return sendResp, nil })
	ack := &v2.AckMessageRequest{Topic: &v2.Resource{Name: "orders"}, Group: &v2.Resource{Name: "g"},
		Entries: []*v2.AckMessageEntry{{MessageId: "id", ReceiptHandle: "h"}}}
	ackResp := &v2.AckMessageResponse{Status: okStatus(), Entries: []*v2.AckMessageResultEntry{{Status: okStatus(), MessageId: "id"}}}
	_, _ = o.unary(ctx, ack, &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/AckMessage"},
		func(context.Context, any) (any, error) { return ackResp, nil })
	// The counts labelled by topic or group are read from Metrics' own
	// table (adapters/otel exports them).
	labels := map[string]bool{}
	for _, p := range m.Counters(nil) {
		for _, k := range []string{observe.LabelTopic, observe.LabelConsumerGroup} {
			if v, ok := p.Attrs.Value(attribute.Key(k)); ok {
				labels[k+"="+v.AsString()] = true
			}
		}
	}
	for _, want := range []string{"topic=tenantA%orders", "consumer_group=tenantA%g"} {
		if !labels[want] {
			t.Errorf("no metric labelled %s; labels: %v", want, labels)
		}
	}
	if labels["topic=orders"] || labels["consumer_group=g"] {
		t.Errorf("metrics counted under the bare names (the resources of no namespace): %v", labels)
	}
	out := logs.String()
	if !strings.Contains(out, "topic=tenantA%orders") || !strings.Contains(out, "group=tenantA%g") || strings.Contains(out, "topic=orders") {
		t.Errorf("access log does not name the namespace:\n%s", out)
	}
}

// recvStream is a server stream whose one request is req; it keeps what
// is sent.
type recvStream struct {
	ctxStream
	req proto.Message
}

func (s *recvStream) RecvMsg(m any) error {
	proto.Merge(m.(proto.Message), s.req)
	return nil
}

func (s *recvStream) SendMsg(any) error { return nil }

// A receive's span carries rpc.grpc.status_code, and the status message of
// a status frame that is not OK, as a unary request's span does and as
// docs/observability.md says of every RPC span: it had neither.
func TestReceiveSpanHasTheStatusAttributes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	o := newObserver(&observe.Telemetry{Tracer: tp.Tracer("test")}, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler))
	info := &grpclib.StreamServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/ReceiveMessage"}
	req := &v2.ReceiveMessageRequest{Group: &v2.Resource{Name: "g"}, MessageQueue: &v2.MessageQueue{Topic: &v2.Resource{Name: "t"}}}
	for _, c := range []struct {
		frame       *v2.Status
		err         error
		grpcCode    int64
		code        int64
		message     string
		wantMessage bool
	}{
		{frame: &v2.Status{Code: v2.Code_TOO_MANY_REQUESTS, Message: "slow down"}, code: int64(v2.Code_TOO_MANY_REQUESTS), message: "slow down", wantMessage: true},
		{frame: &v2.Status{Code: v2.Code_OK, Message: "OK"}, code: int64(v2.Code_OK)},
		{err: status.Error(codes.Canceled, "gone"), grpcCode: int64(codes.Canceled)},
	} {
		rec.Reset()
		_ = o.stream(nil, &recvStream{ctxStream: ctxStream{ctx: context.Background()}, req: req}, info, func(_ any, ss grpclib.ServerStream) error {
			var r v2.ReceiveMessageRequest
			_ = ss.RecvMsg(&r)
			if c.frame != nil {
				_ = ss.SendMsg(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Status{Status: c.frame}})
			}
			return c.err
		})
		spans := rec.Ended()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want 1", len(spans))
		}
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range spans[0].Attributes() {
			attrs[a.Key] = a.Value
		}
		if v, ok := attrs[observe.KeyGRPCStatusCode]; !ok || v.AsInt64() != c.grpcCode {
			t.Errorf("%v %v: rpc.grpc.status_code = %v (present %v), want %d", c.frame, c.err, v.Emit(), ok, c.grpcCode)
		}
		if v, ok := attrs[observe.KeyStatusCode]; c.frame != nil && (!ok || v.AsInt64() != c.code) {
			t.Errorf("%v: rocketmq.status.code = %v, want %d", c.frame, v.Emit(), c.code)
		}
		if v, ok := attrs[observe.KeyStatusMessage]; ok != c.wantMessage || v.AsString() != c.message {
			t.Errorf("%v %v: rocketmq.status.message = %q (present %v), want %q (present %v)", c.frame, c.err, v.AsString(), ok, c.message, c.wantMessage)
		}
	}
}

// Telemetry streams are not in rocketmq_rpc_latency (docs/observability.md
// says which requests it counts): a stream lasts as long as its client.
func TestTelemetryStreamsAreNotMeasured(t *testing.T) {
	o, latency := meteredObserver(t)
	sinfo := &grpclib.StreamServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/Telemetry"}
	if err := o.stream(nil, ctxStream{ctx: context.Background()}, sinfo, func(any, grpclib.ServerStream) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if points := latency(); len(points) > 0 {
		t.Errorf("a Telemetry stream was measured: %+v", points)
	}
}

// The access log line of a receive answered with a status that is not OK
// shows its status_message, as a unary request's does and as
// docs/observability.md says ("plus status_message when not OK"): it had
// none.
func TestReceiveAccessLogShowsTheStatusMessage(t *testing.T) {
	var logs logbuf.Buffer
	o := newObserver(&observe.Telemetry{AccessLog: true}, slog.New(slog.NewTextHandler(&logs, nil)), slog.New(slog.DiscardHandler))
	info := &grpclib.StreamServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/ReceiveMessage"}
	req := &v2.ReceiveMessageRequest{Group: &v2.Resource{Name: "g"}, MessageQueue: &v2.MessageQueue{Topic: &v2.Resource{Name: "t"}}}
	_ = o.stream(nil, &recvStream{ctxStream: ctxStream{ctx: context.Background()}, req: req}, info, func(_ any, ss grpclib.ServerStream) error {
		var r v2.ReceiveMessageRequest
		_ = ss.RecvMsg(&r)
		return ss.SendMsg(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Status{Status: &v2.Status{Code: v2.Code_FORBIDDEN, Message: "no Sub on t"}}})
	})
	if out := logs.String(); !strings.Contains(out, "code=FORBIDDEN") || !strings.Contains(out, `status_message="no Sub on t"`) {
		t.Errorf("access log line of a refused receive:\n%s", out)
	}
}

// meteredObserver returns an observer recording into metrics of its own
// (no tracing, logs discarded) and a reader of its rocketmq_rpc_latency
// data points so far.
func meteredObserver(t *testing.T) (*observer, func() []metricdata.HistogramDataPoint[float64]) {
	t.Helper()
	m, r := testMetrics(t)
	o := newObserver(&observe.Telemetry{Metrics: m}, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler))
	return o, func() []metricdata.HistogramDataPoint[float64] {
		var rm metricdata.ResourceMetrics
		if err := r.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		var points []metricdata.HistogramDataPoint[float64]
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				if h, ok := mt.Data.(metricdata.Histogram[float64]); ok && mt.Name == observe.MetricRPCLatency {
					points = append(points, h.DataPoints...)
				}
			}
		}
		return points
	}
}

// The OpenTelemetry Java agent's instrumentation of the Java client v5
// (rocketmq-client-java) puts its producer span's W3C context in the
// message's user properties (traceparent, tracestate), not in the
// trace_context system property, and the Java client sends no traceparent
// metadata (its gRPC is shaded, out of the agent's reach). The proxy's
// send span was the root of a trace of its own, and the receive span
// linked to nothing of the producer's trace: the send span is now the
// child of that context and a receive links to it.
func TestSpansFollowTheTraceContextInUserProperties(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	o := newObserver(&observe.Telemetry{Tracer: tp.Tracer("test")}, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler))
	const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	props := map[string]string{"traceparent": "00-" + traceID + "-" + spanID + "-01", "tracestate": "vendor=x", "app": "y"}
	msg := func() *v2.Message {
		return &v2.Message{Topic: &v2.Resource{Name: "t"}, Body: []byte("x"), UserProperties: props,
			SystemProperties: &v2.SystemProperties{MessageId: "id", MessageType: v2.MessageType_NORMAL}}
	}
	send := &v2.SendMessageRequest{Messages: []*v2.Message{msg()}}
	resp := &v2.SendMessageResponse{Status: okStatus(), Entries: []*v2.SendResultEntry{{Status: okStatus(), MessageId: "id"}}}
	_, _ = o.unary(context.Background(), send, &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/SendMessage"},
		func(context.Context, any) (any, error) { return resp, nil })
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	if got := spans[0].Parent(); got.TraceID().String() != traceID || got.SpanID().String() != spanID {
		t.Errorf("send span's parent %s/%s, want the producer's %s/%s (the traceparent user property)", got.TraceID(), got.SpanID(), traceID, spanID)
	}
	if ts := spans[0].SpanContext().TraceState().Get("vendor"); ts != "x" {
		t.Errorf("send span's tracestate vendor=%q, want the producer's x", ts)
	}

	// A message stored with only the user property (unsampled send, or
	// stored before tracing was on): the receive span links to it.
	rec.Reset()
	info := &grpclib.StreamServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/ReceiveMessage"}
	req := &v2.ReceiveMessageRequest{Group: &v2.Resource{Name: "g"}, MessageQueue: &v2.MessageQueue{Topic: &v2.Resource{Name: "t"}}}
	_ = o.stream(nil, &recvStream{ctxStream: ctxStream{ctx: context.Background()}, req: req}, info, func(_ any, ss grpclib.ServerStream) error {
		var r v2.ReceiveMessageRequest
		_ = ss.RecvMsg(&r)
		_ = ss.SendMsg(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Status{Status: okStatus()}})
		return ss.SendMsg(&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Message{Message: msg()}})
	})
	spans = rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	links := spans[0].Links()
	if len(links) != 1 || links[0].SpanContext.TraceID().String() != traceID || links[0].SpanContext.SpanID().String() != spanID {
		t.Errorf("receive span links %+v, want one to the producer's %s/%s", links, traceID, spanID)
	}
}

// A send a RocketMQ broker stored but could not make as durable as
// configured (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE:
// answered MASTER_PERSISTENCE_TIMEOUT, SLAVE_PERSISTENCE_TIMEOUT,
// HA_NOT_AVAILABLE) is delivered like any other, and the broker counts it
// in its rocketmq_messages_in_total. rmqproxy counted only entries
// answered OK: while a sync master's slave was down, every message sent
// was stored and delivered (rocketmq_messages_out_total grew) and
// rocketmq_messages_in_total stood still. A send refused (not stored)
// counts nothing.
func TestStoredButNotDurableSendsAreCountedIn(t *testing.T) {
	m, _ := testMetrics(t)
	o := newObserver(&observe.Telemetry{Metrics: m}, slog.New(slog.DiscardHandler), slog.New(slog.DiscardHandler))
	info := &grpclib.UnaryServerInfo{FullMethod: "/apache.rocketmq.v2.MessagingService/SendMessage"}
	in := func() int64 {
		var n int64
		for _, p := range m.Counters(nil) {
			if observe.LabelledCounters[p.Counter].Name == observe.MetricMessagesIn {
				n += p.Value
			}
		}
		return n
	}
	for _, c := range []struct {
		code v2.Code
		want int64 // messages counted, of the 2 sent
	}{
		{v2.Code_MASTER_PERSISTENCE_TIMEOUT, 2}, {v2.Code_SLAVE_PERSISTENCE_TIMEOUT, 2}, {v2.Code_HA_NOT_AVAILABLE, 2},
		{v2.Code_TOO_MANY_REQUESTS, 0}, {v2.Code_INTERNAL_SERVER_ERROR, 0},
	} {
		req := &v2.SendMessageRequest{}
		for _, id := range []string{"a", "b"} {
			req.Messages = append(req.Messages, &v2.Message{Topic: &v2.Resource{Name: "t"}, Body: []byte("x"),
				SystemProperties: &v2.SystemProperties{MessageId: id, MessageType: v2.MessageType_NORMAL}})
		}
		// A failed send is answered with its status and no entries.
		resp := &v2.SendMessageResponse{Status: &v2.Status{Code: c.code, Message: "m"}}
		before := in()
		_, _ = o.unary(context.Background(), req, info, func(context.Context, any) (any, error) { return resp, nil })
		if got := in() - before; got != c.want {
			t.Errorf("a send of 2 answered %v: rocketmq_messages_in_total grew by %d, want %d", c.code, got, c.want)
		}
	}
}

// testMetrics returns rmqproxy's instruments on a meter provider of their
// own (labels: 10 topics, 10 groups) and the reader that collects them;
// the provider is shut down when the test ends.
func testMetrics(t *testing.T) (*observe.Metrics, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := observe.NewMetrics(mp.Meter("test"), observe.NewLabels(nil, 10, nil, 10))
	if err != nil {
		t.Fatal(err)
	}
	return m, r
}
