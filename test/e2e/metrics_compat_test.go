package e2e_test

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// seriesLabels returns the labels of a series as a map.
func seriesLabels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestMetricsMatchTheApacheProxysPrometheusNames scrapes a real rmqproxy
// after a send and checks what a dashboard or alert rule written against
// an Apache RocketMQ 5.5.0 proxy and broker queries (their
// OpenTelemetry Java Prometheus exporter, scraped for reference):
// every series carries the constant labels cluster, node_type and
// node_id that dashboards group and filter by; the RPC latency
// histogram is rocketmq_rpc_latency_milliseconds (the exporter appends
// the unit), with upstream's bucket bounds and bounds for long polls
// beyond 30 s; node_id is the instance id, with the port the gRPC
// listener is bound to (grpc.address here ends in :0).
func TestMetricsMatchTheApacheProxysPrometheusNames(t *testing.T) {
	cfg := testenv.Config(t)
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "compat-metrics")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, p)

	if _, ok := fams["rocketmq_rpc_latency"]; ok {
		t.Errorf("/metrics has rocketmq_rpc_latency; the Apache proxy's Prometheus name is rocketmq_rpc_latency_milliseconds")
	}
	lat := fams["rocketmq_rpc_latency_milliseconds"]
	if lat == nil || !hasSeries(fams, "rocketmq_rpc_latency_milliseconds", map[string]string{"request_code": "SendMessage", "response_code": "OK"}) {
		t.Errorf("no rocketmq_rpc_latency_milliseconds{request_code=SendMessage,response_code=OK} series")
	} else {
		var bounds []float64
		for _, b := range lat.GetMetric()[0].GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		for _, want := range []float64{1, 3, 5, 7, 10, 100, 1000, 2000, 3000, 60000} {
			if !slices.Contains(bounds, want) {
				t.Errorf("rocketmq_rpc_latency_milliseconds buckets %v lack %v ms", bounds, want)
			}
		}
	}

	_, port, err := net.SplitHostPort(p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	var instance string
	for _, m := range fams["target_info"].GetMetric() {
		instance = seriesLabels(m)["service_instance_id"]
	}
	if !strings.HasSuffix(instance, ":"+port) {
		t.Errorf("target_info service_instance_id = %q, want the bound gRPC port %s", instance, port)
	}

	wantCluster, nodeType := "DefaultCluster", "broker"
	if cfg.Mode == app.ModeCluster {
		wantCluster, nodeType = cfg.Cluster.ClusterName, "proxy"
	}
	// In cluster mode the brokers report these too (node_type broker):
	// rmqproxy's copies carry no cluster, so that a panel summing a
	// cluster does not count each message twice.
	brokerCopies := map[string]bool{"rocketmq_messages_in_total": true, "rocketmq_throughput_in_total": true, "rocketmq_message_size": true,
		"rocketmq_messages_out_total": true, "rocketmq_throughput_out_total": true, "rocketmq_commit_messages_total": true,
		"rocketmq_rollback_messages_total": true, "rocketmq_producer_connections": true, "rocketmq_consumer_connections": true}
	checked := 0
	for name, f := range fams {
		if !strings.HasPrefix(name, "rocketmq_") && !strings.HasPrefix(name, "rmqproxy_") {
			continue
		}
		wantType, cluster := nodeType, wantCluster
		if name == "rocketmq_proxy_up" {
			wantType = "proxy"
		}
		if cfg.Mode == app.ModeCluster && brokerCopies[name] {
			cluster = ""
		}
		for _, m := range f.GetMetric() {
			checked++
			l := seriesLabels(m)
			if l["cluster"] != cluster || l["node_type"] != wantType || l["node_id"] != instance || instance == "" {
				t.Errorf("%s%v: want cluster=%q node_type=%q node_id=%q", name, l, cluster, wantType, instance)
				break
			}
		}
	}
	if !hasSeries(fams, "rocketmq_messages_in_total", map[string]string{"topic": topic, "is_system": "false"}) {
		t.Errorf("no rocketmq_messages_in_total{topic=%q,is_system=\"false\"}", topic)
	}
	if checked == 0 || !hasSeries(fams, "rocketmq_proxy_up", nil) {
		t.Errorf("no rocketmq_ series scraped")
	}
}

// TestLocalModeExportsTheBrokersStoreAndLatencyGauges: in local mode
// rmqproxy is the broker, and dashboards written for an Apache RocketMQ
// 5.5.0 broker query its store gauges and the consumers' latency gauges
// under the names its Prometheus exporter gives them (unit appended,
// storage_type and storage_medium labels; seen in a scrape of a 5.5.0
// broker). None was exported: a reserve-time or lag-latency alert found
// nothing. With a message held in flight and one not yet delivered, the
// latencies of the group's series are positive; a delay message that
// fired counts once in rocketmq_timer_enqueue_total and _dequeue_total.
func TestLocalModeExportsTheBrokersStoreAndLatencyGauges(t *testing.T) {
	testenv.LocalOnly(t, "the store gauges are the embedded broker's")
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "store-gauges"), testenv.Name(t, "g-store-gauges")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pr := testenv.NewProducer(t, p, topic)
	for range 2 {
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	testenv.ReceiveFirst(t, c, 30*time.Second, time.Hour) // held in flight
	// A delay message, due in a second: it enters the timing wheel and
	// leaves it when it fires.
	delayed := testenv.Name(t, "store-gauges-delay")
	p.CreateTopic(t, delayed, domain.MessageTypeDelay, 1)
	dp := testenv.NewProducer(t, p, delayed)
	dm := &rmq.Message{Topic: delayed, Body: []byte("later")}
	dm.SetDelayTimestamp(time.Now().Add(time.Second))
	if _, err := dp.Send(t.Context(), dm); err != nil {
		t.Fatal(err)
	}

	storage := map[string]string{"storage_type": "local", "storage_medium": "disk"}
	consumer := map[string]string{"topic": topic, "consumer_group": group, "is_system": "false"}
	testenv.WaitFor(t, 30*time.Second, func() error {
		fams := scrape(t, p)
		for _, g := range []struct {
			name   string
			labels map[string]string
		}{
			{"rocketmq_storage_size_bytes", storage}, {"rocketmq_storage_message_reserve_time_milliseconds", storage},
			{"rocketmq_consumer_lag_latency_milliseconds", consumer}, {"rocketmq_consumer_queueing_latency_milliseconds", consumer},
		} {
			if fams[g.name].GetType() != dto.MetricType_GAUGE || !hasSeries(fams, g.name, g.labels) {
				return fmt.Errorf("no gauge %s%v", g.name, g.labels)
			}
			if v := metricValue(fams, g.name, g.labels); v <= 0 {
				return fmt.Errorf("%s%v = %v, want > 0", g.name, g.labels, v)
			}
		}
		// Upstream's counts of topics and groups; the test's among them.
		if v := metricValue(fams, "rocketmq_topic_number", nil); v < 2 {
			return fmt.Errorf("rocketmq_topic_number = %v, want >= 2", v)
		}
		if v := metricValue(fams, "rocketmq_consumer_group_number", nil); v < 1 {
			return fmt.Errorf("rocketmq_consumer_group_number = %v, want >= 1", v)
		}
		if !hasSeries(fams, "rocketmq_storage_flush_behind_bytes", storage) {
			return fmt.Errorf("no rocketmq_storage_flush_behind_bytes%v", storage)
		}
		// Upstream's store counters: storage labels, no is_system.
		timer := map[string]string{"topic": delayed, "storage_type": "local", "storage_medium": "disk", "is_system": ""}
		for _, name := range []string{"rocketmq_timer_enqueue_total", "rocketmq_timer_dequeue_total"} {
			if fams[name].GetType() != dto.MetricType_COUNTER || !hasSeries(fams, name, timer) || metricValue(fams, name, timer) != 1 {
				return fmt.Errorf("no counter %s%v at 1 (delay message sent and fired)", name, timer)
			}
		}
		// Its delay (about a second) is in the first bucket, a minute.
		const delay = "rocketmq_delay_message_latency_seconds"
		if fams[delay].GetType() != dto.MetricType_HISTOGRAM || metricValue(fams, delay, timer) != 1 {
			return fmt.Errorf("no histogram %s%v of 1 message", delay, timer)
		}
		var bounds []float64
		for _, b := range fams[delay].GetMetric()[0].GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				bounds = append(bounds, b.GetUpperBound())
			}
		}
		if want := []float64{60, 600, 3600, 43200, 86400, 259200}; !slices.Equal(bounds, want) {
			return fmt.Errorf("%s bounds %v, want upstream's %v", delay, bounds, want)
		}
		for _, unsuffixed := range []string{"rocketmq_storage_size", "rocketmq_consumer_lag_latency", "rocketmq_delay_message_latency"} {
			if _, ok := fams[unsuffixed]; ok {
				t.Errorf("/metrics has %s; upstream's Prometheus name has the unit appended", unsuffixed)
			}
		}
		return nil
	})
}
