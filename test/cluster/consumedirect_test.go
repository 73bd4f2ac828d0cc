package cluster_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestConsumeMessageDirectlyThroughTheBroker sends the broker, as mqadmin
// queryMsgById -g GROUP -d CLIENT does, a CONSUME_MESSAGE_DIRECTLY for a
// message sent through rmqproxy: the broker reads the message by its
// offset id and relays the request to the client it names, the proxy,
// which asks the group's consumer (the official Go client) over its
// Telemetry stream to consume it. The Go client answers every
// VerifyMessageCommand NOT_IMPLEMENTED, and the broker hands back the
// proxy's answer saying so; a message of a topic the group's consumer does
// not subscribe to is refused saying that. The CR_SUCCESS and CR_LATER
// answers of a consumer that does consume (the Java push consumer) are in
// test/interop's verify scenario, cluster target.
func TestConsumeMessageDirectlyThroughTheBroker(t *testing.T) {
	cfg, broker := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	const group = "g-direct"
	p.CreateTopic(t, "direct", domain.MessageTypeNormal, 2)
	p.CreateTopic(t, "direct-other", domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	testenv.NewSimpleConsumer(t, p, group, 2*time.Second, map[string]*rmq.FilterExpression{"direct": rmq.SUB_ALL})
	producer := testenv.NewProducer(t, p, "direct", "direct-other")
	sent := map[string]string{} // topic → message id
	for _, topic := range []string{"direct", "direct-other"} {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		r, err := producer.Send(ctx, &rmq.Message{Topic: topic, Body: []byte("consume me directly")})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		sent[topic] = r[0].MessageID
	}

	rc := client.New(client.Config{})
	t.Cleanup(func() { _ = rc.Close() })
	call := func(code remoting.RequestCode, h remoting.Header) *remoting.Command {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		resp, err := rc.Invoke(ctx, broker.Addr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// The offset message id the admin tool sends: it finds the message by
	// its unique id first (QUERY_MESSAGE), as queryMsgById does.
	offsetID := func(topic string) string {
		var id string
		testenv.WaitFor(t, 30*time.Second, func() error {
			resp := call(remoting.RequestQueryMessage, &remoting.QueryMessageRequestHeader{Topic: topic, Key: sent[topic], MaxNum: 32,
				EndTimestamp: math.MaxInt64, UniqueKey: true})
			if resp.Code != int32(remoting.ResponseSuccess) {
				return fmt.Errorf("query %s: %d %s", sent[topic], resp.Code, resp.Remark)
			}
			msgs, err := remoting.DecodeMessages(resp.Body)
			if err != nil {
				return err
			}
			for i := range msgs {
				if msgs[i].MsgID() == sent[topic] {
					id = msgs[i].OffsetMsgID()
					return nil
				}
			}
			return fmt.Errorf("query %s: not among %d messages", sent[topic], len(msgs))
		})
		return id
	}
	var proxyID string
	testenv.WaitFor(t, 30*time.Second, func() error {
		resp := call(remoting.RequestGetConsumerListByGroup, &remoting.ConsumerGroupRequestHeader{ConsumerGroup: group})
		var l remoting.ConsumerListBody
		if resp.Code != int32(remoting.ResponseSuccess) || remoting.DecodeJSONBody(resp.Body, &l) != nil || len(l.ConsumerIDList) != 1 {
			return fmt.Errorf("the broker lists no consumer of the group yet: %d %s", resp.Code, resp.Remark)
		}
		proxyID = l.ConsumerIDList[0]
		return nil
	})

	tests := []struct {
		name, topic, clientID string
		code                  remoting.ResponseCode
		remark                []string
	}{
		// The broker relays to the proxy, the proxy to the Go consumer,
		// which does not implement it.
		{"go consumer", "direct", proxyID, remoting.ResponseRequestCodeNotSupported, []string{
			"of group " + group + " connected to this proxy answered NOT_IMPLEMENTED",
			"only the official Java push consumer consumes a message on request"}},
		{"topic not subscribed", "direct-other", proxyID, remoting.ResponseSystemError, []string{
			"no consumer of group " + group + " connected to this proxy subscribes to topic direct-other (they subscribe to direct)"}},
		// The broker itself refuses a client it does not know.
		{"unknown client", "direct", "10.0.0.1@nobody", remoting.ResponseSystemError, []string{"not online"}},
	}
	for _, tt := range tests {
		msgID := offsetID(tt.topic)
		resp := call(remoting.RequestConsumeMessageDirectly, &remoting.ConsumeMessageDirectlyRequestHeader{
			ConsumerGroup: group, ClientID: tt.clientID, MsgID: msgID, Topic: tt.topic})
		t.Logf("%s: code %d remark %q", tt.name, resp.Code, resp.Remark)
		if resp.Code != int32(tt.code) {
			t.Errorf("%s: code %d %q, want %d", tt.name, resp.Code, resp.Remark, tt.code)
			continue
		}
		for _, want := range tt.remark {
			if !strings.Contains(resp.Remark, want) {
				t.Errorf("%s: remark %q, want %q in it", tt.name, resp.Remark, want)
			}
		}
	}
}
