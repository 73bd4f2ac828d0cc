package cluster_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/cluster"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// brokerAuthSettings turn on a 5.5.0 broker's authentication (RocketMQ's
// ACL 2.0, which checks the classic AclClientRPCHook signature that
// rmqproxy signs with when cluster.acl is set) with one user, which the
// broker's own clients use too.
var brokerAuthSettings = []string{
	"authenticationEnabled=true",
	"authenticationProvider=org.apache.rocketmq.auth.authentication.provider.DefaultAuthenticationProvider",
	"authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider",
	`initAuthenticationUser={"username":"rmqproxy","password":"s3cret-key"}`,
	`innerClientAuthenticationCredentials={"accessKey":"rmqproxy","secretKey":"s3cret-key"}`,
}

// TestBrokerWithAuthentication puts rmqproxy in front of a broker that
// authenticates every request. With cluster.acl set to the broker's user,
// admin commands, sends, receives and acks (one by one, several in one
// request, and concurrent) work through it; with a wrong secret key the
// broker refuses rmqproxy, and the client gets an error that says so and
// names the settings to check.
func TestBrokerWithAuthentication(t *testing.T) {
	brokers := testenv.AddClusterBrokersWith(t, 1, brokerAuthSettings...)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "rmqproxy", SecretKey: "s3cret-key"}
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "auth-orders"), testenv.Name(t, "g-auth-orders")
	raw := p.Subscriber(t, topic, group, 1)
	const n = 12
	raw.SendN(t, topic, n)
	got := raw.ReceiveN(t, group, topic, n, time.Minute, 60*time.Second)
	ackOK := func(msgs []*v2.Message) {
		t.Helper()
		ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, msgs))
		if err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
			t.Errorf("ack of %d: %v %v", len(msgs), ack, err)
		}
	}
	ackOK(got[:1])  // ACK_MESSAGE
	ackOK(got[1:4]) // BATCH_ACK_MESSAGE
	var wg sync.WaitGroup
	for _, m := range got[4:] { // concurrent, coalesced when they wait
		wg.Go(func() { ackOK([]*v2.Message{m}) })
	}
	wg.Wait()
	if logs := p.Logs(t); strings.Contains(logs, "refused BATCH_ACK_MESSAGE") {
		t.Fatalf("the broker refused a signed batch ack:\n%s", logs)
	}

	bad := cfg
	bad.Cluster.ACL.SecretKey = "not-the-key"
	q := testenv.Start(t, bad)
	rawQ := testenv.NewRawClient(t, q)
	resp, err := rawQ.SendMessage(rawQ.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte("refused"), "")}})
	// The Apache proxy's code for it (INTERNAL_SERVER_ERROR, which clients
	// retry), with what the operator has to check.
	if err != nil || resp.GetStatus().GetCode() != v2.Code_INTERNAL_SERVER_ERROR ||
		!strings.Contains(resp.GetStatus().GetMessage(), "check signature failed") || !strings.Contains(resp.GetStatus().GetMessage(), "cluster.acl.secretKey") {
		t.Fatalf("send with a wrong broker secret: %v %v", resp, err)
	}
}
