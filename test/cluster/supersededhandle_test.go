package cluster_test

import (
	"errors"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestAckOfASupersededHandleIsTheBrokers pins what docs/compatibility.md
// says of cluster mode: an ack with a receipt handle that a later
// ChangeInvisibleDuration replaced is answered OK, as the Apache proxy
// answers it (the broker takes an ack of a checkpoint it has already
// closed, and rmqproxy keeps no record of the handles it gave out), and
// takes no effect: the message comes again once the new handle's
// invisible time is over. Local mode refuses such an ack
// (INVALID_RECEIPT_HANDLE "superseded").
func TestAckOfASupersededHandleIsTheBrokers(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "superseded")
	group := "g-" + topic
	raw := p.Subscriber(t, topic, group, 1)
	raw.SendN(t, topic, 1)
	got := raw.ReceiveN(t, group, topic, 1, time.Minute, 60*time.Second)
	m := got[0]
	id := m.GetSystemProperties().GetMessageId()
	old := m.GetSystemProperties().GetReceiptHandle()
	ch, err := raw.ChangeInvisibleDuration(raw.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
		Topic: &v2.Resource{Name: topic}, ReceiptHandle: old, InvisibleDuration: durationpb.New(3 * time.Second), MessageId: id})
	if err != nil || ch.GetStatus().GetCode() != v2.Code_OK || ch.GetReceiptHandle() == old {
		t.Fatalf("change: %v %v", ch, err)
	}
	ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got))
	if err != nil || ack.GetStatus().GetCode() != v2.Code_OK || ack.GetEntries()[0].GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack with the superseded handle: %v %v (want OK, as the Apache proxy answers)", ack, err)
	}
	// The ack took no effect: the new checkpoint revives the message.
	testenv.WaitFor(t, 3*time.Minute, func() error {
		req := testenv.ReceiveRequest(group, topic, 16, time.Minute)
		req.LongPollingTimeout = durationpb.New(time.Second)
		for _, again := range raw.ReceiveAnswered(t, req) {
			if again.GetSystemProperties().GetMessageId() == id {
				if a := again.GetSystemProperties().GetDeliveryAttempt(); a != 2 {
					t.Errorf("delivered again with attempt %d, want 2", a)
				}
				return nil
			}
		}
		return errors.New("not delivered again yet")
	})
}

// TestAckNamingAnotherGroupIsTheBrokers pins what docs/compatibility.md
// says of cluster mode: an ack of a delivery of one group that names
// another group is answered OK (the broker acks that group's checkpoint,
// which does not exist) and takes no effect: the message comes again to
// its own group after its invisible time. Local mode answers
// INVALID_RECEIPT_HANDLE (never delivered to that group).
func TestAckNamingAnotherGroupIsTheBrokers(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "othergroup")
	group := "g-" + topic
	raw := p.Subscriber(t, topic, group, 1)
	other := group + "-other"
	p.CreateGroup(t, application.GroupSpec{Name: other})
	raw.SendN(t, topic, 1)
	got := raw.ReceiveN(t, group, topic, 1, 3*time.Second, 60*time.Second)
	id := got[0].GetSystemProperties().GetMessageId()
	ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(other, topic, got))
	if err != nil || ack.GetStatus().GetCode() != v2.Code_OK || ack.GetEntries()[0].GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack naming another group: %v %v (want OK, the broker's answer)", ack, err)
	}
	testenv.WaitFor(t, 2*time.Minute, func() error {
		req := testenv.ReceiveRequest(group, topic, 16, time.Minute)
		req.LongPollingTimeout = durationpb.New(time.Second)
		for _, again := range raw.ReceiveAnswered(t, req) {
			if again.GetSystemProperties().GetMessageId() == id {
				return nil
			}
		}
		return errors.New("not delivered again yet")
	})
}
