package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBrokersForgetDepartedClients: once the consumers of a group and the
// producers of a topic have left, one saying goodbye and one vanishing
// (its Telemetry stream cancelled, never heard from again), the broker no
// longer lists the proxy as a consumer of the group or a producer of the
// topic's producer group.
func TestBrokersForgetDepartedClients(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	cfg.Messaging.Clients.ExpiryTimeout = 10 * time.Second
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "departed"), testenv.Name(t, "g-departed")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	bc := newBrokerClient(t, broker.Addr)

	join := func(ct v2.ClientType) (*testenv.RawClient, context.CancelFunc) {
		c := testenv.NewRawClient(t, p)
		ctx, cancel := context.WithCancel(c.Ctx(t))
		stream, err := c.Telemetry(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ct == v2.ClientType_PRODUCER {
			testenv.SendProducerSettings(t, stream, topic)
		} else {
			testenv.SendSettings(t, stream, ct, group, topic)
		}
		return c, cancel
	}
	byeC, _ := join(v2.ClientType_SIMPLE_CONSUMER)
	_, vanishC := join(v2.ClientType_PUSH_CONSUMER)
	byeP, _ := join(v2.ClientType_PRODUCER)
	_, vanishP := join(v2.ClientType_PRODUCER)

	consumers := func() (int, error) {
		resp, err := bc.call(t.Context(), remoting.RequestGetConsumerListByGroup, &remoting.ConsumerGroupRequestHeader{ConsumerGroup: group})
		if err != nil {
			return 0, err
		}
		if resp.Code != int32(remoting.ResponseSuccess) {
			return 0, nil // "no consumer for this group"
		}
		var l remoting.ConsumerListBody
		if err := remoting.DecodeJSONBody(resp.Body, &l); err != nil {
			return 0, err
		}
		return len(l.ConsumerIDList), nil
	}
	// producers reports whether the broker lists a producer of the
	// topic's producer group (the proxy names a topic's group after it).
	producers := func() (bool, error) {
		resp, err := bc.call(t.Context(), remoting.RequestGetProducerConnectionList, producerGroupHeader(topic))
		if err != nil {
			return false, err
		}
		// A group the broker does not know: "the producer group[...] not exist".
		return resp.Code == int32(remoting.ResponseSuccess) && strings.Contains(string(resp.Body), `"clientId"`), nil
	}
	testenv.WaitFor(t, time.Minute, func() error {
		n, err := consumers()
		if err == nil && n == 0 {
			err = fmt.Errorf("the broker lists no consumer of %s yet", group)
		}
		if ok, perr := producers(); err == nil && (perr != nil || !ok) {
			err = fmt.Errorf("the broker lists no producer of %s yet (%v)", topic, perr)
		}
		return err
	})

	for _, c := range []*testenv.RawClient{byeC, byeP} {
		req := &v2.NotifyClientTerminationRequest{}
		if c == byeC {
			req.Group = &v2.Resource{Name: group}
		}
		if r, err := c.NotifyClientTermination(c.Ctx(t), req); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("goodbye: %v %v", r, err)
		}
	}
	vanishC()
	vanishP()
	testenv.WaitFor(t, 2*time.Minute, func() error {
		n, err := consumers()
		if err == nil && n != 0 {
			err = fmt.Errorf("the broker still lists %d consumers of %s", n, group)
		}
		if ok, perr := producers(); err == nil && (perr != nil || ok) {
			err = fmt.Errorf("the broker still lists a producer of %s (%v)", topic, perr)
		}
		return err
	})
}
