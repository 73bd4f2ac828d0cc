package e2e_test

import (
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestCheckBackMessageReadsAsSent: the message of a transaction
// check-back (RecoverOrphanedTransactionCommand) carries the half message
// as sent, with the transaction id to end it by, and reads as a first
// delivery (delivery_attempt 1), as through a RocketMQ broker, whose proxy
// writes every message's reconsume times + 1 (cluster mode does too).
// Local mode wrote 0, which the official clients pass on to the
// transaction checker (MessageView.GetDeliveryAttempt).
func TestCheckBackMessageReadsAsSent(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	cfg.Local.TransactionTimeout = 200 * time.Millisecond
	cfg.Local.TransactionCheckInterval = time.Second
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "checkback-msg")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 2)
	raw := testenv.NewRawClient(t, p)
	stream, err := raw.Telemetry(raw.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	testenv.SendProducerSettings(t, stream, topic)
	m := testenv.RawMessage(topic, []byte("half"), "tagA")
	m.SystemProperties.MessageType = v2.MessageType_TRANSACTION
	m.SystemProperties.Keys = []string{"k1"}
	group := "g1"
	m.SystemProperties.MessageGroup = &group
	m.UserProperties = map[string]string{"order": "42"}
	resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send: %v %v", resp, err)
	}
	cmd, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	rc := cmd.GetRecoverOrphanedTransactionCommand()
	if rc == nil {
		t.Fatalf("got %v, want a check-back", cmd)
	}
	got, sp := rc.GetMessage(), rc.GetMessage().GetSystemProperties()
	if rc.GetTransactionId() == "" || got.GetTopic().GetName() != topic || string(got.GetBody()) != "half" ||
		sp.GetMessageId() != m.GetSystemProperties().GetMessageId() || sp.GetTag() != "tagA" || len(sp.GetKeys()) != 1 ||
		sp.GetMessageGroup() != group || sp.GetMessageType() != v2.MessageType_TRANSACTION || got.GetUserProperties()["order"] != "42" {
		t.Fatalf("check-back %v, want the half message as sent with a transaction id", rc)
	}
	if sp.GetDeliveryAttempt() != 1 {
		t.Errorf("check-back delivery_attempt %d, want 1 (a first delivery, as through a broker)", sp.GetDeliveryAttempt())
	}
	end, err := raw.EndTransaction(raw.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: topic}, MessageId: sp.GetMessageId(),
		TransactionId: rc.GetTransactionId(), Resolution: v2.TransactionResolution_ROLLBACK, Source: v2.TransactionSource_SOURCE_SERVER_CHECK})
	if err != nil || end.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("rollback answering the check-back: %v %v", end, err)
	}
}
