package e2e_test

import (
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestEndTransactionGoesByTheTransactionID: an EndTransaction whose
// transaction id is a send receipt's but whose message id is another
// message's commits the transaction the transaction id names, in both
// modes, as the Apache proxy does (it ends the half message its
// transaction data holds, passing the message id to the broker, which
// only logs it). Cluster mode committed it; local mode refused it
// (INVALID_TRANSACTION_ID "is of message ..."), and the message waited
// for the check-back.
func TestEndTransactionGoesByTheTransactionID(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "endtx-msgid"), testenv.Name(t, "g-endtx-msgid")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)

	m := testenv.RawMessage(topic, []byte("half"), "")
	m.SystemProperties.MessageType = v2.MessageType_TRANSACTION
	resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK || len(resp.GetEntries()) != 1 {
		t.Fatalf("send: %v %v", resp, err)
	}
	end, err := raw.EndTransaction(raw.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: topic}, MessageId: testenv.NewMessageID(),
		TransactionId: resp.GetEntries()[0].GetTransactionId(), Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT})
	if err != nil || end.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("commit with another message id: %v %v, want OK (the transaction id names the transaction)", end, err)
	}
	got := raw.ReceiveN(t, group, topic, 1, time.Minute, 30*time.Second)[0]
	if got.GetSystemProperties().GetMessageId() != m.GetSystemProperties().GetMessageId() || string(got.GetBody()) != "half" {
		t.Fatalf("delivered %s %q, want the committed %s", got.GetSystemProperties().GetMessageId(), got.GetBody(), m.GetSystemProperties().GetMessageId())
	}
}
