package otel

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// sizeProducer hands the message size histogram (rocketmq_message_size)
// to the SDK's readers as an external producer. The histogram is labelled
// by topic, and the SDK's synchronous histogram would keep a deleted
// topic's series for ever; the counts live in observe.Metrics' table
// instead, which reports only the label values still in use.
type sizeProducer struct {
	m atomic.Pointer[observe.Metrics] // nil until the instruments exist
}

// Produce implements sdkmetric.Producer.
func (p *sizeProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	hs := p.m.Load().MessageSizes(nil)
	if len(hs) == 0 {
		return nil, nil
	}
	now := time.Now()
	pts := make([]metricdata.HistogramDataPoint[int64], len(hs))
	for i, h := range hs {
		pts[i] = metricdata.HistogramDataPoint[int64]{
			Attributes: h.Attrs, StartTime: h.Start, Time: now,
			Count: h.Count, Sum: h.Sum, Bounds: observe.MessageSizeBuckets, BucketCounts: h.Counts,
			Min: metricdata.NewExtrema(h.Min), Max: metricdata.NewExtrema(h.Max),
		}
	}
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: instrumentationName},
		Metrics: []metricdata.Metrics{{
			Name: observe.MetricMessageSize, Description: observe.MessageSizeDescription, Unit: observe.MessageSizeUnit,
			Data: metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality, DataPoints: pts},
		}},
	}}, nil
}
