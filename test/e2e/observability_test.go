package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc/metadata"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/otel"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// tracedProxy starts rmqproxy exporting every span to an OTLP receiver in
// this test process. The batch span processor exports every 100 ms (the
// child inherits OTEL_BSP_SCHEDULE_DELAY) so that the test waits briefly.
func tracedProxy(t *testing.T) (*testenv.Proxy, *testenv.OTLPCollector, app.Root) {
	t.Helper()
	col := testenv.StartOTLPCollector(t)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	cfg := testenv.Config(t)
	cfg.Tracing.Enabled = true
	cfg.Tracing.SampleRatio = 1
	cfg.OTLP.Endpoint = col.Endpoint()
	return testenv.Start(t, cfg), col, cfg
}

// findSpan waits for a span that match accepts.
func findSpan(t *testing.T, col *testenv.OTLPCollector, what string, match func(testenv.Span) bool) testenv.Span {
	t.Helper()
	var found testenv.Span
	testenv.WaitFor(t, 30*time.Second, func() error {
		for _, s := range col.Spans() {
			if match(s) {
				found = s
				return nil
			}
		}
		return fmt.Errorf("no %s span among %d received", what, len(col.Spans()))
	})
	return found
}

func wantAttrs(t *testing.T, s testenv.Span, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := s.Attrs[k]
		switch {
		case !ok:
			t.Errorf("span %q has no attribute %s (attributes: %v)", s.Name, k, s.Attrs)
		case v != "*" && got != v:
			t.Errorf("span %q: %s = %q, want %q", s.Name, k, got, v)
		case v == "*" && got == "":
			t.Errorf("span %q: %s is empty", s.Name, k)
		}
	}
}

// TestTracingSendAndConsumeAreLinked: a send and its consume through the
// official Go client produce spans in an OTLP receiver: the send span (with
// the RocketMQ attributes) whose context rides in the message, the broker
// and storage spans under it, and a receive span that links to the send
// span, then the ack. The Go client v5.1.4 sets no trace context of its
// own, but a caller's traceparent in the context's outgoing metadata (as
// OpenTelemetry's gRPC instrumentation adds it) reaches the proxy and
// parents the send span.
func TestTracingSendAndConsumeAreLinked(t *testing.T) {
	p, col, cfg := tracedProxy(t)
	topic, group := testenv.Name(t, "otel-traced"), testenv.Name(t, "g-otel-traced")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	pr := testenv.NewProducer(t, p, topic)
	msg := &rmq.Message{Topic: topic, Body: []byte("traced body")}
	msg.SetTag("tag-a")
	msg.SetKeys("key-1")
	const callerTrace, callerSpan = "5bf92f3577b34da6a3ce929d0e0e4736", "10f067aa0ba902b7"
	sendCtx := metadata.AppendToOutgoingContext(t.Context(), "traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	r, err := pr.Send(sendCtx, msg)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	id := r[0].MessageID

	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := testenv.ReceiveFirst(t, c, 30*time.Second, 20*time.Second)
	if got.GetMessageId() != id {
		t.Fatalf("received %s, sent %s", got.GetMessageId(), id)
	}
	if err := c.Ack(t.Context(), got); err != nil {
		t.Fatalf("ack: %v", err)
	}

	send := findSpan(t, col, "send", func(s testenv.Span) bool {
		return s.Name == "send "+topic && s.Attrs["messaging.message.id"] == id
	})
	wantAttrs(t, send, map[string]string{
		"messaging.system":                "rocketmq",
		"messaging.operation.type":        "send",
		"messaging.operation.name":        "send",
		"messaging.destination.name":      topic,
		"messaging.client.id":             "*",
		"messaging.rocketmq.client_id":    "*",
		"messaging.rocketmq.message.tag":  "tag-a",
		"messaging.rocketmq.message.keys": "key-1",
		"messaging.rocketmq.message.type": "normal",
		"messaging.message.body.size":     "11",
		"messaging.batch.message_count":   "1",
		"rpc.system":                      "grpc",
		"rpc.method":                      "SendMessage",
		"rocketmq.status.code":            "20000",
		"rpc.grpc.status_code":            "0",
	})
	if send.TraceID != callerTrace || send.ParentSpanID != callerSpan {
		t.Errorf("send span in trace %s with parent %s, want the caller's %s %s", send.TraceID, send.ParentSpanID, callerTrace, callerSpan)
	}
	if send.Kind.String() != "SPAN_KIND_SERVER" {
		t.Errorf("send span kind %v, want server", send.Kind)
	}
	if send.ResourceAttrs["service.name"] != "rmqproxy" {
		t.Errorf("resource service.name %q", send.ResourceAttrs["service.name"])
	}
	// The trace context rode in the message: the consumer sees the send
	// span's context in the message's trace_context system property.
	tp := got.GetTraceContext()
	if tp == nil || !strings.Contains(*tp, send.TraceID+"-"+send.SpanID) {
		t.Errorf("received trace_context %v, want the send span's context %s-%s", tp, send.TraceID, send.SpanID)
	}

	recv := findSpan(t, col, "receive", func(s testenv.Span) bool {
		if s.Name != "receive "+topic {
			return false
		}
		for _, l := range s.Links {
			if l.SpanID == send.SpanID {
				return true
			}
		}
		return false
	})
	wantAttrs(t, recv, map[string]string{
		"messaging.system":                "rocketmq",
		"messaging.operation.type":        "receive",
		"messaging.destination.name":      topic,
		"messaging.consumer.group.name":   group,
		"messaging.rocketmq.client_group": group,
		"messaging.client.id":             "*",
		"messaging.message.id":            id,
		"messaging.batch.message_count":   "1",
		"rpc.method":                      "ReceiveMessage",
		"rpc.grpc.status_code":            "0",
		"rocketmq.status.code":            "20000",
	})
	for _, l := range recv.Links {
		if l.SpanID == send.SpanID && (l.TraceID != send.TraceID || l.Attrs["messaging.message.id"] != id) {
			t.Errorf("receive link %+v, want trace %s and message id %s", l, send.TraceID, id)
		}
	}

	ack := findSpan(t, col, "ack", func(s testenv.Span) bool {
		return s.Name == "ack "+topic && s.Attrs["messaging.message.id"] == id
	})
	wantAttrs(t, ack, map[string]string{"messaging.operation.type": "settle", "messaging.consumer.group.name": group, "rocketmq.status.code": "20000"})

	// The broker call is a child of the send span; in local mode the
	// engine's append and its wait for durability are children of it.
	broker := findSpan(t, col, "broker send", func(s testenv.Span) bool {
		return s.Name == "broker send "+topic && s.ParentSpanID == send.SpanID
	})
	if broker.TraceID != send.TraceID {
		t.Errorf("broker span in trace %s, send in %s", broker.TraceID, send.TraceID)
	}
	if cfg.Mode == app.ModeLocal {
		store := findSpan(t, col, "store send", func(s testenv.Span) bool { return s.Name == "store send" && s.ParentSpanID == broker.SpanID })
		findSpan(t, col, "store wait durable", func(s testenv.Span) bool { return s.Name == "store wait durable" && s.ParentSpanID == store.SpanID })
	}
}

// TestTracingFollowsTheProducersContext: a producer that puts a W3C
// trace context in trace_context (as the C++ client does) gets a proxy
// send span that is the child of its span, and its consumer receives that
// context unchanged; a caller's traceparent metadata (OpenTelemetry's gRPC
// instrumentation) makes the request's span its child.
func TestTracingFollowsTheProducersContext(t *testing.T) {
	p, col, _ := tracedProxy(t)
	topic, group := testenv.Name(t, "otel-parent"), testenv.Name(t, "g-otel-parent")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	raw := testenv.NewRawClient(t, p)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	producerCtx := "00-" + traceID + "-" + parentID + "-01"
	m := testenv.RawMessage(topic, []byte("x"), "")
	m.SystemProperties.TraceContext = &producerCtx
	id := m.GetSystemProperties().GetMessageId()
	resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send: %v %v", resp.GetStatus(), err)
	}
	send := findSpan(t, col, "send", func(s testenv.Span) bool { return s.Attrs["messaging.message.id"] == id && s.Name == "send "+topic })
	if send.TraceID != traceID || send.ParentSpanID != parentID {
		t.Errorf("send span trace %s parent %s, want the producer's %s %s", send.TraceID, send.ParentSpanID, traceID, parentID)
	}
	raw.Subscribe(t, group, topic)
	var msgs []*v2.Message
	testenv.WaitFor(t, 30*time.Second, func() error {
		_, msgs = raw.Receive(t, testenv.ReceiveRequest(group, topic, 1, 30*time.Second))
		if len(msgs) == 0 {
			return fmt.Errorf("no message yet")
		}
		return nil
	})
	if got := msgs[0].GetSystemProperties().GetTraceContext(); len(msgs) != 1 || got != producerCtx {
		t.Fatalf("received %d messages with trace_context %q, want one with the producer's %s", len(msgs), got, producerCtx)
	}
	recv := findSpan(t, col, "receive", func(s testenv.Span) bool { return s.Name == "receive "+topic && len(s.Links) > 0 })
	if len(recv.Links) != 1 || recv.Links[0].SpanID != parentID || recv.Links[0].TraceID != traceID {
		t.Errorf("receive links %+v, want the producer's span %s", recv.Links, parentID)
	}

	// traceparent metadata parents the request's span.
	const callerTrace, callerSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	ctx := metadata.AppendToOutgoingContext(raw.Ctx(t), "traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	if _, err := raw.QueryRoute(ctx, &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}, Endpoints: &v2.Endpoints{}}); err != nil {
		t.Fatal(err)
	}
	route := findSpan(t, col, "query_route", func(s testenv.Span) bool { return s.Name == "query_route" && s.TraceID == callerTrace })
	if route.ParentSpanID != callerSpan {
		t.Errorf("query_route span parent %s, want the caller's %s", route.ParentSpanID, callerSpan)
	}
}

// TestTracingFollowsTheContextInUserProperties: OpenTelemetry's Java
// agent puts the producer span's context in the message's traceparent
// user property (the Java client sets no trace_context and sends no
// traceparent metadata). Sent here by the official Go client with the same
// property: the proxy's send span is the child of that context, so the
// proxy's spans join the producer's trace, and the receive span links
// into it.
func TestTracingFollowsTheContextInUserProperties(t *testing.T) {
	p, col, _ := tracedProxy(t)
	topic, group := testenv.Name(t, "otel-userprop"), testenv.Name(t, "g-otel-userprop")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	pr := testenv.NewProducer(t, p, topic)
	const traceID, parentID = "6bf92f3577b34da6a3ce929d0e0e4736", "01f067aa0ba902b7"
	msg := &rmq.Message{Topic: topic, Body: []byte("java agent")}
	msg.AddProperty("traceparent", "00-"+traceID+"-"+parentID+"-01")
	r, err := pr.Send(t.Context(), msg)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	id := r[0].MessageID
	send := findSpan(t, col, "send", func(s testenv.Span) bool { return s.Name == "send "+topic && s.Attrs["messaging.message.id"] == id })
	if send.TraceID != traceID || send.ParentSpanID != parentID {
		t.Errorf("send span in trace %s with parent %s, want the producer's %s %s (traceparent user property)", send.TraceID, send.ParentSpanID, traceID, parentID)
	}
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := testenv.ReceiveFirst(t, c, 30*time.Second, 20*time.Second)
	if got.GetMessageId() != id || got.GetProperties()["traceparent"] != "00-"+traceID+"-"+parentID+"-01" {
		t.Errorf("received %s with properties %v, want %s with the producer's traceparent", got.GetMessageId(), got.GetProperties(), id)
	}
	recv := findSpan(t, col, "receive", func(s testenv.Span) bool { return s.Name == "receive "+topic && len(s.Links) > 0 })
	if len(recv.Links) != 1 || recv.Links[0].TraceID != traceID {
		t.Errorf("receive links %+v, want one into the producer's trace %s", recv.Links, traceID)
	}
}

// scrape reads the proxy's /metrics.
func scrape(t *testing.T, p *testenv.Proxy) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapeAt(t, p.HealthAddr())
}

// scrapeAt reads /metrics of the health endpoints at addr.
func scrapeAt(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// metricValue is the value of the series of name whose labels include
// labels (counter, gauge, or a histogram's count); 0 when absent.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// hasSeries reports whether name has a series whose labels include labels.
func hasSeries(fams map[string]*dto.MetricFamily, name string, labels map[string]string) bool {
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue next
			}
		}
		return true
	}
	return false
}

// TestMetricsCountExactly scrapes /metrics around a scenario of the
// official Go client: 10 sends of 100 bytes, then 10 receives and acks.
// The counters move by exactly those amounts.
func TestMetricsCountExactly(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "otel-metrics"), testenv.Name(t, "g-otel-metrics")
	const n, size = 10, 100
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	pr := testenv.NewProducer(t, p, topic)
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})

	in := map[string]string{"topic": topic, "message_type": "normal"}
	out := map[string]string{"topic": topic, "consumer_group": group}
	sendOK := map[string]string{"protocol_type": "grpc", "request_code": "SendMessage", "response_code": "OK"}
	ackOK := map[string]string{"protocol_type": "grpc", "request_code": "AckMessage", "response_code": "OK"}
	before := scrape(t, p)

	for i := range n {
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: bytes.Repeat([]byte{'a' + byte(i)}, size)}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	mid := scrape(t, p)
	delta := func(a, b map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
		return metricValue(b, name, labels) - metricValue(a, name, labels)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rocketmq_messages_in_total", in, n},
		{"rocketmq_throughput_in_total", in, n * size},
		{"rocketmq_message_size", in, n},
		{"rocketmq_rpc_latency_milliseconds", sendOK, n},
		{"rocketmq_messages_out_total", out, 0},
	} {
		if got := delta(before, mid, c.name, c.labels); got != c.want {
			t.Errorf("after %d sends: %s%v moved by %v, want %v", n, c.name, c.labels, got, c.want)
		}
	}
	if v := metricValue(mid, "rocketmq_producer_connections", map[string]string{"language": "GO"}); v < 1 {
		t.Errorf("rocketmq_producer_connections{language=GO} = %v, want at least 1: %v", v, mid["rocketmq_producer_connections"])
	}

	var got []*rmq.MessageView
	testenv.WaitFor(t, 60*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 16, 30*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		for _, m := range ms {
			if err := c.Ack(t.Context(), m); err != nil {
				return err
			}
		}
		got = append(got, ms...)
		if len(got) < n {
			return fmt.Errorf("%d of %d received", len(got), n)
		}
		return nil
	})
	after := scrape(t, p)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rocketmq_messages_out_total", out, float64(len(got))},
		{"rocketmq_throughput_out_total", out, float64(len(got) * size)},
		{"rmqproxy_messages_acked_total", out, float64(len(got))},
		{"rocketmq_rpc_latency_milliseconds", ackOK, float64(len(got))},
		{"rocketmq_messages_in_total", in, 0},
	} {
		if got := delta(mid, after, c.name, c.labels); got != c.want {
			t.Errorf("after receiving and acking: %s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if len(got) != n {
		t.Errorf("received %d messages, want %d (each once)", len(got), n)
	}
	if v := metricValue(after, "rocketmq_consumer_connections", map[string]string{"consumer_group": group, "language": "GO"}); v != 1 {
		t.Errorf("rocketmq_consumer_connections{consumer_group=%s} = %v, want 1", group, v)
	}
	if cfg.Mode != app.ModeLocal {
		return // the storage and consumer-progress gauges are the embedded broker's
	}
	if !hasSeries(after, "rocketmq_consumer_lag_messages", out) {
		t.Errorf("no rocketmq_consumer_lag_messages%v in local mode", out)
	}
	if v := metricValue(after, "rocketmq_consumer_lag_messages", out); v != 0 {
		t.Errorf("rocketmq_consumer_lag_messages%v = %v after everything was acked, want 0", out, v)
	}
	if v := metricValue(after, "rmqproxy_storage_fsync_latency", nil); v < 1 {
		t.Errorf("rmqproxy_storage_fsync_latency has %v observations, want some", v)
	}
}

// TestDeadLetterMetricCountsEachMessageOnce: rocketmq_send_to_dlq_messages_total
// counted each ForwardMessageToDeadLetterQueue answered OK, so a client's
// retry of a forward counted one message twice, and it missed the messages
// a receive forwards because they are past a maximum lowered while they
// were in flight. The engine that moves a message counts it, once.
func TestDeadLetterMetricCountsEachMessageOnce(t *testing.T) {
	testenv.LocalOnly(t, "in cluster mode the RocketMQ broker moves the messages and counts them in its own metric")
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	const topic, group = "dlq-metric", "g-dlq-metric"
	raw := p.Subscriber(t, topic, group, 1)
	raw.SendN(t, topic, 2)
	labels := map[string]string{"topic": topic, "consumer_group": group}
	wantDLQ := func(what string, want float64) {
		t.Helper()
		testenv.WaitFor(t, 10*time.Second, func() error {
			if v := metricValue(scrape(t, p), "rocketmq_send_to_dlq_messages_total", labels); v != want {
				return fmt.Errorf("%s: rocketmq_send_to_dlq_messages_total%v = %v, want %v", what, labels, v, want)
			}
			return nil
		})
	}
	msgs := raw.ReceiveN(t, group, topic, 2, 2*time.Second, 30*time.Second)

	// The consumer forwards the first one, and retries the forward with the
	// same handle (as a client does when the answer is lost): both OK.
	fwd := &v2.ForwardMessageToDeadLetterQueueRequest{Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: topic},
		ReceiptHandle: msgs[0].GetSystemProperties().GetReceiptHandle(), MessageId: msgs[0].GetSystemProperties().GetMessageId(),
		DeliveryAttempt: 1, MaxDeliveryAttempts: 16}
	for i := range 2 {
		resp, err := raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), fwd)
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("forward %d: %v %v", i, resp, err)
		}
	}
	wantDLQ("one message forwarded twice", 1)

	// The second one becomes visible again after its first attempt; then
	// the group's maximum drops to 1, so the next receive finds it past the
	// maximum and moves it to the dead-letter queue instead of delivering it.
	testenv.WaitFor(t, 30*time.Second, func() error {
		st, err := p.Admin.GroupStats(t.Context(), group)
		if err != nil {
			return err
		}
		if len(st) != 1 || st[0].InFlight != 0 || st[0].Consumable != 1 {
			return fmt.Errorf("not visible again yet: %+v", st)
		}
		return nil
	})
	if _, err := p.Admin.UpdateGroup(t.Context(), application.GroupSpec{Name: group, MaxDeliveryAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	if got := raw.ReceiveAnswered(t, testenv.ReceiveRequest(group, topic, 1, 2*time.Second)); len(got) != 0 {
		t.Fatalf("a message past the group's maximum was delivered (attempt %d)", got[0].GetSystemProperties().GetDeliveryAttempt())
	}
	wantDLQ("plus one past a lowered maximum", 2)
	dlq := domain.DeadLetterTopic(group)
	testenv.WaitForRoute(t, p, dlq)
	if got := raw.ReceiveN(t, "g-dlq-metric-reader", dlq, 2, time.Minute, 30*time.Second); len(got) != 2 {
		t.Fatalf("%d messages in the dead-letter queue, want 2", len(got))
	}
	wantDLQ("after reading the dead-letter queue", 2)
}

// TestAckMetricCountsEachDeliveryOnce: rmqproxy_messages_acked_total
// counted every ack entry answered OK, so a consumer's retry of an ack
// (its answer lost, or timed out: answered OK again, as the message is
// acked) counted one delivery twice or more, and the acks exceeded the
// deliveries. The local broker counts a delivery when it acks it, once.
func TestAckMetricCountsEachDeliveryOnce(t *testing.T) {
	testenv.LocalOnly(t, "in cluster mode an ack answered OK by the RocketMQ broker does not say whether it was a repeat")
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "ack-metric"), testenv.Name(t, "g-ack-metric")
	raw := p.Subscriber(t, topic, group, 1)
	raw.SendN(t, topic, 2)
	msgs := raw.ReceiveN(t, group, topic, 2, 30*time.Second, 30*time.Second)
	for i := range 3 { // the first ack of both, then two retries of it
		resp, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, msgs))
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("ack %d: %v %v", i, resp, err)
		}
	}
	labels := map[string]string{"topic": topic, "consumer_group": group}
	fams := scrape(t, p)
	if v := metricValue(fams, "rmqproxy_messages_acked_total", labels); v != 2 {
		t.Errorf("rmqproxy_messages_acked_total%v = %v after 2 deliveries acked (the ack repeated twice), want 2", labels, v)
	}
	if v := metricValue(fams, "rocketmq_messages_out_total", labels); v != 2 {
		t.Errorf("rocketmq_messages_out_total%v = %v, want 2", labels, v)
	}
}

// TestMetricsFreeTheLabelsOfDeletedTopics: with every topic and group
// label slot taken (metrics.maxTopics 2, metrics.maxGroups 1), deleting a
// topic (the CLI) and a group (the admin API) frees their slots: none of
// their series is on /metrics any more, and a topic and a group counted
// under _other so far get series of their own, from zero.
func TestMetricsFreeTheLabelsOfDeletedTopics(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Metrics.MaxTopics, cfg.Metrics.MaxGroups = 2, 1
	p := testenv.Start(t, cfg)
	old, kept, late := testenv.Name(t, "slot-old"), testenv.Name(t, "slot-kept"), testenv.Name(t, "slot-late")
	gOld, gLate := testenv.Name(t, "g-slot-old"), testenv.Name(t, "g-slot-late")
	raw := p.Subscriber(t, old, gOld, 1)
	p.CreateTopic(t, kept, domain.MessageTypeNormal, 1)
	p.CreateTopic(t, late, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: gLate})

	raw.SendN(t, old, 1)
	raw.SendN(t, kept, 1)
	got := raw.ReceiveN(t, gOld, old, 1, 30*time.Second, 30*time.Second)
	if _, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(gOld, old, got)); err != nil {
		t.Fatal(err)
	}
	raw.SendN(t, late, 1) // both topic slots taken: _other
	before := scrape(t, p)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"rocketmq_messages_in_total", map[string]string{"topic": old}},
		{"rocketmq_message_size", map[string]string{"topic": old}},
		{"rocketmq_messages_out_total", map[string]string{"topic": old, "consumer_group": gOld}},
		{"rmqproxy_messages_acked_total", map[string]string{"topic": old, "consumer_group": gOld}},
		{"rocketmq_messages_in_total", map[string]string{"topic": otel.OtherLabel}},
	} {
		if !hasSeries(before, c.name, c.labels) {
			t.Fatalf("before the delete: no %s%v", c.name, c.labels)
		}
	}
	if hasSeries(before, "rocketmq_messages_in_total", map[string]string{"topic": late}) {
		t.Fatalf("%s has a series of its own with every slot taken", late)
	}

	if code, out := testenv.CLI(t, "topic", "delete", old, "--admin.address="+p.AdminAddr()); code != 0 {
		t.Fatalf("rmqproxy topic delete: exit %d: %s", code, out)
	}
	ac, err := admin.NewClient(p.AdminAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.DeleteGroup(t.Context(), gOld); err != nil {
		t.Fatal(err)
	}

	// The next scrape has none of their series, though the consumer of the
	// deleted group is still connected (rocketmq_consumer_connections
	// counts it under _other now).
	deletedGone := func(when string, fams map[string]*dto.MetricFamily) {
		t.Helper()
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if (l.GetName() == "topic" && l.GetValue() == old) || (l.GetName() == "consumer_group" && l.GetValue() == gOld) {
						t.Errorf("%s: %s%v is still on /metrics", when, name, m.GetLabel())
					}
				}
			}
		}
	}
	deletedGone("right after the delete", scrape(t, p))

	// The new names take the freed slots.
	const n = 3
	raw.SendN(t, late, n)
	late2 := testenv.NewRawClient(t, p)
	late2.Subscribe(t, gLate, late)
	got = late2.ReceiveN(t, gLate, late, n+1, 30*time.Second, 30*time.Second)
	after := scrape(t, p)
	deletedGone("once the new names were used", after)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rocketmq_messages_in_total", map[string]string{"topic": late}, n},
		{"rocketmq_message_size", map[string]string{"topic": late}, n},
		{"rocketmq_messages_out_total", map[string]string{"topic": late, "consumer_group": gLate}, float64(len(got))},
		{"rocketmq_messages_in_total", map[string]string{"topic": kept}, 1},
		{"rocketmq_messages_in_total", map[string]string{"topic": otel.OtherLabel}, 1},
	} {
		if v := metricValue(after, c.name, c.labels); v != c.want {
			t.Errorf("after the delete: %s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}

// TestConsumerGaugesOfASubscribedGroupBeforeItsFirstReceive: the local
// consumer gauges came from the group's consume state on each queue, which
// its first receive of the queue makes; a group whose online consumers
// subscribe to a topic but have not received from it yet (a new group, a
// stuck consumer, a topic deleted and created again) had no
// rocketmq_consumer_lag_messages series at all while messages waited for
// it, so that a lag alert could not fire. Its lag and ready messages are
// the topic's messages (its first receive starts at the beginning).
func TestConsumerGaugesOfASubscribedGroupBeforeItsFirstReceive(t *testing.T) {
	testenv.LocalOnly(t, "the consumer gauges are the embedded broker's")
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "gauge-new"), testenv.Name(t, "g-gauge-new")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	c := testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	pr := testenv.NewProducer(t, p, topic)
	send := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("waiting")}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
	}
	labels := map[string]string{"topic": topic, "consumer_group": group}
	want := func(when string, lag, inflight, ready float64) {
		t.Helper()
		fams := scrape(t, p)
		for _, g := range []struct {
			name string
			want float64
		}{{"rocketmq_consumer_lag_messages", lag}, {"rocketmq_consumer_inflight_messages", inflight}, {"rocketmq_consumer_ready_messages", ready}} {
			if !hasSeries(fams, g.name, labels) {
				t.Errorf("%s: no %s%v", when, g.name, labels)
			} else if v := metricValue(fams, g.name, labels); v != g.want {
				t.Errorf("%s: %s%v = %v, want %v", when, g.name, labels, v, g.want)
			}
		}
	}
	send(3)
	want("3 messages sent, none received yet", 3, 0, 3)

	// One received: the group has state on one queue, the other queue's
	// messages are still its lag.
	var got []*rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 1, 30*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		got = append(got, ms...)
		if len(got) < 1 {
			return fmt.Errorf("none received")
		}
		return nil
	})
	want("1 received", 3, 1, 2)
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 3, 30*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		got = append(got, ms...)
		if len(got) < 3 {
			return fmt.Errorf("%d of 3 received", len(got))
		}
		return nil
	})
	if err := c.Ack(t.Context(), got[0]); err != nil {
		t.Fatal(err)
	}
	want("3 received, 1 acked", 2, 2, 0)

	// The topic is deleted and created again; its consumer still
	// subscribes to it.
	ac, err := admin.NewClient(p.AdminAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.DeleteTopic(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	send(2)
	want("created again, 2 messages sent", 2, 0, 2)
}

// TestConsumerLagCountsOnlyUnackedMessages: rocketmq_consumer_lag_messages
// is the messages not yet acked (docs/observability.md). It was the
// offsets from the group's first unacked message on, so that one message
// held (a slow or poison message waiting for its redeliveries, for hours
// with the default backoff) counted every message acked after it as lag:
// the lag of a group keeping up grew with the traffic, and disagreed with
// rmqproxy group stats' BACKLOG. Now it counts what is not acked.
func TestConsumerLagCountsOnlyUnackedMessages(t *testing.T) {
	testenv.LocalOnly(t, "the consumer gauges are the embedded broker's")
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "lag-held"), testenv.Name(t, "g-lag-held")
	raw := p.Subscriber(t, topic, group, 1)
	const n = 5
	raw.SendN(t, topic, n)
	got := raw.ReceiveN(t, group, topic, n, time.Hour, 30*time.Second)
	// Every message acked but the first (the queue's first offset).
	var first *v2.Message
	rest := make([]*v2.Message, 0, n-1)
	for _, m := range got {
		if m.GetSystemProperties().GetQueueOffset() == 0 {
			first = m
		} else {
			rest = append(rest, m)
		}
	}
	if first == nil || len(rest) != n-1 {
		t.Fatalf("received offsets %v, want 0..%d", offsetsOf(got), n-1)
	}
	resp, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, rest))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack: %v %v", resp.GetStatus(), err)
	}
	labels := map[string]string{"topic": topic, "consumer_group": group}
	fams := scrape(t, p)
	for _, g := range []struct {
		name string
		want float64
	}{{"rocketmq_consumer_lag_messages", 1}, {"rocketmq_consumer_inflight_messages", 1}, {"rocketmq_consumer_ready_messages", 0}} {
		if v := metricValue(fams, g.name, labels); v != g.want {
			t.Errorf("%d sent, all received, all but the first acked: %s%v = %v, want %v", n, g.name, labels, v, g.want)
		}
	}
}

func offsetsOf(msgs []*v2.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.GetSystemProperties().GetQueueOffset()
	}
	return out
}
