package observe

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names. Those starting with rocketmq_ are the Apache RocketMQ
// broker's and proxy's (BrokerMetricsConstant, RemotingMetricsConstant,
// ProxyMetricsConstant), with their labels; those starting with rmqproxy_
// have no upstream equivalent. docs/observability.md maps them.
const (
	MetricRPCLatency      = "rocketmq_rpc_latency"
	MetricMessagesIn      = "rocketmq_messages_in_total"
	MetricThroughputIn    = "rocketmq_throughput_in_total"
	MetricMessageSize     = "rocketmq_message_size"
	MetricMessagesOut     = "rocketmq_messages_out_total"
	MetricThroughputOut   = "rocketmq_throughput_out_total"
	MetricSendToDLQ       = "rocketmq_send_to_dlq_messages_total"
	MetricCommitMessages  = "rocketmq_commit_messages_total"
	MetricRollbackMessage = "rocketmq_rollback_messages_total"
	MetricMessagesAcked   = "rmqproxy_messages_acked_total"
	MetricFsyncLatency    = "rmqproxy_storage_fsync_latency"

	// TLS of the listeners (label listener: grpc, admin).
	MetricTLSCertificateExpiry  = "rmqproxy_tls_certificate_expiry_timestamp_seconds"
	MetricTLSCertificateReloads = "rmqproxy_tls_certificate_reloads_total"
	MetricHandshakeFailures     = "rmqproxy_handshake_failures_total"
)

// Label names, upstream's where upstream has the metric.
const (
	LabelProtocolType  = "protocol_type"
	LabelRequestCode   = "request_code"
	LabelResponseCode  = "response_code"
	LabelIsLongPolling = "is_long_polling"
	LabelTopic         = "topic"
	LabelConsumerGroup = "consumer_group"
	LabelMessageType   = "message_type"
	LabelIsRetry       = "is_retry"
	LabelLanguage      = "language"
	LabelVersion       = "version"
	LabelListener      = "listener"
	LabelReason        = "reason"
	LabelResult        = "result"
)

// Histogram buckets. RPC latencies in milliseconds: upstream's buckets
// (1, 3, 5, 7, 10, 100, 1000, 2000, 3000 ms) with finer ones below a
// millisecond, where a local send lands, and longer ones for long polls.
var (
	LatencyBuckets     = []float64{0.1, 0.25, 0.5, 1, 3, 5, 7, 10, 50, 100, 500, 1000, 2000, 3000, 10000, 30000}
	FsyncBuckets       = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000}
	MessageSizeBuckets = []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20}
)

// Metrics are the proxy's synchronous instruments. Gauges are registered by
// the parts that own what they observe (see [Metrics.Meter]). A nil
// *Metrics records nothing.
type Metrics struct {
	meter  metric.Meter
	labels *Labels

	rpcLatency    metric.Float64Histogram
	messagesIn    metric.Int64ObservableCounter
	throughputIn  metric.Int64ObservableCounter
	messageSize   metric.Int64Histogram
	messagesOut   metric.Int64Counter
	throughputOut metric.Int64Counter
	acked         metric.Int64Counter
	dlq           metric.Int64Counter
	commits       metric.Int64Counter
	rollbacks     metric.Int64Counter
	fsyncLatency  metric.Float64Histogram

	rpcOpts   optCache[rpcKey]
	inOpts    optCache[inKey]
	outOpts   optCache[outKey]
	groupOpts optCache[outKey]
}

type rpcKey struct {
	protocol, method, code string
	longPoll               bool
}

type inKey struct{ topic, typ string }

type outKey struct {
	topic, group string
	retry        bool
}

// NewMetrics creates the instruments on meter; labels bounds the topic and
// group label values.
func NewMetrics(meter metric.Meter, labels *Labels) (*Metrics, error) {
	m := &Metrics{meter: meter, labels: labels}
	var err error
	c := func(name, desc, unit string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var in metric.Int64Counter
		in, err = meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return in
	}
	m.messagesOut = c(MetricMessagesOut, "Messages delivered to consumers (receive and pull), by topic and consumer group.", "{message}")
	m.throughputOut = c(MetricThroughputOut, "Body bytes of the messages delivered to consumers.", "By")
	m.acked = c(MetricMessagesAcked, "Deliveries acknowledged by consumers.", "{message}")
	m.dlq = c(MetricSendToDLQ, "Messages forwarded to a dead-letter queue by consumers.", "{message}")
	m.commits = c(MetricCommitMessages, "Transactional messages committed.", "{message}")
	m.rollbacks = c(MetricRollbackMessage, "Transactional messages rolled back.", "{message}")
	if err != nil {
		return nil, err
	}
	// Sends count into atomics of their label combination, read when the
	// metrics are collected: two SDK measurements fewer per message on the
	// hottest path.
	if m.messagesIn, err = meter.Int64ObservableCounter(MetricMessagesIn, metric.WithDescription("Messages stored by sends, by topic and message type."),
		metric.WithUnit("{message}")); err != nil {
		return nil, err
	}
	if m.throughputIn, err = meter.Int64ObservableCounter(MetricThroughputIn, metric.WithDescription("Body bytes of the messages stored by sends."),
		metric.WithUnit("By")); err != nil {
		return nil, err
	}
	if _, err = meter.RegisterCallback(m.observeIn, m.messagesIn, m.throughputIn); err != nil {
		return nil, err
	}
	if m.rpcLatency, err = meter.Float64Histogram(MetricRPCLatency, metric.WithDescription("RPC latency by request and response code (the histogram's count is the number of RPCs)."),
		metric.WithUnit("ms"), metric.WithExplicitBucketBoundaries(LatencyBuckets...)); err != nil {
		return nil, err
	}
	if m.messageSize, err = meter.Int64Histogram(MetricMessageSize, metric.WithDescription("Body size of the messages stored by sends."),
		metric.WithUnit("By"), metric.WithExplicitBucketBoundaries(MessageSizeBuckets...)); err != nil {
		return nil, err
	}
	if m.fsyncLatency, err = meter.Float64Histogram(MetricFsyncLatency, metric.WithDescription("Duration of the local broker's commit-log fdatasync calls (group commit: one covers many sends)."),
		metric.WithUnit("ms"), metric.WithExplicitBucketBoundaries(FsyncBuckets...)); err != nil {
		return nil, err
	}
	return m, nil
}

// Meter returns the meter the instruments were made with, for gauges.
func (m *Metrics) Meter() metric.Meter { return m.meter }

// Labels returns the label policy of topics and groups.
func (m *Metrics) Labels() *Labels { return m.labels }

// RPC records one request: its latency, and so its count by response code.
func (m *Metrics) RPC(ctx context.Context, protocol, method, code string, longPoll bool, d time.Duration) {
	if m == nil {
		return
	}
	o := m.rpcOpts.get(rpcKey{protocol, method, code, longPoll}, func(k rpcKey) attribute.Set {
		return attribute.NewSet(attribute.String(LabelProtocolType, k.protocol), attribute.String(LabelRequestCode, k.method),
			attribute.String(LabelResponseCode, k.code), attribute.Bool(LabelIsLongPolling, k.longPoll))
	})
	m.rpcLatency.Record(ctx, float64(d)/float64(time.Millisecond), o.rec...)
}

// MessageIn records one message stored by a send.
func (m *Metrics) MessageIn(ctx context.Context, topic, messageType string, size int) {
	if m == nil {
		return
	}
	o := m.inOpts.get(inKey{m.labels.Topic(topic), messageType}, func(k inKey) attribute.Set {
		return attribute.NewSet(attribute.String(LabelTopic, k.topic), attribute.String(LabelMessageType, k.typ))
	})
	o.count.Add(1)
	o.bytes.Add(int64(size))
	m.messageSize.Record(ctx, int64(size), o.rec...)
}

// observeIn reports the counts MessageIn made.
func (m *Metrics) observeIn(_ context.Context, ob metric.Observer) error {
	m.inOpts.each(func(o *opts) {
		ob.ObserveInt64(m.messagesIn, o.count.Load(), o.obs...)
		ob.ObserveInt64(m.throughputIn, o.bytes.Load(), o.obs...)
	})
	return nil
}

// MessagesOut records n messages of bytes body bytes delivered to group.
func (m *Metrics) MessagesOut(ctx context.Context, topic, group string, retry bool, n int, bytes int64) {
	if m == nil || n == 0 {
		return
	}
	o := m.outOpts.get(outKey{m.labels.Topic(topic), m.labels.Group(group), retry}, func(k outKey) attribute.Set {
		return attribute.NewSet(attribute.String(LabelTopic, k.topic), attribute.String(LabelConsumerGroup, k.group), attribute.Bool(LabelIsRetry, k.retry))
	})
	m.messagesOut.Add(ctx, int64(n), o.add...)
	m.throughputOut.Add(ctx, bytes, o.add...)
}

// Settled says how a consumer or a transaction producer settled messages.
type Settled uint8

// Settlements counted by [Metrics.Settle].
const (
	SettledAck Settled = iota
	SettledDLQ
	SettledCommit
	SettledRollback
)

// Settle records n messages of topic settled by group (empty for
// transactions) as s.
func (m *Metrics) Settle(ctx context.Context, s Settled, topic, group string, n int) {
	if m == nil || n == 0 {
		return
	}
	o := m.groupOpts.get(outKey{m.labels.Topic(topic), m.labels.Group(group), false}, func(k outKey) attribute.Set {
		if k.group == "" {
			return attribute.NewSet(attribute.String(LabelTopic, k.topic))
		}
		return attribute.NewSet(attribute.String(LabelTopic, k.topic), attribute.String(LabelConsumerGroup, k.group))
	})
	c := m.acked
	switch s {
	case SettledDLQ:
		c = m.dlq
	case SettledCommit:
		c = m.commits
	case SettledRollback:
		c = m.rollbacks
	}
	c.Add(ctx, int64(n), o.add...)
}

// Fsync records one commit-log fdatasync.
func (m *Metrics) Fsync(d time.Duration) {
	if m == nil {
		return
	}
	m.fsyncLatency.Record(context.Background(), float64(d)/float64(time.Millisecond))
}

// opts are the measurement options of one label combination, built once:
// passing a prebuilt slice keeps a measurement free of allocations.
type opts struct {
	add []metric.AddOption
	rec []metric.RecordOption
	obs []metric.ObserveOption
	// count and bytes are the totals of an observed counter pair (see
	// observeIn).
	count, bytes atomic.Int64
}

// optCache maps label combinations to their options. Its size is bounded by
// the label policy and the fixed sets of methods and codes.
type optCache[K comparable] struct {
	mu sync.RWMutex
	m  map[K]*opts
}

func (c *optCache[K]) get(k K, build func(K) attribute.Set) *opts {
	c.mu.RLock()
	o := c.m[k]
	c.mu.RUnlock()
	if o != nil {
		return o
	}
	set := build(k)
	o = &opts{add: []metric.AddOption{metric.WithAttributeSet(set)}, rec: []metric.RecordOption{metric.WithAttributeSet(set)},
		obs: []metric.ObserveOption{metric.WithAttributeSet(set)}}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.m[k]; prev != nil {
		return prev
	}
	if c.m == nil {
		c.m = map[K]*opts{}
	}
	c.m[k] = o
	return o
}

// each calls f for every label combination made so far.
func (c *optCache[K]) each(f func(*opts)) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, o := range c.m {
		f(o)
	}
}
