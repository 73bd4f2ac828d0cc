package cluster

import (
	"sync"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestAdminLeavesTheBrokersOwnTopicsAndGroups: list and describe do not
// show a consumer group's retry topic, the topics named after a broker or
// the cluster, or RocketMQ's own groups, so create, update and delete
// refuse them too: deleting a retry topic lost the messages waiting in it
// for redelivery (while describe said it did not exist), and a topic
// created with such a name was never listed. No change reaches a broker.
func TestAdminLeavesTheBrokersOwnTopicsAndGroups(t *testing.T) {
	var mu sync.Mutex
	changes := 0
	var addr string
	addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetBrokerClusterInfo:
			resp.Body = oneBrokerCluster(addr)
		case remoting.RequestGetAllTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{
				"%RETRY%g1": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}, "b1": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 7},
				"DefaultCluster": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 7}}})
		case remoting.RequestGetAllSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: map[string]remoting.SubscriptionGroupConfig{
				"TOOLS_CONSUMER": remoting.NewSubscriptionGroupConfig("TOOLS_CONSUMER")}})
		default:
			mu.Lock()
			changes++
			mu.Unlock()
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	for _, name := range []string{"%RETRY%g1", "%RETRY%g2", "b1", "DefaultCluster"} {
		topic := domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermReadWrite}
		if err := b.DeleteTopic(t.Context(), name); domain.ReasonOf(err) != domain.ReasonIllegalTopic {
			t.Errorf("delete %s: %v", name, err)
		}
		if _, err := b.CreateTopic(t.Context(), topic); domain.ReasonOf(err) != domain.ReasonIllegalTopic {
			t.Errorf("create %s: %v", name, err)
		}
		if _, err := b.UpdateTopic(t.Context(), topic); domain.ReasonOf(err) != domain.ReasonIllegalTopic {
			t.Errorf("update %s: %v", name, err)
		}
	}
	if err := b.DeleteGroup(t.Context(), "TOOLS_CONSUMER"); domain.ReasonOf(err) != domain.ReasonIllegalConsumerGroup {
		t.Errorf("delete TOOLS_CONSUMER: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if changes != 0 {
		t.Fatalf("%d changes reached the broker", changes)
	}
}
