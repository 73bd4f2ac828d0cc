package otel

import (
	"slices"
	"strconv"
	"strings"

	promclient "github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

// Constant labels the Apache RocketMQ broker and proxy put on every series
// they export (BrokerMetricsConstant LABEL_CLUSTER_NAME, LABEL_NODE_TYPE,
// LABEL_NODE_ID), which dashboards group and filter by.
const (
	LabelCluster  = "cluster"
	LabelNodeType = "node_type"
	LabelNodeID   = "node_id"

	// NodeTypeBroker and NodeTypeProxy are the node_type values: local
	// mode reports its series as the Apache proxy's local mode does (its
	// embedded broker's, node_type broker; rocketmq_proxy_up is the
	// proxy's), cluster mode as a proxy.
	NodeTypeBroker = "broker"
	NodeTypeProxy  = "proxy"

	// PrometheusRPCLatency is the Prometheus name of rocketmq_rpc_latency:
	// upstream's exporter appends the unit (milliseconds) to it, and only
	// to it of the names rmqproxy shares (the others have no unit
	// upstream). Over OTLP it keeps its name and unit.
	PrometheusRPCLatency = observe.MetricRPCLatency + "_milliseconds"
)

// prometheusNames are the Prometheus names of the upstream instruments
// that have a unit, as upstream's Java exporter makes them (unit
// appended, seen in a scrape of an Apache RocketMQ 5.5.0 broker); names
// ending in their unit already (rocketmq_storage_flush_behind_bytes) keep
// theirs. Over OTLP they keep their names and units.
var prometheusNames = map[string]string{
	observe.MetricRPCLatency:                PrometheusRPCLatency,
	"rocketmq_storage_size":                 "rocketmq_storage_size_bytes",
	"rocketmq_storage_message_reserve_time": "rocketmq_storage_message_reserve_time_milliseconds",
	"rocketmq_consumer_lag_latency":         "rocketmq_consumer_lag_latency_milliseconds",
	"rocketmq_consumer_queueing_latency":    "rocketmq_consumer_queueing_latency_milliseconds",
	observe.MetricDelayLatency:              observe.MetricDelayLatency + "_seconds",
}

// brokerCopies are the series a RocketMQ broker exports too when rmqproxy
// runs in cluster mode (the messages it stores and delivers, the clients
// rmqproxy registers with it): rmqproxy's carry no cluster label then, so
// that a panel summing a cluster's brokers does not count each message
// twice (they have node_type proxy, the brokers' broker).
var brokerCopies = map[string]bool{
	observe.MetricMessagesIn: true, observe.MetricThroughputIn: true, observe.MetricMessageSize: true,
	observe.MetricMessagesOut: true, observe.MetricThroughputOut: true,
	observe.MetricCommitMessages: true, observe.MetricRollbackMessage: true,
	"rocketmq_producer_connections": true, "rocketmq_consumer_connections": true,
}

// compatGatherer gives the Prometheus exposition the Apache proxy's shape:
// the constant labels on every series and rocketmq_rpc_latency's name.
type compatGatherer struct {
	g      promclient.Gatherer
	labels constantLabels
}

func (c compatGatherer) Gather() ([]*dto.MetricFamily, error) {
	fams, err := c.g.Gather()
	id := c.labels.nodeID()
	for _, f := range fams {
		name := f.GetName()
		if name == "target_info" {
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if l.GetName() == "service_instance_id" {
						l.Value = &id
					}
				}
			}
			continue
		}
		if n, ok := prometheusNames[name]; ok {
			f.Name = &n
		}
		nodeType, cluster := c.labels.forSeries(name)
		add := []*dto.LabelPair{label(LabelNodeID, id), label(LabelNodeType, nodeType), label(LabelCluster, cluster)}
		upstream := saysIsSystem(name)
		for _, m := range f.Metric {
			if upstream {
				m.Label = withIsSystem(m.Label)
			}
			for _, l := range add {
				// An empty value is no label to Prometheus.
				if l.GetValue() != "" && !slices.ContainsFunc(m.Label, func(have *dto.LabelPair) bool { return have.GetName() == l.GetName() }) {
					m.Label = append(m.Label, l)
				}
			}
			slices.SortFunc(m.Label, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
		}
	}
	return fams, err
}

// withIsSystem adds upstream's is_system label to the series of a topic
// or consumer group: whether either is one of RocketMQ's own (a system
// topic such as RMQ_SYS_TRANS_HALF_TOPIC or rmq_sys_*, a CID_RMQ_SYS_
// group), as the broker says on its series of topics and groups.
func withIsSystem(labels []*dto.LabelPair) []*dto.LabelPair {
	var topic, group string
	for _, l := range labels {
		switch l.GetName() {
		case observe.LabelTopic:
			topic = l.GetValue()
		case observe.LabelConsumerGroup:
			group = l.GetValue()
		case labelIsSystem:
			return labels
		}
	}
	if topic == "" && group == "" {
		return labels
	}
	return append(labels, label(labelIsSystem, strconv.FormatBool(isSystem(topic, group))))
}

// labelIsSystem is upstream's LABEL_IS_SYSTEM.
const labelIsSystem = "is_system"

// saysIsSystem reports whether the series of metric name get is_system
// (with a topic or group label): upstream's broker metrics do, its store
// metrics (DefaultStoreMetricsManager: the timer counters and the delay
// histogram) do not.
func saysIsSystem(name string) bool {
	return strings.HasPrefix(name, "rocketmq_") && name != observe.MetricTimerEnqueue && name != observe.MetricTimerDequeue &&
		name != observe.MetricDelayLatency
}

func label(name, value string) *dto.LabelPair { return &dto.LabelPair{Name: &name, Value: &value} }
