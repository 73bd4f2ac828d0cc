package observe_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"

	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
)

func TestLabelsAllowList(t *testing.T) {
	l := observe.NewLabels([]string{"a", "b"}, 100, nil, 2)
	for name, want := range map[string]string{"a": "a", "b": "b", "c": observe.Other, "": ""} {
		if got := l.Topic(name); got != want {
			t.Errorf("Topic(%q) = %q, want %q", name, got, want)
		}
	}
	// No group allow-list: the first two names seen keep their label.
	for _, c := range []struct{ name, want string }{{"g1", "g1"}, {"g2", "g2"}, {"g3", observe.Other}, {"g1", "g1"}, {"g4", observe.Other}} {
		if got := l.Group(c.name); got != c.want {
			t.Errorf("Group(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if got := observe.NewLabels(nil, 0, nil, 0).Topic("x"); got != observe.Other {
		t.Errorf("maxTopics 0: Topic(x) = %q, want %q", got, observe.Other)
	}
}

func TestTraceParent(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc, ok := observe.ParseTraceParent(tp, "")
	if !ok || !sc.IsSampled() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("ParseTraceParent(%s) = %v %v", tp, sc, ok)
	}
	if got := observe.TraceParent(sc); got != tp {
		t.Errorf("TraceParent = %q, want %q", got, tp)
	}
	unsampled := sc.WithTraceFlags(0)
	if got := observe.TraceParent(unsampled); !strings.HasSuffix(got, "-00") {
		t.Errorf("unsampled TraceParent = %q, want flags 00", got)
	}
	if got := observe.TraceParent(trace.SpanContext{}); got != "" {
		t.Errorf("TraceParent(invalid) = %q, want empty", got)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		if _, ok := observe.ParseTraceParent(bad, ""); ok {
			t.Errorf("ParseTraceParent(%q) accepted", bad)
		}
	}
}

func newMetrics(t testing.TB) (*observe.Metrics, *sdkmetric.ManualReader) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := observe.NewMetrics(mp.Meter("test"), observe.NewLabels(nil, 1, nil, 1))
	if err != nil {
		t.Fatal(err)
	}
	return m, r
}

// sums adds up, by metric name and topic, the points of the SDK's reader
// (rocketmq_rpc_latency: its count) and of the counters labelled by topic
// or group.
func sums(t *testing.T, m *observe.Metrics, r *sdkmetric.ManualReader) map[string]int64 {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					topic, _ := p.Attributes.Value("topic")
					out[m.Name+"/"+topic.AsString()] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] += int64(p.Count)
				}
			}
		}
	}
	for _, p := range m.Counters(nil) {
		topic, _ := p.Attrs.Value("topic")
		out[observe.LabelledCounters[p.Counter].Name+"/"+topic.AsString()] += p.Value
	}
	return out
}

// Names beyond the label bound are counted under _other, not dropped.
func TestMetricsBoundLabels(t *testing.T) {
	m, r := newMetrics(t)
	ctx := context.Background()
	m.MessageIn(ctx, "t1", "normal", 10)
	m.MessageIn(ctx, "t2", "normal", 20)
	m.MessageIn(ctx, "t3", "normal", 30)
	m.MessagesOut(ctx, "t1", "g", false, 2, 20)
	m.Settle(ctx, observe.SettledAck, "t1", "g", 2)
	m.RPC(ctx, "grpc", "SendMessage", "OK", false, time.Millisecond)
	got := sums(t, m, r)
	want := map[string]int64{
		"rocketmq_messages_in_total/t1": 1, "rocketmq_messages_in_total/" + observe.Other: 2,
		"rocketmq_throughput_in_total/t1": 10, "rocketmq_throughput_in_total/" + observe.Other: 50,
		"rocketmq_messages_out_total/t1": 2, "rocketmq_throughput_out_total/t1": 20,
		"rmqproxy_messages_acked_total/t1": 2, "rocketmq_rpc_latency": 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

// Recording a label combination seen before allocates nothing, so that
// metrics cost the send path no garbage.
func TestMetricsRecordWithoutAllocating(t *testing.T) {
	m, _ := newMetrics(t)
	ctx := context.Background()
	record := func() {
		m.RPC(ctx, "grpc", "SendMessage", "OK", false, time.Millisecond)
		m.MessageIn(ctx, "topic", "normal", 1024)
		m.MessagesOut(ctx, "topic", "group", false, 1, 1024)
		m.Settle(ctx, observe.SettledAck, "topic", "group", 1)
	}
	record()
	if n := testing.AllocsPerRun(100, record); n != 0 {
		t.Errorf("recording allocates %v times, want 0", n)
	}
}

func TestNilTelemetryRecordsNothing(t *testing.T) {
	var tel *observe.Telemetry
	if tel.Tracing() || tel.Measuring() || tel.Active() {
		t.Error("a nil Telemetry is active")
	}
	var m *observe.Metrics
	m.RPC(context.Background(), "grpc", "x", "OK", false, 0) // must not panic
	m.MessageIn(context.Background(), "t", "normal", 1)
	m.Fsync(time.Millisecond)
}

// A trace context comes from clients (trace_context, traceparent metadata):
// parsing never panics, and what it accepts formats back to a valid value.
func FuzzParseTraceParent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"", "-", "00--", "00-zz-zz-zz",
	} {
		f.Add(s, "")
	}
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		sc, ok := observe.ParseTraceParent(tp, ts)
		if !ok {
			return
		}
		again, ok := observe.ParseTraceParent(observe.TraceParent(sc), "")
		if !ok || again.TraceID() != sc.TraceID() || again.SpanID() != sc.SpanID() || again.TraceFlags() != sc.TraceFlags() {
			t.Fatalf("%q parsed to %v, which formats to %q, parsed again to %v", tp, sc, observe.TraceParent(sc), again)
		}
	})
}

// Client languages and versions are free-form metadata: bounded in number
// and length.
func TestLabelsBoundClientValues(t *testing.T) {
	l := observe.NewLabels(nil, 10, nil, 10)
	if got := l.Language("JAVA"); got != "JAVA" {
		t.Errorf("Language(JAVA) = %q", got)
	}
	if got := l.Version(strings.Repeat("9", observe.MaxClientLabelLength+1)); got != observe.Other {
		t.Errorf("an overlong version = %q, want %q", got, observe.Other)
	}
	for i := range observe.MaxClientVersions {
		if got, v := l.Version(fmt.Sprint(i)), fmt.Sprint(i); got != v {
			t.Fatalf("Version(%s) = %q", v, got)
		}
	}
	if got := l.Version("one-too-many"); got != observe.Other {
		t.Errorf("version beyond the bound = %q, want %q", got, observe.Other)
	}
	if got := l.Version("0"); got != "0" {
		t.Errorf("a version seen before = %q", got)
	}
}

// A freed slot goes to the next new name; a name of the allow-list keeps
// its value; _other is never freed.
func TestLabelsFreeSlots(t *testing.T) {
	l := observe.NewLabels(nil, 2, []string{"g1"}, 0)
	for _, c := range []struct{ name, want string }{{"t1", "t1"}, {"t2", "t2"}, {"t3", observe.Other}} {
		if got := l.Topic(c.name); got != c.want {
			t.Fatalf("Topic(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if l.FreeTopic("t3") || l.FreeTopic(observe.Other) || l.FreeTopic("") {
		t.Error("a name without a value of its own was freed")
	}
	if got := l.Topic("t4"); got != observe.Other {
		t.Errorf("Topic(t4) with every slot taken = %q", got)
	}
	if !l.FreeTopic("t1") {
		t.Fatal("FreeTopic(t1) = false")
	}
	if l.FreeTopic("t1") {
		t.Error("t1 freed twice")
	}
	if l.LiveTopic("t1") || !l.LiveTopic("t2") || !l.LiveTopic(observe.Other) || !l.LiveTopic("") {
		t.Error("LiveTopic: t1 must be gone, t2, _other and empty in use")
	}
	if got := l.Topic("t4"); got != "t4" {
		t.Errorf("Topic(t4) after t1 was freed = %q, want its own value", got)
	}
	if got := l.Topic("t1"); got != observe.Other {
		t.Errorf("Topic(t1) once t4 took its slot = %q, want %q", got, observe.Other)
	}
	// The allow-list: a deleted name keeps its value (it is reported freed,
	// so that its series restart), names off the list never get one.
	if !l.FreeGroup("g1") || l.Group("g1") != "g1" || !l.LiveGroup("g1") {
		t.Error("an allow-listed group lost its value when freed")
	}
	if l.FreeGroup("g2") || l.Group("g2") != observe.Other {
		t.Error("a group off the allow-list got a value")
	}
}

// series returns the values of the labelled counters and the counts of
// the message size histogram, by metric name and label values (topic,
// consumer_group), and the start of each series.
func series(m *observe.Metrics) (map[string]int64, map[string]time.Time) {
	key := func(name string, s attribute.Set) string {
		topic, _ := s.Value("topic")
		group, _ := s.Value("consumer_group")
		return name + "{" + topic.AsString() + "," + group.AsString() + "}"
	}
	out, starts := map[string]int64{}, map[string]time.Time{}
	for _, p := range m.Counters(nil) {
		k := key(observe.LabelledCounters[p.Counter].Name, p.Attrs)
		out[k] += p.Value
		starts[k] = p.Start
	}
	for _, h := range m.MessageSizes(nil) {
		k := key(observe.MetricMessageSize, h.Attrs)
		out[k] += int64(h.Count)
		starts[k] = h.Start
	}
	return out, starts
}

// A deleted topic's or group's series are no longer reported, its slot
// goes to the next new name, which starts from zero, and a topic created
// again with the same name starts a new series: from zero, with a start
// of its own.
func TestMetricsForgetDeletedNames(t *testing.T) {
	mp := sdkmetric.NewMeterProvider()
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := observe.NewMetrics(mp.Meter("test"), observe.NewLabels(nil, 2, nil, 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	use := func(topic, group string) {
		m.MessageIn(ctx, topic, "normal", 100)
		m.MessagesOut(ctx, topic, group, false, 1, 100)
		m.Settle(ctx, observe.SettledAck, topic, group, 1)
		m.Settle(ctx, observe.SettledCommit, topic, "", 1)
	}
	use("t1", "g1")
	use("t2", "g1")
	use("t3", "g2") // beyond both bounds: _other
	want := func(what string, want map[string]int64) {
		t.Helper()
		got, _ := series(m)
		for k, v := range want {
			if v < 0 {
				if n, ok := got[k]; ok {
					t.Errorf("%s: %s still exported (%d)", what, k, n)
				}
			} else if got[k] != v {
				t.Errorf("%s: %s = %d, want %d", what, k, got[k], v)
			}
		}
		if t.Failed() {
			t.Logf("all: %v", got)
		}
	}
	want("before", map[string]int64{
		"rocketmq_messages_in_total{t1,}": 1, "rocketmq_message_size{t1,}": 1, "rocketmq_messages_out_total{t1,g1}": 1,
		"rmqproxy_messages_acked_total{t1,g1}": 1, "rocketmq_commit_messages_total{t1,}": 1,
		"rocketmq_messages_in_total{_other,}": 1, "rocketmq_messages_out_total{_other,_other}": 1,
	})
	_, starts := series(m)
	firstStart := starts["rocketmq_messages_in_total{t1,}"]
	if firstStart.IsZero() {
		t.Fatal("no start for t1")
	}

	m.ForgetTopic("t1")
	use("t4", "g1") // takes t1's slot
	want("t1 deleted, t4 used", map[string]int64{
		"rocketmq_messages_in_total{t1,}": -1, "rocketmq_throughput_in_total{t1,}": -1, "rocketmq_message_size{t1,}": -1,
		"rocketmq_messages_out_total{t1,g1}": -1, "rocketmq_throughput_out_total{t1,g1}": -1,
		"rmqproxy_messages_acked_total{t1,g1}": -1, "rocketmq_commit_messages_total{t1,}": -1,
		"rocketmq_messages_in_total{t4,}": 1, "rocketmq_throughput_in_total{t4,}": 100, "rocketmq_message_size{t4,}": 1,
		"rocketmq_messages_out_total{t4,g1}": 1, "rmqproxy_messages_acked_total{t4,g1}": 1, "rocketmq_commit_messages_total{t4,}": 1,
		"rocketmq_messages_in_total{t2,}": 1, "rocketmq_messages_in_total{_other,}": 1,
	})

	// t4 deleted, t1 created again: t1 takes the slot and starts from
	// zero.
	m.ForgetTopic("t4")
	use("t1", "g1")
	use("t1", "g1")
	want("t1 created again", map[string]int64{
		"rocketmq_messages_in_total{t1,}": 2, "rocketmq_message_size{t1,}": 2, "rmqproxy_messages_acked_total{t1,g1}": 2,
		"rocketmq_messages_in_total{t4,}": -1, "rocketmq_messages_in_total{_other,}": 1,
	})
	_, starts = series(m)
	for _, k := range []string{"rocketmq_messages_in_total{t1,}", "rocketmq_message_size{t1,}", "rmqproxy_messages_acked_total{t1,g1}"} {
		if !starts[k].After(firstStart) {
			t.Errorf("%s created again starts at %v, the first one at %v", k, starts[k], firstStart)
		}
	}

	// A group: g1's series go, g2 takes its slot.
	m.ForgetGroup("g1")
	use("t2", "g2")
	want("g1 deleted", map[string]int64{
		"rocketmq_messages_out_total{t1,g1}": -1, "rocketmq_messages_out_total{t2,g1}": -1, "rmqproxy_messages_acked_total{t2,g1}": -1,
		"rocketmq_messages_out_total{t2,g2}": 1, "rmqproxy_messages_acked_total{t2,g2}": 1,
		"rocketmq_messages_in_total{t2,}": 2, "rocketmq_messages_out_total{_other,_other}": 1,
	})

	// An entry whose name has no slot any more (made by a message racing
	// the deletion, after its entries were dropped): dropped when the
	// metrics are collected.
	m.ForgetTopic("t2")
	m.Labels().FreeTopic("t1") // the slot alone, not the entries
	want("entries of a freed slot", map[string]int64{"rocketmq_messages_in_total{t1,}": -1, "rocketmq_message_size{t1,}": -1})
	use("t1", "g2")
	want("t1 taking a slot again", map[string]int64{"rocketmq_messages_in_total{t1,}": 1, "rocketmq_message_size{t1,}": 1})
}

// The message size histogram has the SDK's bucket rule (a value equal to
// a bound counts in that bound's bucket), its sum, minimum and maximum.
func TestMessageSizeHistogram(t *testing.T) {
	m, _ := newMetrics(t)
	for _, size := range []int{100, 1024, 5000, 10 << 20} {
		m.MessageIn(context.Background(), "t", "normal", size)
	}
	hs := m.MessageSizes(nil)
	if len(hs) != 1 {
		t.Fatalf("%d histograms, want 1: %+v", len(hs), hs)
	}
	h := hs[0]
	if want := []uint64{2, 0, 1, 0, 0, 0, 0, 1}; !slices.Equal(h.Counts, want) || h.Count != 4 {
		t.Errorf("counts %v (count %d), want %v (4)", h.Counts, h.Count, want)
	}
	if h.Sum != 100+1024+5000+10<<20 || h.Min != 100 || h.Max != 10<<20 {
		t.Errorf("sum %d min %d max %d", h.Sum, h.Min, h.Max)
	}
}
