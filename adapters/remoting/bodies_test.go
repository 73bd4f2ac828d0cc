package remoting_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// A route as a NameServer writes it for an old client (fastjson default
// mode: numeric map keys unquoted).
const fastjsonRoute = `{"brokerDatas":[{"brokerAddrs":{0:"127.0.0.1:10911",1:"127.0.0.1:10921"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}]}`

// The same route in standard JSON (version >= 401 or acceptStandardJsonOnly).
const standardRoute = `{"brokerDatas":[{"brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10921"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false,"zoneName":null}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":4}],"topicQueueMappingByBroker":null}`

func TestRouteBodies(t *testing.T) {
	want := remoting.TopicRouteData{
		QueueDatas: []remoting.QueueData{{BrokerName: "broker-a", ReadQueueNums: 4, WriteQueueNums: 4, Perm: 6}},
		BrokerDatas: []remoting.BrokerData{{Cluster: "DefaultCluster", BrokerName: "broker-a",
			BrokerAddrs: map[int64]string{0: "127.0.0.1:10911", 1: "127.0.0.1:10921"}}},
		FilterServerTable: map[string][]string{},
	}
	for name, body := range map[string]string{"fastjson": fastjsonRoute, "standard": standardRoute} {
		var got remoting.TopicRouteData
		if err := remoting.DecodeJSONBody([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v", name, got)
		}
	}
	// Object keys (maps keyed by MessageQueue) become their JSON text.
	norm, err := remoting.NormalizeJSON([]byte(`{"offsetTable":{{"brokerName":"b", "queueId":0,"topic":"T"}:12, true:1, x_y:[1, {2:3}]}}`))
	if err != nil || string(norm) != `{"offsetTable":{"{\"brokerName\":\"b\",\"queueId\":0,\"topic\":\"T\"}":12,"true":1,"x_y":[1,{"2":3}]}}` {
		t.Fatalf("%s %v", norm, err)
	}
	for _, bad := range []string{``, `{`, `{"a":1,}`, `{"a" 1}`, `[1 2]`, `{"a":1} x`, `"\x"`} {
		var v any
		if err := remoting.DecodeJSONBody([]byte(bad), &v); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
}

func TestBodiesRoundTrip(t *testing.T) {
	hb := remoting.HeartbeatData{ClientID: "127.0.0.1@1#2", ProducerDataSet: []remoting.ProducerData{{GroupName: "PG"}},
		ConsumerDataSet: []remoting.ConsumerData{{GroupName: "CG", ConsumeType: remoting.ConsumePop,
			MessageModel: remoting.MessageModelClustering, ConsumeFromWhere: remoting.ConsumeFromLastOffset,
			SubscriptionDataSet: []remoting.SubscriptionData{{Topic: "T", SubString: "TagA || TagB", TagsSet: []string{"TagA", "TagB"},
				CodeSet: []int32{remoting.TagHashCode("TagA"), remoting.TagHashCode("TagB")}, SubVersion: 1, ExpressionType: "TAG"}}}}}
	b, err := remoting.EncodeJSONBody(hb)
	if err != nil {
		t.Fatal(err)
	}
	var got remoting.HeartbeatData
	if err := remoting.DecodeJSONBody(b, &got); err != nil || !reflect.DeepEqual(got, hb) {
		t.Fatalf("%+v %v", got, err)
	}
	// Java's "TagA".hashCode() and a character outside the BMP.
	if remoting.TagHashCode("TagA") != 2598919 || remoting.TagHashCode("😀") != 1772899 {
		t.Fatalf("hash %d %d", remoting.TagHashCode("TagA"), remoting.TagHashCode("😀"))
	}
	var cl remoting.ConsumerListBody
	if err := remoting.DecodeJSONBody([]byte(`{"consumerIdList":["10.0.0.1@1234"]}`), &cl); err != nil || cl.ConsumerIDList[0] != "10.0.0.1@1234" {
		t.Fatal(err)
	}
	// A Java client's answer to CONSUME_MESSAGE_DIRECTLY (fastjson, keys sorted).
	var direct remoting.ConsumeMessageDirectlyResult
	if err := remoting.DecodeJSONBody([]byte(`{"autoCommit":true,"consumeResult":"CR_LATER","order":false,"remark":"r","spentTimeMills":3}`), &direct); err != nil ||
		direct != (remoting.ConsumeMessageDirectlyResult{AutoCommit: true, ConsumeResult: remoting.CMResultLater, Remark: "r", SpentTimeMills: 3}) {
		t.Fatalf("%+v %v", direct, err)
	}
	var lock remoting.LockBatchResponseBody
	if err := remoting.DecodeJSONBody([]byte(`{"lockOKMQSet":[{"brokerName":"b","queueId":1,"topic":"T"}]}`), &lock); err != nil ||
		lock.LockOKMQSet[0] != (remoting.MessageQueue{Topic: "T", BrokerName: "b", QueueID: 1}) {
		t.Fatal(err)
	}
}

// Java collections default to empty, and brokers iterate them without a
// null check: a heartbeat with "producerDataSet":null is answered with a
// NullPointerException (seen with Apache RocketMQ 5.5.0). Empty slices must
// encode as [], never null.
func TestBodiesEncodeEmptyCollections(t *testing.T) {
	tests := []struct {
		v    any
		want []string
	}{
		{remoting.HeartbeatData{ConsumerDataSet: []remoting.ConsumerData{{SubscriptionDataSet: []remoting.SubscriptionData{{}}}}},
			[]string{`"producerDataSet":[]`, `"subscriptionDataSet":[{`, `"tagsSet":[]`, `"codeSet":[]`}},
		{remoting.HeartbeatData{ProducerDataSet: []remoting.ProducerData{{}}, ConsumerDataSet: []remoting.ConsumerData{{}}},
			[]string{`"consumerDataSet":[{`, `"subscriptionDataSet":[]`}},
		{remoting.HeartbeatData{}, []string{`"producerDataSet":[]`, `"consumerDataSet":[]`}},
		{remoting.LockBatchRequestBody{}, []string{`"mqSet":[]`}},
		{remoting.TopicRouteData{}, []string{`"queueDatas":[]`, `"brokerDatas":[]`}},
		{remoting.BrokerData{}, []string{`"brokerAddrs":{}`}},
		{remoting.ConsumerRunningInfo{}, []string{`"properties":{}`, `"subscriptionSet":[]`}},
		{remoting.ConsumerListBody{}, []string{`"consumerIdList":[]`}},
	}
	for _, tt := range tests {
		b, err := remoting.EncodeJSONBody(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%T encodes as %s, want %s in it", tt.v, b, w)
			}
		}
	}
}

// consumeStatsBody is a GET_CONSUME_STATS answer as fastjson writes it: the
// offset table keyed by MessageQueue objects.
const consumeStatsBody = `{"consumeTps":0.0,"offsetTable":{{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"brokerOffset":10,"consumerOffset":7,"lastTimestamp":1700000000000,"pullOffset":10},{"brokerName":"broker-a","queueId":0,"topic":"%RETRY%G"}:{"brokerOffset":0,"consumerOffset":0,"lastTimestamp":0,"pullOffset":0}}}`

// TestResetOffsetBodyObjectKeys decodes an INVOKE_BROKER_TO_RESET_OFFSET
// answer as a 5.5.0 broker writes it (ResetOffsetBody: fastjson's object
// keys).
func TestResetOffsetBodyObjectKeys(t *testing.T) {
	const body = `{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:4,{"brokerName":"broker-a","queueId":1,"topic":"T"}:0}}`
	var rb remoting.ResetOffsetBody
	if err := remoting.DecodeJSONBody([]byte(body), &rb); err != nil {
		t.Fatal(err)
	}
	got := map[int32]int64{}
	for k, off := range rb.OffsetTable {
		mq, err := remoting.ParseMessageQueueKey(k)
		if err != nil || mq.Topic != "T" || mq.BrokerName != "broker-a" {
			t.Fatalf("key %q: %+v %v", k, mq, err)
		}
		got[mq.QueueID] = off
	}
	if len(got) != 2 || got[0] != 4 || got[1] != 0 {
		t.Fatalf("offset table %v", got)
	}
}

func TestConsumeStatsObjectKeys(t *testing.T) {
	var cs remoting.ConsumeStats
	if err := remoting.DecodeJSONBody([]byte(consumeStatsBody), &cs); err != nil {
		t.Fatal(err)
	}
	found := false
	for k, o := range cs.OffsetTable {
		mq, err := remoting.ParseMessageQueueKey(k)
		if err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		if mq == (remoting.MessageQueue{Topic: "T", BrokerName: "broker-a", QueueID: 1}) {
			found = o.BrokerOffset == 10 && o.ConsumerOffset == 7
		}
	}
	if !found || len(cs.OffsetTable) != 2 {
		t.Fatalf("offset table %+v", cs.OffsetTable)
	}
	if _, err := remoting.ParseMessageQueueKey("{not json"); err == nil {
		t.Fatal("a malformed key parsed")
	}
}

// TestKVTable decodes a GET_KVLIST_BY_NAMESPACE answer as a NameServer
// writes it.
func TestKVTable(t *testing.T) {
	var kv remoting.KVTable
	if err := remoting.DecodeJSONBody([]byte(`{"table":{"orders":"EU orders, \"priority\"","pay":"line 1\nline 2"}}`), &kv); err != nil {
		t.Fatal(err)
	}
	if len(kv.Table) != 2 || kv.Table["orders"] != `EU orders, "priority"` || kv.Table["pay"] != "line 1\nline 2" {
		t.Fatalf("table %q", kv.Table)
	}
}

// A BATCH_ACK_MESSAGE body as the Java client (MQClientAPIImpl) writes it
// for offsets 100, 103 and 109 of a checkpoint starting at 100: the BitSet
// {0, 3, 9} is the bytes 0x09 0x02, base64 "CQI=".
const batchAckBody = `{"acks":[{"b":"CQI=","c":"G","it":60000,"pt":1700000000000,"q":2,"r":"0","rq":3,"so":100,"t":"T"}],"brokerName":"broker-a"}`

func TestBatchAckBody(t *testing.T) {
	a := remoting.BatchAck{ConsumerGroup: "G", Topic: "T", Retry: remoting.RetryFlagNormal, StartOffset: 100, QueueID: 2,
		ReviveQueueID: 3, PopTime: 1700000000000, InvisibleTime: 60000}
	for _, off := range []int64{109, 100, 103, 103} {
		if !a.Ack(off) {
			t.Fatalf("offset %d refused", off)
		}
	}
	for _, off := range []int64{99, 100 + 8<<20} {
		if a.Ack(off) {
			t.Fatalf("offset %d accepted", off)
		}
	}
	enc, err := remoting.EncodeJSONBody(remoting.BatchAckMessageRequestBody{BrokerName: "broker-a", Acks: []remoting.BatchAck{a}})
	if err != nil {
		t.Fatal(err)
	}
	norm, err := remoting.NormalizeJSON(enc)
	if err != nil {
		t.Fatal(err)
	}
	// Key order aside, the bytes are the Java client's.
	var got, want any
	if err := json.Unmarshal(norm, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(batchAckBody), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("encoded %s\nwant    %s", enc, batchAckBody)
	}
	var back remoting.BatchAckMessageRequestBody
	if err := remoting.DecodeJSONBody([]byte(batchAckBody), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Acks) != 1 || !reflect.DeepEqual(back.Acks[0].AckedOffsets(), []int64{100, 103, 109}) || back.Acks[0].ReviveQueueID != 3 {
		t.Fatalf("decoded %+v", back)
	}
	empty, _ := remoting.EncodeJSONBody(remoting.BatchAckMessageRequestBody{BrokerName: "b"})
	if !strings.Contains(string(empty), `"acks":[]`) {
		t.Fatalf("empty body %s", empty)
	}
}
