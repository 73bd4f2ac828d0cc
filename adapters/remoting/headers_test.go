package remoting_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

var rpc = remoting.RPC{Namespace: "ns", Namespaced: true, BrokerName: "broker-a", Oneway: true, LogicalQueue: true}

// headerSamples has every typed header with every field set, and an empty
// value of the same type to decode into.
func headerSamples() []struct {
	name      string
	full, new remoting.Header
} {
	type s = struct {
		name      string
		full, new remoting.Header
	}
	return []s{
		{"send", &remoting.SendMessageRequestHeader{RPC: rpc, ProducerGroup: "PG", Topic: "T", DefaultTopic: "TBW102",
			DefaultTopicQueueNums: 4, QueueID: 1, SysFlag: 4, BornTimestamp: 1700000000000, Flag: 3,
			Properties: "a\x01b\x02", ReconsumeTimes: 2, UnitMode: true, Batch: true, MaxReconsumeTimes: remoting.Int32(0)},
			&remoting.SendMessageRequestHeader{}},
		{"send response", &remoting.SendMessageResponseHeader{MsgID: "m", QueueID: 1, QueueOffset: 2, TransactionID: "t",
			BatchUniqID: "b", RecallHandle: "r", MsgRegion: "DefaultRegion", TraceOn: "true"}, &remoting.SendMessageResponseHeader{}},
		{"end transaction", &remoting.EndTransactionRequestHeader{RPC: rpc, Topic: "T", ProducerGroup: "PG", TranStateTableOffset: 5,
			CommitLogOffset: 6, CommitOrRollback: remoting.TransactionCommit, FromTransactionCheck: true, MsgID: "m", TransactionID: "t"},
			&remoting.EndTransactionRequestHeader{}},
		{"check transaction", &remoting.CheckTransactionStateRequestHeader{RPC: rpc, Topic: "T", TranStateTableOffset: 1,
			CommitLogOffset: 2, MsgID: "m", TransactionID: "t", OffsetMsgID: "o"}, &remoting.CheckTransactionStateRequestHeader{}},
		{"recall", &remoting.RecallMessageRequestHeader{RPC: rpc, ProducerGroup: "PG", Topic: "T", RecallHandle: "h"},
			&remoting.RecallMessageRequestHeader{}},
		{"recall response", &remoting.RecallMessageResponseHeader{MsgID: "m"}, &remoting.RecallMessageResponseHeader{}},
		{"send back", &remoting.ConsumerSendMsgBackRequestHeader{RPC: rpc, Offset: 1, Group: "G", DelayLevel: -1,
			OriginMsgID: "o", OriginTopic: "T", UnitMode: true, MaxReconsumeTimes: remoting.Int32(16)},
			&remoting.ConsumerSendMsgBackRequestHeader{}},
		{"pull", &remoting.PullMessageRequestHeader{RPC: rpc, ConsumerGroup: "G", Topic: "T", QueueID: 1, QueueOffset: 2,
			MaxMsgNums: 32, SysFlag: remoting.PullSuspend | remoting.PullSubscription, CommitOffset: 3, SuspendTimeoutMillis: 15000,
			Subscription: "A || B", SubVersion: 9, ExpressionType: "TAG", MaxMsgBytes: remoting.Int32(1 << 20),
			RequestSource: remoting.Int32(1), ProxyForwardClientID: "c"}, &remoting.PullMessageRequestHeader{}},
		{"pull response", &remoting.PullMessageResponseHeader{SuggestWhichBrokerID: 1, NextBeginOffset: 2, MinOffset: 3,
			MaxOffset: 4, OffsetDelta: new(int64), TopicSysFlag: 1, GroupSysFlag: 2, ForbiddenType: 3}, &remoting.PullMessageResponseHeader{}},
		{"pop", &remoting.PopMessageRequestHeader{RPC: rpc, ConsumerGroup: "G", Topic: "T", QueueID: -1, MaxMsgNums: 32,
			InvisibleTime: 60000, PollTime: 20000, BornTime: 1, InitMode: remoting.InitModeMax, ExpType: "TAG", Exp: "*",
			Order: true, AttemptID: "a"}, &remoting.PopMessageRequestHeader{}},
		{"pop response", &remoting.PopMessageResponseHeader{PopTime: 1, InvisibleTime: 2, ReviveQid: 3, RestNum: 4,
			StartOffsetInfo: "0 1 2", MsgOffsetInfo: "0 1 2", OrderCountInfo: "0 1 0"}, &remoting.PopMessageResponseHeader{}},
		{"ack", &remoting.AckMessageRequestHeader{RPC: rpc, ConsumerGroup: "G", Topic: "T", QueueID: 1, ExtraInfo: "e", Offset: 2},
			&remoting.AckMessageRequestHeader{}},
		{"change invisible", &remoting.ChangeInvisibleTimeRequestHeader{RPC: rpc, ConsumerGroup: "G", Topic: "T", QueueID: 1,
			ExtraInfo: "e", Offset: 2, InvisibleTime: 3}, &remoting.ChangeInvisibleTimeRequestHeader{}},
		{"change invisible response", &remoting.ChangeInvisibleTimeResponseHeader{PopTime: 1, InvisibleTime: 2, ReviveQid: 3},
			&remoting.ChangeInvisibleTimeResponseHeader{}},
		{"query consumer offset", &remoting.QueryConsumerOffsetRequestHeader{RPC: rpc, ConsumerGroup: "G", Topic: "T", QueueID: 1,
			SetZeroIfNotFound: new(bool)}, &remoting.QueryConsumerOffsetRequestHeader{}},
		{"offset response", &remoting.OffsetResponseHeader{Offset: -1}, &remoting.OffsetResponseHeader{}},
		{"update consumer offset", &remoting.UpdateConsumerOffsetRequestHeader{RPC: rpc, ConsumerGroup: "G", Topic: "T",
			QueueID: 1, CommitOffset: 2}, &remoting.UpdateConsumerOffsetRequestHeader{}},
		{"max offset", remoting.GetMaxOffsetRequestHeader(rpc, "T", 1, false), &remoting.QueueOffsetRequestHeader{}},
		{"search offset", &remoting.SearchOffsetRequestHeader{RPC: rpc, Topic: "T", QueueID: 1, Timestamp: 2,
			BoundaryType: remoting.BoundaryUpper}, &remoting.SearchOffsetRequestHeader{}},
		{"consumer group", &remoting.ConsumerGroupRequestHeader{RPC: rpc, ConsumerGroup: "G"}, &remoting.ConsumerGroupRequestHeader{}},
		{"running info", &remoting.GetConsumerRunningInfoRequestHeader{RPC: rpc, ConsumerGroup: "G", ClientID: "c", JstackEnable: true},
			&remoting.GetConsumerRunningInfoRequestHeader{}},
		{"consume message directly", &remoting.ConsumeMessageDirectlyRequestHeader{RPC: rpc, ConsumerGroup: "G", ClientID: "c",
			MsgID: "C0A8000A00002A9F0000000000001234", BrokerName: "broker-a", Topic: "T", TopicSysFlag: remoting.Int32(0),
			GroupSysFlag: remoting.Int32(1)}, &remoting.ConsumeMessageDirectlyRequestHeader{}},
		{"unregister", &remoting.UnregisterClientRequestHeader{RPC: rpc, ClientID: "c", ProducerGroup: "P", ConsumerGroup: "G"},
			&remoting.UnregisterClientRequestHeader{}},
		{"rpc only", &remoting.RPCHeader{RPC: rpc}, &remoting.RPCHeader{}},
		{"view message", &remoting.ViewMessageRequestHeader{Topic: "T", Offset: 1}, &remoting.ViewMessageRequestHeader{}},
		{"query message by id", &remoting.QueryMessageRequestHeader{Topic: "T", Key: "01AB", MaxNum: 32, EndTimestamp: 1 << 62, UniqueKey: true},
			&remoting.QueryMessageRequestHeader{}},
		{"route", &remoting.GetRouteInfoRequestHeader{RPC: rpc, Topic: "T", AcceptStandardJSONOnly: true},
			&remoting.GetRouteInfoRequestHeader{}},
		{"create topic", &remoting.CreateTopicRequestHeader{RPC: rpc, Topic: "T", DefaultTopic: "TBW102", ReadQueueNums: 8,
			WriteQueueNums: 8, Perm: remoting.PermRead | remoting.PermWrite, TopicFilterType: "SINGLE_TAG", TopicSysFlag: 1,
			Order: true, Attributes: "+message.type=FIFO", Force: true}, &remoting.CreateTopicRequestHeader{}},
		{"topic", &remoting.TopicRequestHeader{RPC: rpc, Topic: "T", ClusterName: "C"}, &remoting.TopicRequestHeader{}},
		{"delete group", &remoting.DeleteSubscriptionGroupRequestHeader{RPC: rpc, GroupName: "G", CleanOffset: true},
			&remoting.DeleteSubscriptionGroupRequestHeader{}},
		{"get group", &remoting.GetSubscriptionGroupConfigRequestHeader{RPC: rpc, Group: "G"},
			&remoting.GetSubscriptionGroupConfigRequestHeader{}},
		{"consume stats", &remoting.GetConsumeStatsRequestHeader{RPC: rpc, ConsumerGroup: "G", Topic: "T"},
			&remoting.GetConsumeStatsRequestHeader{}},
		{"reset offset", &remoting.ResetOffsetRequestHeader{RPC: rpc, Topic: "T", Group: "G", QueueID: 3, Offset: remoting.Int64(7),
			Timestamp: 1700000000000, Force: true}, &remoting.ResetOffsetRequestHeader{}},
		{"reset offset by time", &remoting.ResetOffsetRequestHeader{RPC: rpc, Topic: "T", Group: "G", QueueID: -1, Timestamp: -1},
			&remoting.ResetOffsetRequestHeader{}},
		{"kv config", &remoting.KVConfigRequestHeader{Namespace: "rmqproxy.topic.description.C", Key: "T", Value: "orders, \"EU\"\nline 2"},
			&remoting.KVConfigRequestHeader{}},
		{"kv config response", &remoting.KVConfigResponseHeader{Value: "v"}, &remoting.KVConfigResponseHeader{}},
		{"kv namespace", &remoting.KVNamespaceRequestHeader{Namespace: "N"}, &remoting.KVNamespaceRequestHeader{}},
	}
}

func TestHeadersRoundTrip(t *testing.T) {
	for _, tt := range headerSamples() {
		t.Run(tt.name, func(t *testing.T) {
			f := remoting.EncodeHeader(tt.full)
			// Through a real frame, both header encodings.
			for _, st := range []remoting.SerializeType{remoting.JSON, remoting.RocketMQ} {
				b, err := remoting.AppendCommand(nil, &remoting.Command{Code: 1, Fields: f, Serialize: st})
				if err != nil {
					t.Fatal(err)
				}
				cmd, _, err := remoting.Decode(b, 0)
				if err != nil {
					t.Fatal(err)
				}
				got := reflect.New(reflect.TypeOf(tt.new).Elem()).Interface().(remoting.Header)
				if err := got.DecodeFields(cmd.Fields); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.full) {
					t.Fatalf("%v:\n got %+v\nwant %+v", st, got, tt.full)
				}
			}
		})
	}
}

func TestSendHeaderV2(t *testing.T) {
	h := remoting.SendMessageRequestHeader{RPC: remoting.RPC{BrokerName: "broker-a"}, ProducerGroup: "PG", Topic: "T",
		DefaultTopic: "TBW102", DefaultTopicQueueNums: 4, QueueID: 1, SysFlag: 0, BornTimestamp: 5, Flag: 0, Batch: true}
	f := h.AppendFieldsV2(nil)
	want := remoting.Fields{{"a", "PG"}, {"b", "T"}, {"c", "TBW102"}, {"d", "4"}, {"e", "1"}, {"f", "0"}, {"g", "5"},
		{"h", "0"}, {"j", "0"}, {"k", "false"}, {"m", "true"}, {"n", "broker-a"}}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("V2 keys %v", f)
	}
	for _, code := range []remoting.RequestCode{remoting.RequestSendMessageV2, remoting.RequestSendBatchMessage} {
		got, err := remoting.DecodeSendMessageRequestHeader(int32(code), f)
		if err != nil || !reflect.DeepEqual(got, h) {
			t.Fatalf("%v: %+v %v", code, got, err)
		}
	}
	if _, err := remoting.DecodeSendMessageRequestHeader(int32(remoting.RequestSendMessage), f); err == nil {
		t.Fatal("SEND_MESSAGE decoded V2 keys")
	}
}

func TestHeaderDecodeErrors(t *testing.T) {
	var de *remoting.DecodeError
	var pull remoting.PullMessageResponseHeader
	if err := pull.DecodeFields(remoting.Fields{{"suggestWhichBrokerId", "0"}, {"nextBeginOffset", "1"}, {"minOffset", "0"}}); !errors.As(err, &de) {
		t.Fatalf("missing maxOffset: %v", err)
	}
	var send remoting.SendMessageResponseHeader
	if err := send.DecodeFields(remoting.Fields{{"msgId", "x"}, {"queueId", "1x"}, {"queueOffset", "1"}}); !errors.As(err, &de) {
		t.Fatalf("bad queueId: %v", err)
	}
	var off remoting.OffsetResponseHeader
	if err := off.DecodeFields(remoting.Fields{{"offset", "99999999999999999999"}}); err == nil {
		t.Fatal("overflow accepted")
	}
	// Booleans as Java parses them; a missing "committed" is true.
	var q remoting.QueueOffsetRequestHeader
	if err := q.DecodeFields(remoting.Fields{{"topic", "T"}, {"queueId", "0"}}); err != nil || !q.Committed {
		t.Fatalf("committed default: %v %v", q.Committed, err)
	}
	var s remoting.SearchOffsetRequestHeader
	if err := s.DecodeFields(remoting.Fields{{"topic", "T"}, {"queueId", "0"}, {"timestamp", "1"}, {"boundaryType", "upper"}}); err != nil || s.BoundaryType != remoting.BoundaryUpper {
		t.Fatalf("boundary: %v %v", s.BoundaryType, err)
	}
}

// TestNewHeaderRequest: a request built with NewHeaderRequest is the one
// NewRequest builds from EncodeHeader's fields, in one allocation.
func TestNewHeaderRequest(t *testing.T) {
	h := &remoting.AckMessageRequestHeader{RPC: remoting.RPC{BrokerName: "b"}, ConsumerGroup: "G", Topic: "T", QueueID: 3,
		ExtraInfo: "1 2 3 4 0 b 3 5", Offset: 123456}
	got := remoting.NewHeaderRequest(remoting.RequestAckMessage, h, []byte("x"))
	if want := remoting.NewRequest(remoting.RequestAckMessage, remoting.EncodeHeader(h), []byte("x")); !reflect.DeepEqual(got, want) {
		t.Fatalf("NewHeaderRequest = %+v, want %+v", got, want)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = remoting.NewHeaderRequest(remoting.RequestAckMessage, h, nil) }); allocs > 2 {
		t.Errorf("NewHeaderRequest allocates %.0f objects, want 2 (the request, the offset's text)", allocs)
	}
}

// TestResetOffsetHeaderFields pins the ext-field names of
// INVOKE_BROKER_TO_RESET_OFFSET to upstream's ResetOffsetRequestHeader
// (fields topic, group, queueId, offset, timestamp, isForce); a broker
// reads a missing queueId as -1 and a missing offset as null.
func TestResetOffsetHeaderFields(t *testing.T) {
	f := remoting.EncodeHeader(&remoting.ResetOffsetRequestHeader{Topic: "T", Group: "G", QueueID: 2, Offset: remoting.Int64(5), Timestamp: 1700000000000, Force: true})
	want := remoting.Fields{{Key: "topic", Value: "T"}, {Key: "group", Value: "G"}, {Key: "queueId", Value: "2"}, {Key: "offset", Value: "5"},
		{Key: "timestamp", Value: "1700000000000"}, {Key: "isForce", Value: "true"}}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("fields %v, want %v", f, want)
	}
	var h remoting.ResetOffsetRequestHeader
	if err := h.DecodeFields(remoting.Fields{{Key: "topic", Value: "T"}, {Key: "group", Value: "G"}, {Key: "timestamp", Value: "-1"}, {Key: "isForce", Value: "false"}}); err != nil {
		t.Fatal(err)
	}
	if h.QueueID != -1 || h.Offset != nil || h.Timestamp != -1 {
		t.Fatalf("decoded %+v", h)
	}
	if err := h.DecodeFields(remoting.Fields{{Key: "topic", Value: "T"}, {Key: "group", Value: "G"}}); err == nil {
		t.Fatal("a header without a timestamp decoded")
	}
}
