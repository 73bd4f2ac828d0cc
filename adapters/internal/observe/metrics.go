package observe

import (
	"context"
	"math"
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
	MetricTimerEnqueue    = "rocketmq_timer_enqueue_total"
	MetricTimerDequeue    = "rocketmq_timer_dequeue_total"
	MetricDelayLatency    = "rocketmq_delay_message_latency"

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
	// LabelStorageType and LabelStorageMedium are on upstream's store
	// metrics (DefaultStoreMetricsConstant), with the values
	// StorageTypeLocal and StorageMediumDisk.
	LabelStorageType   = "storage_type"
	LabelStorageMedium = "storage_medium"
	StorageTypeLocal   = "local"
	StorageMediumDisk  = "disk"
)

// Histogram buckets. RPC latencies in milliseconds: upstream's buckets
// (1, 3, 5, 7, 10, 100, 1000, 2000, 3000 ms) with finer ones below a
// millisecond, where a local send lands, and longer ones for long polls
// (messaging.consumer.maxLongPolling, 20 s by default, may be set longer:
// up to two minutes they get a bucket of their own, not +Inf, where
// histogram_quantile would report the highest finite bound).
var (
	LatencyBuckets     = []float64{0.1, 0.25, 0.5, 1, 3, 5, 7, 10, 50, 100, 500, 1000, 2000, 3000, 10000, 30000, 60000, 120000}
	FsyncBuckets       = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000}
	MessageSizeBuckets = []float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20}
	// DelayLatencyBuckets are upstream's bounds of
	// rocketmq_delay_message_latency (seconds: a minute to three days).
	DelayLatencyBuckets = []float64{60, 600, 3600, 43200, 86400, 259200}
)

// Metrics are the proxy's instruments. Gauges are registered by the parts
// that own what they observe (see [Metrics.Meter]). A nil *Metrics records
// nothing.
//
// The metrics labelled by topic or consumer group ([LabelledCounters] and
// the message size histogram) are not the SDK's instruments: a cumulative
// synchronous instrument keeps every attribute set it was given for the
// life of the process, so that a deleted topic's series would be exported
// for ever, and an asynchronous one gives every series the instrument's
// start time, so that a topic created again would continue a series from
// zero without a new start. Their counts live in Metrics' own table, one
// entry per label combination, bounded by the label policy, and made
// when the combination is first recorded (the start of its series);
// [Metrics.Counters] and [Metrics.MessageSizes] read it, and adapters/otel
// hands what they read to the SDK's readers as an external producer.
// [Metrics.ForgetTopic] and [Metrics.ForgetGroup] drop a deleted name's
// entries and free its label slot; entries of a name whose slot is gone
// are dropped at the next collection too.
type Metrics struct {
	meter  metric.Meter
	labels *Labels

	rpcLatency   metric.Float64Histogram
	fsyncLatency metric.Float64Histogram

	// acksAtBroker: the broker counts the deliveries it acks (local
	// mode's engine, which tells an ack from a repeat of it), so that the
	// RPC side does not count ack entries (see [Metrics.AckEntries]).
	acksAtBroker atomic.Bool

	rpcOpts   optCache[rpcKey]
	inOpts    seriesCache[inKey]
	outOpts   seriesCache[outKey]
	groupOpts seriesCache[outKey]
	timerOpts seriesCache[inKey]
}

type rpcKey struct {
	protocol, method, code string
	longPoll               bool
}

type inKey struct{ topic, typ string }

func (k inKey) names() (topic, group string) { return k.topic, "" }

type outKey struct {
	topic, group string
	retry        bool
}

func (k outKey) names() (topic, group string) { return k.topic, k.group }

// Instrument names and describes a metric of [Metrics]' own table.
type Instrument struct{ Name, Description, Unit string }

// LabelledCounters are the monotonic counters labelled by topic (and
// group) that [Metrics.Counters] reports, indexed by [CounterPoint.Counter].
var LabelledCounters = [...]Instrument{
	counterIn:                             {MetricMessagesIn, "Messages stored by sends, by topic and message type.", "{message}"},
	counterThroughputIn:                   {MetricThroughputIn, "Body bytes of the messages stored by sends.", "By"},
	counterOut:                            {MetricMessagesOut, "Messages delivered to consumers (receive and pull), by topic and consumer group.", "{message}"},
	counterThroughputOut:                  {MetricThroughputOut, "Body bytes of the messages delivered to consumers.", "By"},
	counterSettled + int(SettledAck):      {MetricMessagesAcked, "Deliveries acknowledged by consumers.", "{message}"},
	counterSettled + int(SettledDLQ):      {MetricSendToDLQ, "Messages forwarded to a dead-letter queue by consumers.", "{message}"},
	counterSettled + int(SettledCommit):   {MetricCommitMessages, "Transactional messages committed.", "{message}"},
	counterSettled + int(SettledRollback): {MetricRollbackMessage, "Transactional messages rolled back.", "{message}"},
	counterTimerEnqueue:                   {MetricTimerEnqueue, "Delay messages stored for later delivery (local mode).", ""},
	counterTimerDequeue:                   {MetricTimerDequeue, "Delay messages that left the timing wheel: delivered into their queue, or dropped (local mode).", ""},
}

const (
	counterIn = iota
	counterThroughputIn
	counterOut
	counterThroughputOut
	counterSettled // and one for each Settled kind after it
)

// The local broker's timer counters, after the settlement kinds.
const (
	counterTimerEnqueue = counterSettled + settledKinds + iota
	counterTimerDequeue
)

// MessageSize is the message size histogram [Metrics.MessageSizes]
// reports, over [MessageSizeBuckets].
var MessageSize = Instrument{MetricMessageSize, "Body size of the messages stored by sends.", "By"}

// DelayLatency is the histogram [Metrics.DelayLatencies] reports, over
// [DelayLatencyBuckets]: upstream's rocketmq_delay_message_latency, in
// whole seconds as upstream records it.
var DelayLatency = Instrument{MetricDelayLatency, "Delay of the delay messages entering the timing wheel (delivery time less born time; local mode).", "seconds"}

// NewMetrics creates the instruments on meter; labels bounds the topic and
// group label values.
func NewMetrics(meter metric.Meter, labels *Labels) (*Metrics, error) {
	m := &Metrics{meter: meter, labels: labels}
	m.inOpts.bounds = MessageSizeBuckets
	m.timerOpts.bounds = DelayLatencyBuckets
	var err error
	if m.rpcLatency, err = meter.Float64Histogram(MetricRPCLatency, metric.WithDescription("RPC latency by request and response code (the histogram's count is the number of RPCs)."),
		metric.WithUnit("ms"), metric.WithExplicitBucketBoundaries(LatencyBuckets...)); err != nil {
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

// ForgetTopic drops the series of a deleted topic and frees its label
// slot, so that a new topic can have a value of its own; a topic created
// again with the same name starts its series from zero. A name counted
// under [Other] changes nothing ([Other] keeps its counts).
func (m *Metrics) ForgetTopic(name string) {
	if m == nil || !m.labels.FreeTopic(name) {
		return
	}
	gone := func(topic, _ string) bool { return topic == name }
	m.inOpts.drop(gone)
	m.outOpts.drop(gone)
	m.groupOpts.drop(gone)
}

// ForgetGroup is [Metrics.ForgetTopic] for a deleted consumer group.
func (m *Metrics) ForgetGroup(name string) {
	if m == nil || !m.labels.FreeGroup(name) {
		return
	}
	gone := func(_, group string) bool { return group == name }
	m.outOpts.drop(gone)
	m.groupOpts.drop(gone)
}

// live reports whether both label values of an entry are still in use.
func (m *Metrics) live(topic, group string) bool {
	return m.labels.LiveTopic(topic) && m.labels.LiveGroup(group)
}

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
func (m *Metrics) MessageIn(_ context.Context, topic, messageType string, size int) {
	if m == nil {
		return
	}
	e := m.inOpts.get(inKey{m.labels.Topic(topic), messageType}, func(k inKey) attribute.Set {
		return attribute.NewSet(attribute.String(LabelTopic, k.topic), attribute.String(LabelMessageType, k.typ))
	})
	e.count.Add(1)
	e.bytes.Add(int64(size))
	e.size.record(int64(size))
}

// CounterPoint is the value of a counter of [LabelledCounters] for one
// label combination, cumulative since Start.
type CounterPoint struct {
	Counter int // index in LabelledCounters
	Attrs   attribute.Set
	Start   time.Time
	Value   int64
}

// Counters appends to dst the values of [LabelledCounters] for the label
// combinations still in use, and drops the entries of freed label values.
// A settlement kind never counted for a combination has no point, as a
// counter never added to has no series.
func (m *Metrics) Counters(dst []CounterPoint) []CounterPoint {
	if m == nil {
		return dst
	}
	point := func(c int, e *series, v int64) {
		dst = append(dst, CounterPoint{Counter: c, Attrs: e.attrs, Start: e.start, Value: v})
	}
	m.inOpts.each(m.live, func(e *series) {
		point(counterIn, e, e.count.Load())
		point(counterThroughputIn, e, e.bytes.Load())
	})
	m.outOpts.each(m.live, func(e *series) {
		point(counterOut, e, e.count.Load())
		point(counterThroughputOut, e, e.bytes.Load())
	})
	m.groupOpts.each(m.live, func(e *series) {
		for k := range e.settled {
			if n := e.settled[k].Load(); n > 0 {
				point(counterSettled+k, e, n)
			}
		}
	})
	m.timerOpts.each(m.live, func(e *series) {
		// As a counter never added to has no series.
		if n := e.count.Load(); n > 0 {
			point(counterTimerEnqueue, e, n)
		}
		if n := e.bytes.Load(); n > 0 {
			point(counterTimerDequeue, e, n)
		}
	})
	return dst
}

// Timer records a delay message of topic entering (done false; delay is
// its delivery time less its born time) or leaving (done true) the local
// broker's timing wheel.
func (m *Metrics) Timer(topic string, done bool, delay time.Duration) {
	if m == nil {
		return
	}
	e := m.timerOpts.get(inKey{topic: m.labels.Topic(topic)}, func(k inKey) attribute.Set {
		return attribute.NewSet(attribute.String(LabelTopic, k.topic),
			attribute.String(LabelStorageType, StorageTypeLocal), attribute.String(LabelStorageMedium, StorageMediumDisk))
	})
	// count: entered; bytes: left (a timer series has no bytes).
	if done {
		e.bytes.Add(1)
		return
	}
	e.count.Add(1)
	sec := max(int64(delay/time.Second), 0)
	e.size.sum.Add(sec)
	e.size.record(sec)
}

// DelayLatencies appends to dst the delay histograms ([DelayLatency]) of
// the topics still in use that recorded something, and drops the entries
// of freed label values.
func (m *Metrics) DelayLatencies(dst []SizeHistogram) []SizeHistogram {
	if m == nil {
		return dst
	}
	m.timerOpts.each(m.live, func(e *series) {
		if h, ok := e.size.read(e.attrs, e.start, e.size.sum.Load()); ok {
			dst = append(dst, h)
		}
	})
	return dst
}

// read returns the histogram's point with sum, false when it recorded
// nothing.
func (h *sizeCounts) read(attrs attribute.Set, start time.Time, sum int64) (SizeHistogram, bool) {
	out := SizeHistogram{Attrs: attrs, Start: start, Sum: sum, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
		out.Count += out.Counts[i]
	}
	if out.Count == 0 {
		return out, false
	}
	out.Min, out.Max = h.min.Load(), h.max.Load()
	return out, true
}

// MessagesOut records n messages of bytes body bytes delivered to group.
func (m *Metrics) MessagesOut(_ context.Context, topic, group string, retry bool, n int, bytes int64) {
	if m == nil || n == 0 {
		return
	}
	e := m.outOpts.get(outKey{m.labels.Topic(topic), m.labels.Group(group), retry}, func(k outKey) attribute.Set {
		return attribute.NewSet(attribute.String(LabelTopic, k.topic), attribute.String(LabelConsumerGroup, k.group), attribute.Bool(LabelIsRetry, k.retry))
	})
	e.count.Add(int64(n))
	e.bytes.Add(bytes)
}

// Settled says how a consumer or a transaction producer settled messages.
type Settled uint8

// Settlements counted by [Metrics.Settle].
const (
	SettledAck Settled = iota
	SettledDLQ
	SettledCommit
	SettledRollback

	settledKinds = 4
)

// Settle records n messages of topic settled by group (empty for
// transactions) as s.
func (m *Metrics) Settle(_ context.Context, s Settled, topic, group string, n int) {
	if m == nil || n == 0 || s >= settledKinds {
		return
	}
	e := m.groupOpts.get(outKey{m.labels.Topic(topic), m.labels.Group(group), false}, func(k outKey) attribute.Set {
		if k.group == "" {
			return attribute.NewSet(attribute.String(LabelTopic, k.topic))
		}
		return attribute.NewSet(attribute.String(LabelTopic, k.topic), attribute.String(LabelConsumerGroup, k.group))
	})
	e.settled[s].Add(int64(n))
}

// CountAcksAtBroker says the broker counts the deliveries it acks with
// [Metrics.Settle] ([SettledAck]), once each; [Metrics.AckEntries] then
// counts nothing.
func (m *Metrics) CountAcksAtBroker() {
	if m != nil {
		m.acksAtBroker.Store(true)
	}
}

// AckEntries records n ack entries of topic and group answered OK,
// unless the broker counts its acks (see [Metrics.CountAcksAtBroker]):
// an OK answer does not say whether the delivery was acked by this
// request or before (a consumer's retry).
func (m *Metrics) AckEntries(ctx context.Context, topic, group string, n int) {
	if m == nil || m.acksAtBroker.Load() {
		return
	}
	m.Settle(ctx, SettledAck, topic, group, n)
}

// Fsync records one commit-log fdatasync.
func (m *Metrics) Fsync(d time.Duration) {
	if m == nil {
		return
	}
	m.fsyncLatency.Record(context.Background(), float64(d)/float64(time.Millisecond))
}

// SizeHistogram is the message size histogram of one label combination,
// cumulative since Start.
type SizeHistogram struct {
	Attrs    attribute.Set
	Start    time.Time
	Count    uint64
	Sum      int64
	Min, Max int64
	// Counts has one count per bucket: len(MessageSizeBuckets)+1, the last
	// one above every bound.
	Counts []uint64
}

// MessageSizes appends to dst the message size histograms
// ([MessageSize]) of the label combinations still in use that
// recorded something, and drops the entries of freed label values.
func (m *Metrics) MessageSizes(dst []SizeHistogram) []SizeHistogram {
	if m == nil {
		return dst
	}
	m.inOpts.each(m.live, func(e *series) {
		h := SizeHistogram{Attrs: e.attrs, Start: e.start, Sum: e.bytes.Load(), Counts: make([]uint64, len(e.size.counts))}
		for i := range e.size.counts {
			h.Counts[i] = e.size.counts[i].Load()
			h.Count += h.Counts[i]
		}
		if h.Count == 0 {
			return
		}
		h.Min, h.Max = e.size.min.Load(), e.size.max.Load()
		dst = append(dst, h)
	})
	return dst
}

// opts are the measurement options of one label combination, built once:
// passing a prebuilt slice keeps a measurement free of allocations.
type opts struct {
	rec []metric.RecordOption
}

// optCache maps label combinations to their options. Its size is bounded by
// the fixed sets of methods and codes.
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
	o = &opts{rec: []metric.RecordOption{metric.WithAttributeSet(build(k))}}
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

// series holds the counts of one label combination of the metrics
// labelled by topic or group, read when the metrics are collected.
type series struct {
	attrs attribute.Set
	// start is when the entry was made: the start of its cumulative
	// series.
	start time.Time
	// count and bytes: messages and body bytes (in and out).
	count, bytes atomic.Int64
	// settled counts by [Settled] kind.
	settled [settledKinds]atomic.Int64
	// size is the message size histogram (in; empty elsewhere).
	size sizeCounts
}

// sizeCounts is a histogram over bounds (MessageSizeBuckets or
// DelayLatencyBuckets), lock-free.
type sizeCounts struct {
	bounds   []float64
	counts   []atomic.Uint64 // len(bounds)+1
	min, max atomic.Int64
	sum      atomic.Int64 // of the delay histogram (message sizes: the series' bytes)
}

func (h *sizeCounts) record(v int64) {
	i := 0
	for i < len(h.bounds) && float64(v) > h.bounds[i] {
		i++
	}
	// The extremes first: a reader that sees the count sees them.
	for cur := h.min.Load(); v < cur && !h.min.CompareAndSwap(cur, v); cur = h.min.Load() {
	}
	for cur := h.max.Load(); v > cur && !h.max.CompareAndSwap(cur, v); cur = h.max.Load() {
	}
	h.counts[i].Add(1)
}

// seriesKey is a label combination of a [seriesCache]: it names the topic
// and group label values it holds ("" for none).
type seriesKey interface {
	comparable
	names() (topic, group string)
}

// seriesCache maps label combinations to their counts. Its size is bounded
// by the label policy (and the fixed message types).
type seriesCache[K seriesKey] struct {
	bounds []float64 // entries have a histogram over these bounds (nil: none)
	mu     sync.RWMutex
	m      map[K]*series
}

func (c *seriesCache[K]) get(k K, build func(K) attribute.Set) *series {
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	if e != nil {
		return e
	}
	set := build(k)
	e = &series{attrs: set, start: time.Now()}
	if c.bounds != nil {
		e.size.bounds = c.bounds
		e.size.counts = make([]atomic.Uint64, len(c.bounds)+1)
		e.size.min.Store(math.MaxInt64)
		e.size.max.Store(math.MinInt64)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.m[k]; prev != nil {
		return prev
	}
	if c.m == nil {
		c.m = map[K]*series{}
	}
	c.m[k] = e
	return e
}

// each calls f for every entry whose label values live accepts, and drops
// the others: an entry made for a name just as its slot was freed (a
// message of a topic racing its deletion) is not exported and is
// forgotten.
func (c *seriesCache[K]) each(live func(topic, group string) bool, f func(*series)) {
	var dead []K
	c.mu.RLock()
	for k, e := range c.m {
		if !live(k.names()) {
			dead = append(dead, k)
			continue
		}
		f(e)
	}
	c.mu.RUnlock()
	if len(dead) > 0 {
		c.drop(func(topic, group string) bool { return !live(topic, group) })
	}
}

// drop removes the entries whose label values gone accepts.
func (c *seriesCache[K]) drop(gone func(topic, group string) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if gone(k.names()) {
			delete(c.m, k)
		}
	}
}
