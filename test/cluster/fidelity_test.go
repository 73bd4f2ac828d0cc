package cluster_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// fidelityCase is one legal but unusual message: what a client sends,
// and on which topic.
type fidelityCase struct {
	name   string
	delay  bool // to the DELAY topic
	fifo   bool // to the FIFO topic
	tx     bool // to the TRANSACTION topic, committed after the send
	mutate func(m *v2.Message)
}

// knownFidelityDifferences are the cases whose send rmqproxy answers
// otherwise than the Apache proxy on purpose (docs/compatibility.md), with
// the code rmqproxy answers.
var knownFidelityDifferences = map[string]v2.Code{
	// "user property ... named like a property RocketMQ itself writes but
	// does not reserve"
	"property __STARTDELIVERTIME": v2.Code_ILLEGAL_MESSAGE_PROPERTY_KEY,
	"property __SHARDINGKEY":      v2.Code_ILLEGAL_MESSAGE_PROPERTY_KEY,
	"property TRACE_CONTEXT":      v2.Code_ILLEGAL_MESSAGE_PROPERTY_KEY,
	"property empty name":         v2.Code_ILLEGAL_MESSAGE_PROPERTY_KEY,
	"property __RMQ.TRANSIENT.x":  v2.Code_ILLEGAL_MESSAGE_PROPERTY_KEY,
	// "a message whose properties a RocketMQ broker cannot store, or
	// cannot store again when it redelivers the message"
	"properties at the broker's limit":                v2.Code_MESSAGE_PROPERTIES_TOO_LARGE,
	"properties 30 bytes short of the broker's limit": v2.Code_MESSAGE_PROPERTIES_TOO_LARGE,
	"properties 60 bytes short of the broker's limit": v2.Code_MESSAGE_PROPERTIES_TOO_LARGE,
}

// leakedThroughApache are the properties RocketMQ writes for itself that
// the Apache proxy delivers as user properties and rmqproxy does not
// (compatibility.md, "properties of a delivered message"), with those
// named __RMQ.TRANSIENT.*.
var leakedThroughApache = []string{"__SHARDINGKEY", "TRACE_CONTEXT", "CHECK_IMMUNITY_TIME_IN_SECONDS", "TRANSACTION_CHECK_TIMES",
	"__transactionId__", "INNER_NUM", "INNER_BASE", "__STARTDELIVERTIME"}

// asRmqproxyDelivers takes out of a message delivered by the Apache
// proxy what compatibility.md lists rmqproxy delivering otherwise: the
// leaked system properties and empty keys ("message keys").
func asRmqproxyDelivers(m *v2.Message) {
	for k := range m.UserProperties {
		if slices.Contains(leakedThroughApache, k) || strings.HasPrefix(k, "__RMQ.TRANSIENT.") {
			delete(m.UserProperties, k)
		}
	}
	m.SystemProperties.Keys = slices.DeleteFunc(m.SystemProperties.Keys, func(k string) bool { return k == "" })
}

func fidelityCases() []fidelityCase {
	props := func(kv ...string) func(*v2.Message) {
		return func(m *v2.Message) {
			for i := 0; i < len(kv); i += 2 {
				m.UserProperties[kv[i]] = kv[i+1]
			}
		}
	}
	tag := func(s string) func(*v2.Message) { return func(m *v2.Message) { m.SystemProperties.Tag = &s } }
	keys := func(k ...string) func(*v2.Message) { return func(m *v2.Message) { m.SystemProperties.Keys = k } }
	cs := []fidelityCase{
		{name: "unicode", mutate: func(m *v2.Message) {
			props("名前", "値 with spaces", "emoji", "🚀", "ключ", "ü")(m)
			tag("标签")(m)
			keys("ключ", "🔑")(m)
		}},
		{name: "empty property value", mutate: props("empty", "", "x", "1")},
		{name: "property names with spaces and signs", mutate: props("a key", "v", "k=v", "a=b;c:d", " ", "blank name", "tags", "lower", "TAGSX", "y")},
		{name: "property value blank", mutate: props("b", " ")},
		{name: "property KEYS", mutate: props("KEYS", "x")},
		{name: "property TAGS", mutate: props("TAGS", "x")},
		{name: "property UNIQ_KEY", mutate: props("UNIQ_KEY", "x")},
		{name: "property __STARTDELIVERTIME", mutate: props("__STARTDELIVERTIME", "1")},
		{name: "property __SHARDINGKEY", mutate: props("__SHARDINGKEY", "g")},
		{name: "property TRACE_CONTEXT", mutate: props("TRACE_CONTEXT", "t")},
		{name: "property empty name", mutate: props("", "v")},
		{name: "property value \\x01", mutate: props("a", "x\x01y")},
		{name: "property value \\x02", mutate: props("a", "x\x02y")},
		{name: "property name \\x01", mutate: props("a\x01b", "v")},
		{name: "tag a||b", mutate: tag("a||b")},
		{name: "tag *", mutate: tag("*")},
		{name: "tag blank", mutate: tag(" ")},
		{name: "tag empty", mutate: tag("")},
		{name: "tag with space", mutate: tag("a b")},
		{name: "tag no-break space", mutate: tag("\u00a0")},
		{name: "keys with spaces", mutate: keys("a b", "c", "", "d  e")},
		{name: "key no-break space", mutate: keys("\u00a0")},
		{name: "key blank", mutate: keys(" ")},
		{name: "message group on normal topic", mutate: func(m *v2.Message) { g := "g1"; m.SystemProperties.MessageGroup = &g }},
		{name: "body of max size", mutate: func(m *v2.Message) { m.Body = make([]byte, 4<<20) }},
		{name: "body one byte over", mutate: func(m *v2.Message) { m.Body = make([]byte, 4<<20+1) }},
		{name: "empty body", mutate: func(m *v2.Message) { m.Body = nil }},
		{name: "delivery time in the past", delay: true, mutate: func(m *v2.Message) {
			m.SystemProperties.MessageType = v2.MessageType_DELAY
			m.SystemProperties.DeliveryTimestamp = timestamppb.New(time.Now().Add(-time.Hour).Truncate(time.Millisecond))
		}},
		{name: "message group with space and unicode", fifo: true, mutate: func(m *v2.Message) {
			g := "订单 42"
			m.SystemProperties.MessageGroup = &g
			m.SystemProperties.MessageType = v2.MessageType_FIFO
		}},
		{name: "delivery time on normal topic", mutate: func(m *v2.Message) {
			m.SystemProperties.MessageType = v2.MessageType_DELAY
			m.SystemProperties.DeliveryTimestamp = timestamppb.New(time.Now().Add(-time.Hour))
		}},
		{name: "trace context", mutate: func(m *v2.Message) {
			tc := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			m.SystemProperties.TraceContext = &tc
		}},
		{name: "born host of the client", mutate: func(m *v2.Message) { m.SystemProperties.BornHost = "10.1.2.3" }},
		{name: "born host left out", mutate: func(m *v2.Message) { m.SystemProperties.BornHost = "" }},
		{name: "born time left out", mutate: func(m *v2.Message) { m.SystemProperties.BornTimestamp = nil }},
		{name: "delivery attempt sent", mutate: func(m *v2.Message) { m.SystemProperties.DeliveryAttempt = ptrTo(int32(3)) }},
		{name: "message id not hex", mutate: func(m *v2.Message) { m.SystemProperties.MessageId = "id-" + testenv.NewMessageID() + "-ü" }},
		{name: "gzip encoding", mutate: func(m *v2.Message) { m.SystemProperties.BodyEncoding = v2.Encoding_GZIP }},
		{name: "gzip body", mutate: func(m *v2.Message) {
			// As the Go client sends a body over 4 KiB.
			m.Body, m.SystemProperties.BodyEncoding = gzipped(bytes.Repeat([]byte("gzip body "), 1000)), v2.Encoding_GZIP
		}},
		{name: "property value NUL", mutate: props("a", "x\x00y")},
		{name: "property name NUL", mutate: props("a\x00b", "v")},
		{name: "property name \\x02", mutate: props("a\x02b", "v")},
		{name: "property value of 16 KiB", mutate: props("long", strings.Repeat("v", 16<<10-len("long")))},
		{name: "property value over 16 KiB", mutate: props("long", strings.Repeat("v", 16<<10-len("long")+1))},
		{name: "128 properties", mutate: func(m *v2.Message) {
			for i := range 128 {
				m.UserProperties[fmt.Sprintf("p%03d", i)] = fmt.Sprintf("value %d \x7e", i)
			}
		}},
		{name: "property DELAY", mutate: props("DELAY", "3")},
		{name: "property TRAN_MSG", mutate: props("TRAN_MSG", "true")},
		{name: "property MSG_REGION", mutate: props("MSG_REGION", "r")},
		{name: "property TIMER_DELIVER_MS", mutate: props("TIMER_DELIVER_MS", "1")},
		{name: "property CLUSTER", mutate: props("CLUSTER", "c")},
		{name: "property ORIGIN_GROUP", mutate: props("ORIGIN_GROUP", "g")},
		{name: "property __RMQ.TRANSIENT.x", mutate: props("__RMQ.TRANSIENT.x", "v")},
		{name: "key \\x02", mutate: keys("a\x02b")},
		{name: "tag \\x01", mutate: tag("a\x01b")},
		// Padded through the trace context: the most rmqproxy accepts
		// (RocketMQ's 32767 less what a broker adds), what a broker
		// refuses at the send (it adds CLUSTER and more), and what it
		// stores but cannot store again at a redelivery.
		{name: "properties at rmqproxy's limit", mutate: padded(domain.MaxStoredPropertiesLen - domain.BrokerPropertiesReserve)},
		{name: "properties at the broker's limit", mutate: padded(domain.MaxStoredPropertiesLen)},
		{name: "properties 30 bytes short of the broker's limit", mutate: padded(domain.MaxStoredPropertiesLen - 30)},
		{name: "properties 60 bytes short of the broker's limit", mutate: padded(domain.MaxStoredPropertiesLen - 60)},
		{name: "committed transactional message", tx: true, mutate: func(m *v2.Message) { m.SystemProperties.MessageType = v2.MessageType_TRANSACTION }},
	}
	return cs
}

func ptrTo[T any](v T) *T { return &v }

// padded pads a message's properties to n bytes (testenv.PadStoredProperties).
func padded(n int) func(*v2.Message) {
	return func(m *v2.Message) { testenv.PadStoredProperties(m, n) }
}

// gzipped is b gzip-compressed.
func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// fidelityTarget is a proxy the cases go through.
type fidelityTarget struct {
	name          string
	raw           *testenv.RawClient
	normal, delay string
	fifo, tx      string
	group         string
	// consumers are the clients of tg's groups (group -> client): one
	// client each, as a client has the settings of one group.
	consumers map[string]*testenv.RawClient
}

// sent is one message a case sent through a target, answered OK.
type sent struct {
	c   fidelityCase
	via string
	msg *v2.Message
}

// TestMessageFidelityAgainstApacheProxy sends legal but unusual messages
// (see fidelityCases) through rmqproxy in cluster mode, rmqproxy in local
// mode and the Apache proxy (cluster mode, same broker), and compares the
// send answers and what a consumer reads back: every message sent through
// either cluster proxy is received through both, and the stored message
// is read from the broker as a Remoting consumer sees it. A difference
// docs/compatibility.md does not list fails.
func TestMessageFidelityAgainstApacheProxy(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	cfg.Messaging = application.DefaultConfig()
	// The Apache proxy's JVM starts while rmqproxy does.
	apacheStarted := testenv.NameServer().StartApacheProxyAsync(t, broker.Cluster)
	ours := testenv.Start(t, cfg)
	localCfg := testenv.Config(t)
	localCfg.Mode = app.ModeLocal
	localCfg.Messaging = application.DefaultConfig()
	local := testenv.Start(t, localCfg)
	apache := apacheStarted()
	theirs := &testenv.Proxy{Addr: apache.GRPC}

	normal, delay, fifo, tx := testenv.Name(t, "fid-normal"), testenv.Name(t, "fid-delay"), testenv.Name(t, "fid-fifo"), testenv.Name(t, "fid-tx")
	ours.CreateTopic(t, normal, domain.MessageTypeNormal, 2)
	ours.CreateTopic(t, delay, domain.MessageTypeDelay, 2)
	local.CreateTopic(t, "fid-normal", domain.MessageTypeNormal, 2)
	local.CreateTopic(t, "fid-delay", domain.MessageTypeDelay, 2)
	ours.CreateTopic(t, fifo, domain.MessageTypeFIFO, 2)
	local.CreateTopic(t, "fid-fifo", domain.MessageTypeFIFO, 2)
	ours.CreateTopic(t, tx, domain.MessageTypeTransaction, 1)
	local.CreateTopic(t, "fid-tx", domain.MessageTypeTransaction, 1)
	for _, topic := range []string{normal, delay, fifo, tx} {
		testenv.WaitForRoute(t, theirs, topic)
	}
	targets := []*fidelityTarget{
		{name: "rmqproxy", raw: testenv.NewRawClient(t, ours), normal: normal, delay: delay, fifo: fifo, tx: tx, group: testenv.Name(t, "g-fid-ours")},
		{name: "apache", raw: testenv.NewRawClient(t, theirs), normal: normal, delay: delay, fifo: fifo, tx: tx, group: testenv.Name(t, "g-fid-apache")},
		{name: "local", raw: testenv.NewRawClient(t, local), normal: "fid-normal", delay: "fid-delay", fifo: "fid-fifo", tx: "fid-tx", group: "g-fid-local"},
	}
	for i, tg := range targets {
		p := []*testenv.Proxy{ours, theirs, local}[i]
		orderly := true
		[]*testenv.Proxy{ours, ours, local}[i].CreateGroup(t, application.GroupSpec{Name: tg.group + "-f", Orderly: &orderly})
		tg.consumers = map[string]*testenv.RawClient{}
		for group, topic := range map[string]string{tg.group: tg.normal, tg.group + "-d": tg.delay, tg.group + "-f": tg.fifo, tg.group + "-t": tg.tx} {
			tg.consumers[group] = testenv.NewRawClient(t, p)
			tg.consumers[group].Subscribe(t, group, topic)
		}
	}

	// Sends: the same case through each target.
	cases := fidelityCases()
	var oks []sent
	for _, c := range cases {
		var answers, receipts [3]string
		var codes [3]v2.Code
		for i, tg := range targets {
			topic := tg.normal
			if c.delay {
				topic = tg.delay
			}
			if c.fifo {
				topic = tg.fifo
			}
			if c.tx {
				topic = tg.tx
			}
			m := testenv.RawMessage(topic, []byte("body of "+c.name), "")
			c.mutate(m)
			resp, err := tg.raw.SendMessage(tg.raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
			if err != nil {
				answers[i] = "gRPC " + err.Error()
				codes[i] = -1
				continue
			}
			codes[i] = resp.GetStatus().GetCode()
			answers[i] = fmt.Sprintf("%v %q", resp.GetStatus().GetCode(), resp.GetStatus().GetMessage())
			if codes[i] == v2.Code_OK {
				oks = append(oks, sent{c: c, via: tg.name, msg: m})
				for _, e := range resp.GetEntries() {
					// compatibility.md: the Apache proxy's receipt of a
					// message that is not transactional carries the
					// message id as transaction id; rmqproxy's none.
					tx := e.GetTransactionId()
					if tg.name == "apache" && tx == m.GetSystemProperties().GetMessageId() {
						tx = ""
					}
					// compatibility.md, "Delay messages are stored once":
					// local mode's receipt of a half message has offset -1.
					offset := e.GetOffset() >= 0 || c.tx && tg.name == "local"
					if c.tx {
						// Each proxy's own form.
						tx = fmt.Sprint(e.GetTransactionId() != "")
						end, err := tg.raw.EndTransaction(tg.raw.Ctx(t), &v2.EndTransactionRequest{Topic: m.GetTopic(), MessageId: e.GetMessageId(),
							TransactionId: e.GetTransactionId(), Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT})
						if err != nil || end.GetStatus().GetCode() != v2.Code_OK {
							t.Errorf("%s: commit of %s: %v %v", tg.name, c.name, end.GetStatus(), err)
						}
					}
					receipts[i] += fmt.Sprintf("[%v, id as sent %v, offset %v, transaction id %q, recall handle %v]", e.GetStatus().GetCode(),
						e.GetMessageId() == m.GetSystemProperties().GetMessageId(), offset, tx, e.GetRecallHandle() != "")
				}
			}
		}
		if codes[0] == codes[1] && codes[2] == codes[1] && (receipts[0] != receipts[1] || receipts[2] != receipts[1]) {
			t.Errorf("send %s: receipts differ: rmqproxy %s | local %s | apache %s", c.name, receipts[0], receipts[2], receipts[1])
		}
		line := fmt.Sprintf("send %-40s rmqproxy %s | local %s | apache %s", c.name, answers[0], answers[2], answers[1])
		if want, ok := knownFidelityDifferences[c.name]; ok {
			if codes[0] != want || codes[2] != want {
				t.Errorf("answered otherwise than docs/compatibility.md says (%v): %s", want, line)
			}
			t.Log("known difference: " + line)
			continue
		}
		if codes[0] != codes[1] || codes[2] != codes[1] {
			t.Errorf("difference: %s", line)
		} else {
			t.Log(line)
		}
	}

	// Receives: through each target every message sent through a target
	// sharing its store.
	views := map[string]map[[2]string]string{} // case -> [sent via, received via] -> view
	for _, tg := range targets {
		var want []sent
		for _, s := range oks {
			if (tg.name == "local") == (s.via == "local") {
				want = append(want, s)
			}
		}
		got := receiveAll(t, tg, want)
		for _, s := range want {
			m := got[s.msg.GetSystemProperties().GetMessageId()]
			if m == nil {
				continue
			}
			if tg.name == "apache" {
				raw := fidelityView(s.msg, m)
				asRmqproxyDelivers(m)
				if v := fidelityView(s.msg, m); v != raw {
					t.Logf("known difference (%s through apache): %s", s.c.name, raw)
				}
			}
			if views[s.c.name] == nil {
				views[s.c.name] = map[[2]string]string{}
			}
			views[s.c.name][[2]string{s.via, tg.name}] = fidelityView(s.msg, m)
		}
	}
	for _, c := range cases {
		v := views[c.name]
		if len(v) == 0 {
			continue
		}
		ref := v[[2]string{"apache", "apache"}]
		for k, view := range v {
			if view != ref {
				t.Errorf("%s: sent through %s, received through %s:\n  %s\n  apache through apache:\n  %s", c.name, k[0], k[1], view, ref)
			}
		}
		t.Logf("%s: %s", c.name, ref)
	}

	// Pull (rmqproxy only; the Apache proxy does not serve it) shows what
	// a receive shows, but for the delivery's own fields.
	for _, tg := range []*fidelityTarget{targets[0], targets[2]} {
		got := pullAll(t, tg, tg.normal, tg.delay, tg.fifo, tg.tx)
		for _, s := range oks {
			if (tg.name == "local") != (s.via == "local") {
				continue
			}
			m := got[s.msg.GetSystemProperties().GetMessageId()]
			if m == nil {
				t.Errorf("%s: %s sent through %s not pulled", tg.name, s.c.name, s.via)
				continue
			}
			m.SystemProperties.ReceiptHandle = ptrTo("pulled")
			if want := views[s.c.name][[2]string{s.via, tg.name}]; want != "" && fidelityView(s.msg, m) != want {
				t.Errorf("%s: sent through %s, pulled through %s:\n  %s\n  received:\n  %s", s.c.name, s.via, tg.name, fidelityView(s.msg, m), want)
			}
		}
	}

	// The stored message as a Remoting consumer reads it from the broker.
	bc := newBrokerClient(t, broker.Addr)
	stored := map[string]map[string]string{}
	for _, s := range oks {
		if s.via == "local" {
			continue
		}
		m := storedMessage(t, bc, s.msg.GetTopic().GetName(), s.msg.GetSystemProperties().GetMessageId())
		if stored[s.c.name] == nil {
			stored[s.c.name] = map[string]string{}
		}
		stored[s.c.name][s.via] = storedView(s.msg, m)
	}
	for _, c := range cases {
		v := stored[c.name]
		if len(v) < 2 {
			continue // refused by one or both (compared above)
		}
		if v["rmqproxy"] != v["apache"] {
			t.Errorf("%s: stored differently:\n  rmqproxy %s\n  apache   %s", c.name, v["rmqproxy"], v["apache"])
		}
	}
}

// receiveAll receives through tg until every message of want has come,
// and returns them by message id. A topic all of whose messages have come
// is not asked again: an empty receive lasts the whole long poll, which
// both proxies lengthen to 5 s with the Apache proxy's defaults (the
// broker answers a pop with at most 256 KiB, so the normal topic takes
// several rounds).
func receiveAll(t *testing.T, tg *fidelityTarget, want []sent) map[string]*v2.Message {
	t.Helper()
	got := map[string]*v2.Message{}
	missing := func(topic string) []string {
		var n []string
		for _, s := range want {
			if (topic == "" || s.msg.GetTopic().GetName() == topic) && got[s.msg.GetSystemProperties().GetMessageId()] == nil {
				n = append(n, s.c.name+" via "+s.via)
			}
		}
		return n
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		for _, q := range []struct{ group, topic string }{{tg.group, tg.normal}, {tg.group + "-d", tg.delay}, {tg.group + "-f", tg.fifo}, {tg.group + "-t", tg.tx}} {
			if len(missing(q.topic)) == 0 {
				continue
			}
			req := testenv.ReceiveRequest(q.group, q.topic, 32, time.Minute)
			req.LongPollingTimeout = durationpb.New(time.Second)
			raw := tg.consumers[q.group]
			ctx, cancel := context.WithTimeout(raw.Ctx(t), 20*time.Second)
			stream, err := raw.ReceiveMessage(ctx, req, grpc.MaxCallRecvMsgSize(math.MaxInt32))
			if err != nil {
				t.Fatal(err)
			}
			for {
				r, err := stream.Recv()
				if err != nil {
					break
				}
				if m := r.GetMessage(); m != nil {
					got[m.GetSystemProperties().GetMessageId()] = m
				}
			}
			cancel()
		}
		n := missing("")
		if len(n) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: not received: %q", tg.name, n)
			return got
		}
	}
}

// pullAll pulls every queue of the topics through tg from its start to
// its end, and returns what came by message id. The queues are pulled at
// once: each ends with a pull that finds no message after the whole long
// poll (5 s, as for receiveAll).
func pullAll(t *testing.T, tg *fidelityTarget, topics ...string) map[string]*v2.Message {
	t.Helper()
	var mqs []*v2.MessageQueue
	for _, topic := range topics {
		route, err := tg.raw.QueryRoute(tg.raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
		if err != nil || route.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("route of %s: %v %v", topic, route.GetStatus(), err)
		}
		for _, q := range route.GetMessageQueues() {
			mqs = append(mqs, &v2.MessageQueue{Topic: q.GetTopic(), Id: q.GetId(), Broker: q.GetBroker()})
		}
	}
	pulled := make([][]*v2.Message, len(mqs))
	var wg sync.WaitGroup
	for i, mq := range mqs {
		wg.Go(func() { pulled[i] = pullQueue(t, tg, mq) })
	}
	wg.Wait()
	got := map[string]*v2.Message{}
	for _, ms := range pulled {
		for _, m := range ms {
			got[m.GetSystemProperties().GetMessageId()] = m
		}
	}
	return got
}

// pullQueue pulls queue mq through tg from its start to its end. It runs
// on a goroutine of its own: it fails the test with t.Errorf.
func pullQueue(t *testing.T, tg *fidelityTarget, mq *v2.MessageQueue) []*v2.Message {
	var out []*v2.Message
	topic := mq.GetTopic().GetName()
	offset := int64(0)
	for range 100 {
		stream, err := tg.raw.PullMessage(tg.raw.Ctx(t), &v2.PullMessageRequest{Group: &v2.Resource{Name: tg.group + "-pull"}, MessageQueue: mq,
			Offset: offset, BatchSize: 32, FilterExpression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"},
			LongPollingTimeout: durationpb.New(time.Second)},
			grpc.MaxCallRecvMsgSize(math.MaxInt32))
		if err != nil {
			t.Errorf("%s: pull %s queue %d at %d: %v", tg.name, topic, mq.GetId(), offset, err)
			return out
		}
		st, msgs, next := testenv.ReadPull(stream)
		out = append(out, msgs...)
		if st.GetCode() != v2.Code_OK {
			if st.GetCode() != v2.Code_MESSAGE_NOT_FOUND {
				t.Errorf("%s: pull %s queue %d at %d: %v", tg.name, topic, mq.GetId(), offset, st)
			}
			return out
		}
		if next <= offset {
			t.Errorf("%s: pull %s queue %d at %d: next offset %d", tg.name, topic, mq.GetId(), offset, next)
			return out
		}
		offset = next
	}
	return out
}

// fidelityView renders every field a client reads from a delivered
// message, relative to what was sent where a value differs per send or
// per proxy (message id, born time, hosts, offsets).
func fidelityView(s, m *v2.Message) string {
	sp, ssp := m.GetSystemProperties(), s.GetSystemProperties()
	var b strings.Builder
	fmt.Fprintf(&b, "topic %q/%q", m.GetTopic().GetResourceNamespace(), strings.TrimPrefix(m.GetTopic().GetName(), s.GetTopic().GetName()))
	fmt.Fprintf(&b, ", body %d bytes same %v", len(m.GetBody()), md5.Sum(m.GetBody()) == md5.Sum(s.GetBody()))
	if sp.Tag != nil {
		fmt.Fprintf(&b, ", tag %q", sp.GetTag())
	} else {
		b.WriteString(", no tag")
	}
	fmt.Fprintf(&b, ", keys %q", sp.GetKeys())
	fmt.Fprintf(&b, ", id same %v", sp.GetMessageId() == ssp.GetMessageId())
	fmt.Fprintf(&b, ", digest %v %v", sp.GetBodyDigest().GetType(), sp.GetBodyDigest().GetChecksum() == strings.ToUpper(fmt.Sprintf("%x", md5.Sum(m.GetBody()))))
	fmt.Fprintf(&b, ", encoding %v, type %v", sp.GetBodyEncoding(), sp.GetMessageType())
	switch {
	case sp.BornTimestamp == nil:
		b.WriteString(", no born time")
	case ssp.BornTimestamp != nil && sp.GetBornTimestamp().AsTime().Equal(ssp.GetBornTimestamp().AsTime().Truncate(time.Millisecond)):
		b.WriteString(", born time as sent")
	case sp.GetBornTimestamp().GetNanos()%1e6 != 0:
		b.WriteString(", born time not in ms")
	default:
		b.WriteString(", born time set")
	}
	switch {
	case sp.GetBornHost() == ssp.GetBornHost():
		b.WriteString(", born host as sent")
	case ssp.GetBornHost() == "" && strings.HasPrefix(sp.GetBornHost(), "127.0.0.1:"):
		b.WriteString(", born host the client's address and port")
	default:
		fmt.Fprintf(&b, ", born host %q", sp.GetBornHost())
	}
	fmt.Fprintf(&b, ", store time %v, store host %v", sp.StoreTimestamp != nil && sp.GetStoreTimestamp().GetNanos()%1e6 == 0, strings.HasPrefix(sp.GetStoreHost(), "127.0.0.1:"))
	if sp.DeliveryTimestamp != nil {
		fmt.Fprintf(&b, ", delivery time as sent %v", sp.GetDeliveryTimestamp().AsTime().Equal(ssp.GetDeliveryTimestamp().AsTime()))
	}
	if sp.MessageGroup != nil {
		fmt.Fprintf(&b, ", group %q", sp.GetMessageGroup())
	}
	if sp.TraceContext != nil {
		fmt.Fprintf(&b, ", trace %q", sp.GetTraceContext())
	}
	fmt.Fprintf(&b, ", handle %v, invisible %v, attempt %v, queue id %v, offset %v, dlq %v, orphan %v",
		sp.GetReceiptHandle() != "", sp.GetInvisibleDuration(), sp.GetDeliveryAttempt(), sp.GetQueueId() >= 0, sp.QueueOffset != nil, sp.DeadLetterQueue, sp.OrphanedTransactionRecoveryDuration)
	props := slices.Sorted(func(yield func(string) bool) {
		for k, v := range m.GetUserProperties() {
			if !yield(fmt.Sprintf("%q=%q", k, v)) {
				return
			}
		}
	})
	fmt.Fprintf(&b, ", props %v", props)
	return b.String()
}

// storedMessage reads the message of topic with unique id id from the
// broker (QUERY_MESSAGE by unique key, as admin tools and Remoting
// clients find a message) and decodes it with the project's codec.
func storedMessage(t *testing.T, bc brokerClient, topic, id string) *remoting.Message {
	t.Helper()
	var found *remoting.Message
	testenv.WaitFor(t, 30*time.Second, func() error {
		resp := bc.do(remoting.RequestQueryMessage, &remoting.QueryMessageRequestHeader{Topic: topic, Key: id, MaxNum: 32,
			EndTimestamp: math.MaxInt64, UniqueKey: true})
		if resp.Code != int32(remoting.ResponseSuccess) {
			return fmt.Errorf("query %s: %d %s", id, resp.Code, resp.Remark)
		}
		msgs, err := remoting.DecodeMessages(resp.Body)
		if err != nil {
			return fmt.Errorf("decode %s: %v", id, err)
		}
		for i := range msgs {
			if msgs[i].MsgID() == id {
				found = &msgs[i]
				return nil
			}
		}
		return fmt.Errorf("query %s: not among %d", id, len(msgs))
	})
	return found
}

// storedView renders a stored message as a Remoting consumer reads it,
// relative to what was sent.
func storedView(s *v2.Message, m *remoting.Message) string {
	var props []string
	for _, f := range m.Properties {
		v := fmt.Sprintf("%q", f.Value)
		switch f.Key {
		case remoting.PropertyUniqKey, remoting.PropertyTransactionID:
			v = fmt.Sprint(f.Value == s.GetSystemProperties().GetMessageId())
		case remoting.PropertyBornTimestamp:
			if s.GetSystemProperties().GetBornTimestamp() == nil {
				// compatibility.md: the Apache proxy writes 0, rmqproxy
				// the time of the send.
				continue
			}
			v = fmt.Sprint(f.Value == fmt.Sprint(s.GetSystemProperties().GetBornTimestamp().AsTime().UnixMilli()))
		case remoting.PropertyBornHost:
			if s.GetSystemProperties().GetBornHost() == "" && strings.HasPrefix(f.Value, "127.0.0.1:") {
				v = "the client's address and port"
			}
		case remoting.PropertyKeys:
			// compatibility.md: rmqproxy stores no empty key.
			v = fmt.Sprintf("%q", strings.Join(strings.Fields(f.Value), " "))
		case "TIMER_DELIVER_MS", "TIMER_OUT_MS", "TIMER_ENQUEUE_MS", "TIMER_DEQUEUE_MS", "REAL_QID", "TRAN_PREPARED_QUEUE_OFFSET", remoting.PropertyMinOffset, remoting.PropertyMaxOffset:
			v = "*"
		}
		props = append(props, f.Key+"="+v)
	}
	slices.Sort(props)
	return fmt.Sprintf("sysflag %d, flag %d, reconsume %d, body %d crc %v, born host %v, props %v",
		m.SysFlag, m.Flag, m.ReconsumeTimes, len(m.Body), m.CRCValid(), m.BornHost.Addr(), props)
}
