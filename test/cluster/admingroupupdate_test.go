package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// brokerGroupConfig reads a group's configuration from a broker straight
// (GET_SUBSCRIPTIONGROUP_CONFIG), as mqadmin does.
func brokerGroupConfig(t *testing.T, b *testenv.ClusterBroker, group string) remoting.SubscriptionGroupConfig {
	t.Helper()
	rc := client.New(client.Config{})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	resp, err := rc.Invoke(ctx, b.Addr, remoting.NewRequest(remoting.RequestGetSubscriptiongroupConfig,
		remoting.EncodeHeader(&remoting.GetSubscriptionGroupConfigRequestHeader{RPC: remoting.RPC{BrokerName: b.Name}, Group: group}), nil))
	if err != nil || resp.Code != 0 {
		t.Fatalf("group %s on %s: %v %v", group, b.Name, resp, err)
	}
	var sg remoting.SubscriptionGroupConfig
	if err := remoting.DecodeJSONBody(resp.Body, &sg); err != nil {
		t.Fatal(err)
	}
	return sg
}

// putBrokerGroupConfig writes a group's settings straight to a broker, as
// `mqadmin updateSubGroup -b` does.
func putBrokerGroupConfig(t *testing.T, b *testenv.ClusterBroker, sg remoting.SubscriptionGroupConfig) {
	t.Helper()
	body, err := remoting.EncodeJSONBody(sg)
	if err != nil {
		t.Fatal(err)
	}
	rc := client.New(client.Config{})
	defer rc.Close()
	resp, err := rc.Invoke(t.Context(), b.Addr, remoting.NewRequest(remoting.RequestUpdateAndCreateSubscriptiongroup,
		remoting.EncodeHeader(&remoting.RPCHeader{RPC: remoting.RPC{BrokerName: b.Name}}), body))
	if err != nil || resp.Code != 0 {
		t.Fatalf("writing group %s on %s: %v %v", sg.GroupName, b.Name, resp, err)
	}
}

// createTopicAndGroup creates a normal topic and a group through p's
// admin, claiming their names.
func createTopicAndGroup(t *testing.T, p *testenv.Proxy, topic, group string) {
	t.Helper()
	testenv.Claim(t, "topic", topic)
	testenv.Claim(t, "group", group)
	if _, err := p.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: topic, Type: domain.MessageTypeNormal}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Admin.CreateGroup(t.Context(), application.GroupSpec{Name: group}); err != nil {
		t.Fatal(err)
	}
}

// TestGroupUpdateKeepsWhatItDoesNotChange: an operator stops a group's
// consumption on the broker (`mqadmin updateSubGroup -s false`, consumeEnable
// false) and turns off broadcast consumption; `rmqproxy group update`
// changing the description and the maximum delivery attempts must keep
// them (the command changes the given fields of a group), not write the
// broker's defaults over them: consumption resumed.
func TestGroupUpdateKeepsWhatItDoesNotChange(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, b := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	ac := p.Admin.(*admin.Client)
	group := testenv.Name(t, "g-update-keeps")
	testenv.Claim(t, "group", group)
	if _, err := ac.CreateGroup(t.Context(), application.GroupSpec{Name: group}); err != nil {
		t.Fatal(err)
	}
	sg := brokerGroupConfig(t, b, group)
	sg.ConsumeEnable, sg.ConsumeBroadcastEnable, sg.ConsumeTimeoutMinute = false, false, 7
	putBrokerGroupConfig(t, b, sg)
	desc := "paused for maintenance"
	if _, err := ac.UpdateGroup(t.Context(), application.GroupSpec{Name: group, MaxDeliveryAttempts: 5, Description: &desc}); err != nil {
		t.Fatal(err)
	}
	got := brokerGroupConfig(t, b, group)
	if got.RetryMaxTimes != 4 {
		t.Errorf("retryMaxTimes %d after update to 5 delivery attempts, want 4", got.RetryMaxTimes)
	}
	if got.ConsumeEnable || got.ConsumeBroadcastEnable || got.ConsumeTimeoutMinute != 7 {
		t.Errorf("after group update: consumeEnable %v, consumeBroadcastEnable %v, consumeTimeoutMinute %d; want false, false, 7 as the operator set them",
			got.ConsumeEnable, got.ConsumeBroadcastEnable, got.ConsumeTimeoutMinute)
	}
}
