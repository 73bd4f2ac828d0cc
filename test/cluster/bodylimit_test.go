package cluster_test

import (
	"strings"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBodyBeyondTheBrokersMaxMessageSizeIsTooLarge: with
// messaging.limits.maxBodySize raised beyond the brokers' maxMessageSize
// (4 MiB by default), a message whose body the broker refuses as too
// large (MESSAGE_ILLEGAL "the message is illegal, maybe msg body or
// properties length not matched ...") reached the client as
// INTERNAL_SERVER_ERROR, where a batch too large for the broker was
// MESSAGE_BODY_TOO_LARGE; it is MESSAGE_BODY_TOO_LARGE, as rmqproxy
// answers when its own limit refuses it, naming the broker's limit. A body
// at the broker's limit is stored.
func TestBodyBeyondTheBrokersMaxMessageSizeIsTooLarge(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Messaging.Limits.MaxBodySize = 8 << 20
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "body-beyond")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	raw := testenv.NewRawClient(t, p)
	send := func(size int) *v2.Status {
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, make([]byte, size), "")}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	if st := send(4<<20 + 1); st.GetCode() != v2.Code_MESSAGE_BODY_TOO_LARGE || !strings.Contains(st.GetMessage(), "maxMessageSize") {
		t.Errorf("body of 4 MiB + 1 byte: %v %q, want MESSAGE_BODY_TOO_LARGE naming the broker's maxMessageSize", st.GetCode(), st.GetMessage())
	}
	if st := send(4 << 20); st.GetCode() != v2.Code_OK {
		t.Errorf("body of 4 MiB: %v %q", st.GetCode(), st.GetMessage())
	}
}
