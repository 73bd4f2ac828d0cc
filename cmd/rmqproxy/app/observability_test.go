package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker"
	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// The language and version labels of the connection gauges come from the
// clients' metadata: a client making up a version per client id must not
// make a time series per client. Beyond the bounds, clients are counted
// under _other, none is lost.
func TestClientGaugesBoundClientLabels(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.DefaultMetricsConfig(), Info: otel.Info{Mode: ModeLocal}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	const clients = 1000
	var census []application.ClientCount
	for i := range clients {
		census = append(census,
			application.ClientCount{Type: application.ClientTypeProducer, Language: "JAVA", Version: fmt.Sprintf("5.0.%d", i), Count: 1},
			application.ClientCount{Type: application.ClientTypeSimpleConsumer, Language: fmt.Sprintf("LANG-%d", i), Version: "5.0.8", Group: "g", Count: 1},
			application.ClientCount{Type: application.ClientTypeProducer, Language: "GOLANG", Version: strings.Repeat("v", 10_000) + fmt.Sprint(i), Count: 1})
	}
	if err := observeClients(p.Meter(), p.Telemetry().Metrics.Labels(), func() []application.ClientCount { return census }); err != nil {
		t.Fatal(err)
	}
	families := scrape(t, p)
	for name, want := range map[string]float64{"rocketmq_producer_connections": 2 * clients, "rocketmq_consumer_connections": clients} {
		f := families[name]
		if f == nil {
			t.Fatalf("%s not exported", name)
		}
		var sum float64
		longest := 0
		for _, m := range f.GetMetric() {
			sum += m.GetGauge().GetValue()
			for _, l := range m.GetLabel() {
				longest = max(longest, len(l.GetValue()))
			}
		}
		if longest > 64 {
			t.Errorf("%s has a %d-byte label value", name, longest)
		}
		if n := len(f.GetMetric()); n > 200 {
			t.Errorf("%s has %d series for %v clients: the client-declared language and version are not bounded", name, n, want)
		}
		if sum != want {
			t.Errorf("%s sums to %v, want %v (every client counted, under _other beyond the bounds)", name, sum, want)
		}
	}
}

// Consumers of groups not found to exist (a client may name any group it
// likes, within what it may Sub) are counted under _other without taking
// one of the metrics.maxGroups label values: an existing group seen after
// a thousand made-up ones still gets its own.
func TestClientGaugesMadeUpGroupsTakeNoLabel(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.DefaultMetricsConfig(), Info: otel.Info{Mode: ModeLocal}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	var census []application.ClientCount
	for i := range 1000 {
		census = append(census, application.ClientCount{Type: application.ClientTypeSimpleConsumer, Language: "GOLANG", Version: "5.1.4",
			Group: fmt.Sprint("made-up-", i), GroupUnknown: true, Count: 1})
	}
	census = append(census, application.ClientCount{Type: application.ClientTypeSimpleConsumer, Language: "GOLANG", Version: "5.1.4", Group: "orders", Count: 2})
	if err := observeClients(p.Meter(), p.Telemetry().Metrics.Labels(), func() []application.ClientCount { return census }); err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, m := range scrape(t, p)["rocketmq_consumer_connections"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "consumer_group" {
				got[l.GetValue()] += m.GetGauge().GetValue()
			}
		}
	}
	if len(got) != 2 || got["orders"] != 2 || got[otel.OtherLabel] != 1000 {
		t.Fatalf("consumer_group series: %d, orders %v, _other %v; want orders 2 and _other 1000 only", len(got), got["orders"], got[otel.OtherLabel])
	}
}

// The connection gauges carry upstream's consume_mode (push for a push
// consumer, pull for a simple consumer, as the Apache proxy registers
// them) and protocol_type, which dashboards split consumers by.
func TestClientGaugesSayConsumeModeAndProtocol(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.DefaultMetricsConfig(), Info: otel.Info{Mode: ModeLocal}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	census := []application.ClientCount{
		{Type: application.ClientTypePushConsumer, Language: "GOLANG", Version: "5.1.4", Group: "g", Count: 2},
		{Type: application.ClientTypeSimpleConsumer, Language: "GOLANG", Version: "5.1.4", Group: "g", Count: 3},
		{Type: application.ClientTypeProducer, Language: "GOLANG", Version: "5.1.4", Count: 1},
	}
	if err := observeClients(p.Meter(), p.Telemetry().Metrics.Labels(), func() []application.ClientCount { return census }); err != nil {
		t.Fatal(err)
	}
	families := scrape(t, p)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rocketmq_consumer_connections", map[string]string{"consume_mode": "push", "protocol_type": "grpc", "consumer_group": "g"}, 2},
		{"rocketmq_consumer_connections", map[string]string{"consume_mode": "pull", "protocol_type": "grpc", "consumer_group": "g"}, 3},
		{"rocketmq_producer_connections", map[string]string{"protocol_type": "grpc"}, 1},
	} {
		if got := counterValue(families, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

// scrape returns the metric families p serves at /metrics.
func scrape(t *testing.T, p *otel.Provider) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	p.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// counterValue is the value of the series of name whose labels include
// want, 0 when there is none.
func counterValue(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var v float64
	for _, m := range families[name].GetMetric() {
		n := 0
		for _, l := range m.GetLabel() {
			if want[l.GetName()] == l.GetValue() {
				n++
			}
		}
		if n == len(want) {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue() // a counter or a gauge
		}
	}
	return v
}

// A message the local broker moves to the dead-letter queue itself, because
// its delivery used the group's last attempt (how a simple consumer's
// poison message ends), counts in rocketmq_send_to_dlq_messages_total, as
// upstream's broker counts it; the metric counted only the consumers'
// ForwardMessageToDeadLetterQueue calls. A consumer's forward counts once
// too, however often it is repeated.
func TestExhaustedDeliveriesCountAsSentToDLQ(t *testing.T) {
	p, err := otel.New(otel.Options{Metrics: otel.DefaultMetricsConfig(), Info: otel.Info{Mode: ModeLocal}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	cfg := localbroker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.FlushInterval = 50 * time.Millisecond
	log := slog.New(slog.DiscardHandler)
	e, err := localbroker.New(cfg, log, ports.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	instrumentEngine(e, p, e, nil, log)
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	g := domain.NewConsumerGroup("g")
	g.MaxDeliveryAttempts = 1
	if _, err := e.CreateGroup(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTopic(t.Context(), domain.Topic{Name: "t", Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermReadWrite}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Send(t.Context(), domain.QueueRef{Topic: "t", BrokerName: cfg.BrokerName, QueueID: 0},
		[]domain.Message{{Topic: "t", ID: "poison", Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	got, err := e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 1, InvisibleTime: 50 * time.Millisecond})
	if err != nil || len(got) != 1 {
		t.Fatalf("pop: %v %v", got, err)
	}
	// Not acked: when its invisible time ends, the engine dead-letters it.
	labels := map[string]string{"topic": "t", "consumer_group": "g"}
	waitfor.Condition(t, 10*time.Second, 20*time.Millisecond, func() error {
		if v := counterValue(scrape(t, p), "rocketmq_send_to_dlq_messages_total", labels); v != 1 {
			return fmt.Errorf("rocketmq_send_to_dlq_messages_total%v = %v, want 1", labels, v)
		}
		return nil
	})
	// A consumer's forward is counted by the engine that moves it, once:
	// the client's retry of the same handle moves nothing.
	if _, err := e.Send(t.Context(), domain.QueueRef{Topic: "t", BrokerName: cfg.BrokerName, QueueID: 0},
		[]domain.Message{{Topic: "t", ID: "forwarded", Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	got, err = e.Pop(t.Context(), ports.PopRequest{Group: "g", Topic: "t", QueueID: 0, MaxMessages: 1, InvisibleTime: time.Minute})
	if err != nil || len(got) != 1 {
		t.Fatalf("pop: %v %v", got, err)
	}
	h, err := domain.ParseReceiptHandle(got[0].ReceiptHandle)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.ForwardToDeadLetter(t.Context(), ports.AckRequest{Group: "g", Topic: "t", MessageID: got[0].ID, Handle: h}); err != nil {
			t.Fatal(err)
		}
	}
	if v := counterValue(scrape(t, p), "rocketmq_send_to_dlq_messages_total", labels); v != 2 {
		t.Errorf("after a consumer's forward and its retry, rocketmq_send_to_dlq_messages_total%v = %v, want 2", labels, v)
	}
}

// Every proxy of a deployment must report its own service.instance.id:
// with the default grpc.address (every interface) local.storeHost is the
// loopback fallback 127.0.0.1:8081 on every host, so OTLP metrics and
// spans of all proxies carried the same resource.
func TestInstanceIDTellsProxiesApart(t *testing.T) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skip("no host name")
	}
	cfg := Defaults(ProfileProduction)
	cfg.Derive()
	if got, want := telemetryInfo(cfg).InstanceID, net.JoinHostPort(host, "8081"); got != want {
		t.Errorf("default configuration: instance id %q, want %q (local.storeHost is %s)", got, want, cfg.Local.StoreHost)
	}
	cfg.GRPC.Address = "10.1.2.3:9876"
	cfg.Local.StoreHost = ""
	cfg.Derive()
	if got := telemetryInfo(cfg).InstanceID; got != "10.1.2.3:9876" {
		t.Errorf("grpc.address on 10.1.2.3: instance id %q, want the store host 10.1.2.3:9876", got)
	}
}
