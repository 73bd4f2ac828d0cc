package testenv

import (
	"context"
	"encoding/hex"
	"net"
	"strconv"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// OTLPCollector is an OTLP/gRPC trace receiver in the test process: it keeps
// every span exported to it. Start one with [StartOTLPCollector] and point
// otlp.endpoint at [OTLPCollector.Endpoint].
type OTLPCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr  string
	mu    sync.Mutex
	spans []Span
}

// Span is one received span, flattened for assertions.
type Span struct {
	Name          string
	Kind          tracepb.Span_SpanKind
	TraceID       string // hex
	SpanID        string
	ParentSpanID  string
	Attrs         map[string]string // values as strings; arrays joined by ","
	Links         []SpanLink
	StatusCode    tracepb.Status_StatusCode
	ResourceAttrs map[string]string
}

// SpanLink is a link of a received span.
type SpanLink struct {
	TraceID, SpanID string
	Attrs           map[string]string
}

// StartOTLPCollector serves an OTLP trace receiver on 127.0.0.1 until the test
// ends.
func StartOTLPCollector(t testing.TB) *OTLPCollector {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &OTLPCollector{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return c
}

// Endpoint is the URL for otlp.endpoint (plaintext gRPC).
func (c *OTLPCollector) Endpoint() string { return "http://" + c.addr }

// Export implements the OTLP trace service.
func (c *OTLPCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{Name: s.GetName(), Kind: s.GetKind(), TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Attrs: attrMap(s.GetAttributes()), StatusCode: s.GetStatus().GetCode(), ResourceAttrs: res}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, SpanLink{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId()), Attrs: attrMap(l.GetAttributes())})
				}
				c.spans = append(c.spans, sp)
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// Spans returns the spans received so far.
func (c *OTLPCollector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = anyString(kv.GetValue())
	}
	return m
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		if x.BoolValue {
			return "true"
		}
		return "false"
	case *commonpb.AnyValue_ArrayValue:
		s := ""
		for i, e := range x.ArrayValue.GetValues() {
			if i > 0 {
				s += ","
			}
			s += anyString(e)
		}
		return s
	}
	return v.String()
}
