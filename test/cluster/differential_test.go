package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// knownDifferences are the requests rmqproxy answers differently from the
// Apache proxy on purpose, each listed with its reason in
// docs/compatibility.md, and the code rmqproxy answers there (with gRPC
// status OK). Every other difference fails the test, and so does a listed
// request answered otherwise than documented, or no longer asked.
var knownDifferences = map[string]struct {
	why  string
	ours v2.Code
	grpc codes.Code // the gRPC status (OK unless said)
}{
	"send/unknown topic":                 {"compatibility.md: SendMessage or RecallMessage to a topic that does not exist", v2.Code_TOPIC_NOT_FOUND, codes.OK},
	"ack/malformed handle":               {"compatibility.md: malformed receipt handle", v2.Code_INVALID_RECEIPT_HANDLE, codes.OK},
	"change/malformed handle":            {"compatibility.md: malformed receipt handle", v2.Code_INVALID_RECEIPT_HANDLE, codes.OK},
	"receive/zero batch size":            {"compatibility.md: ReceiveMessage with batch_size ≤ 0", v2.Code_BAD_REQUEST, codes.OK},
	"ack/no entries":                     {"compatibility.md: AckMessage without entries", v2.Code_BAD_REQUEST, codes.OK},
	"end/transaction id not from a send": {"compatibility.md: EndTransaction for an unknown transaction", v2.Code_INVALID_TRANSACTION_ID, codes.OK},
	"pull/query offset":                  {"compatibility.md: PullMessage, UpdateOffset, GetOffset, QueryOffset", v2.Code_OK, codes.OK},
	"heartbeat/consumer before settings": {"compatibility.md: Heartbeat from a client whose settings the proxy does not have", v2.Code_OK, codes.OK},

	"change/blank handle":                             {"compatibility.md: malformed receipt handle", v2.Code_INVALID_RECEIPT_HANDLE, codes.OK},
	"forward/blank handle":                            {"compatibility.md: malformed receipt handle", v2.Code_INVALID_RECEIPT_HANDLE, codes.OK},
	"forward/malformed handle":                        {"compatibility.md: malformed receipt handle", v2.Code_INVALID_RECEIPT_HANDLE, codes.OK},
	"change/received message, negative nanos":         {"compatibility.md: a Duration field that is no valid protobuf Duration", v2.Code_ILLEGAL_INVISIBLE_TIME, codes.OK},
	"change/received message, time beyond int64 ms":   {"compatibility.md: a Duration field that is no valid protobuf Duration", v2.Code_ILLEGAL_INVISIBLE_TIME, codes.OK},
	"end/commit twice":                                {"compatibility.md: EndTransaction for an unknown, already resolved or mismatched transaction", v2.Code_INVALID_TRANSACTION_ID, codes.OK},
	"end/commit, another topic":                       {"compatibility.md: EndTransaction for an unknown, already resolved or mismatched transaction", v2.Code_INVALID_TRANSACTION_ID, codes.OK},
	"end/unknown topic":                               {"compatibility.md: EndTransaction for an unknown transaction", v2.Code_INVALID_TRANSACTION_ID, codes.OK},
	"end/unknown transaction id from a check":         {"compatibility.md: EndTransaction for an unknown transaction", v2.Code_INVALID_TRANSACTION_ID, codes.OK},
	"end/unknown transaction id, no source":           {"compatibility.md: EndTransaction for an unknown transaction", v2.Code_INVALID_TRANSACTION_ID, codes.OK},
	"heartbeat/producer before settings":              {"compatibility.md: Heartbeat from a client whose settings the proxy does not have", v2.Code_OK, codes.OK},
	"heartbeat/consumer before settings, no group":    {"compatibility.md: Heartbeat from a client whose settings the proxy does not have", v2.Code_ILLEGAL_CONSUMER_GROUP, codes.OK},
	"recall/blank handle":                             {"compatibility.md: RecallMessage with a blank or malformed recall handle", v2.Code_BAD_REQUEST, codes.OK},
	"recall/malformed handle":                         {"compatibility.md: RecallMessage with a blank or malformed recall handle", v2.Code_BAD_REQUEST, codes.OK},
	"recall/unknown topic":                            {"compatibility.md: SendMessage or RecallMessage to a topic that does not exist", v2.Code_TOPIC_NOT_FOUND, codes.OK},
	"recall/delay message, unknown topic":             {"compatibility.md: SendMessage or RecallMessage to a topic that does not exist", v2.Code_TOPIC_NOT_FOUND, codes.OK},
	"settings/subscription of a producer":             {"compatibility.md: Telemetry settings with a subscription but a client type other than push/simple consumer", 0, codes.InvalidArgument},
	"settings/subscription of a pull consumer":        {"compatibility.md: Telemetry settings with a subscription but a client type other than push/simple consumer", 0, codes.InvalidArgument},
	"settings/subscription without client type":       {"compatibility.md: Telemetry settings with a subscription but a client type other than push/simple consumer", 0, codes.InvalidArgument},
	"settings/subscription of an unknown client type": {"compatibility.md: Telemetry settings with a subscription but a client type other than push/simple consumer", 0, codes.InvalidArgument},
	"settings/publishing of an unknown client type":   {"compatibility.md: Telemetry settings ... a client type the protocol does not define", 0, codes.InvalidArgument},

	"send/properties at the broker's limit": {"compatibility.md: a message whose properties a RocketMQ broker cannot store, or cannot store again", v2.Code_MESSAGE_PROPERTIES_TOO_LARGE, codes.OK},

	"forward/received message, commit-log offset beyond the log": {
		"compatibility.md: cluster mode: ForwardMessageToDeadLetterQueue with a receipt handle whose commit-log offset lies beyond the broker's commit log",
		v2.Code_INVALID_RECEIPT_HANDLE, codes.OK},
}

// knownModeDifferences are the pull and offset requests rmqproxy answers
// differently in cluster and local mode, each listed with its reason in
// docs/compatibility.md.
var knownModeDifferences = map[string]string{
	"offset/update, unknown group": "compatibility.md: UpdateOffset of a group the broker does not know",
	"pull/no broker":               "compatibility.md: pull and offset requests whose message queue names no broker",
}

// TestDifferentialAgainstApacheProxy sends the same good and bad requests
// to rmqproxy and to the Apache proxy (rocketmq-proxy of the same release,
// cluster mode) in front of the same broker, and compares what a client
// sees: status codes, route and assignment shape, settings, and the fields
// of a delivered message. The requests cover every RPC the Apache proxy
// serves (addRows: Heartbeat and NotifyClientTermination with and without
// settings, Telemetry settings variants, live and dead receipt handles,
// recall handles, transactions ended in each way). The pull and offset
// RPCs, which it does not serve, are asked of rmqproxy in cluster and in
// local mode, which must agree (addPullRows). A difference that
// docs/compatibility.md does not list fails.
func TestDifferentialAgainstApacheProxy(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	cfg.Messaging = application.DefaultConfig() // the Apache proxy's defaults
	// The Apache proxy's JVM starts while rmqproxy does.
	apacheStarted := testenv.NameServer().StartApacheProxyAsync(t, broker.Cluster)
	ours := testenv.Start(t, cfg)
	apache := apacheStarted()
	theirs := &testenv.Proxy{Addr: apache.GRPC}

	normal, fifo, delay, txTopic := testenv.Name(t, "diff-normal"), testenv.Name(t, "diff-fifo"), testenv.Name(t, "diff-delay"), testenv.Name(t, "diff-tx")
	group, fifoGroup := testenv.Name(t, "g-diff"), testenv.Name(t, "g-diff-fifo")
	ours.CreateTopic(t, normal, domain.MessageTypeNormal, 2)
	ours.CreateTopic(t, fifo, domain.MessageTypeFIFO, 2)
	ours.CreateTopic(t, delay, domain.MessageTypeDelay, 2)
	ours.CreateTopic(t, txTopic, domain.MessageTypeTransaction, 1)
	orderly := true
	ours.CreateGroup(t, application.GroupSpec{Name: fifoGroup, Orderly: &orderly, MaxDeliveryAttempts: 5})
	// live: a message for the rows that need a live receipt handle (each
	// receives it in a group of its own). pull: the pull and offset rows,
	// asked of rmqproxy in both modes, each holding the same 3 messages.
	live, pull, pullGroup := testenv.Name(t, "diff-live"), testenv.Name(t, "diff-pull"), testenv.Name(t, "g-diff-pull")
	ours.CreateTopic(t, live, domain.MessageTypeNormal, 1)
	localCfg := testenv.Config(t)
	localCfg.Mode = app.ModeLocal
	localCfg.Messaging = application.DefaultConfig()
	local := testenv.Start(t, localCfg)
	for _, p := range []*testenv.Proxy{ours, local} {
		p.CreateTopic(t, pull, domain.MessageTypeNormal, 1)
		p.CreateGroup(t, application.GroupSpec{Name: pullGroup})
		p.CreateGroup(t, application.GroupSpec{Name: pullGroup + "-commit"})
		testenv.NewRawClient(t, p).SendN(t, pull, 3)
	}
	testenv.NewRawClient(t, ours).SendN(t, live, 1)
	targets := []struct {
		name string
		raw  *testenv.RawClient
	}{{"rmqproxy", testenv.NewRawClient(t, ours)}, {"apache", testenv.NewRawClient(t, theirs)}}
	// The Apache proxy caches routes: wait until it routes every topic.
	for _, topic := range []string{normal, fifo, delay, txTopic, live} {
		testenv.WaitForRoute(t, theirs, topic)
	}

	ask := map[string]diffRow{}
	type answer = diffAnswer
	fromErr := func(err error) answer { return answer{code: status.Code(err)} }
	env := &diffEnv{t: t, broker: broker.Name, normal: normal, fifo: fifo, delay: delay, txTopic: txTopic, live: live, pull: pull,
		group: group, fifoGroup: fifoGroup, proxyOf: map[*testenv.RawClient]*testenv.Proxy{targets[0].raw: ours, targets[1].raw: theirs}}
	env.addRows(ask)
	pullAsk := map[string]diffRow{}
	env.addPullRows(pullAsk, pull, pullGroup)

	// Routes: code and shape.
	route := func(topic string) func(raw *testenv.RawClient) answer {
		return func(raw *testenv.RawClient) answer {
			resp, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic},
				Endpoints: &v2.Endpoints{Scheme: v2.AddressScheme_IPv4, Addresses: []*v2.Address{{Host: "127.0.0.1", Port: 1}}}})
			if err != nil {
				return fromErr(err)
			}
			var shape []string
			for _, q := range resp.GetMessageQueues() {
				shape = append(shape, fmt.Sprintf("%s/%d/%v/%v", q.GetBroker().GetName(), q.GetId(), q.GetPermission(), q.GetAcceptMessageTypes()))
			}
			sort.Strings(shape)
			return answer{st: resp.GetStatus(), note: strings.Join(shape, " ")}
		}
	}
	ask["route/normal"] = route(normal)
	ask["route/fifo"] = route(fifo)
	ask["route/unknown"] = route("diff-nope")
	ask["route/illegal"] = route("a b")
	ask["route/system"] = route("TBW102")
	ask["assignment/unknown group"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.QueryAssignment(raw.Ctx(t), &v2.QueryAssignmentRequest{Topic: &v2.Resource{Name: normal}, Group: &v2.Resource{Name: "g-diff-none"}})
		if err != nil {
			return fromErr(err)
		}
		var shape []string
		for _, a := range resp.GetAssignments() {
			shape = append(shape, fmt.Sprintf("%s/%d/%v", a.GetMessageQueue().GetBroker().GetName(), a.GetMessageQueue().GetId(), a.GetMessageQueue().GetPermission()))
		}
		return answer{st: resp.GetStatus(), note: strings.Join(shape, " ")}
	}
	ask["assignment/illegal topic"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.QueryAssignment(raw.Ctx(t), &v2.QueryAssignmentRequest{Topic: &v2.Resource{Name: "a b"}, Group: &v2.Resource{Name: "g"}})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}

	// Sends.
	msg := func(topic string, mutate func(*v2.Message)) *v2.Message {
		m := testenv.RawMessage(topic, []byte("body"), "")
		if mutate != nil {
			mutate(m)
		}
		return m
	}
	send := func(msgs ...func() *v2.Message) func(raw *testenv.RawClient) answer {
		return func(raw *testenv.RawClient) answer {
			req := &v2.SendMessageRequest{}
			for _, m := range msgs {
				req.Messages = append(req.Messages, m())
			}
			resp, err := raw.SendMessage(raw.Ctx(t), req)
			if err != nil {
				return fromErr(err)
			}
			return answer{st: resp.GetStatus(), note: fmt.Sprintf("%d entries", len(resp.GetEntries()))}
		}
	}
	m := func(topic string, mutate func(*v2.Message)) func() *v2.Message {
		return func() *v2.Message { return msg(topic, mutate) }
	}
	tooMany := map[string]string{}
	for i := range 129 {
		tooMany[fmt.Sprint("k", i)] = "v"
	}
	ask["send/ok"] = send(m(normal, nil))
	ask["send/no message"] = send()
	ask["send/blank topic"] = send(m("", nil))
	ask["send/illegal topic"] = send(m("a b", nil))
	ask["send/system topic"] = send(m("TBW102", nil))
	ask["send/unknown topic"] = send(m("diff-nope", nil))
	ask["send/empty body"] = send(m(normal, func(x *v2.Message) { x.Body = nil }))
	ask["send/body over 4 MiB"] = send(m(normal, func(x *v2.Message) { x.Body = make([]byte, 4<<20+1) }))
	ask["send/129 properties"] = send(m(normal, func(x *v2.Message) { x.UserProperties = tooMany }))
	ask["send/reserved property"] = send(m(normal, func(x *v2.Message) { x.UserProperties = map[string]string{"UNIQ_KEY": "x"} }))
	ask["send/tag with bar"] = send(m(normal, func(x *v2.Message) { tag := "a|b"; x.SystemProperties.Tag = &tag }))
	ask["send/blank key"] = send(m(normal, func(x *v2.Message) { x.SystemProperties.Keys = []string{" "} }))
	ask["send/blank message id"] = send(m(normal, func(x *v2.Message) { x.SystemProperties.MessageId = "" }))
	ask["send/message group too long"] = send(m(fifo, func(x *v2.Message) {
		g := strings.Repeat("g", 64)
		x.SystemProperties.MessageGroup = &g
		x.SystemProperties.MessageType = v2.MessageType_FIFO
	}))
	ask["send/fifo to normal topic"] = send(m(normal, func(x *v2.Message) {
		g := "g1"
		x.SystemProperties.MessageGroup = &g
		x.SystemProperties.MessageType = v2.MessageType_FIFO
	}))
	ask["send/normal to fifo topic"] = send(m(fifo, nil))
	ask["send/delay beyond the limit"] = send(m(delay, func(x *v2.Message) {
		x.SystemProperties.DeliveryTimestamp = timestamppb.New(time.Now().Add(25 * time.Hour))
		x.SystemProperties.MessageType = v2.MessageType_DELAY
	}))
	ask["send/batch mixing topics"] = send(m(normal, nil), m(delay, nil))
	ask["send/property value NUL"] = send(m(normal, func(x *v2.Message) { x.UserProperties = map[string]string{"a": "x\x00y"} }))
	ask["send/gzip body"] = send(m(normal, func(x *v2.Message) {
		x.Body, x.SystemProperties.BodyEncoding = gzipped(bytes.Repeat([]byte("gzip body "), 1000)), v2.Encoding_GZIP
	}))
	// Properties padded through the trace context: the most rmqproxy
	// accepts, and RocketMQ's own limit, which leaves no room for what a
	// broker adds.
	ask["send/properties at rmqproxy's limit"] = send(m(normal, func(x *v2.Message) {
		testenv.PadStoredProperties(x, domain.MaxStoredPropertiesLen-domain.BrokerPropertiesReserve)
	}))
	ask["send/properties at the broker's limit"] = send(m(normal, func(x *v2.Message) { testenv.PadStoredProperties(x, domain.MaxStoredPropertiesLen) }))

	// Consumer side (after each target's own settings).
	receive := func(mutate func(*v2.ReceiveMessageRequest)) func(raw *testenv.RawClient) answer {
		return func(raw *testenv.RawClient) answer {
			req := testenv.ReceiveRequest(group, normal, 1, 20*time.Second)
			req.LongPollingTimeout = durationpb.New(5 * time.Second)
			mutate(req)
			st, _ := raw.Receive(t, req)
			return answer{st: st}
		}
	}
	ask["receive/invisible time above 12h"] = receive(func(r *v2.ReceiveMessageRequest) { r.InvisibleDuration = durationpb.New(13 * time.Hour) })
	ask["receive/invisible time below 10s"] = receive(func(r *v2.ReceiveMessageRequest) { r.InvisibleDuration = durationpb.New(time.Second) })
	ask["receive/illegal group"] = receive(func(r *v2.ReceiveMessageRequest) { r.Group = &v2.Resource{Name: "a b"} })
	ask["receive/system group"] = receive(func(r *v2.ReceiveMessageRequest) { r.Group = &v2.Resource{Name: "CID_RMQ_SYS_X"} })
	ask["receive/illegal topic"] = receive(func(r *v2.ReceiveMessageRequest) { r.MessageQueue.Topic = &v2.Resource{Name: "a b"} })
	ask["receive/zero batch size"] = receive(func(r *v2.ReceiveMessageRequest) { r.BatchSize = 0 })
	ask["receive/unknown topic"] = receive(func(r *v2.ReceiveMessageRequest) { r.MessageQueue.Topic = &v2.Resource{Name: "diff-nope"} })
	ask["ack/malformed handle"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.AckMessage(raw.Ctx(t), &v2.AckMessageRequest{Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: normal},
			Entries: []*v2.AckMessageEntry{{MessageId: "01AB", ReceiptHandle: "garbage"}}})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus(), note: fmt.Sprint(len(resp.GetEntries()), " entries")}
	}
	ask["ack/expired handle"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.AckMessage(raw.Ctx(t), &v2.AckMessageRequest{Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: normal},
			Entries: []*v2.AckMessageEntry{{MessageId: "01AB", ReceiptHandle: "0 1700000000000 10000 0 0 " + broker.Name + " 0 0 0"}}})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}
	ask["ack/no entries"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.AckMessage(raw.Ctx(t), &v2.AckMessageRequest{Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: normal}})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}
	ask["change/malformed handle"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.ChangeInvisibleDuration(raw.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
			Topic: &v2.Resource{Name: normal}, ReceiptHandle: "garbage", InvisibleDuration: durationpb.New(time.Minute), MessageId: "01AB"})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}
	ask["change/invisible time above 12h"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.ChangeInvisibleDuration(raw.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
			Topic: &v2.Resource{Name: normal}, ReceiptHandle: "0 1700000000000 10000 0 0 " + broker.Name + " 0 0 0",
			InvisibleDuration: durationpb.New(13 * time.Hour), MessageId: "01AB"})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}
	ask["end/blank transaction id"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.EndTransaction(raw.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: txTopic}, MessageId: "01AB", Resolution: v2.TransactionResolution_COMMIT})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}
	ask["end/transaction id not from a send"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.EndTransaction(raw.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: txTopic}, MessageId: "01AB", TransactionId: "01AB", Resolution: v2.TransactionResolution_COMMIT})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}
	ask["pull/query offset"] = func(raw *testenv.RawClient) answer {
		resp, err := raw.QueryOffset(raw.Ctx(t), &v2.QueryOffsetRequest{MessageQueue: &v2.MessageQueue{Topic: &v2.Resource{Name: normal},
			Broker: &v2.Broker{Name: broker.Name}}, QueryOffsetPolicy: v2.QueryOffsetPolicy_END})
		if err != nil {
			return fromErr(err)
		}
		return answer{st: resp.GetStatus()}
	}

	// Run every request against both, in a stable order; settings first
	// for the requests that need them (a fresh client per target asks the
	// "before settings" questions).
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range ask {
			if !yield(k) {
				return
			}
		}
	})
	results := map[string][2]answer{}
	for i, tg := range targets {
		tg.raw.Subscribe(t, group, normal)
		for _, n := range names {
			r := results[n]
			r[i] = ask[n](tg.raw)
			results[n] = r
		}
	}
	var report []string
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range results {
			if !yield(k) {
				return
			}
		}
	}) {
		r := results[n]
		same := r[0].code == r[1].code && r[0].st.GetCode() == r[1].st.GetCode() && r[0].note == r[1].note
		line := fmt.Sprintf("%-40s rmqproxy %v %v %q %s | apache %v %v %q %s", n, r[0].code, r[0].st.GetCode(), r[0].st.GetMessage(), r[0].note,
			r[1].code, r[1].st.GetCode(), r[1].st.GetMessage(), r[1].note)
		report = append(report, line)
		if known, ok := knownDifferences[n]; ok {
			if r[0].code != known.grpc || r[0].st.GetCode() != known.ours {
				t.Errorf("rmqproxy answers otherwise than docs/compatibility.md says (%s: %v): %s", known.why, known.ours, line)
			} else if !same {
				t.Logf("known difference (%s): %s", known.why, line)
			}
			continue
		}
		if !same {
			t.Errorf("difference not listed in docs/compatibility.md: %s", line)
		}
	}
	for n := range knownDifferences {
		if _, ok := results[n]; !ok {
			t.Errorf("knownDifferences lists %q, which the test no longer asks", n)
		}
	}
	t.Logf("all answers:\n%s", strings.Join(report, "\n"))

	// Pull and offsets: rmqproxy answers alike in both modes; the Apache
	// proxy serves none of them (compatibility.md: "PullMessage,
	// UpdateOffset, GetOffset, QueryOffset").
	modes := []*testenv.RawClient{targets[0].raw, testenv.NewRawClient(t, local), targets[1].raw}
	env.proxyOf[modes[1]] = local
	// The broker's consume queue of pull holds the 3 messages once
	// dispatched.
	testenv.WaitFor(t, 30*time.Second, func() error {
		if a := pullAsk["offset/query end"](modes[0]); a.note != "offset 3" {
			return fmt.Errorf("the end of %s: %v %s", pull, a.st, a.note)
		}
		return nil
	})
	report = nil
	for _, n := range slices.Sorted(maps.Keys(pullAsk)) {
		var r [3]answer
		for i, raw := range modes {
			r[i] = pullAsk[n](raw)
		}
		line := fmt.Sprintf("%-40s cluster %v %v %q %s | local %v %v %q %s", n, r[0].code, r[0].st.GetCode(), r[0].st.GetMessage(), r[0].note,
			r[1].code, r[1].st.GetCode(), r[1].st.GetMessage(), r[1].note)
		report = append(report, line)
		if r[2].code != codes.Unimplemented {
			t.Errorf("%s: the Apache proxy answers %v %v (compatibility.md says it serves no pull or offset RPC)", n, r[2].code, r[2].st)
		}
		same := r[0].code == r[1].code && r[0].st.GetCode() == r[1].st.GetCode() && r[0].note == r[1].note
		if why, ok := knownModeDifferences[n]; ok {
			if same {
				t.Errorf("%s: listed as a difference between the modes (%s), answered alike: %s", n, why, line)
			}
			continue
		}
		if !same {
			t.Errorf("cluster and local mode differ: %s", line)
		}
	}
	for n := range knownModeDifferences {
		if _, ok := pullAsk[n]; !ok {
			t.Errorf("knownModeDifferences lists %q, which the test no longer asks", n)
		}
	}
	t.Logf("pull and offset answers:\n%s", strings.Join(report, "\n"))

	// Settings: what each proxy pushes to a producer and to a consumer of
	// an orderly group.
	for _, who := range []struct {
		name     string
		settings *v2.Settings
	}{
		{"producer", &v2.Settings{ClientType: v2.ClientType_PRODUCER.Enum(), RequestTimeout: durationpb.New(3 * time.Second),
			PubSub: &v2.Settings_Publishing{Publishing: &v2.Publishing{Topics: []*v2.Resource{{Name: normal}}}}}},
		{"orderly push consumer", &v2.Settings{ClientType: v2.ClientType_PUSH_CONSUMER.Enum(), RequestTimeout: durationpb.New(3 * time.Second),
			PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: &v2.Resource{Name: fifoGroup},
				Subscriptions: []*v2.SubscriptionEntry{{Topic: &v2.Resource{Name: fifo}, Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}}}}}},
	} {
		var got [2]string
		for i, tg := range targets {
			got[i] = settingsReply(t, tg.raw, who.settings)
		}
		if got[0] != got[1] {
			t.Errorf("%s settings differ:\n rmqproxy %s\n apache   %s", who.name, got[0], got[1])
		} else {
			t.Logf("%s settings: %s", who.name, got[0])
		}
	}

	// A delivered message: the same message sent through each proxy, then
	// received through each, shows the same fields.
	var views [2][2]string // [sent through][received through]
	for from := range targets {
		m := testenv.RawMessage(normal, []byte("payload"), "TagA")
		m.SystemProperties.Keys = []string{"k1", "k2"}
		m.UserProperties = map[string]string{"a": "1", "ü": "ß"}
		resp, err := targets[from].raw.SendMessage(targets[from].raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send through %s: %v %v", targets[from].name, resp, err)
		}
		for to, tg := range targets {
			group := fmt.Sprintf("%s-view-%d-%d", group, from, to)
			tg.raw.Subscribe(t, group, normal)
			testenv.WaitFor(t, 30*time.Second, func() error {
				req := testenv.ReceiveRequest(group, normal, 32, 20*time.Second)
				req.LongPollingTimeout = durationpb.New(5 * time.Second)
				_, msgs := tg.raw.Receive(t, req)
				for _, x := range msgs {
					if x.GetSystemProperties().GetMessageId() == m.SystemProperties.MessageId {
						views[from][to] = messageView(x) // the id matched: it is left out of the view
						return nil
					}
				}
				return fmt.Errorf("message sent through %s not received through %s yet", targets[from].name, tg.name)
			})
		}
		if views[from][0] != views[from][1] {
			t.Errorf("a message sent through %s looks different:\n through rmqproxy %s\n through apache   %s", targets[from].name, views[from][0], views[from][1])
		}
	}
	if views[0][0] != views[1][0] {
		t.Errorf("the same message sent through either proxy looks different:\n %s\n %s", views[0][0], views[1][0])
	}
	t.Logf("delivered message: %s", views[0][0])
}

// settingsReply sends settings on a new Telemetry stream and returns the
// reply's fields a client acts on.
func settingsReply(t *testing.T, raw *testenv.RawClient, s *v2.Settings) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(raw.Ctx(t), 30*time.Second)
	defer cancel()
	stream, err := raw.Telemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: s}}); err != nil {
		t.Fatal(err)
	}
	reply, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	r := reply.GetSettings()
	b := r.GetBackoffPolicy()
	out := fmt.Sprintf("status %v; backoff max attempts %d, exponential %v, customized %v", reply.GetStatus().GetCode(),
		b.GetMaxAttempts(), b.GetExponentialBackoff(), b.GetCustomizedBackoff())
	if p := r.GetPublishing(); p != nil {
		out += fmt.Sprintf("; publishing max body %d, validate type %v", p.GetMaxBodySize(), p.GetValidateMessageType())
	}
	if sub := r.GetSubscription(); sub != nil {
		out += fmt.Sprintf("; subscription fifo %v, batch %d, long polling %v", sub.GetFifo(), sub.GetReceiveBatchSize(), sub.GetLongPollingTimeout().AsDuration())
	}
	return out
}

// messageView renders what a client reads from a delivered message,
// without what differs per send or delivery (message id, receipt handle,
// times, offsets).
func messageView(m *v2.Message) string {
	sp := m.GetSystemProperties()
	props := slices.Sorted(func(yield func(string) bool) {
		for k, v := range m.GetUserProperties() {
			if !yield(k + "=" + v) {
				return
			}
		}
	})
	return fmt.Sprintf("topic %s, body %q, tag %s, keys %v, type %v, digest %v, encoding %v, born host %s, attempt %d, props %v",
		m.GetTopic().GetName(), m.GetBody(), sp.GetTag(), sp.GetKeys(), sp.GetMessageType(),
		sp.GetBodyDigest().GetChecksum(), sp.GetBodyEncoding(), sp.GetBornHost(), sp.GetDeliveryAttempt(), props)
}
