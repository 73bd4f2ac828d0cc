package e2e_test

import (
	"slices"
	"testing"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestMetricsMatchTheApacheProxysPrometheusNames scrapes a real rmqproxy
// after a send and checks what a dashboard or alert rule written against
// an Apache RocketMQ 5.5.0 proxy and broker queries (their OpenTelemetry
// Java Prometheus exporter, scraped for reference): the RPC latency
// histogram is rocketmq_rpc_latency_milliseconds (the exporter appends
// the unit), with upstream's bucket bounds and bounds for long polls
// beyond 30 s, which histogram_quantile would otherwise put at 30 s.
func TestMetricsMatchTheApacheProxysPrometheusNames(t *testing.T) {
	cfg := testenv.Config(t)
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "compat-metrics")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, p)

	if _, ok := fams["rocketmq_rpc_latency"]; ok {
		t.Errorf("/metrics has rocketmq_rpc_latency; the Apache proxy's Prometheus name is rocketmq_rpc_latency_milliseconds")
	}
	lat := fams["rocketmq_rpc_latency_milliseconds"]
	if lat == nil || !hasSeries(fams, "rocketmq_rpc_latency_milliseconds", map[string]string{"request_code": "SendMessage", "response_code": "OK"}) {
		t.Errorf("no rocketmq_rpc_latency_milliseconds{request_code=SendMessage,response_code=OK} series")
	} else {
		var bounds []float64
		for _, b := range lat.GetMetric()[0].GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		for _, want := range []float64{1, 3, 5, 7, 10, 100, 1000, 2000, 3000, 60000} {
			if !slices.Contains(bounds, want) {
				t.Errorf("rocketmq_rpc_latency_milliseconds buckets %v lack %v ms", bounds, want)
			}
		}
	}
}
