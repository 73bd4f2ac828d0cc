package app

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"

	grpcadapter "github.com/rmqproxy/rmqproxy/adapters/grpc"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker"
	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// observabilityModule wires adapters/otel to the rest of the proxy: the
// Telemetry the inbound adapters record with (provided by otel.Module),
// the tracing decorator around the broker port, the storage engine's
// hooks, and the gauges read from the client registry and the engine.
func observabilityModule(cfg Root) fx.Option {
	opts := []fx.Option{
		otel.Module,
		fx.Supply(
			otel.Logging{AccessLog: cfg.Log.Access, LogBodies: cfg.Log.Bodies},
			telemetryInfo(cfg),
		),
		fx.Invoke(registerClientGauges, registerTrafficMetrics),
	}
	if cfg.Mode == ModeLocal {
		opts = append(opts, fx.Invoke(instrumentEngine))
	}
	if cfg.Auth.Enabled {
		opts = append(opts, fx.Invoke(registerAuditMetrics))
	}
	return fx.Options(opts...)
}

// telemetryInfo describes this proxy in the resource of its spans and
// metrics. Its instance id (service.instance.id) must tell it from the
// other proxies of a deployment: local.storeHost when that names a real
// address; when it is the loopback fallback (grpc.address listening on
// every interface, the default), which every proxy shares, the host name
// with the port instead.
func telemetryInfo(cfg Root) otel.Info {
	id := cfg.Local.StoreHost
	ap, err := netip.ParseAddrPort(id)
	if err != nil || ap.Addr().IsLoopback() || ap.Addr().IsUnspecified() {
		if host, herr := os.Hostname(); herr == nil && host != "" {
			id = host
			if err == nil {
				id = net.JoinHostPort(host, strconv.Itoa(int(ap.Port())))
			}
		}
	}
	// The cluster label: cluster.clusterName in cluster mode; in local
	// mode too, where it names nothing else and defaults, like the Apache
	// proxy's local mode, to DefaultCluster.
	return otel.Info{Mode: cfg.Mode, InstanceID: id, Cluster: cfg.Cluster.ClusterName}
}

// reportBoundPort tells the telemetry the port the gRPC listener is bound
// to, once it is (the stage after the gRPC server's): with grpc.address
// ending in :0 the instance id shows it instead of port 0.
func reportBoundPort(lc fx.Lifecycle, p *otel.Provider, srv *grpcadapter.Server) {
	lc.Append(fx.StartHook(func() {
		if a, ok := srv.Addr().(*net.TCPAddr); ok {
			p.BoundPort(a.Port)
		}
	}))
}

// traceBrokerCalls decorates the broker port with spans when tracing is on;
// it must sit at the root so that it applies to the application module.
func traceBrokerCalls(cfg Root) fx.Option {
	if !cfg.Tracing.Enabled {
		return fx.Options()
	}
	kind := trace.SpanKindInternal
	if cfg.Mode == ModeCluster {
		kind = trace.SpanKindClient
	}
	return fx.Decorate(func(b ports.Broker, p *otel.Provider) ports.Broker {
		return otel.TraceBroker(b, p.Tracer(), kind)
	})
}

// releaseDeletedNames decorates the admin port so that a topic or consumer
// group deleted through this proxy (admin API, CLI) gives its metric label
// slot back (metrics.maxTopics, metrics.maxGroups): its series stop being
// exported and a new name can take the slot. Like traceBrokerCalls it sits
// at the root, so that the application's admin use case gets the
// decorated port.
func releaseDeletedNames(cfg Root) fx.Option {
	if !cfg.Metrics.Enabled {
		return fx.Options()
	}
	return fx.Decorate(func(a ports.Admin, p *otel.Provider, s *application.Sessions) ports.Admin {
		return &releasingAdmin{Admin: a, metrics: p, sessions: s}
	})
}

// releasingAdmin is a [ports.Admin] that frees the label slot of what it
// deleted.
type releasingAdmin struct {
	ports.Admin
	metrics  *otel.Provider
	sessions *application.Sessions
}

func (r *releasingAdmin) DeleteTopic(ctx context.Context, name string) error {
	err := r.Admin.DeleteTopic(ctx, name)
	if err == nil || domain.ReasonOf(err) == domain.ReasonTopicNotFound {
		r.metrics.ForgetTopic(name)
	}
	return err
}

func (r *releasingAdmin) DeleteGroup(ctx context.Context, name string) error {
	err := r.Admin.DeleteGroup(ctx, name)
	if err == nil || domain.ReasonOf(err) == domain.ReasonConsumerGroupNotFound {
		// The clients of the group first, so that the client gauges do not
		// take the slot again.
		r.sessions.GroupDeleted(name)
		r.metrics.ForgetGroup(name)
	}
	return err
}

// instrumentEngine installs the storage hooks and the engine's gauges.
func instrumentEngine(e *localbroker.Engine, p *otel.Provider, admin ports.Admin, sessions *application.Sessions, log *slog.Logger) {
	h := p.StorageHooks()
	e.SetHooks(localbroker.Hooks{Send: h.Send, Durable: h.Durable, Fsync: h.Fsync, DeadLetter: h.DeadLetter, Ack: h.Ack,
		TimerAdded: h.TimerAdded, TimerDone: h.TimerDone})
	meter := p.Meter()
	if meter == nil {
		return
	}
	if err := registerEngineGauges(meter, p.Telemetry().Metrics.Labels(), e, admin, sessions.Subscriptions); err != nil {
		log.Warn("cannot register the storage gauges", slog.Any("error", err))
	}
}

// labelPolicy bounds the label values of topics and groups (see
// metrics.topics and metrics.groups) and of the client languages and
// versions clients declare.
type labelPolicy interface {
	Topic(name string) string
	Group(name string) string
	Language(name string) string
	Version(name string) string
}

// registerEngineGauges reports the local broker's storage and, per topic
// and group, its consumers' progress (upstream's rocketmq_consumer_*
// gauges), computed when metrics are collected. The queues of a topic a
// group subscribes to (subs: the known consumers' subscriptions) that it
// has no state on yet, since it has not received from them, are reported
// too: its first receive of a queue starts at the beginning, so every
// message of the queue is lag and ready for it.
func registerEngineGauges(meter metric.Meter, labels labelPolicy, e *localbroker.Engine, admin ports.Admin, subs func() []application.Subscription) error {
	logBytes, err := meter.Int64ObservableGauge("rmqproxy_storage_commitlog_bytes", metric.WithDescription("Bytes of the commit log still on disk."), metric.WithUnit("By"))
	if err != nil {
		return err
	}
	fsyncs, err := meter.Int64ObservableCounter("rmqproxy_storage_fsyncs_total", metric.WithDescription("fdatasync calls of the commit log since start (group commit: fewer than the sends)."))
	if err != nil {
		return err
	}
	appends, err := meter.Int64ObservableCounter("rmqproxy_storage_appends_total", metric.WithDescription("Records appended to the commit log since start."))
	if err != nil {
		return err
	}
	diskUsed, err := meter.Int64ObservableGauge("rmqproxy_storage_disk_used_bytes", metric.WithDescription("Bytes used on the file system holding local.dataDir (as df counts them)."), metric.WithUnit("By"))
	if err != nil {
		return err
	}
	diskSize, err := meter.Int64ObservableGauge("rmqproxy_storage_disk_size_bytes", metric.WithDescription("Size of the file system holding local.dataDir."), metric.WithUnit("By"))
	if err != nil {
		return err
	}
	half, err := meter.Int64ObservableGauge("rocketmq_half_messages", metric.WithDescription("Transactional half messages neither committed nor rolled back."))
	if err != nil {
		return err
	}
	lag, err := meter.Int64ObservableGauge("rocketmq_consumer_lag_messages", metric.WithDescription("Messages of a topic not yet consumed (acked) by a group."))
	if err != nil {
		return err
	}
	inflight, err := meter.Int64ObservableGauge("rocketmq_consumer_inflight_messages", metric.WithDescription("Messages delivered to a group and not yet acked."))
	if err != nil {
		return err
	}
	ready, err := meter.Int64ObservableGauge("rocketmq_consumer_ready_messages", metric.WithDescription("Messages a group can receive now (not delivered yet, or visible again)."))
	if err != nil {
		return err
	}
	// Upstream's store gauges (DefaultStoreMetricsManager), with its
	// units and storage labels; the Prometheus exposition appends the
	// unit to the names as upstream's exporter does (adapters/otel: prometheusNames).
	storageSize, err := meter.Int64ObservableGauge("rocketmq_storage_size", metric.WithDescription("Bytes used on the file system holding local.dataDir (as upstream's broker reports its store's)."), metric.WithUnit("bytes"))
	if err != nil {
		return err
	}
	flushBehind, err := meter.Int64ObservableGauge("rocketmq_storage_flush_behind_bytes", metric.WithDescription("Bytes of the commit log not yet fsynced."), metric.WithUnit("bytes"))
	if err != nil {
		return err
	}
	reserveTime, err := meter.Int64ObservableGauge("rocketmq_storage_message_reserve_time", metric.WithDescription("Age of the oldest message still in a queue."), metric.WithUnit("milliseconds"))
	if err != nil {
		return err
	}
	lagLatency, err := meter.Int64ObservableGauge("rocketmq_consumer_lag_latency", metric.WithDescription("Age of the oldest message of a topic a group has not consumed (acked)."), metric.WithUnit("milliseconds"))
	if err != nil {
		return err
	}
	queueingLatency, err := meter.Int64ObservableGauge("rocketmq_consumer_queueing_latency", metric.WithDescription("Age of the oldest message of a topic never delivered to a group."), metric.WithUnit("milliseconds"))
	if err != nil {
		return err
	}
	topicNumber, err := meter.Int64ObservableGauge("rocketmq_topic_number", metric.WithDescription("Topics defined (the dead-letter topics made so far included)."))
	if err != nil {
		return err
	}
	groupNumber, err := meter.Int64ObservableGauge("rocketmq_consumer_group_number", metric.WithDescription("Consumer groups defined."))
	if err != nil {
		return err
	}
	storageLabels := metric.WithAttributeSet(attribute.NewSet(attribute.String("storage_type", "local"), attribute.String("storage_medium", "disk")))
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		st := e.Stats()
		now := time.Now().UnixMilli()
		o.ObserveInt64(flushBehind, max(st.LogEnd-st.LogSynced, 0), storageLabels)
		if at := e.EarliestStoreTime(); at > 0 {
			o.ObserveInt64(reserveTime, max(now-at, 0), storageLabels)
		}
		o.ObserveInt64(logBytes, st.LogEnd-st.LogStart)
		o.ObserveInt64(fsyncs, st.LogFsyncs)
		o.ObserveInt64(appends, st.LogAppends)
		o.ObserveInt64(half, int64(st.PendingTransactions))
		o.ObserveInt64(topicNumber, int64(st.Topics))
		o.ObserveInt64(groupNumber, int64(st.Groups))
		if used, size, err := e.DiskUsage(); err == nil {
			o.ObserveInt64(diskUsed, int64(used))
			o.ObserveInt64(diskSize, int64(size))
			o.ObserveInt64(storageSize, int64(used), storageLabels)
		}
		// Several topics or groups may share a label value (_other):
		// sum before observing.
		type key struct{ topic, group string }
		type progress struct{ lag, inflight, ready, unconsumed, undelivered int64 }
		sums := map[key]progress{}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		groups, err := admin.ListGroups(ctx)
		if err != nil {
			return nil // not ready yet, or shutting down: report storage only
		}
		add := func(group string, q ports.QueueStats) {
			k := key{labels.Topic(q.Topic), labels.Group(group)}
			p := sums[k]
			// Not acked: from the first unacked message on, less those
			// consumed after it (acked out of order).
			p.lag += max(q.MaxOffset-q.AckOffset-q.AckedAbove, 0)
			p.inflight += q.InFlight
			p.ready += q.Consumable
			sums[k] = p
		}
		// The queues of subscribed or consumed topics a group has no state
		// on yet (none received from them, or only from some of the topic's
		// queues, or added since) count too, as group stats lists them.
		subscribed := map[string][]string{}
		for _, s := range subs() {
			subscribed[s.Group] = append(subscribed[s.Group], s.Topic)
		}
		for _, g := range groups {
			stats, err := admin.GroupStats(ctx, g.Name)
			if err != nil {
				stats = nil
			}
			stats = append(stats, application.UnreportedQueues(ctx, e, subscribed[g.Name], stats)...)
			for _, q := range stats {
				add(g.Name, q)
			}
			// The oldest store times, for the latency gauges: of the
			// series' queues, the oldest message (0: none).
			ages, err := e.GroupAges(ctx, g.Name, subscribed[g.Name])
			if err != nil {
				continue
			}
			for _, a := range ages {
				k := key{labels.Topic(a.Topic), labels.Group(g.Name)}
				p := sums[k]
				p.unconsumed = oldest(p.unconsumed, a.OldestUnconsumed)
				p.undelivered = oldest(p.undelivered, a.OldestUndelivered)
				sums[k] = p
			}
		}
		for k, p := range sums {
			set := metric.WithAttributeSet(attribute.NewSet(attribute.String("topic", k.topic), attribute.String("consumer_group", k.group)))
			o.ObserveInt64(lag, p.lag, set)
			o.ObserveInt64(inflight, p.inflight, set)
			o.ObserveInt64(ready, p.ready, set)
			// As upstream: 0 when there is no such message.
			o.ObserveInt64(lagLatency, age(now, p.unconsumed), set)
			o.ObserveInt64(queueingLatency, age(now, p.undelivered), set)
		}
		return nil
	}, logBytes, fsyncs, appends, diskUsed, diskSize, half, lag, inflight, ready,
		storageSize, flushBehind, reserveTime, lagLatency, queueingLatency, topicNumber, groupNumber)
	return err
}

// oldest returns the earlier of two store times, 0 meaning none.
func oldest(a, b int64) int64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// age is how long before now (Unix ms) a message stored at storedAt has
// waited, 0 for none.
func age(now, storedAt int64) int64 {
	if storedAt == 0 {
		return 0
	}
	return max(now-storedAt, 0)
}

// registerClientGauges reports the known clients by language and version
// (upstream's rocketmq_producer_connections and
// rocketmq_consumer_connections; here a "connection" is a client the proxy
// knows, whatever its number of TCP connections).
func registerClientGauges(p *otel.Provider, sessions *application.Sessions, log *slog.Logger) {
	meter := p.Meter()
	if meter == nil {
		return
	}
	if err := observeClients(meter, p.Telemetry().Metrics.Labels(), sessions.Census); err != nil {
		log.Warn("cannot register the client gauges", slog.Any("error", err))
	}
}

// observeClients registers the client gauges over census. The language
// and version labels come from the clients' metadata, free-form: they go
// through the label policy's bounds like topics and groups, and the
// clients that share label values after it are summed.
func observeClients(meter metric.Meter, labels labelPolicy, census func() []application.ClientCount) error {
	producers, err := meter.Int64ObservableGauge("rocketmq_producer_connections", metric.WithDescription("Producers the proxy knows, by client language and version."))
	if err != nil {
		return err
	}
	consumers, err := meter.Int64ObservableGauge("rocketmq_consumer_connections", metric.WithDescription("Consumers the proxy knows, by consumer group, client language and version."))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		type key struct {
			consumer             bool
			lang, ver, grp, mode string
		}
		sums := map[key]int64{}
		for _, c := range census() {
			k := key{consumer: c.Type.IsConsumer(), lang: labels.Language(c.Language), ver: labels.Version(c.Version), mode: consumeMode(c.Type)}
			switch {
			case !k.consumer:
			case c.GroupUnknown:
				// A group not found to exist takes no label value of
				// its own: clients can name any group they like.
				k.grp = otel.OtherLabel
			default:
				k.grp = labels.Group(c.Group)
			}
			sums[k] += int64(c.Count)
		}
		for k, n := range sums {
			if k.consumer {
				o.ObserveInt64(consumers, n, metric.WithAttributes(attribute.String("consumer_group", k.grp),
					attribute.String("language", k.lang), attribute.String("version", k.ver),
					attribute.String("consume_mode", k.mode), protocolGRPC))
			} else {
				o.ObserveInt64(producers, n, metric.WithAttributes(attribute.String("language", k.lang), attribute.String("version", k.ver), protocolGRPC))
			}
		}
		return nil
	}, producers, consumers)
	return err
}

// protocolGRPC is the protocol_type of the connection gauges: every client
// rmqproxy knows speaks gRPC (upstream's broker says "remoting" for every
// client, the proxy's gRPC clients too).
var protocolGRPC = attribute.String("protocol_type", "grpc")

// consumeMode is upstream's consume_mode of a consumer: the consume type
// the Apache proxy registers a gRPC consumer with, lowercased (a push
// consumer CONSUME_PASSIVELY, "push"; a simple consumer CONSUME_ACTIVELY,
// "pull").
func consumeMode(t application.ClientType) string {
	switch t {
	case application.ClientTypePushConsumer:
		return "push"
	case application.ClientTypeSimpleConsumer:
		return "pull"
	}
	return ""
}

// registerTrafficMetrics reports what traffic governance refused and held:
// requests refused by each bound (rate limits by scope, the in-flight
// bytes budget, the per-client bound) and receives that waited for their
// rate limits, read from the counters when metrics are collected.
func registerTrafficMetrics(p *otel.Provider, t *application.Traffic, log *slog.Logger) {
	meter := p.Meter()
	if meter == nil {
		return
	}
	err := func() error {
		throttled, err := meter.Int64ObservableCounter("rmqproxy_throttled_requests_total",
			metric.WithDescription("Requests refused with TOO_MANY_REQUESTS by traffic governance, by scope (client, topic, group, namespace, user: rate limits; inflight_bytes, client_inflight, user_inflight, address_inflight: budgets) and direction; receives count when they were held for their whole polling time."))
		if err != nil {
			return err
		}
		waits, err := meter.Int64ObservableCounter("rmqproxy_throttled_receive_waits_total",
			metric.WithDescription("Receives that waited for their rate limits to recover, then were served."))
		if err != nil {
			return err
		}
		waited, err := meter.Float64ObservableCounter("rmqproxy_throttled_receive_wait_seconds_total",
			metric.WithDescription("Time receives spent waiting for their rate limits."), metric.WithUnit("s"))
		if err != nil {
			return err
		}
		inflight, err := meter.Int64ObservableGauge("rmqproxy_inflight_send_bytes",
			metric.WithDescription("Message bytes of send requests being processed (bounded by traffic.maxInflightBytes)."), metric.WithUnit("By"))
		if err != nil {
			return err
		}
		revision, err := meter.Int64ObservableGauge("rmqproxy_traffic_rules_revision",
			metric.WithDescription("Revision of the traffic rules in force (0: none loaded); it counts the rule sets loaded since start."))
		if err != nil {
			return err
		}
		_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			st := t.Stats()
			for _, c := range st.Throttled {
				o.ObserveInt64(throttled, int64(c.Count), metric.WithAttributes(attribute.String("scope", c.Scope), attribute.String("direction", c.Direction.String())))
			}
			o.ObserveInt64(waits, int64(st.ReceiveWaits))
			o.ObserveFloat64(waited, st.ReceiveWaitTime.Seconds())
			o.ObserveInt64(inflight, st.InflightBytes)
			o.ObserveInt64(revision, st.RulesRevision)
			return nil
		}, throttled, waits, waited, inflight, revision)
		return err
	}()
	if err != nil {
		log.Warn("cannot register the traffic metrics", slog.Any("error", err))
	}
}

// registerAuditMetrics reports the audit sink's counters (auth.enabled
// only: without it nothing is audited): events written, events dropped
// because the bounded buffer was full, the buffer's occupancy and size,
// and the refusals coalesced in front of it.
func registerAuditMetrics(p *otel.Provider, audit *application.Security, log *slog.Logger) {
	meter := p.Meter()
	if meter == nil {
		return
	}
	err := func() error {
		written, err := meter.Int64ObservableCounter("rmqproxy_audit_events_total",
			metric.WithDescription("Audit events written to the audit store (PostgreSQL, or the log with auth.source file), including the audit.dropped events that record drops."))
		if err != nil {
			return err
		}
		dropped, err := meter.Int64ObservableCounter("rmqproxy_audit_dropped_total",
			metric.WithDescription("Audit events dropped because the audit buffer was full (the store was slow or unreachable); each loss is also recorded by one audit.dropped event once writing resumes."))
		if err != nil {
			return err
		}
		buffered, err := meter.Int64ObservableGauge("rmqproxy_audit_buffered_events",
			metric.WithDescription("Audit events waiting in the bounded audit buffer; at rmqproxy_audit_buffer_capacity new events are dropped."))
		if err != nil {
			return err
		}
		capacity, err := meter.Int64ObservableGauge("rmqproxy_audit_buffer_capacity",
			metric.WithDescription("Size of the audit buffer (postgres.audit.bufferSize)."))
		if err != nil {
			return err
		}
		coalesced, err := meter.Int64ObservableCounter("rmqproxy_audit_refusals_coalesced_total",
			metric.WithDescription("Refusals (authentication failures, authorization denials) recorded in a coalesced audit event with a count instead of an event of their own (auth.auditCoalesce)."))
		if err != nil {
			return err
		}
		unitemized, err := meter.Int64ObservableCounter("rmqproxy_audit_refusals_unitemized_total",
			metric.WithDescription("Of rmqproxy_audit_refusals_coalesced_total, refusals over auth.auditCoalesce.maxKeys or maxKeysPerOrigin, counted per origin or per category without their resource or other varying fields."))
		if err != nil {
			return err
		}
		keys, err := meter.Int64ObservableGauge("rmqproxy_audit_coalescing_keys",
			metric.WithDescription("Refusal keys and aggregates being coalesced (bounded by auth.auditCoalesce.maxKeys, twice, plus one per category)."))
		if err != nil {
			return err
		}
		_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			st := audit.AuditStats()
			o.ObserveInt64(written, int64(st.Written))
			o.ObserveInt64(dropped, int64(st.Dropped))
			o.ObserveInt64(buffered, int64(st.Buffered))
			o.ObserveInt64(capacity, int64(st.Capacity))
			o.ObserveInt64(coalesced, int64(st.Coalesced))
			o.ObserveInt64(unitemized, int64(st.CoalescedOverflow))
			o.ObserveInt64(keys, int64(st.CoalescingKeys))
			return nil
		}, written, dropped, buffered, capacity, coalesced, unitemized, keys)
		return err
	}()
	if err != nil {
		log.Warn("cannot register the audit metrics", slog.Any("error", err))
	}
}
