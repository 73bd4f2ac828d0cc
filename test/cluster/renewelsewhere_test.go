package cluster_test

import (
	"errors"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestAckElsewhereOfAMessageAnInstanceRenews pins what docs/cluster.md
// says of a push consumer's ack through another instance than the one
// that renews its message: before any renewal the client's handle is the
// broker's current checkpoint, so the ack is answered OK and the broker
// takes it; but the renewing instance does not learn of it, and its next
// change of the message's invisible time (a renewal, or the release when
// the client leaves, as here) opens a new checkpoint of the acked message
// (a 5.5.0 broker does not check that the one it replaces was acked): the
// message is delivered again.
func TestAckElsewhereOfAMessageAnInstanceRenews(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	a := testenv.Start(t, cfg)
	b := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "renew-elsewhere"), testenv.Name(t, "g-renew-elsewhere")
	a.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	rawA, rawB := testenv.NewRawClient(t, a), testenv.NewRawClient(t, b)
	rawA.SendN(t, topic, 1)
	rawA.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	var held *v2.Message
	testenv.WaitFor(t, 30*time.Second, func() error {
		req := testenv.ReceiveRequest(group, topic, 1, 0)
		req.InvisibleDuration, req.AutoRenew = nil, true
		st, msgs := rawA.Receive(t, req)
		if len(msgs) == 0 {
			return errors.New("nothing received through A yet: " + st.String())
		}
		held = msgs[0]
		return nil
	})
	id := held.GetSystemProperties().GetMessageId()
	// Acked through B at once, long before A's first renewal (the
	// default invisible time is 60 s, renewed 10 s before its end).
	ack, err := rawB.AckMessage(rawB.Ctx(t), testenv.AckRequest(group, topic, []*v2.Message{held}))
	if err != nil || ack.GetStatus().GetCode() != v2.Code_OK || ack.GetEntries()[0].GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack through B: %v %v", ack, err)
	}
	bye, err := rawA.NotifyClientTermination(rawA.Ctx(t), &v2.NotifyClientTerminationRequest{Group: &v2.Resource{Name: group}})
	if err != nil || bye.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("goodbye through A: %v %v", bye, err)
	}
	rawB.Subscribe(t, group, topic)
	testenv.WaitFor(t, 3*time.Minute, func() error {
		req := testenv.ReceiveRequest(group, topic, 16, time.Minute)
		req.LongPollingTimeout = durationpb.New(time.Second)
		for _, again := range rawB.ReceiveAnswered(t, req) {
			if again.GetSystemProperties().GetMessageId() == id {
				return nil
			}
		}
		return errors.New("the message acked through B is not delivered again yet")
	})
}
