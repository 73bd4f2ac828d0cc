package otel

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
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
	delays := m.DelayLatencies(nil)
	if len(counters) == 0 && len(sizes) == 0 && len(delays) == 0 {
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
	out = appendHistogram(out, observe.MessageSize, observe.MessageSizeBuckets, sizes, now)
	out = appendHistogram(out, observe.DelayLatency, observe.DelayLatencyBuckets, delays, now)
	return []metricdata.ScopeMetrics{{Scope: instrumentation.Scope{Name: instrumentationName}, Metrics: out}}, nil
}

// appendHistogram appends the histogram in over bounds with points hs,
// none when hs is empty.
func appendHistogram(out []metricdata.Metrics, in observe.Instrument, bounds []float64, hs []observe.SizeHistogram, now time.Time) []metricdata.Metrics {
	if len(hs) == 0 {
		return out
	}
	pts := make([]metricdata.HistogramDataPoint[int64], len(hs))
	for i, h := range hs {
		pts[i] = metricdata.HistogramDataPoint[int64]{
			Attributes: h.Attrs, StartTime: h.Start, Time: now,
			Count: h.Count, Sum: h.Sum, Bounds: bounds, BucketCounts: h.Counts,
			Min: metricdata.NewExtrema(h.Min), Max: metricdata.NewExtrema(h.Max),
		}
	}
	return append(out, metricdata.Metrics{Name: in.Name, Description: in.Description, Unit: in.Unit,
		Data: metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality, DataPoints: pts}})
}

// deltaProducer hands an exporter that asks for delta temporality
// (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE delta or lowmemory)
// the points of a labelledProducer, which are cumulative, as deltas: what
// was counted since its previous collection, as the SDK does for its own
// instruments, so that a backend taking only deltas gets every metric. It
// remembers the last cumulative point of each series it saw in the last
// collection only (a deleted topic's series is forgotten with it).
type deltaProducer struct {
	src          sdkmetric.Producer
	sums, histos bool // which kinds to turn into deltas

	mu   sync.Mutex
	prev map[deltaKey]deltaPoint
}

type deltaKey struct {
	name  string
	attrs attribute.Distinct
	start int64 // a series made again (a topic created again) is another
}

type deltaPoint struct {
	at      time.Time
	value   int64 // sums
	count   uint64
	sum     int64
	buckets []uint64
}

// newDeltaProducer returns src as exp wants it: src itself when exp takes
// cumulative sums and histograms.
func newDeltaProducer(src sdkmetric.Producer, exp sdkmetric.Exporter) sdkmetric.Producer {
	sums := exp.Temporality(sdkmetric.InstrumentKindCounter) == metricdata.DeltaTemporality
	histos := exp.Temporality(sdkmetric.InstrumentKindHistogram) == metricdata.DeltaTemporality
	if !sums && !histos {
		return src
	}
	return &deltaProducer{src: src, sums: sums, histos: histos}
}

// Produce implements sdkmetric.Producer.
func (d *deltaProducer) Produce(ctx context.Context) ([]metricdata.ScopeMetrics, error) {
	out, err := d.src.Produce(ctx)
	if err != nil {
		return out, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next := make(map[deltaKey]deltaPoint, len(d.prev))
	for i := range out {
		for j := range out[i].Metrics {
			m := &out[i].Metrics[j]
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				if !d.sums {
					continue
				}
				for k := range data.DataPoints {
					p := &data.DataPoints[k]
					key := deltaKey{m.Name, p.Attributes.Equivalent(), p.StartTime.UnixNano()}
					next[key] = deltaPoint{at: p.Time, value: p.Value}
					if prev, ok := d.prev[key]; ok {
						p.StartTime, p.Value = prev.at, p.Value-prev.value
					}
				}
				data.Temporality = metricdata.DeltaTemporality
				m.Data = data
			case metricdata.Histogram[int64]:
				if !d.histos {
					continue
				}
				for k := range data.DataPoints {
					p := &data.DataPoints[k]
					key := deltaKey{m.Name, p.Attributes.Equivalent(), p.StartTime.UnixNano()}
					next[key] = deltaPoint{at: p.Time, count: p.Count, sum: p.Sum, buckets: slices.Clone(p.BucketCounts)}
					prev, ok := d.prev[key]
					if !ok || len(prev.buckets) != len(p.BucketCounts) {
						continue
					}
					p.StartTime, p.Count, p.Sum = prev.at, p.Count-prev.count, p.Sum-prev.sum
					for b := range p.BucketCounts {
						p.BucketCounts[b] -= prev.buckets[b]
					}
					// The extremes of the interval alone are not known.
					p.Min, p.Max = metricdata.Extrema[int64]{}, metricdata.Extrema[int64]{}
				}
				data.Temporality = metricdata.DeltaTemporality
				m.Data = data
			}
		}
	}
	d.prev = next
	return out, nil
}
