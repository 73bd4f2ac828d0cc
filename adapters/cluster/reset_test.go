package cluster

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestResetOffsetAsksTheBroker: a reset sends INVOKE_BROKER_TO_RESET_OFFSET
// with upstream's header to the master holding the topic, reads the old
// offsets from GET_CONSUME_STATS and the new ones from the broker's answer
// (fastjson object keys); a queue the route lacks, a group the brokers do
// not have and an answer that does not decode are refused precisely, and
// only a valid request reaches the broker.
func TestResetOffsetAsksTheBroker(t *testing.T) {
	var mu sync.Mutex
	var resets []remoting.Fields
	body := `{"offsetTable":{{"brokerName":"b1","queueId":1,"topic":"orders"}:0,{"brokerName":"b1","queueId":0,"topic":"orders"}:3}}`
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: map[string]remoting.SubscriptionGroupConfig{
				"g": remoting.NewSubscriptionGroupConfig("g")}})
		case remoting.RequestGetRouteinfoByTopic:
			if req.Fields.Value("topic") != "orders" {
				return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic route info")
			}
			resp.Body = oneBrokerRoute(addr, 2, remoting.PermRead|remoting.PermWrite)
		case remoting.RequestGetTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "orders", ReadQueueNums: 2, WriteQueueNums: 2, Perm: 6})
		case remoting.RequestGetConsumeStats:
			resp.Body = []byte(`{"consumeTps":0.0,"offsetTable":{{"brokerName":"b1","queueId":0,"topic":"orders"}:{"brokerOffset":9,"consumerOffset":7,"lastTimestamp":0,"pullOffset":7}}}`)
		case remoting.RequestInvokeBrokerToResetOffset:
			mu.Lock()
			resets = append(resets, req.Fields)
			mu.Unlock()
			if req.Fields.Value("timestamp") == "-1" {
				resp.Body = []byte(`{"offsetTable":{{not json`)
			} else {
				resp.Body = []byte(body)
			}
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	ctx := t.Context()
	at := time.UnixMilli(1_700_000_000_000)
	got, err := b.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g", Topic: "orders", QueueID: -1, Policy: ports.OffsetTimestamp, At: at})
	want := []ports.OffsetReset{{Broker: "b1", QueueID: 0, OldOffset: 7, NewOffset: 3}, {Broker: "b1", QueueID: 1, OldOffset: 0, NewOffset: 0}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("reset: %+v %v, want %+v", got, err, want)
	}
	mu.Lock()
	sent := resets[0]
	mu.Unlock()
	for k, v := range map[string]string{"topic": "orders", "group": "g", "queueId": "-1", "timestamp": "1700000000000", "isForce": "true", "bname": "b1"} {
		if sent.Value(k) != v {
			t.Errorf("header %s = %q, want %q (%v)", k, sent.Value(k), v, sent)
		}
	}
	got, err = b.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g", Topic: "orders", QueueID: 1, Policy: ports.OffsetBeginning})
	if err != nil || !slices.Equal(got, want[1:]) {
		t.Fatalf("reset of queue 1: %+v %v", got, err)
	}
	mu.Lock()
	if q, ts := resets[1].Value("queueId"), resets[1].Value("timestamp"); q != "1" || ts != "0" {
		t.Errorf("reset of queue 1 to the beginning sent queueId %q timestamp %q", q, ts)
	}
	mu.Unlock()

	_, err = b.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g", Topic: "orders", QueueID: 2, Policy: ports.OffsetEnd})
	if domain.ReasonOf(err) != domain.ReasonBadRequest || !strings.Contains(domain.MessageOf(err), "b1 2") {
		t.Errorf("a queue the topic lacks: %v", err)
	}
	_, err = b.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "nope", Topic: "orders", QueueID: -1, Policy: ports.OffsetEnd})
	if domain.ReasonOf(err) != domain.ReasonConsumerGroupNotFound {
		t.Errorf("an unknown group: %v", err)
	}
	_, err = b.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g", Topic: "elsewhere", QueueID: -1, Policy: ports.OffsetEnd})
	if domain.ReasonOf(err) != domain.ReasonTopicNotFound {
		t.Errorf("an unknown topic: %v", err)
	}
	mu.Lock()
	n := len(resets)
	mu.Unlock()
	if n != 2 {
		t.Errorf("%d resets reached the broker, want 2", n)
	}
	_, err = b.ResetOffset(ctx, ports.ResetOffsetRequest{Group: "g", Topic: "orders", QueueID: -1, Policy: ports.OffsetEnd})
	if domain.ReasonOf(err) != domain.ReasonBrokerError || !strings.Contains(err.Error(), "b1") {
		t.Errorf("an answer that does not decode: %v", err)
	}
}
