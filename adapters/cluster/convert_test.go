package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports"
)

func TestTransactionIDRoundTrip(t *testing.T) {
	in := transactionID{Broker: "broker-a", CommitLogOffset: 123456789, QueueOffset: 42, MessageID: "01AB"}
	s := in.String()
	if strings.ContainsAny(s, " +/=") {
		t.Fatalf("id %q is not URL-safe", s)
	}
	out, err := parseTransactionID(s)
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{"", "!!!", "dDEgYiAxIDI", in.String() + "!",
		transactionID{Broker: "b", CommitLogOffset: -1, QueueOffset: 1, MessageID: "m"}.String()} {
		if _, err := parseTransactionID(bad); !domain.HasReason(err, domain.ReasonInvalidTransactionID) {
			t.Errorf("parse %q: %v, want INVALID_TRANSACTION_ID", bad, err)
		}
	}
}

func TestRecallHandleParse(t *testing.T) {
	// What the broker builds (RecallMessageHandle.HandleV1.buildHandle).
	h := "djEgZGVsYXkgYnJva2VyLWEgMTcwMDAwMDAwMDAwMCAwMUFC"
	topic, broker, ok := parseRecallHandle(h)
	if !ok || topic != "delay" || broker != "broker-a" {
		t.Fatalf("parse: %q %q %v", topic, broker, ok)
	}
	for _, bad := range []string{"", "x", "djIgYSBiIGMgZA=="} {
		if _, _, ok := parseRecallHandle(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestRouteOfSplitsReadAndWriteQueues(t *testing.T) {
	rd := &remoting.TopicRouteData{QueueDatas: []remoting.QueueData{
		{BrokerName: "b", ReadQueueNums: 2, WriteQueueNums: 3, Perm: remoting.PermRead | remoting.PermWrite},
		{BrokerName: "a", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead},
		{BrokerName: "gone", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6},
	}}
	r := routeOf("T", rd, map[string]string{"a": "1.1.1.1:1", "b": "2.2.2.2:2"})
	want := []ports.RouteQueue{
		{BrokerName: "a", QueueID: 0, Permission: domain.PermRead},
		{BrokerName: "b", QueueID: 0, Permission: domain.PermReadWrite},
		{BrokerName: "b", QueueID: 1, Permission: domain.PermReadWrite},
		{BrokerName: "b", QueueID: 2, Permission: domain.PermWrite},
	}
	if !reflect.DeepEqual(r.Queues, want) {
		t.Fatalf("queues %+v", r.Queues)
	}
}

func TestTopicOfReadsMessageType(t *testing.T) {
	for attr, want := range map[string]domain.MessageType{"": domain.MessageTypeNormal, "FIFO": domain.MessageTypeFIFO,
		"MIXED": domain.MessageTypeMixed, "DELAY": domain.MessageTypeDelay, "LITE": domain.MessageTypeUnspecified} {
		tc := remoting.TopicConfig{TopicName: "T", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}
		if attr != "" {
			tc.Attributes = map[string]string{remoting.TopicAttributeMessageType: attr}
		}
		if got := topicOf(&tc); got.Type != want || got.QueueCount != 4 || got.Permission != domain.PermReadWrite {
			t.Errorf("attribute %q: %+v", attr, got)
		}
	}
}

func TestGroupConfigRoundTrip(t *testing.T) {
	for _, g := range []domain.ConsumerGroup{
		{Name: "g1", MaxDeliveryAttempts: 5, Orderly: true, RetryPolicy: domain.RetryPolicy{Delays: []time.Duration{time.Second, time.Minute}}},
		{Name: "g2", MaxDeliveryAttempts: 17, RetryPolicy: domain.RetryPolicy{Initial: time.Second, Max: time.Minute, Multiplier: 3}},
	} {
		sg := subscriptionGroupOf(g)
		body, err := remoting.EncodeJSONBody(sg)
		if err != nil {
			t.Fatal(err)
		}
		var back remoting.SubscriptionGroupConfig
		if err := remoting.DecodeJSONBody(body, &back); err != nil {
			t.Fatal(err)
		}
		if got := groupOf(&back); !reflect.DeepEqual(got, g) {
			t.Errorf("round trip of %+v: %+v (body %s)", g, got, body)
		}
	}
	// A group without a retry policy (created by mqadmin) gets upstream's
	// default delays.
	sg := remoting.NewSubscriptionGroupConfig("plain")
	if g := groupOf(&sg); g.MaxDeliveryAttempts != 17 || !reflect.DeepEqual(g.RetryPolicy.Delays, domain.DefaultRetryDelays()) {
		t.Errorf("default group: %+v", g)
	}
}

func TestMessageRoundTripThroughBrokerFormat(t *testing.T) {
	born := time.UnixMilli(1700000000123)
	in := domain.Message{Topic: "T", Body: []byte("hello"), Tag: "TagA", Keys: []string{"k1", "k2"}, ID: "01ABCDEF",
		Group: "g", DeliverAt: time.UnixMilli(1700000009999), TraceContext: "00-abc", BornHost: "10.0.0.1",
		BornAt: born, ReconsumeTimes: 2, Properties: map[string]string{"a": "1", "ü": "ß"}}
	stored := remoting.Message{MagicCode: remoting.MagicV1, QueueID: 3, QueueOffset: 7, CommitLogOffset: 99,
		BornTimestamp: born.UnixMilli(), StoreTimestamp: born.UnixMilli() + 5, ReconsumeTimes: 2,
		BornHost: netip.MustParseAddrPort("10.0.0.1:1234"), StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"),
		Body: in.Body, Topic: "T", Properties: messageProperties(&in)}
	// What brokers add on their own (ORIGIN_GROUP: a 5.5.0 broker's
	// revive, to every message it redelivers).
	stored.Properties = append(stored.Properties, remoting.Field{Key: remoting.PropertyPopCK, Value: "1 2 3 4 0 b 3 7"},
		remoting.Field{Key: "CLUSTER", Value: "c"}, remoting.Field{Key: remoting.PropertyFirstPopTime, Value: "1"},
		remoting.Field{Key: "__RMQ.TRANSIENT.TOPIC_SYS_FLAG", Value: "0"}, remoting.Field{Key: "ORIGIN_GROUP", Value: "g"})
	b, err := remoting.AppendMessage(nil, &stored)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := remoting.DecodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	got := storedMessage(&dec, "T", "b")
	if got.ID != in.ID || got.Tag != in.Tag || !reflect.DeepEqual(got.Keys, in.Keys) || got.Group != in.Group ||
		!got.DeliverAt.Equal(in.DeliverAt) || got.TraceContext != in.TraceContext || got.BornHost != in.BornHost ||
		!got.BornAt.Equal(born) || string(got.Body) != "hello" || got.DeliveryAttempt != 3 || got.QueueOffset != 7 ||
		got.CommitLogOffset != 99 || got.StoreHost != "127.0.0.1:10911" || got.BrokerName != "b" {
		t.Fatalf("stored message %+v", got)
	}
	if !reflect.DeepEqual(got.Properties, in.Properties) {
		t.Fatalf("user properties %v, want %v", got.Properties, in.Properties)
	}
}

func TestCompressedBodies(t *testing.T) {
	// A Remoting producer's zlib body is inflated; a gRPC producer's gzip
	// body passes through, flagged compressed.
	z, flag, err := remoting.Compress([]byte("hello hello hello"), remoting.CompressionZlib, 5)
	if err != nil {
		t.Fatal(err)
	}
	m := remoting.Message{Body: z, SysFlag: flag}
	s := storedMessage(&m, "T", "b")
	if string(s.Body) != "hello hello hello" || s.Compressed {
		t.Fatalf("zlib: %q %v", s.Body, s.Compressed)
	}
	gz := []byte{0x1f, 0x8b, 8, 0, 0}
	m = remoting.Message{Body: gz, SysFlag: remoting.SysFlagCompressed}
	if s = storedMessage(&m, "T", "b"); !s.Compressed || string(s.Body) != string(gz) {
		t.Fatalf("gzip: %v", s.Compressed)
	}
	// A body flagged compressed that neither is gzip nor inflates (a
	// producer sent body_encoding GZIP with a plain body) is delivered as
	// stored, labelled GZIP, as the Apache proxy does: the client reports
	// it corrupted, but it is not withheld from every consumer.
	m = remoting.Message{Body: []byte("not zlib"), SysFlag: remoting.SysFlagCompressed}
	if s = storedMessage(&m, "T", "b"); !s.Compressed || string(s.Body) != "not zlib" {
		t.Fatalf("corrupt: %q %v", s.Body, s.Compressed)
	}
}

func TestHandleOfKeepsRetryFlagAndCommitLogOffset(t *testing.T) {
	ck, err := remoting.ParseExtraInfo("5 1700000000000 60000 3 2 broker-a 1 9")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := handleOf(ck, 4711)
	if h.String() != "5 1700000000000 60000 3 2 broker-a 1 9 4711" || h.TopicType != domain.ReceiptTopicRetryV2 {
		t.Fatalf("handle %q", h.String())
	}
	if got := realTopic("T", "G", h); got != "%RETRY%G+T" {
		t.Fatalf("real topic %q", got)
	}
}

func TestMapError(t *testing.T) {
	resp := func(c remoting.ResponseCode) error { return &remoting.ResponseError{Code: c, Remark: "r"} }
	for _, tt := range []struct {
		err  error
		want domain.Reason
	}{
		{resp(remoting.ResponseTopicNotExist), domain.ReasonTopicNotFound},
		{resp(remoting.ResponseSystemBusy), domain.ReasonTooManyRequests},
		{resp(remoting.ResponsePollingFull), domain.ReasonTooManyRequests},
		{resp(remoting.ResponseRequestCodeNotSupported), domain.ReasonNotImplemented},
		{resp(remoting.ResponseSubscriptionGroupNotExist), domain.ReasonConsumerGroupNotFound},
		{resp(remoting.ResponseFlushDiskTimeout), domain.ReasonPersistenceTimeout},
		{resp(remoting.ResponseFlushSlaveTimeout), domain.ReasonReplicaPersistenceTimeout},
		{resp(remoting.ResponseSlaveNotAvailable), domain.ReasonReplicaUnavailable},
		{resp(remoting.ResponseSystemError), domain.ReasonBrokerError},
		{resp(remoting.ResponseNoPermission), domain.ReasonBrokerError},
		{resp(remoting.ResponseGoAway), domain.ReasonUnavailable},
		{&client.Error{Kind: client.KindTimeout}, domain.ReasonTimeout},
		{&client.Error{Kind: client.KindDial}, domain.ReasonUnavailable},
		{&client.Error{Kind: client.KindConnection}, domain.ReasonUnavailable},
		{context.DeadlineExceeded, domain.ReasonTimeout},
	} {
		got := mapError(tt.err)
		if domain.ReasonOf(got) != tt.want {
			t.Errorf("mapError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if err := mapError(resp(remoting.ResponseSystemError)); domain.MessageOf(err) != "r" {
		t.Errorf("the broker's remark is not the message: %q", domain.MessageOf(err))
	}
	congested := &remoting.ResponseError{Code: remoting.ResponseSystemError, Remark: "timer message is under flow control, max num limit is 2 or the current value is greater than 1 and less than 2, trigger random flow control"}
	for _, err := range []error{congested, fmt.Errorf("send: %w", congested), endTransactionError(congested)} {
		if got := mapError(err); domain.ReasonOf(got) != domain.ReasonTooManyRequests || !strings.Contains(domain.MessageOf(got), "timer is congested") ||
			!strings.Contains(domain.MessageOf(got), congested.Remark) {
			t.Errorf("a timer under flow control (%v) is %v %q, want too many requests saying the timer is congested, with the remark", err, domain.ReasonOf(got), domain.MessageOf(got))
		}
	}
	// The broker answers a delivery time beyond its timer's reach so to a
	// send and to the commit of a delay transaction alike; the commit's
	// was mapped to an internal error.
	beyond := &remoting.ResponseError{Code: remoting.ResponseMessageIllegal, Request: remoting.RequestEndTransaction,
		Remark: "timer message illegal, the delay time should not be bigger than the max delay 259200000ms; or if set del msg, the delay time should be bigger than the current time"}
	for _, err := range []error{beyond, fmt.Errorf("send: %w", beyond), endTransactionError(beyond)} {
		if got := mapError(err); domain.ReasonOf(got) != domain.ReasonIllegalDeliveryTime || !strings.Contains(domain.MessageOf(got), "timerMaxDelaySec") ||
			!strings.Contains(domain.MessageOf(got), beyond.Remark) {
			t.Errorf("a delivery time beyond the timer (%v) is %v %q, want illegal delivery time naming timerMaxDelaySec, with the remark", err, domain.ReasonOf(got), domain.MessageOf(got))
		}
	}
	if got := mapError(&remoting.ResponseError{Code: remoting.ResponseMessageIllegal,
		Remark: "[LMQ_CONSUME_QUEUE_NUM_EXCEEDED]broker config enableLmq and enableMultiDispatch, lmq consumeQueue num exceed maxLmqConsumeQueueNum config num"}); domain.ReasonOf(got) != domain.ReasonBrokerError {
		t.Errorf("another MESSAGE_ILLEGAL is %v, want the broker's error", domain.ReasonOf(got))
	}
	// A 5.5.0 broker refuses a message whose body is larger than its
	// maxMessageSize so (messaging.limits.maxBodySize raised beyond it).
	bodyTooLarge := &remoting.ResponseError{Code: remoting.ResponseMessageIllegal, Request: remoting.RequestSendMessageV2,
		Remark: "the message is illegal, maybe msg body or properties length not matched. msg body length limit 4194304B, msg properties length limit 32KB."}
	if got := mapError(bodyTooLarge); domain.ReasonOf(got) != domain.ReasonBodyTooLarge || !strings.Contains(domain.MessageOf(got), "maxMessageSize") ||
		!strings.Contains(domain.MessageOf(got), bodyTooLarge.Remark) {
		t.Errorf("a body beyond the broker's maxMessageSize is %v %q, want body too large naming maxMessageSize, with the remark", domain.ReasonOf(got), domain.MessageOf(got))
	}
	// A 5.5.0 broker refuses a batch larger than its maxMessageSize with
	// the text of the exception its encoder throws.
	tooLarge := &remoting.ResponseError{Code: remoting.ResponseSystemError, Request: remoting.RequestSendBatchMessage,
		Remark: "java.lang.RuntimeException: message body size exceeded, org.apache.rocketmq.store.MessageExtEncoder.encode(MessageExtEncoder.java:290)"}
	if got := mapError(tooLarge); domain.ReasonOf(got) != domain.ReasonBodyTooLarge || !strings.Contains(domain.MessageOf(got), "maxMessageSize") {
		t.Errorf("a batch over the broker's maxMessageSize is %v %q, want body too large naming maxMessageSize", domain.ReasonOf(got), domain.MessageOf(got))
	}
	// A broker with enablePropertyFilter=false refuses a SQL92 pull.
	noSQL := &remoting.ResponseError{Code: remoting.ResponseSystemError, Request: remoting.RequestPullMessage,
		Remark: "The broker does not support consumer to filter message by SQL92"}
	if got := mapError(noSQL); domain.ReasonOf(got) != domain.ReasonNotImplemented || !strings.Contains(domain.MessageOf(got), "enablePropertyFilter") {
		t.Errorf("a SQL92 pull refused by the broker's setting is %v %q, want not implemented naming enablePropertyFilter", domain.ReasonOf(got), domain.MessageOf(got))
	}
	if err := mapError(&client.Error{Kind: client.KindCanceled}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled call is %v", err)
	}
}

// TestNotStoredOnlyWhenNothingCanHaveBeenStored: the errors made here
// say "maybe delivered" (only the Remoting client knows that a request was
// not written), so a timeout or a broken connection counts as maybe
// stored; TestSendNotWrittenMovesToAnotherBroker drives the client's own
// errors for a request that was, and one that was not, written.
func TestNotStoredOnlyWhenNothingCanHaveBeenStored(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&client.Error{Kind: client.KindDial}, true},
		{fmt.Errorf("send: %w", &client.Error{Kind: client.KindDial}), true},
		{&client.Error{Kind: client.KindTimeout}, false},
		{&client.Error{Kind: client.KindConnection}, false},
		{&client.Error{Kind: client.KindClosed}, false},
		{&client.Error{Kind: client.KindCanceled}, false},
		{&client.Error{Kind: client.KindEncode}, false}, // not sent, but no broker would take it
		{&remoting.ResponseError{Code: remoting.ResponseSystemBusy}, true},
		{&remoting.ResponseError{Code: remoting.ResponseFlushDiskTimeout}, false},
		{&remoting.ResponseError{Code: remoting.ResponseSystemError}, false},
		{&remoting.ResponseError{Code: remoting.ResponseSystemError, Remark: "timer message is under flow control, max num limit is 2"}, true},
		{&remoting.ResponseError{Code: remoting.ResponseMessageIllegal, Remark: "timer message illegal, the delay time should not be bigger than the max delay 259200000ms"}, false},
		{&remoting.ResponseError{Code: remoting.ResponseGoAway}, true},
	} {
		if got := notStored(tt.err); got != tt.want {
			t.Errorf("notStored(%v) = %v", tt.err, got)
		}
	}
}

func TestHeartbeatAggregatesGroups(t *testing.T) {
	b := &Broker{id: "me", clock: ports.SystemClock{}, clients: newClientSet(), kick: make(chan struct{}, 1)}
	ctx := context.Background()
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "p1", ProducerTopics: []string{"T1", "T2"}})
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "p2", ProducerTopics: []string{"T2"}})
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c1", ConsumerGroup: "G",
		Subscriptions: []ports.Subscription{{Topic: "T1", Filter: filter.Expression{Text: "a || b"}}}})
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c2", ConsumerGroup: "G",
		Subscriptions: []ports.Subscription{{Topic: "T3", Filter: filter.Expression{Type: filter.TypeSQL92, Text: "x > 1"}}}})
	hb, goneP, goneC := b.heartbeatData()
	if len(hb.ProducerDataSet) != 2 || hb.ProducerDataSet[0].GroupName != "T1" || len(hb.ConsumerDataSet) != 1 ||
		len(hb.ConsumerDataSet[0].SubscriptionDataSet) != 2 || len(goneP)+len(goneC) != 0 || hb.ClientID != "me" {
		t.Fatalf("heartbeat %+v", hb)
	}
	sub := hb.ConsumerDataSet[0].SubscriptionDataSet[0]
	if sub.Topic != "T1" || !reflect.DeepEqual(sub.TagsSet, []string{"a", "b"}) || len(sub.CodeSet) != 2 || sub.ExpressionType != "TAG" {
		t.Fatalf("tag subscription %+v", sub)
	}
	if s := hb.ConsumerDataSet[0].SubscriptionDataSet[1]; s.ExpressionType != "SQL92" || s.SubString != "x > 1" {
		t.Fatalf("sql subscription %+v", s)
	}
	// p1 leaves: T1 has no producer left, T2 still has p2.
	b.ClientGone(ctx, "p1")
	b.ClientGone(ctx, "c1")
	hb, goneP, goneC = b.heartbeatData()
	if !reflect.DeepEqual(goneP, []string{"T1"}) || len(goneC) != 0 || len(hb.ProducerDataSet) != 1 {
		t.Fatalf("after p1 left: gone %v %v, heartbeat %+v", goneP, goneC, hb)
	}
	b.ClientGone(ctx, "c2")
	if _, _, goneC = b.heartbeatData(); !reflect.DeepEqual(goneC, []string{"G"}) {
		t.Fatalf("group G not unregistered: %v", goneC)
	}
}

// TestHeartbeatLeavesOutGroupsWithoutSubscriptions: a consumer registered
// by its heartbeat alone (after a restart, before its settings come)
// names its group but no subscription. A broker replaces a group's
// subscription table with a heartbeat's set, so an empty set would erase
// what the group's other clients (other proxies, Remoting consumers)
// registered and notify them all of a change, on every round; the group is
// left out until a subscription is known.
func TestHeartbeatLeavesOutGroupsWithoutSubscriptions(t *testing.T) {
	b := &Broker{id: "me", clock: ports.SystemClock{}, clients: newClientSet(), kick: make(chan struct{}, 1)}
	ctx := context.Background()
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c1", ConsumerGroup: "G"})
	if hb, _, _ := b.heartbeatData(); len(hb.ConsumerDataSet) != 0 {
		t.Fatalf("heartbeat for a group without subscriptions: %+v", hb.ConsumerDataSet)
	}
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c2", ConsumerGroup: "G", Subscriptions: []ports.Subscription{{Topic: "T"}}})
	if hb, _, _ := b.heartbeatData(); len(hb.ConsumerDataSet) != 1 || len(hb.ConsumerDataSet[0].SubscriptionDataSet) != 1 {
		t.Fatalf("heartbeat once a subscription of G is known: %+v", hb.ConsumerDataSet)
	}
}

// TestBornHostOfARemotingProducer: a message a Remoting producer sent has
// no __BORNHOST property; the born host consumers get is the address of
// the stored born host without its port, as the Apache proxy reads it
// (MessageExt.getBornHostString), while the store host keeps its port
// (NetworkUtil.socketAddress2String).
func TestBornHostOfARemotingProducer(t *testing.T) {
	m := remoting.Message{BornHost: netip.MustParseAddrPort("10.1.2.3:5555"), StoreHost: netip.MustParseAddrPort("10.9.9.9:10911")}
	s := storedMessage(&m, "T", "b")
	if s.BornHost != "10.1.2.3" || s.StoreHost != "10.9.9.9:10911" {
		t.Fatalf("born host %q, store host %q; want 10.1.2.3 and 10.9.9.9:10911", s.BornHost, s.StoreHost)
	}
	m.Properties = remoting.Properties{{Key: remoting.PropertyBornHost, Value: "client:1"}}
	if s := storedMessage(&m, "T", "b"); s.BornHost != "client:1" {
		t.Fatalf("born host %q, want the property's", s.BornHost)
	}
}

// TestStoreHostTextIsSharedWithinAnAnswer: the messages of one answer
// stored by one host share the text of its address; a message of another
// host gets its own.
func TestStoreHostTextIsSharedWithinAnAnswer(t *testing.T) {
	a, b := netip.MustParseAddrPort("10.0.0.1:10911"), netip.MustParseAddrPort("10.0.0.2:10911")
	var hosts hostName
	var got []string
	for _, h := range []netip.AddrPort{a, a, b, a} {
		m := remoting.Message{MagicCode: remoting.MagicV2, StoreHost: h, Topic: "T"}
		got = append(got, storedMessageOf(&m, "T", "b", &hosts).StoreHost)
	}
	if want := []string{"10.0.0.1:10911", "10.0.0.1:10911", "10.0.0.2:10911", "10.0.0.1:10911"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("store hosts %q, want %q", got, want)
	}
	if unsafe.StringData(got[0]) != unsafe.StringData(got[1]) {
		t.Error("two messages of one host in a row each got a copy of its address")
	}
	m := remoting.Message{MagicCode: remoting.MagicV2, StoreHost: a, Topic: "T"}
	if s := storedMessage(&m, "T", "b").StoreHost; s != "10.0.0.1:10911" {
		t.Errorf("storedMessage: store host %q", s)
	}
}

// TestSendRequestWireForm: a send goes out with the binary (ROCKETMQ)
// header, which decodes to the V2 ext fields the JSON header carried, and
// the properties string is the one FormatProperties makes of the message's
// broker properties.
func TestSendRequestWireForm(t *testing.T) {
	q := domain.QueueRef{Topic: "T", BrokerName: "broker-a", QueueID: 3}
	msgs := []domain.Message{{Topic: "T", Body: []byte("hello"), Tag: "TagA", Keys: []string{"k1", "k2"}, ID: "01ABCDEF",
		TraceContext: "00-abc", BornHost: "10.0.0.1", BornAt: time.UnixMilli(1700000000123), Properties: map[string]string{"a": "1"}}}
	body, code, props, err := encodeSend(msgs)
	if err != nil {
		t.Fatal(err)
	}
	want, err := remoting.FormatProperties(messageProperties(&msgs[0]))
	if err != nil || props != want {
		t.Fatalf("properties %q, want %q (%v)", props, want, err)
	}
	for _, batch := range []bool{false, true} {
		ms, c := msgs, code
		if batch {
			ms, c = []domain.Message{msgs[0], msgs[0]}, remoting.RequestSendBatchMessage
		}
		req := sendRequest(q, ms, body, c, props, time.Now())
		if req.Serialize != remoting.RocketMQ {
			t.Fatalf("send request serialized as %v, want ROCKETMQ", req.Serialize)
		}
		frame, err := remoting.AppendCommand(nil, req)
		if err != nil {
			t.Fatal(err)
		}
		dec, _, err := remoting.Decode(frame, 0)
		if err != nil {
			t.Fatal(err)
		}
		h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: q.BrokerName}, ProducerGroup: q.Topic, Topic: q.Topic,
			DefaultTopic: defaultTopic, DefaultTopicQueueNums: defaultTopicQueueNums, QueueID: q.QueueID,
			BornTimestamp: 1700000000123, Properties: props, Batch: batch}
		if wantFields := h.AppendFieldsV2(nil); dec.Code != int32(c) || dec.Serialize != remoting.RocketMQ ||
			!reflect.DeepEqual(dec.Fields, wantFields) || string(dec.Body) != "hello" {
			t.Fatalf("decoded %+v, want code %d and fields %v", dec, c, wantFields)
		}
	}
}

// stepClock is a clock moved by hand.
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }

// TestGroupsLeavingTheHeartbeatAreUnregistered: a broker closes a
// client's connection (failing every request in flight on it) once a
// group it registered there is not renewed within 120 s, so every group
// that leaves this proxy's heartbeat must be unregistered, whatever made
// it leave: a consumer whose settings drop its last subscription, a
// group's last subscribed consumer leaving while one known by its
// heartbeat alone stays, a client's settings naming another group or
// fewer topics, or a client forgotten by the tracker's own expiry.
func TestGroupsLeavingTheHeartbeatAreUnregistered(t *testing.T) {
	clock := &stepClock{now: time.Unix(1_700_000_000, 0)}
	b := &Broker{id: "me", clock: clock, clients: newClientSet(), kick: make(chan struct{}, 1)}
	ctx := context.Background()
	sub := func(topic string) []ports.Subscription { return []ports.Subscription{{Topic: topic}} }
	round := func(wantP, wantC []string) {
		t.Helper()
		_, goneP, goneC := b.heartbeatData()
		if !reflect.DeepEqual(goneP, wantP) || !reflect.DeepEqual(goneC, wantC) {
			t.Fatalf("unregistered producer groups %v and consumer groups %v, want %v and %v", goneP, goneC, wantP, wantC)
		}
	}
	// The settings of a consumer drop its last subscription.
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c1", ConsumerGroup: "G1", Subscriptions: sub("T")})
	round(nil, nil)
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c1", ConsumerGroup: "G1"})
	round(nil, []string{"G1"})

	// The subscribed consumer leaves; one known by its heartbeat alone stays.
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c2", ConsumerGroup: "G2", Subscriptions: sub("T")})
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c3", ConsumerGroup: "G2"})
	round(nil, nil)
	b.ClientGone(ctx, "c2")
	round(nil, []string{"G2"})

	// Settings naming another group, and fewer topics.
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c4", ConsumerGroup: "G3", Subscriptions: sub("T")})
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "p1", ProducerTopics: []string{"T1", "T2"}})
	round(nil, nil)
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "c4", ConsumerGroup: "G4", Subscriptions: sub("T")})
	b.ClientActive(ctx, ports.ActiveClient{ClientID: "p1", ProducerTopics: []string{"T1"}})
	round([]string{"T2"}, []string{"G3"})

	// The tracker forgets clients nothing refreshed (the application's
	// expiry may be set longer than clientTTL).
	clock.now = clock.now.Add(clientTTL + time.Second)
	round([]string{"T1"}, []string{"G4"})
	b.ClientGone(ctx, "c4")
	round(nil, nil)
}
