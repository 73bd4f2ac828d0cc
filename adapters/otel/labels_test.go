package otel_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/adapters/otel"
)

// scrapeSeries GETs /metrics and returns, for each series with a topic or
// consumer_group label, "name{topic,group}" and its value (a histogram's
// count).
func scrapeSeries(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var topic, group string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "topic":
					topic = l.GetValue()
				case "consumer_group":
					group = l.GetValue()
				}
			}
			if topic == "" && group == "" {
				continue
			}
			v := m.GetCounter().GetValue()
			if m.Histogram != nil {
				v = float64(m.GetHistogram().GetSampleCount())
			}
			out[name+"{"+topic+","+group+"}"] += v
		}
	}
	return out
}

// Through the Prometheus exporter's /metrics: once a topic and a group are
// forgotten (deleted), none of their series is on the page any more, in
// any of the metrics labelled by topic or group (counters and the message
// size histogram); the names that take their slots start from zero.
func TestPrometheusForgetsDeletedNames(t *testing.T) {
	p, err := otel.New(otel.Options{
		Metrics: otel.MetricsConfig{Enabled: true, Prometheus: true, MaxTopics: 2, MaxGroups: 1},
		Info:    otel.Info{Mode: "local"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	srv := httptest.NewServer(p.MetricsHandler())
	defer srv.Close()
	m := p.Telemetry().Metrics
	ctx := context.Background()
	use := func(topic, group string) {
		m.MessageIn(ctx, topic, "normal", 100)
		m.MessagesOut(ctx, topic, group, false, 1, 100)
		m.Settle(ctx, observe.SettledAck, topic, group, 1)
	}
	use("old", "gold")
	use("keep", "gold")
	use("late", "glate") // every slot taken: _other
	check := func(what string, want map[string]float64, absent ...string) {
		t.Helper()
		got := scrapeSeries(t, srv.URL)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", what, k, got[k], v)
			}
		}
		for _, name := range absent {
			for k := range got {
				if strings.Contains(k, name) {
					t.Errorf("%s: %s still on /metrics", what, k)
				}
			}
		}
		if t.Failed() {
			keys := make([]string, 0, len(got))
			for k := range got {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			t.Fatalf("series: %v", keys)
		}
	}
	check("before", map[string]float64{
		"rocketmq_messages_in_total{old,}": 1, "rocketmq_message_size{old,}": 1, "rocketmq_messages_out_total{old,gold}": 1,
		"rmqproxy_messages_acked_total{old,gold}": 1, "rocketmq_messages_in_total{_other,}": 1,
	})

	p.ForgetTopic("old")
	p.ForgetGroup("gold")
	use("late", "glate") // takes the freed slots
	use("late", "glate")
	check("after the delete", map[string]float64{
		"rocketmq_messages_in_total{late,}": 2, "rocketmq_throughput_in_total{late,}": 200, "rocketmq_message_size{late,}": 2,
		"rocketmq_messages_out_total{late,glate}": 2, "rmqproxy_messages_acked_total{late,glate}": 2,
		"rocketmq_messages_in_total{keep,}": 1, "rocketmq_messages_in_total{_other,}": 1,
		"rocketmq_messages_out_total{_other,_other}": 1,
	}, "{old,", ",gold}")
}

// rocketmq_rpc_latency carries the trace of a sampled request as an
// exemplar, which Prometheus reads only in the OpenMetrics format: /metrics
// must offer it to a scraper that asks for it (Accept), as
// docs/observability.md promises exemplars there; it answered the text
// format, without them, whatever the scraper asked.
func TestPrometheusServesExemplars(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.MetricsConfig{Enabled: true, Prometheus: true, MaxTopics: 2, MaxGroups: 2}, Info: otel.Info{Mode: "local"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	ctx, span := tp.Tracer("test").Start(context.Background(), "send t")
	p.Telemetry().Metrics.RPC(ctx, "grpc", "SendMessage", "OK", false, 2*time.Millisecond)
	span.End()
	srv := httptest.NewServer(p.MetricsHandler())
	defer srv.Close()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type %q, want OpenMetrics", ct)
	}
	want := `trace_id="` + span.SpanContext().TraceID().String() + `"`
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "rocketmq_rpc_latency_milliseconds_bucket") && strings.Contains(line, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("no rocketmq_rpc_latency bucket with the exemplar %s:\n%s", want, body)
	}
}

// TestPrometheusCarriesUpstreamConstantLabels: in cluster mode every
// series carries node_type proxy and the node_id (the instance id, with
// the bound port in place of a configured 0), and the cluster label but
// on the series the RocketMQ brokers export too (their totals would count
// each message twice in a panel summing a cluster); rocketmq_rpc_latency
// is rocketmq_rpc_latency_milliseconds, the Apache proxy's Prometheus name;
// the series of a topic or group say is_system, which dashboards filter
// on.
func TestPrometheusCarriesUpstreamConstantLabels(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.MetricsConfig{Enabled: true, Prometheus: true, MaxTopics: 2, MaxGroups: 2},
		Info: otel.Info{Mode: "cluster", InstanceID: "h:0", Cluster: "C1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Shutdown(context.Background()) }()
	p.BoundPort(4242)
	m := p.Telemetry().Metrics
	m.RPC(context.Background(), "grpc", "SendMessage", "OK", false, time.Millisecond)
	m.MessageIn(context.Background(), "t", "normal", 10)
	srv := httptest.NewServer(p.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"rocketmq_rpc_latency_milliseconds": {"cluster": "C1", "node_type": "proxy", "node_id": "h:4242"},
		"rocketmq_proxy_up":                 {"cluster": "C1", "node_type": "proxy", "node_id": "h:4242", "proxy_mode": "cluster"},
		"rocketmq_messages_in_total":        {"cluster": "", "node_type": "proxy", "node_id": "h:4242", "is_system": "false"},
		"target_info":                       {"service_instance_id": "h:4242", "node_id": ""},
	}
	for name, labels := range want {
		f := fams[name]
		if f == nil || len(f.GetMetric()) == 0 {
			t.Errorf("no %s", name)
			continue
		}
		have := map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				t.Errorf("%s%v: %s=%q, want %q", name, have, k, have[k], v)
			}
		}
	}
	if fams["rocketmq_rpc_latency"] != nil {
		t.Errorf("rocketmq_rpc_latency on /metrics, want rocketmq_rpc_latency_milliseconds only")
	}
}
