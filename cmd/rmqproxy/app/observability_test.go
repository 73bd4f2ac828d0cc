package app

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/application"
)

// The language and version labels of the connection gauges come from the
// clients' metadata: a client making up a version per client id must not
// make a time series per client. Beyond the bounds, clients are counted
// under _other, none is lost.
func TestClientGaugesBoundClientLabels(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.DefaultMetricsConfig(), Info: otel.Info{Mode: ModeLocal}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	const clients = 1000
	var census []application.ClientCount
	for i := range clients {
		census = append(census,
			application.ClientCount{Type: application.ClientTypeProducer, Language: "JAVA", Version: fmt.Sprintf("5.0.%d", i), Count: 1},
			application.ClientCount{Type: application.ClientTypeSimpleConsumer, Language: fmt.Sprintf("LANG-%d", i), Version: "5.0.8", Group: "g", Count: 1},
			application.ClientCount{Type: application.ClientTypeProducer, Language: "GOLANG", Version: strings.Repeat("v", 10_000) + fmt.Sprint(i), Count: 1})
	}
	if err := observeClients(p.Meter(), p.Telemetry().Metrics.Labels(), func() []application.ClientCount { return census }); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"rocketmq_producer_connections": 2 * clients, "rocketmq_consumer_connections": clients} {
		f := families[name]
		if f == nil {
			t.Fatalf("%s not exported", name)
		}
		var sum float64
		longest := 0
		for _, m := range f.GetMetric() {
			sum += m.GetGauge().GetValue()
			for _, l := range m.GetLabel() {
				longest = max(longest, len(l.GetValue()))
			}
		}
		if longest > 64 {
			t.Errorf("%s has a %d-byte label value", name, longest)
		}
		if n := len(f.GetMetric()); n > 200 {
			t.Errorf("%s has %d series for %v clients: the client-declared language and version are not bounded", name, n, want)
		}
		if sum != want {
			t.Errorf("%s sums to %v, want %v (every client counted, under _other beyond the bounds)", name, sum, want)
		}
	}
}
