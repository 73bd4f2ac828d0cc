package otel

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.30.0"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/domain"
)

// constantLabels decides upstream's constant labels for every exported
// series, the same way for /metrics ([compatGatherer]) and OTLP
// ([labelledExporter]).
type constantLabels struct {
	info    Info
	bound   *atomic.Pointer[string] // the instance id with the bound port, once known
	cluster string
}

// nodeID is the instance id, with the bound port once it is known.
func (c constantLabels) nodeID() string {
	if b := c.bound.Load(); b != nil {
		return *b
	}
	return c.info.InstanceID
}

// forSeries returns the node_type of the series named name and its
// cluster label ("" for none): local mode reports as the Apache proxy's
// embedded broker (rocketmq_proxy_up as the proxy); cluster mode as a
// proxy, without cluster on the series the brokers export too.
func (c constantLabels) forSeries(name string) (nodeType, cluster string) {
	local := c.info.Mode != "cluster"
	nodeType = NodeTypeProxy
	if local && name != "rocketmq_proxy_up" {
		nodeType = NodeTypeBroker
	}
	if local || !brokerCopies[name] {
		cluster = c.cluster
	}
	return nodeType, cluster
}

// isSystem is upstream's is_system of a series of topic or group (either
// may be ""): whether it is one of RocketMQ's own.
func isSystem(topic, group string) bool {
	return topic != "" && domain.IsSystemTopic(topic) || group != "" && domain.IsSystemGroup(group)
}

// labelledExporter puts the constant labels, and is_system on the
// rocketmq_* series of a topic or group, on every data point it exports,
// as upstream's OTLP exporter does (its attributes are the labels of its
// Prometheus series), and the bound port in the resource's
// service.instance.id.
type labelledExporter struct {
	sdkmetric.Exporter
	labels constantLabels
	res    boundResource
}

// Export implements sdkmetric.Exporter.
func (e *labelledExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	id := e.labels.nodeID()
	rm.Resource = e.res.of(rm.Resource, e.labels.info.InstanceID, id)
	for i := range rm.ScopeMetrics {
		for j := range rm.ScopeMetrics[i].Metrics {
			m := &rm.ScopeMetrics[i].Metrics[j]
			add := e.pointLabels(m.Name, id)
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				relabel(d.DataPoints, func(p *metricdata.DataPoint[int64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.Gauge[float64]:
				relabel(d.DataPoints, func(p *metricdata.DataPoint[float64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.Sum[int64]:
				relabel(d.DataPoints, func(p *metricdata.DataPoint[int64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.Sum[float64]:
				relabel(d.DataPoints, func(p *metricdata.DataPoint[float64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.Histogram[int64]:
				relabel(d.DataPoints, func(p *metricdata.HistogramDataPoint[int64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.Histogram[float64]:
				relabel(d.DataPoints, func(p *metricdata.HistogramDataPoint[float64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.ExponentialHistogram[int64]:
				relabel(d.DataPoints, func(p *metricdata.ExponentialHistogramDataPoint[int64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.ExponentialHistogram[float64]:
				relabel(d.DataPoints, func(p *metricdata.ExponentialHistogramDataPoint[float64]) *attribute.Set { return &p.Attributes }, add)
			case metricdata.Summary:
				relabel(d.DataPoints, func(p *metricdata.SummaryDataPoint) *attribute.Set { return &p.Attributes }, add)
			}
		}
	}
	return e.Exporter.Export(ctx, rm)
}

// pointLabels returns what relabel adds to a data point of the series
// named name.
func (e *labelledExporter) pointLabels(name, id string) func(attribute.Set) attribute.Set {
	nodeType, cluster := e.labels.forSeries(name)
	upstream := saysIsSystem(name)
	return func(have attribute.Set) attribute.Set {
		kvs := have.ToSlice()
		n := len(kvs)
		if upstream {
			topic, _ := have.Value(observe.LabelTopic)
			group, _ := have.Value(observe.LabelConsumerGroup)
			if _, ok := have.Value(labelIsSystem); !ok && (topic.AsString() != "" || group.AsString() != "") {
				kvs = append(kvs, attribute.String(labelIsSystem, strconv.FormatBool(isSystem(topic.AsString(), group.AsString()))))
			}
		}
		for _, kv := range [...]attribute.KeyValue{attribute.String(LabelNodeID, id), attribute.String(LabelNodeType, nodeType), attribute.String(LabelCluster, cluster)} {
			// An empty value is no label, as on /metrics.
			if kv.Value.AsString() != "" && !have.HasValue(kv.Key) {
				kvs = append(kvs, kv)
			}
		}
		if len(kvs) == n {
			return have
		}
		return attribute.NewSet(kvs...)
	}
}

// relabel sets the attributes of every point of pts (attrs says where
// they are) to what add makes of them.
func relabel[P any](pts []P, attrs func(*P) *attribute.Set, add func(attribute.Set) attribute.Set) {
	for i := range pts {
		a := attrs(&pts[i])
		*a = add(*a)
	}
}

// boundResource is a resource with the bound port in its
// service.instance.id, made once for the id it was last asked for.
type boundResource struct {
	mu  sync.Mutex
	id  string
	res *resource.Resource
}

// of returns base, made with the instance id configured, with id as its
// service.instance.id instead.
func (b *boundResource) of(base *resource.Resource, configured, id string) *resource.Resource {
	if id == configured {
		return base
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.res == nil || b.id != id {
		merged, err := resource.Merge(base, resource.NewSchemaless(semconv.ServiceInstanceID(id)))
		if err != nil {
			return base
		}
		b.res, b.id = merged, id
	}
	return b.res
}

// boundSpanExporter exports spans with the bound port in their resource's
// service.instance.id once it is known (the tracer's resource is made
// before the listener binds).
type boundSpanExporter struct {
	sdktrace.SpanExporter
	labels constantLabels
	res    boundResource
}

// ExportSpans implements sdktrace.SpanExporter.
func (e *boundSpanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	id := e.labels.nodeID()
	if id == e.labels.info.InstanceID || len(spans) == 0 {
		return e.SpanExporter.ExportSpans(ctx, spans)
	}
	res := e.res.of(spans[0].Resource(), e.labels.info.InstanceID, id)
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = withResource{ReadOnlySpan: s, res: res}
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

// withResource is a span with another resource.
type withResource struct {
	sdktrace.ReadOnlySpan
	res *resource.Resource
}

func (w withResource) Resource() *resource.Resource { return w.res }
