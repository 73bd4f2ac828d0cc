package otel_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func TestConfigValidation(t *testing.T) {
	good := otel.DefaultOTLPConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		edit func(*otel.OTLPConfig)
		want string
	}{
		{func(c *otel.OTLPConfig) { c.Protocol = "udp" }, "must be grpc or http"},
		{func(c *otel.OTLPConfig) { c.Endpoint = "127.0.0.1:4317" }, "must be a URL"},
		{func(c *otel.OTLPConfig) { c.Endpoint = "http://collector:4318/v1/traces" }, "must not have a path"},
		{func(c *otel.OTLPConfig) { c.Endpoint = "http://collector:99999" }, `endpoint "http://collector:99999": port 99999 is not a number between 1 and 65535`},
		{func(c *otel.OTLPConfig) { c.Endpoint = "https://collector:0" }, "port 0 is not a number between 1 and 65535"},
		{func(c *otel.OTLPConfig) { c.Headers = "authorization" }, "key=value"},
		// Without a port the gRPC exporter dialled 443, in plaintext too.
		{func(c *otel.OTLPConfig) { c.Endpoint = "http://collector" }, `endpoint "http://collector" has no port: add it, such as http://collector:4317`},
		{func(c *otel.OTLPConfig) { c.Endpoint = "http://[::1]" }, "http://[::1]:4317"},
		{func(c *otel.OTLPConfig) { c.Timeout = 0 }, "timeout must be positive"},
	} {
		cfg := otel.DefaultOTLPConfig()
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error containing %q", cfg, err, c.want)
		}
	}
	// A header value never appears in the error: it may be a secret.
	cfg := otel.DefaultOTLPConfig()
	cfg.Headers = "a=b,secret-token-without-key"
	if err := cfg.Validate(); err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("headers error %v shows the value", err)
	}
	// A header the exporters cannot send is refused at the start, not
	// by every export (gRPC: "header key ... contains illegal
	// characters"; HTTP: "invalid header field"), without echoing it.
	for _, h := range []string{"x-ok=1,Bad Key=v", "authorization: Bearer s3cr3t=x", "x-token=s3cr3t\x01", "x-token=s3cr\u00e9t"} {
		cfg := otel.DefaultOTLPConfig()
		cfg.Headers = h
		err := cfg.Validate()
		if err == nil || strings.Contains(err.Error(), "s3cr") || strings.Contains(err.Error(), "Bad Key") {
			t.Errorf("headers %q: got %v, want an error that does not show the header", h, err)
		}
	}
	// A TLS collector behind an HTTPS load balancer: https:// without a
	// port is 443, as the exporters dial it.
	cfg = otel.DefaultOTLPConfig()
	cfg.Endpoint = "https://collector.example.com"
	if err := cfg.Validate(); err != nil {
		t.Errorf("endpoint %q: %v", cfg.Endpoint, err)
	}
	cfg = otel.DefaultOTLPConfig()
	cfg.Headers = "Authorization=Basic dXNlcjpwYXNz==, x-scope.org_id=tenant-1"
	if err := cfg.Validate(); err != nil {
		t.Errorf("headers %q: %v", cfg.Headers, err)
	}
	// A user name and password in the endpoint would not be sent (the
	// exporters dial the host and port only): refused, pointing at
	// otlp.headers, and never echoed, whatever else is wrong with the URL.
	for _, c := range []struct{ endpoint, want string }{
		{"https://user:Zq9Xk7@collector:4317", `endpoint "https://user:REDACTED@collector:4317" must not carry a user name or password`},
		{"https://Zq9Xk7@collector:4317", `endpoint "https://REDACTED@collector:4317" must not carry a user name or password`},
		{"https://user:Zq9Xk7@collector:99999", `endpoint "https://user:REDACTED@collector:99999"`},
		{"https://user:Zq9Xk7@collector:4317/v1/traces", `endpoint "https://user:REDACTED@collector:4317/v1/traces"`},
		{"https://user:Zq9/Xk7@collector:4317", `endpoint "https://user:REDACTED@collector:4317"`},
		{"user:Zq9Xk7@collector:4317", `endpoint "user:REDACTED@collector:4317" must be a URL`},
		{"http://user:Zq9Xk7@[::1", `endpoint "http://user:REDACTED@[::1" must be a URL`},
	} {
		cfg := otel.DefaultOTLPConfig()
		cfg.Endpoint = c.endpoint
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "Zq9") || strings.Contains(err.Error(), "Xk7") {
			t.Errorf("endpoint %s: got %v, want an error containing %q and not the password", c.endpoint, err, c.want)
		}
	}
	cfg = otel.DefaultOTLPConfig()
	cfg.Endpoint = "https://user:Zq9Xk7@collector:4317"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "otlp.headers") {
		t.Errorf("userinfo refusal %v does not point at otlp.headers", err)
	}
	tr := otel.DefaultTracingConfig()
	tr.SampleRatio = 1.5
	if err := tr.Validate(); err == nil {
		t.Error("sampleRatio 1.5 accepted")
	}
	m := otel.DefaultMetricsConfig()
	m.Topics = []string{"a", " "}
	if err := m.Validate(); err == nil {
		t.Error("an empty topic name accepted")
	}
}

// Off means no tracer and no meter: the adapters then skip every span and
// instrument call.
func TestProviderOff(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.MetricsConfig{}, Tracing: otel.TracingConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Tracer() != nil || p.Meter() != nil || p.MetricsHandler() != nil || p.Telemetry().Active() {
		t.Error("a provider with tracing and metrics off records something")
	}
	h := p.StorageHooks()
	if h.Send != nil || h.Durable != nil || h.Fsync != nil || h.DeadLetter != nil {
		t.Error("storage hooks installed with tracing and metrics off")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLogHandlerAddsRequestIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(otel.LogHandler(slog.NewTextHandler(&buf, nil)))
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	ctx = ports.WithRequestInfo(ctx, ports.RequestInfo{ClientID: "client-1", RequestID: "req-9"})
	log.InfoContext(ctx, "hello")
	got := buf.String()
	for _, want := range []string{"trace_id=4bf92f3577b34da6a3ce929d0e0e4736", "span_id=00f067aa0ba902b7", "client_id=client-1", "request_id=req-9"} {
		if !strings.Contains(got, want) {
			t.Errorf("log line %q lacks %s", got, want)
		}
	}
	buf.Reset()
	log.InfoContext(ctx, "again", "client_id", "explicit")
	if strings.Count(buf.String(), "client_id=") != 1 {
		t.Errorf("client_id repeated: %q", buf.String())
	}
	buf.Reset()
	log.Info("no context")
	if strings.Contains(buf.String(), "trace_id") {
		t.Errorf("a record without a request has a trace id: %q", buf.String())
	}
}

type fakeBroker struct{ ports.Broker }

func (fakeBroker) Send(_ context.Context, _ domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	return []domain.SendReceipt{{MessageID: msgs[0].ID}}, nil
}

func (fakeBroker) Ack(context.Context, ports.AckRequest) error {
	return domain.Errorf(domain.ReasonInvalidReceiptHandle, "stale")
}

// Broker calls get a span only inside a recorded request span.
func TestTraceBroker(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("test")
	b := otel.TraceBroker(fakeBroker{}, tr, trace.SpanKindInternal)
	q := domain.QueueRef{Topic: "t", QueueID: 3}
	msgs := []domain.Message{{ID: "m1", Topic: "t"}}
	if _, err := b.Send(context.Background(), q, msgs); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("a call outside a request made %d spans", n)
	}
	ctx, parent := tr.Start(context.Background(), "send t")
	if _, err := b.Send(ctx, q, msgs); err != nil {
		t.Fatal(err)
	}
	_ = b.Ack(ctx, ports.AckRequest{Topic: "t", Group: "g", MessageID: "m1"})
	parent.End()
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want broker send, broker ack and the parent", len(spans))
	}
	send, ack := spans[0], spans[1]
	if send.Name() != "broker send t" || send.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("span %q parent %v", send.Name(), send.Parent().SpanID())
	}
	attrs := map[string]string{}
	for _, a := range send.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["messaging.destination.partition.id"] != "3" || attrs["messaging.message.id"] != "m1" || attrs["messaging.system"] != "rocketmq" {
		t.Errorf("broker send attributes %v", attrs)
	}
	if ack.Status().Code.String() != "Error" || ack.Status().Description != domain.ReasonInvalidReceiptHandle.String() {
		t.Errorf("failed ack status %v", ack.Status())
	}
	if otel.TraceBroker(fakeBroker{}, nil, trace.SpanKindInternal) != (fakeBroker{}) {
		t.Error("without a tracer the broker is not returned as it is")
	}
}

func (fakeBroker) ForwardToDeadLetter(context.Context, ports.AckRequest) error {
	return &ports.ForwardRefusedError{Reason: ports.ForwardForgedHandle}
}

// A dead-letter forward the broker refused for its handle (which the
// application answers OK and audits) is not a failed call: its span
// carried an error status (INTERNAL).
func TestTraceBrokerRefusedForwardIsNoError(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tr := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	b := otel.TraceBroker(fakeBroker{}, tr, trace.SpanKindInternal)
	ctx, parent := tr.Start(context.Background(), "forward")
	_ = b.ForwardToDeadLetter(ctx, ports.AckRequest{Topic: "t", Group: "g", MessageID: "m1"})
	parent.End()
	spans := rec.Ended()
	if len(spans) != 2 || spans[0].Name() != "broker forward_to_dlq t" {
		t.Fatalf("spans %v", spans)
	}
	if st := spans[0].Status(); st.Code.String() != "Unset" {
		t.Errorf("refused forward span status %v, want unset", st)
	}
}

// The storage hooks make spans under a recorded span only, and fsyncs go
// to the histogram.
func TestStorageHooks(t *testing.T) {
	p, err := otel.New(otel.Options{Tracing: otel.TracingConfig{Enabled: true, SampleRatio: 1}, OTLP: otel.OTLPConfig{Protocol: "grpc", Endpoint: "http://127.0.0.1:1", Timeout: time.Second},
		Metrics: otel.MetricsConfig{Enabled: true, Prometheus: true, MaxTopics: 1, MaxGroups: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = p.Shutdown(ctx) // the collector is unreachable: the export fails
	}()
	h := p.StorageHooks()
	if h.Send == nil || h.Durable == nil || h.Fsync == nil {
		t.Fatal("hooks missing")
	}
	if ctx, done := h.Send(context.Background(), 1); done != nil || ctx == nil {
		t.Error("a send outside a request span got a span")
	}
	// Unsampled requests (most, at a low ratio) cost nothing here.
	bg := context.Background()
	if allocs := testing.AllocsPerRun(100, func() {
		_, _ = h.Send(bg, 1)
		_ = h.Durable(bg)
	}); allocs != 0 {
		t.Errorf("%.0f allocations per send and durable wait outside a recorded span, want 0", allocs)
	}
	ctx, span := p.Tracer().Start(context.Background(), "send t")
	sctx, done := h.Send(ctx, 2)
	if done == nil || trace.SpanFromContext(sctx).SpanContext().SpanID() == span.SpanContext().SpanID() {
		t.Fatal("no store span under a recorded request span")
	}
	if d := h.Durable(sctx); d == nil {
		t.Error("no durable-wait span")
	} else {
		d(nil)
	}
	done(nil)
	span.End()
	h.Fsync(3*time.Millisecond, nil)
}
