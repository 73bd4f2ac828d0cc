package cluster_test

import (
	"net/netip"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/rocketmqenv"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBrokerOnIPv6 puts rmqproxy in front of a NameServer and a broker of
// the test's own on the IPv6 loopback (brokerIP1=::1): the broker
// registers as "::1:port", which the proxy could not dial ("too many
// colons in address"), so that nothing could be sent or received. Sends,
// receives and acks work, and the messages carry the broker's IPv6 store
// host.
func TestBrokerOnIPv6(t *testing.T) {
	t.Parallel()             // see TestMain
	testenv.ClusterConfig(t) // skips (or fails) the test as the cluster pass does when RocketMQ is missing
	c := rocketmqenv.StartNameServerIPv6(t)
	b := c.AddBroker(t, rocketmqenv.Options{BrokerName: "broker-v6", ClusterName: "cluster-v6"})
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.NameServers = []string{c.NameServer}
	cfg.Cluster.ClusterName = "cluster-v6"
	cfg.Cluster.RequestTimeout = 20 * time.Second // its own broker, just started, on a loaded machine
	p := testenv.Start(t, cfg)
	const topic, group = "v6-orders", "g-v6-orders"
	raw := p.Subscriber(t, topic, group, 2)
	raw.SendN(t, topic, 4)
	got := raw.ReceiveN(t, group, topic, 4, time.Minute, 60*time.Second)
	for _, m := range got {
		sh, err := netip.ParseAddrPort(m.GetSystemProperties().GetStoreHost())
		if err != nil || sh.Addr() != netip.IPv6Loopback() {
			t.Errorf("store host %q, want the broker's [::1]:port (broker %s)", m.GetSystemProperties().GetStoreHost(), b.Addr)
		}
	}
	if ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got)); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack: %v %v", ack, err)
	}
}
