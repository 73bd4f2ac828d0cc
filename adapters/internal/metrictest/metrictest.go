// Package metrictest reads what an OpenTelemetry reader collects, for the
// adapters' tests of the metrics they register.
package metrictest

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Metric collects from r and returns the metric called name, if any.
func Metric(t testing.TB, r sdkmetric.Reader, name string) (metricdata.Metrics, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// Int64Points returns the points of an int64 counter or gauge (none for
// another kind of metric).
func Int64Points(m metricdata.Metrics) []metricdata.DataPoint[int64] {
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		return d.DataPoints
	case metricdata.Gauge[int64]:
		return d.DataPoints
	}
	return nil
}
