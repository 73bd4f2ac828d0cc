package cluster_test

import (
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestReceiveFromAGroupWhoseConsumptionIsDisabled: an operator stops a
// group's consumption on the broker (`mqadmin updateSubGroup -s false`,
// consumeEnable false); the broker refuses its pops with NO_PERMISSION
// ("subscription group no permission, G"). The consumer was answered
// INTERNAL_SERVER_ERROR, as if rmqproxy had failed; it is answered
// FORBIDDEN with the broker's words, the code the Apache proxy gives for
// a topic its route says is not readable.
func TestReceiveFromAGroupWhoseConsumptionIsDisabled(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, b := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "noperm-orders"), testenv.Name(t, "noperm-group")
	createTopicAndGroup(t, p, topic, group)
	sg := brokerGroupConfig(t, b, group)
	sg.ConsumeEnable = false
	putBrokerGroupConfig(t, b, sg)

	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	raw.SendN(t, topic, 1)
	st, msgs := raw.Receive(t, testenv.ReceiveRequest(group, topic, 1, 30*time.Second))
	if st.GetCode() != v2.Code_FORBIDDEN || !strings.Contains(st.GetMessage(), "subscription group no permission") || len(msgs) != 0 {
		t.Fatalf("receive from a group whose consumption is disabled: %v, %d messages; want FORBIDDEN with the broker's remark", st, len(msgs))
	}
}
