package rocketmqenv_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// rmq wraps a client and the cluster for the steps below.
type rmq struct {
	t  *testing.T
	c  *client.Client
	cl *rocketmqenv.Cluster
}

func (r *rmq) call(addr string, code remoting.RequestCode, h remoting.Header, body []byte, ok ...remoting.ResponseCode) *remoting.Command {
	r.t.Helper()
	resp, err := r.try(addr, code, h, body, remoting.JSON, ok...)
	if err != nil {
		r.t.Fatalf("%v: %v", code, err)
	}
	return resp
}

func (r *rmq) try(addr string, code remoting.RequestCode, h remoting.Header, body []byte, st remoting.SerializeType, ok ...remoting.ResponseCode) (*remoting.Command, error) {
	ctx, cancel := context.WithTimeout(r.t.Context(), 30*time.Second)
	defer cancel()
	var f remoting.Fields
	if h != nil {
		f = remoting.EncodeHeader(h)
	}
	req := remoting.NewRequest(code, f, body)
	req.Serialize = st
	resp, err := r.c.Invoke(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	return resp, remoting.Expect(resp, ok...)
}

func decode[H any, P interface {
	*H
	remoting.Header
}](t *testing.T, resp *remoting.Command) *H {
	t.Helper()
	var h H
	if err := P(&h).DecodeFields(resp.Fields); err != nil {
		t.Fatalf("%v in %+v", err, resp.Fields)
	}
	return &h
}

// TestClientAgainstRealRocketMQ drives a real Apache RocketMQ NameServer and
// Broker (the pinned release) with the Remoting client and codec: create a
// topic, read its route in both JSON dialects, heartbeat, send single and
// batch, pull, pop, change invisible time, ack, and offsets.
func TestClientAgainstRealRocketMQ(t *testing.T) {
	cl := rocketmqenv.Start(t, rocketmqenv.Options{Extra: []string{"realTimeNotifyConsumerChange=true"}})
	c := client.New(client.Config{})
	defer c.Close()
	r := &rmq{t: t, c: c, cl: cl}
	const topic, fifoTopic = "RemotingTopic", "RemotingFifo"
	const producer, pullGroup, popGroup = "PG-remoting", "CG-pull", "CG-pop"
	rpc := remoting.RPC{BrokerName: cl.BrokerName}

	// Topics with their message type, as the admin CLI will create them.
	for _, tc := range []struct {
		name, typ string
		order     bool
	}{{topic, remoting.MessageTypeNormal, false}, {fifoTopic, remoting.MessageTypeFIFO, true}} {
		r.call(cl.Broker, remoting.RequestUpdateAndCreateTopic, &remoting.CreateTopicRequestHeader{
			Topic: tc.name, DefaultTopic: "TBW102", ReadQueueNums: 4, WriteQueueNums: 4,
			Perm: remoting.PermRead | remoting.PermWrite, TopicFilterType: "SINGLE_TAG", Order: tc.order,
			Attributes: remoting.FormatAttributes(map[string]string{remoting.TopicAttributeMessageType: tc.typ})}, nil)
		resp := r.call(cl.Broker, remoting.RequestGetTopicConfig, &remoting.TopicRequestHeader{Topic: tc.name}, nil)
		var cfg remoting.TopicConfig
		if err := remoting.DecodeJSONBody(resp.Body, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.TopicName != tc.name || cfg.Attributes[remoting.TopicAttributeMessageType] != tc.typ || cfg.Order != tc.order || cfg.WriteQueueNums != 4 {
			t.Fatalf("topic config %+v (body %s)", cfg, resp.Body)
		}
	}

	// The route, in standard JSON and in fastjson's default dialect (an old
	// client's version without acceptStandardJsonOnly: unquoted broker ids).
	for _, std := range []bool{true, false} {
		var route remoting.TopicRouteData
		waitfor.Condition(t, 30*time.Second, 100*time.Millisecond, func() error {
			req := remoting.NewRequest(remoting.RequestGetRouteinfoByTopic,
				remoting.EncodeHeader(&remoting.GetRouteInfoRequestHeader{Topic: topic, AcceptStandardJSONOnly: std}), nil)
			if !std {
				req.Version = 317 // V4_5_2, what rocketmq-client-go v2 sends
			}
			resp, err := c.Invoke(t.Context(), cl.NameServer, req)
			if err != nil {
				return err
			}
			if err := remoting.Expect(resp); err != nil {
				return err
			}
			if !std && !strings.Contains(string(resp.Body), `{0:"`) {
				t.Fatalf("expected fastjson's unquoted keys, got %s", resp.Body)
			}
			return remoting.DecodeJSONBody(resp.Body, &route)
		})
		if len(route.QueueDatas) != 1 || route.QueueDatas[0].WriteQueueNums != 4 || route.QueueDatas[0].Perm != 6 ||
			len(route.BrokerDatas) != 1 || route.BrokerDatas[0].BrokerAddrs[remoting.MasterID] != cl.Broker {
			t.Fatalf("route (standard %v): %+v", std, route)
		}
	}
	if _, err := r.try(cl.NameServer, remoting.RequestGetRouteinfoByTopic, &remoting.GetRouteInfoRequestHeader{Topic: "NoSuchTopic"}, nil, remoting.JSON); !isCode(err, remoting.ResponseTopicNotExist) {
		t.Fatalf("unknown topic: %v", err)
	}

	// Heartbeat for a producer and both consumer groups.
	clientID := "127.0.0.1@rmqproxy-test"
	hb := remoting.HeartbeatData{ClientID: clientID, ProducerDataSet: []remoting.ProducerData{{GroupName: producer}}}
	for _, g := range []struct{ name, typ string }{{pullGroup, remoting.ConsumeActively}, {popGroup, remoting.ConsumePop}} {
		hb.ConsumerDataSet = append(hb.ConsumerDataSet, remoting.ConsumerData{GroupName: g.name, ConsumeType: g.typ,
			MessageModel: remoting.MessageModelClustering, ConsumeFromWhere: remoting.ConsumeFromFirstOffset,
			SubscriptionDataSet: []remoting.SubscriptionData{{Topic: topic, SubString: "*", SubVersion: time.Now().UnixMilli(), ExpressionType: remoting.ExpressionTag}}})
	}
	body, _ := remoting.EncodeJSONBody(hb)
	r.call(cl.Broker, remoting.RequestHeartBeat, &remoting.RPCHeader{}, body)
	resp := r.call(cl.Broker, remoting.RequestGetConsumerListByGroup, &remoting.ConsumerGroupRequestHeader{ConsumerGroup: popGroup}, nil)
	var ids remoting.ConsumerListBody
	if err := remoting.DecodeJSONBody(resp.Body, &ids); err != nil || len(ids.ConsumerIDList) != 1 || ids.ConsumerIDList[0] != clientID {
		t.Fatalf("consumer list %s: %v", resp.Body, err)
	}

	// One single send (V2 header) and a batch of three, all to queue 0.
	uniq := func(i int) string { return fmt.Sprintf("AC110001000118B4AAC20000000000%02X", i) }
	props, _ := remoting.FormatProperties(remoting.Properties{{Key: remoting.PropertyUniqKey, Value: uniq(0)},
		{Key: remoting.PropertyTags, Value: "TagA"}, {Key: remoting.PropertyKeys, Value: "k0"}, {Key: remoting.PropertyWaitStoreMsgOK, Value: "true"}})
	send := remoting.SendMessageRequestHeader{RPC: rpc, ProducerGroup: producer, Topic: topic, DefaultTopic: "TBW102",
		DefaultTopicQueueNums: 4, QueueID: 0, BornTimestamp: time.Now().UnixMilli(), Properties: props}
	req := remoting.NewRequest(remoting.RequestSendMessageV2, send.AppendFieldsV2(nil), []byte("body-0"))
	resp, err := c.Invoke(t.Context(), cl.Broker, req)
	if err != nil || remoting.Expect(resp) != nil {
		t.Fatalf("send: %v %+v", err, resp)
	}
	sent := decode[remoting.SendMessageResponseHeader](t, resp)
	store, commitLogOffset, err := remoting.ParseOffsetMsgID(sent.MsgID)
	if err != nil || store != netip.MustParseAddrPort(cl.Broker) || sent.QueueID != 0 || sent.QueueOffset != 0 {
		t.Fatalf("send response %+v (%v, %v)", sent, store, err)
	}
	var batch []remoting.BatchMessage
	for i := 1; i <= 3; i++ {
		batch = append(batch, remoting.BatchMessage{Body: []byte("body-" + strconv.Itoa(i)),
			Properties: remoting.Properties{{Key: remoting.PropertyUniqKey, Value: uniq(i)}, {Key: remoting.PropertyTags, Value: "TagB"}, {Key: remoting.PropertyWaitStoreMsgOK, Value: "true"}}})
	}
	bb, err := remoting.EncodeBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	bsend := send
	bsend.Batch, bsend.Properties = true, ""
	resp, err = c.Invoke(t.Context(), cl.Broker, remoting.NewRequest(remoting.RequestSendBatchMessage, bsend.AppendFieldsV2(nil), bb))
	if err != nil || remoting.Expect(resp) != nil {
		t.Fatalf("batch send: %v %+v", err, resp)
	}
	bsent := decode[remoting.SendMessageResponseHeader](t, resp)
	if n := len(strings.Split(bsent.MsgID, ",")); n != 3 || bsent.QueueOffset != 1 {
		t.Fatalf("batch response %+v", bsent)
	}

	// Queue bounds, once with a ROCKETMQ binary header. The broker builds
	// its consume queue after it answers a send (its reput service), so
	// the bound can lag behind for a moment on a loaded machine.
	waitfor.Condition(t, 30*time.Second, 100*time.Millisecond, func() error {
		resp, err := r.try(cl.Broker, remoting.RequestGetMaxOffset, remoting.GetMaxOffsetRequestHeader(rpc, topic, 0, true), nil, remoting.RocketMQ)
		if err != nil {
			return err
		}
		if off := decode[remoting.OffsetResponseHeader](t, resp).Offset; off != 4 {
			return fmt.Errorf("max offset %d, want 4", off)
		}
		return nil
	})
	resp = r.call(cl.Broker, remoting.RequestGetMinOffset, remoting.GetMinOffsetRequestHeader(rpc, topic, 0), nil)
	if decode[remoting.OffsetResponseHeader](t, resp).Offset != 0 {
		t.Fatalf("min offset %+v", resp.Fields)
	}

	// Pull everything from queue 0.
	pull := remoting.PullMessageRequestHeader{RPC: rpc, ConsumerGroup: pullGroup, Topic: topic, QueueID: 0, QueueOffset: 0,
		MaxMsgNums: 32, SysFlag: remoting.PullSubscription, SuspendTimeoutMillis: 1000, Subscription: "*",
		SubVersion: time.Now().UnixMilli(), ExpressionType: remoting.ExpressionTag}
	resp = r.call(cl.Broker, remoting.RequestPullMessage, &pull, nil)
	ph := decode[remoting.PullMessageResponseHeader](t, resp)
	msgs, err := remoting.DecodeMessages(resp.Body)
	if err != nil || len(msgs) != 4 || ph.NextBeginOffset != 4 || ph.MaxOffset != 4 {
		t.Fatalf("pull: %v, %d messages, header %+v", err, len(msgs), ph)
	}
	for i, m := range msgs {
		if string(m.Body) != "body-"+strconv.Itoa(i) || m.MsgID() != uniq(i) || m.QueueOffset != int64(i) || m.Topic != topic || !m.CRCValid() {
			t.Fatalf("pulled message %d: %+v", i, m)
		}
	}
	if msgs[0].OffsetMsgID() != sent.MsgID || msgs[0].CommitLogOffset != commitLogOffset || msgs[0].Properties.Value(remoting.PropertyKeys) != "k0" {
		t.Fatalf("pulled message 0 ids %s/%d, sent %s", msgs[0].OffsetMsgID(), msgs[0].CommitLogOffset, sent.MsgID)
	}
	// A pull at the end: PULL_NOT_FOUND after the (short) long poll.
	pull.QueueOffset = 4
	resp = r.call(cl.Broker, remoting.RequestPullMessage, &pull, nil, remoting.ResponsePullNotFound)
	if decode[remoting.PullMessageResponseHeader](t, resp).NextBeginOffset != 4 {
		t.Fatal("pull at end")
	}

	// Consumer offsets.
	if _, err := r.try(cl.Broker, remoting.RequestQueryConsumerOffset, &remoting.QueryConsumerOffsetRequestHeader{RPC: rpc,
		ConsumerGroup: pullGroup, Topic: topic, QueueID: 1}, nil, remoting.JSON); !isCode(err, remoting.ResponseQueryNotFound) {
		t.Fatalf("query offset before commit: %v", err)
	}
	r.call(cl.Broker, remoting.RequestUpdateConsumerOffset, &remoting.UpdateConsumerOffsetRequestHeader{RPC: rpc,
		ConsumerGroup: pullGroup, Topic: topic, QueueID: 0, CommitOffset: 3}, nil)
	resp = r.call(cl.Broker, remoting.RequestQueryConsumerOffset, &remoting.QueryConsumerOffsetRequestHeader{RPC: rpc,
		ConsumerGroup: pullGroup, Topic: topic, QueueID: 0}, nil)
	if off := decode[remoting.OffsetResponseHeader](t, resp).Offset; off != 3 {
		t.Fatalf("committed offset %d", off)
	}

	// Pop all four, change one's invisible time, ack all with the right handles.
	popped := map[string]remoting.Message{}
	waitfor.Condition(t, 60*time.Second, 100*time.Millisecond, func() error {
		pop := remoting.PopMessageRequestHeader{RPC: rpc, ConsumerGroup: popGroup, Topic: topic, QueueID: -1, MaxMsgNums: 32,
			InvisibleTime: 60000, PollTime: 1000, BornTime: time.Now().UnixMilli(), InitMode: remoting.InitModeMin,
			ExpType: remoting.ExpressionTag, Exp: "*"}
		resp, err := r.try(cl.Broker, remoting.RequestPopMessage, &pop, nil, remoting.JSON)
		if isCode(err, remoting.ResponsePollingTimeout) || isCode(err, remoting.ResponsePullNotFound) {
			return fmt.Errorf("popped %d of 4", len(popped))
		}
		if err != nil {
			return err
		}
		h := decode[remoting.PopMessageResponseHeader](t, resp)
		msgs, err := remoting.DecodeMessages(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := remoting.PopCheckpoints(topic, h, cl.BrokerName, false, msgs); err != nil {
			t.Fatalf("checkpoints: %v (header %+v)", err, h)
		}
		for _, m := range msgs {
			popped[m.MsgID()] = m
		}
		if len(popped) < 4 {
			return fmt.Errorf("popped %d of 4", len(popped))
		}
		return nil
	})
	for i := 0; i < 4; i++ {
		m, ok := popped[uniq(i)]
		if !ok {
			t.Fatalf("message %d not popped", i)
		}
		ck, err := remoting.ParseExtraInfo(m.Properties.Value(remoting.PropertyPopCK))
		if err != nil || ck.BrokerName != cl.BrokerName || ck.QueueID != 0 || ck.QueueOffset != int64(i) || ck.RetryFlag != remoting.RetryFlagNormal {
			t.Fatalf("message %d checkpoint %+v: %v", i, ck, err)
		}
		extra := ck.String()
		if i == 0 {
			civ := remoting.ChangeInvisibleTimeRequestHeader{RPC: rpc, ConsumerGroup: popGroup, Topic: ck.RealTopic(topic, popGroup),
				QueueID: ck.QueueID, ExtraInfo: extra, Offset: ck.QueueOffset, InvisibleTime: 30000}
			resp := r.call(cl.Broker, remoting.RequestChangeMessageInvisibletime, &civ, nil)
			renewed := remoting.ChangedExtraInfo(&civ, decode[remoting.ChangeInvisibleTimeResponseHeader](t, resp), cl.BrokerName)
			if renewed.InvisibleTime != 30000 || renewed.PopTime < ck.PopTime {
				t.Fatalf("renewed checkpoint %+v", renewed)
			}
			extra = renewed.String()
		}
		r.call(cl.Broker, remoting.RequestAckMessage, &remoting.AckMessageRequestHeader{RPC: rpc, ConsumerGroup: popGroup,
			Topic: ck.RealTopic(topic, popGroup), QueueID: ck.QueueID, ExtraInfo: extra, Offset: ck.QueueOffset}, nil)
	}

	// Send to the FIFO topic and pop it orderly.
	send.Topic, send.QueueID = fifoTopic, 2
	resp, err = c.Invoke(t.Context(), cl.Broker, remoting.NewRequest(remoting.RequestSendMessageV2, send.AppendFieldsV2(nil), []byte("fifo")))
	if err != nil || remoting.Expect(resp) != nil {
		t.Fatalf("fifo send: %v %+v", err, resp)
	}
	waitfor.Condition(t, 60*time.Second, 100*time.Millisecond, func() error {
		pop := remoting.PopMessageRequestHeader{RPC: rpc, ConsumerGroup: popGroup + "-fifo", Topic: fifoTopic, QueueID: -1,
			MaxMsgNums: 32, InvisibleTime: 60000, PollTime: 1000, BornTime: time.Now().UnixMilli(), InitMode: remoting.InitModeMin,
			ExpType: remoting.ExpressionTag, Exp: "*", Order: true}
		resp, err := r.try(cl.Broker, remoting.RequestPopMessage, &pop, nil, remoting.JSON)
		if err != nil {
			return err
		}
		h := decode[remoting.PopMessageResponseHeader](t, resp)
		msgs, err := remoting.DecodeMessages(resp.Body)
		if err != nil || len(msgs) != 1 {
			return fmt.Errorf("orderly pop: %v, %d messages", err, len(msgs))
		}
		if err := remoting.PopCheckpoints(fifoTopic, h, cl.BrokerName, true, msgs); err != nil {
			t.Fatal(err)
		}
		ck, err := remoting.ParseExtraInfo(msgs[0].Properties.Value(remoting.PropertyPopCK))
		if err != nil || !ck.Orderly() || ck.QueueID != 2 || string(msgs[0].Body) != "fifo" {
			t.Fatalf("orderly checkpoint %+v %v", ck, err)
		}
		return nil
	})

	adminAndNotify(t, r, fifoTopic)
}

// adminAndNotify: subscription groups, locks, topic deletion, and a
// NOTIFY_CONSUMER_IDS_CHANGED the broker sends on its own to a client's
// registered handler when a second consumer joins the group.
func adminAndNotify(t *testing.T, r *rmq, topic string) {
	cl, rpc := r.cl, remoting.RPC{BrokerName: r.cl.BrokerName}
	const group = "CG-orderly"
	g := remoting.NewSubscriptionGroupConfig(group)
	g.ConsumeMessageOrderly, g.RetryMaxTimes = true, 3
	body, _ := remoting.EncodeJSONBody(g)
	r.call(cl.Broker, remoting.RequestUpdateAndCreateSubscriptiongroup, &remoting.RPCHeader{}, body)
	resp := r.call(cl.Broker, remoting.RequestGetSubscriptiongroupConfig, &remoting.GetSubscriptionGroupConfigRequestHeader{Group: group}, nil)
	var got remoting.SubscriptionGroupConfig
	if err := remoting.DecodeJSONBody(resp.Body, &got); err != nil || !got.ConsumeMessageOrderly || got.RetryMaxTimes != 3 || got.GroupName != group {
		t.Fatalf("group config %s: %v", resp.Body, err)
	}

	// Two clients join the group; the first hears that the ids changed.
	notified := make(chan string, 4)
	first := client.New(client.Config{Handlers: map[remoting.RequestCode]client.Handler{
		remoting.RequestNotifyConsumerIdsChanged: func(ctx context.Context, addr string, req *remoting.Command) *remoting.Command {
			var h remoting.ConsumerGroupRequestHeader
			if err := h.DecodeFields(req.Fields); err == nil {
				notified <- h.ConsumerGroup
			}
			return nil
		}}})
	defer first.Close()
	second := client.New(client.Config{})
	defer second.Close()
	join := func(c *client.Client, id string) {
		hb := remoting.HeartbeatData{ClientID: id, ConsumerDataSet: []remoting.ConsumerData{{GroupName: group,
			ConsumeType: remoting.ConsumePassively, MessageModel: remoting.MessageModelClustering, ConsumeFromWhere: remoting.ConsumeFromLastOffset,
			SubscriptionDataSet: []remoting.SubscriptionData{{Topic: topic, SubString: "*", SubVersion: 1, ExpressionType: remoting.ExpressionTag}}}}}
		body, _ := remoting.EncodeJSONBody(hb)
		resp, err := c.Invoke(t.Context(), cl.Broker, remoting.NewRequest(remoting.RequestHeartBeat, nil, body))
		if err != nil || remoting.Expect(resp) != nil {
			t.Fatalf("heartbeat %s: %v %+v", id, err, resp)
		}
	}
	join(first, "127.0.0.1@first")
	join(second, "127.0.0.1@second")
	select {
	case g := <-notified:
		if g != group {
			t.Fatalf("notified for %q", g)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no NOTIFY_CONSUMER_IDS_CHANGED within 60 s")
	}

	// Lock and unlock a queue for the group.
	lock := remoting.LockBatchRequestBody{ConsumerGroup: group, ClientID: "127.0.0.1@first",
		MQSet: []remoting.MessageQueue{{Topic: topic, BrokerName: cl.BrokerName, QueueID: 1}}}
	body, _ = remoting.EncodeJSONBody(lock)
	resp = r.call(cl.Broker, remoting.RequestLockBatchMq, &remoting.RPCHeader{RPC: rpc}, body)
	var locked remoting.LockBatchResponseBody
	if err := remoting.DecodeJSONBody(resp.Body, &locked); err != nil || len(locked.LockOKMQSet) != 1 || locked.LockOKMQSet[0] != lock.MQSet[0] {
		t.Fatalf("lock %s: %v", resp.Body, err)
	}
	r.call(cl.Broker, remoting.RequestUnlockBatchMq, &remoting.RPCHeader{RPC: rpc}, body)

	// Delete the group, then the topic on the broker and in the NameServer.
	r.call(cl.Broker, remoting.RequestDeleteSubscriptiongroup, &remoting.DeleteSubscriptionGroupRequestHeader{GroupName: group, CleanOffset: true}, nil)
	r.call(cl.Broker, remoting.RequestDeleteTopicInBroker, &remoting.TopicRequestHeader{Topic: topic}, nil)
	r.call(cl.NameServer, remoting.RequestDeleteTopicInNamesrv, &remoting.TopicRequestHeader{Topic: topic, ClusterName: cl.ClusterName}, nil)
	if _, err := r.try(cl.NameServer, remoting.RequestGetRouteinfoByTopic, &remoting.GetRouteInfoRequestHeader{Topic: topic}, nil, remoting.JSON); !isCode(err, remoting.ResponseTopicNotExist) {
		t.Fatalf("route after deletion: %v", err)
	}
}

func isCode(err error, code remoting.ResponseCode) bool {
	var re *remoting.ResponseError
	return errors.As(err, &re) && re.Code == code
}
