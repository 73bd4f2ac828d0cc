package otel

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
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

	mu    sync.Mutex
	resID string // the instance id res was made for
	res   *resource.Resource
}

// Export implements sdkmetric.Exporter.
func (e *labelledExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	id := e.labels.nodeID()
	rm.Resource = e.resource(rm.Resource, id)
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

// resource is res with service.instance.id set to id (made once per id).
func (e *labelledExporter) resource(res *resource.Resource, id string) *resource.Resource {
	if id == e.labels.info.InstanceID {
		return res
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.res == nil || e.resID != id {
		merged, err := resource.Merge(res, resource.NewSchemaless(semconv.ServiceInstanceID(id)))
		if err != nil {
			return res
		}
		e.res, e.resID = merged, id
	}
	return e.res
}

// pointLabels returns what relabel adds to a data point of the series
// named name.
func (e *labelledExporter) pointLabels(name, id string) func(attribute.Set) attribute.Set {
	nodeType, cluster := e.labels.forSeries(name)
	upstream := strings.HasPrefix(name, "rocketmq_")
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
