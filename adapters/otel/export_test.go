package otel_test

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/adapters/otel"
)

// metricsReceiver is an OTLP/gRPC metrics receiver keeping the metric
// names it was sent and the headers of the last export, and the series
// with a topic of the last export ("name{topic}") with their start times.
type metricsReceiver struct {
	colmetricspb.UnimplementedMetricsServiceServer
	mu      sync.Mutex
	names   map[string]bool
	headers metadata.MD
	topics  map[string]uint64
	last    *colmetricspb.ExportMetricsServiceRequest
}

// startMetricsReceiver serves a metricsReceiver over OTLP/gRPC on a
// loopback port until the test ends; it returns the receiver and its
// endpoint URL.
func startMetricsReceiver(t *testing.T) (rec *metricsReceiver, endpoint string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec = &metricsReceiver{names: map[string]bool{}}
	srv := grpc.NewServer()
	colmetricspb.RegisterMetricsServiceServer(srv, rec)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return rec, "http://" + lis.Addr().String()
}

func (r *metricsReceiver) Export(ctx context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers, _ = metadata.FromIncomingContext(ctx)
	r.last = req
	r.topics = map[string]uint64{}
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				r.names[m.GetName()] = true
				r.addTopics(m)
			}
		}
	}
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

func (r *metricsReceiver) addTopics(m *metricspb.Metric) {
	add := func(attrs []*commonpb.KeyValue, start uint64) {
		for _, a := range attrs {
			if a.GetKey() == "topic" {
				r.topics[m.GetName()+"{"+a.GetValue().GetStringValue()+"}"] = start
			}
		}
	}
	for _, p := range m.GetSum().GetDataPoints() {
		add(p.GetAttributes(), p.GetStartTimeUnixNano())
	}
	for _, p := range m.GetHistogram().GetDataPoints() {
		add(p.GetAttributes(), p.GetStartTimeUnixNano())
	}
}

// lastTopics returns the topic series of the last export.
func (r *metricsReceiver) lastTopics() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.topics)
}

// startOTLPMetrics returns a provider pushing metrics over OTLP/gRPC to
// endpoint with headers (exported only when a test flushes: the interval
// is an hour), shut down when the test ends.
func startOTLPMetrics(t *testing.T, endpoint, headers string) *otel.Provider {
	t.Helper()
	p, err := otel.New(otel.Options{
		OTLP:    otel.OTLPConfig{Protocol: otel.ProtocolGRPC, Endpoint: endpoint, Headers: headers, Timeout: 5 * time.Second},
		Metrics: otel.MetricsConfig{Enabled: true, OTLP: true, OTLPInterval: time.Hour, MaxTopics: 10, MaxGroups: 10},
		Info:    otel.Info{Mode: "local"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

// Metrics are pushed over OTLP/gRPC with the configured headers.
func TestMetricsOverOTLPGRPC(t *testing.T) {
	rec, endpoint := startMetricsReceiver(t)

	p := startOTLPMetrics(t, endpoint, "authorization=Bearer t0ken")
	if p.MetricsHandler() != nil {
		t.Error("/metrics served with metrics.prometheus off")
	}
	p.Telemetry().Metrics.MessageIn(context.Background(), "t", "normal", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, name := range []string{"rocketmq_messages_in_total", "rocketmq_throughput_in_total", "rocketmq_message_size", "rocketmq_proxy_up"} {
		if !rec.names[name] {
			t.Errorf("%s not exported (got %v)", name, rec.names)
		}
	}
	if got := rec.headers.Get("authorization"); len(got) != 1 || got[0] != "Bearer t0ken" {
		t.Errorf("authorization header %v", got)
	}
}

// Spans are exported over OTLP/HTTP (protobuf) to /v1/traces, their
// resource naming the port the listener was bound to (the instance id was
// configured with port 0).
func TestTracesOverOTLPHTTP(t *testing.T) {
	var mu sync.Mutex
	var names, instances []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.instance.id" {
					instances = append(instances, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					names = append(names, s.GetName())
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	}))
	defer srv.Close()
	p, err := otel.New(otel.Options{
		OTLP:    otel.OTLPConfig{Protocol: otel.ProtocolHTTP, Endpoint: srv.URL, Timeout: 5 * time.Second},
		Tracing: otel.TracingConfig{Enabled: true, SampleRatio: 1},
		Info:    otel.Info{InstanceID: "h:0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	p.BoundPort(4242)
	_, span := p.Tracer().Start(context.Background(), "send t")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 1 || names[0] != "send t" {
		t.Errorf("exported spans %v, want [send t]", names)
	}
	if len(instances) != 1 || instances[0] != "h:4242" {
		t.Errorf("spans' service.instance.id %v, want [h:4242]", instances)
	}
}

// With a sample ratio of 0 a request without a sampling decision is not
// recorded; one whose caller sampled it is (parent-based).
func TestSamplingFollowsTheParent(t *testing.T) {
	p, err := otel.New(otel.Options{OTLP: otel.DefaultOTLPConfig(), Tracing: otel.TracingConfig{Enabled: true, SampleRatio: 0}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = p.Shutdown(ctx)
	}()
	if _, s := p.Tracer().Start(context.Background(), "root"); s.IsRecording() {
		t.Error("ratio 0 recorded a root span")
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	if _, s := p.Tracer().Start(trace.ContextWithRemoteSpanContext(context.Background(), sampled), "child"); !s.IsRecording() {
		t.Error("a child of a sampled caller was not recorded")
	}
}

// Over OTLP too, a forgotten (deleted) topic's series are no longer
// exported, and a topic created again with the same name has series with
// a start of their own.
func TestOTLPForgetsDeletedTopics(t *testing.T) {
	rec, endpoint := startMetricsReceiver(t)
	p := startOTLPMetrics(t, endpoint, "")
	flush := func() map[string]uint64 {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
		return rec.lastTopics()
	}
	m := p.Telemetry().Metrics
	m.MessageIn(context.Background(), "gone", "normal", 10)
	m.MessageIn(context.Background(), "kept", "normal", 10)
	first := flush()
	for _, k := range []string{"rocketmq_messages_in_total{gone}", "rocketmq_message_size{gone}", "rocketmq_messages_in_total{kept}"} {
		if first[k] == 0 {
			t.Fatalf("%s not exported: %v", k, first)
		}
	}
	p.ForgetTopic("gone")
	if got := flush(); len(got) != 3 || got["rocketmq_messages_in_total{gone}"] != 0 || got["rocketmq_message_size{gone}"] != 0 {
		t.Fatalf("after the delete: %v, want kept's three series only", got)
	}
	m.MessageIn(context.Background(), "gone", "normal", 10) // created again
	again := flush()
	for _, k := range []string{"rocketmq_messages_in_total{gone}", "rocketmq_message_size{gone}"} {
		if again[k] <= first[k] {
			t.Errorf("%s created again starts at %d, the first one at %d", k, again[k], first[k])
		}
	}
}

// lastSum returns the temporality and value of the point of the sum name
// (or the count of the histogram name) with topic in the last export
// (found false when there is none).
func (r *metricsReceiver) lastSum(name, topic string) (temporality metricspb.AggregationTemporality, value int64, found bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rm := range r.last.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				if m.GetName() != name {
					continue
				}
				for _, p := range m.GetSum().GetDataPoints() {
					for _, a := range p.GetAttributes() {
						if a.GetKey() == "topic" && a.GetValue().GetStringValue() == topic {
							return m.GetSum().GetAggregationTemporality(), p.GetAsInt(), true
						}
					}
				}
				for _, p := range m.GetHistogram().GetDataPoints() { // its count
					for _, a := range p.GetAttributes() {
						if a.GetKey() == "topic" && a.GetValue().GetStringValue() == topic {
							return m.GetHistogram().GetAggregationTemporality(), int64(p.GetCount()), true
						}
					}
				}
			}
		}
	}
	return 0, 0, false
}

// TestLabelledMetricsFollowDeltaTemporality: with
// OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta (what backends
// that take only delta sums ask for), the SDK's instruments were exported
// as deltas but the metrics labelled by topic or group (rmqproxy's own
// table) stayed cumulative, so that such a backend dropped or misread
// rocketmq_messages_in_total and the others. They follow the exporter's
// temporality now: each export carries what was counted since the last.
func TestLabelledMetricsFollowDeltaTemporality(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
	rec, endpoint := startMetricsReceiver(t)
	p := startOTLPMetrics(t, endpoint, "")
	m := p.Telemetry().Metrics
	flush := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []int{1, 2, 0, 4} {
		for range n {
			m.MessageIn(context.Background(), "t", "normal", 10)
		}
		flush()
		for _, name := range []string{"rocketmq_messages_in_total", "rocketmq_message_size"} {
			tmp, v, ok := rec.lastSum(name, "t")
			if !ok {
				t.Fatalf("export %d: no %s{topic=t}", i, name)
			}
			if tmp != metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA || v != int64(n) {
				t.Errorf("export %d after %d messages: %s{topic=t} is %v %d, want DELTA %d", i, n, name, tmp, v, n)
			}
		}
	}
}

// TestOTLPCarriesUpstreamConstantLabels: upstream's OTLP exporter puts the
// constant labels (cluster, node_type, node_id) and is_system on every data
// point, as on its Prometheus series; rmqproxy had them on /metrics only,
// so a dashboard fed over OTLP and filtering on {cluster="C1"} found
// nothing, and the resource named port 0 for a listener bound elsewhere.
func TestOTLPCarriesUpstreamConstantLabels(t *testing.T) {
	rec, endpoint := startMetricsReceiver(t)
	p, err := otel.New(otel.Options{
		OTLP:    otel.OTLPConfig{Protocol: otel.ProtocolGRPC, Endpoint: endpoint, Timeout: 5 * time.Second},
		Metrics: otel.MetricsConfig{Enabled: true, OTLP: true, OTLPInterval: time.Hour, MaxTopics: 10, MaxGroups: 10},
		Info:    otel.Info{Mode: "cluster", InstanceID: "h:0", Cluster: "C1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	p.BoundPort(4242)
	m := p.Telemetry().Metrics
	m.RPC(context.Background(), "grpc", "SendMessage", "OK", false, time.Millisecond)
	m.MessageIn(context.Background(), "RMQ_SYS_TRANS_HALF_TOPIC", "transaction", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"rocketmq_rpc_latency":       {"cluster": "C1", "node_type": "proxy", "node_id": "h:4242", "request_code": "SendMessage"},
		"rocketmq_proxy_up":          {"cluster": "C1", "node_type": "proxy", "node_id": "h:4242", "proxy_mode": "cluster"},
		"rocketmq_messages_in_total": {"cluster": "", "node_type": "proxy", "node_id": "h:4242", "is_system": "true"},
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, rm := range rec.last.GetResourceMetrics() {
		for _, a := range rm.GetResource().GetAttributes() {
			if a.GetKey() == "service.instance.id" && a.GetValue().GetStringValue() != "h:4242" {
				t.Errorf("resource service.instance.id %q, want h:4242", a.GetValue().GetStringValue())
			}
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, metric := range sm.GetMetrics() {
				labels, ok := want[metric.GetName()]
				if !ok {
					continue
				}
				delete(want, metric.GetName())
				var attrs []*commonpb.KeyValue
				switch {
				case metric.GetSum() != nil:
					attrs = metric.GetSum().GetDataPoints()[0].GetAttributes()
				case metric.GetGauge() != nil:
					attrs = metric.GetGauge().GetDataPoints()[0].GetAttributes()
				case metric.GetHistogram() != nil:
					attrs = metric.GetHistogram().GetDataPoints()[0].GetAttributes()
				}
				have := map[string]string{}
				for _, a := range attrs {
					have[a.GetKey()] = a.GetValue().GetStringValue()
				}
				for k, v := range labels {
					if have[k] != v {
						t.Errorf("%s%v: %s=%q, want %q", metric.GetName(), have, k, have[k], v)
					}
				}
			}
		}
	}
	for name := range want {
		t.Errorf("%s not exported", name)
	}
}
