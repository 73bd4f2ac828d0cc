package cluster_test

import (
	"errors"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestCommitAfterACheckBackEndsTheCheckedCopy: a producer that commits
// with its send receipt's transaction id after the broker's first
// check-back reached it (a checker that answered UNKNOWN, or none, while
// the local transaction ran on) ends the transaction for good. A broker
// answers each check-back by writing a new copy of the half message and
// asks about that copy from then on, so an end naming the send's copy
// left the copy unresolved: the broker asked again and again, and a
// commit of one of those check-backs through another rmqproxy instance
// (the producer reconnected there, or the broker chose that instance's
// channel) stored the message a second time. The end now names the
// latest copy this instance relayed a check-back of, as the Apache proxy's
// does (its transaction data of the check-back).
func TestCommitAfterACheckBackEndsTheCheckedCopy(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	a := testenv.Start(t, cfg)
	b := testenv.Start(t, cfg)
	topic := testenv.Name(t, "late-commit")
	a.CreateTopic(t, topic, domain.MessageTypeTransaction, 1)
	producer := testenv.NewRawClient(t, a)
	stream, err := producer.Telemetry(producer.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: producerSettings(topic)}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetSettings() == nil {
		t.Fatalf("settings: %v %v", r, err)
	}
	checks := make(chan *v2.RecoverOrphanedTransactionCommand, 64)
	go func() {
		defer close(checks)
		for {
			c, err := stream.Recv()
			if err != nil {
				return
			}
			if r := c.GetRecoverOrphanedTransactionCommand(); r != nil {
				checks <- r
			}
		}
	}()
	m := testenv.RawMessage(topic, []byte("late"), "")
	m.SystemProperties.MessageType = v2.MessageType_TRANSACTION
	id := m.SystemProperties.MessageId
	sent, err := producer.SendMessage(producer.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
	if err != nil || sent.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send: %v %v", sent, err)
	}
	nextCheck := func(within time.Duration) *v2.RecoverOrphanedTransactionCommand {
		timeout := time.After(within)
		for {
			select {
			case r, ok := <-checks:
				if !ok {
					t.Fatal("the producer's Telemetry stream ended")
				}
				if r.GetMessage().GetSystemProperties().GetMessageId() == id {
					return r
				}
			case <-timeout:
				return nil
			}
		}
	}
	// The first check-back comes (transactionTimeOut 1 s, check interval
	// 3 s here); the producer does not answer it, and then commits.
	if nextCheck(time.Minute) == nil {
		t.Fatal("no check-back of the half message within a minute")
	}
	end, err := producer.EndTransaction(producer.Ctx(t), &v2.EndTransactionRequest{Topic: res(topic), MessageId: id,
		TransactionId: sent.GetEntries()[0].GetTransactionId(), Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT})
	if err != nil || end.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("commit: %v %v", end, err)
	}
	// Check-backs that come after the commit (a check-back the broker
	// had sent before it logged the commit may still come: at most one)
	// are answered COMMIT by the producer's checker through instance B.
	other := testenv.NewRawClient(t, b)
	late := 0
	for deadline := time.Now().Add(12 * time.Second); time.Now().Before(deadline); {
		r := nextCheck(time.Until(deadline))
		if r == nil {
			break
		}
		late++
		e, err := other.EndTransaction(other.Ctx(t), &v2.EndTransactionRequest{Topic: res(topic), MessageId: id,
			TransactionId: r.GetTransactionId(), Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_SERVER_CHECK})
		t.Logf("check-back %d after the commit, answered COMMIT through B: %v %v", late, e.GetStatus(), err)
	}
	if late > 1 {
		t.Errorf("%d check-backs came after the commit, want at most 1: the broker still asks about the transaction", late)
	}
	// The message is delivered once.
	group := "g-" + topic
	a.CreateGroup(t, application.GroupSpec{Name: group})
	consumer := testenv.NewRawClient(t, a)
	consumer.Subscribe(t, group, topic)
	got := 0
	testenv.WaitFor(t, time.Minute, func() error {
		req := testenv.ReceiveRequest(group, topic, 16, time.Minute)
		req.LongPollingTimeout = durationpb.New(2 * time.Second)
		for _, d := range consumer.ReceiveAnswered(t, req) {
			if d.GetSystemProperties().GetMessageId() == id {
				got++
			}
		}
		if got == 0 {
			return errors.New("not delivered yet")
		}
		return nil
	})
	for range 3 {
		req := testenv.ReceiveRequest(group, topic, 16, time.Minute)
		req.LongPollingTimeout = durationpb.New(2 * time.Second)
		for _, d := range consumer.ReceiveAnswered(t, req) {
			if d.GetSystemProperties().GetMessageId() == id {
				got++
			}
		}
	}
	if got != 1 {
		t.Errorf("the committed message was delivered %d times, want once", got)
	}
}
