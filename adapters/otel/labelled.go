package otel

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// labelledProducer hands the metrics labelled by topic or consumer group
// (observe.LabelledCounters and rocketmq_message_size) to the SDK's
// readers as an external producer (sdkmetric.Producer), read from
// observe.Metrics' bounded table when the metrics are collected: only the
// label values still in use are exported, each series with the time it
// was made as its start. The SDK's own instruments would either keep a
// deleted topic's series for ever (synchronous, cumulative) or give a
// topic created again the start of the first one (asynchronous).
type labelledProducer struct {
	m atomic.Pointer[observe.Metrics] // nil until the instruments exist
}

// Produce implements sdkmetric.Producer.
func (p *labelledProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	m := p.m.Load()
	counters := m.Counters(nil)
	sizes := m.MessageSizes(nil)
	if len(counters) == 0 && len(sizes) == 0 {
		return nil, nil
	}
	now := time.Now()
	var byCounter [len(observe.LabelledCounters)][]metricdata.DataPoint[int64]
	for _, c := range counters {
		byCounter[c.Counter] = append(byCounter[c.Counter], metricdata.DataPoint[int64]{Attributes: c.Attrs, StartTime: c.Start, Time: now, Value: c.Value})
	}
	var out []metricdata.Metrics
	for i, pts := range byCounter {
		if len(pts) == 0 {
			continue // as the SDK, no metric without a point
		}
		in := observe.LabelledCounters[i]
		out = append(out, metricdata.Metrics{Name: in.Name, Description: in.Description, Unit: in.Unit,
			Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: pts}})
	}
	if len(sizes) > 0 {
		pts := make([]metricdata.HistogramDataPoint[int64], len(sizes))
		for i, h := range sizes {
			pts[i] = metricdata.HistogramDataPoint[int64]{
				Attributes: h.Attrs, StartTime: h.Start, Time: now,
				Count: h.Count, Sum: h.Sum, Bounds: observe.MessageSizeBuckets, BucketCounts: h.Counts,
				Min: metricdata.NewExtrema(h.Min), Max: metricdata.NewExtrema(h.Max),
			}
		}
		in := observe.MessageSize
		out = append(out, metricdata.Metrics{Name: in.Name, Description: in.Description, Unit: in.Unit,
			Data: metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality, DataPoints: pts}})
	}
	return []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: instrumentationName}, Metrics: out}}, nil
}
