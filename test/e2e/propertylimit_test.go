package e2e_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestLargestPropertiesLiveThroughRedeliveryAndDeadLetter sends messages
// whose properties (padded through the trace context, which only their
// total bounds) take the most rmqproxy accepts: 32767 bytes, RocketMQ's
// limit, less the 1 KiB a broker adds over a message's life. Normal, delay
// and transactional ones are delivered intact, the normal one also when
// redelivered and from the dead-letter queue; one byte more, and RocketMQ's
// own limit, are refused with MESSAGE_PROPERTIES_TOO_LARGE in both modes.
// Before, a message at RocketMQ's limit was stored in local mode and
// answered INTERNAL_SERVER_ERROR in cluster mode (the broker's
// MESSAGE_ILLEGAL: it adds its CLUSTER property to every single send),
// and one a few bytes shorter was stored but could not be redelivered
// (the broker's revive adds 1ST_POP_TIME).
func TestLargestPropertiesLiveThroughRedeliveryAndDeadLetter(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	normal, delay, tx := testenv.Name(t, "props-max"), testenv.Name(t, "props-max-delay"), testenv.Name(t, "props-max-tx")
	group, reader := testenv.Name(t, "g-props-max"), testenv.Name(t, "g-props-max-dlq")
	p.CreateTopic(t, normal, domain.MessageTypeNormal, 1)
	p.CreateTopic(t, delay, domain.MessageTypeDelay, 1)
	p.CreateTopic(t, tx, domain.MessageTypeTransaction, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group, MaxDeliveryAttempts: 2})
	p.CreateGroup(t, application.GroupSpec{Name: reader})
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, normal)
	const most = 32767 - 1024

	message := func(topic string, size int, mutate func(*v2.Message)) *v2.Message {
		m := testenv.RawMessage(topic, []byte(fmt.Sprintf("%d bytes of properties", size)), "tag")
		m.SystemProperties.Keys = []string{"k1", "k2"}
		m.UserProperties = map[string]string{"p": strings.Repeat("v", 8000), "q": "w"}
		if mutate != nil {
			mutate(m)
		}
		testenv.PadStoredProperties(m, size)
		return m
	}
	send := func(m *v2.Message) (*v2.SendMessageResponse, v2.Code) {
		t.Helper()
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil {
			t.Fatalf("send %s: %v", m.GetBody(), err)
		}
		return resp, resp.GetStatus().GetCode()
	}
	// intact fails t unless got shows every field of sent a client set
	// and its type (a committed transactional message is delivered as
	// TRANSACTION, as a RocketMQ broker stores it with TRAN_MSG=true).
	intact := func(what string, sent, got *v2.Message) {
		t.Helper()
		s, g := sent.GetSystemProperties(), got.GetSystemProperties()
		if g.GetMessageId() != s.GetMessageId() || string(got.GetBody()) != string(sent.GetBody()) || g.GetTag() != s.GetTag() ||
			!slices.Equal(g.GetKeys(), s.GetKeys()) || g.GetTraceContext() != s.GetTraceContext() || g.GetBornHost() != s.GetBornHost() ||
			!maps.Equal(got.GetUserProperties(), sent.GetUserProperties()) || g.GetMessageType() != s.GetMessageType() {
			t.Fatalf("%s: delivered %s (type %v, tag %q, keys %q, trace context of %d bytes, born host %q, %d properties), sent %s (type %v, tag %q, keys %q, trace context of %d bytes, born host %q, %d properties)",
				what, g.GetMessageId(), g.GetMessageType(), g.GetTag(), g.GetKeys(), len(g.GetTraceContext()), g.GetBornHost(), len(got.GetUserProperties()),
				s.GetMessageId(), s.GetMessageType(), s.GetTag(), s.GetKeys(), len(s.GetTraceContext()), s.GetBornHost(), len(sent.GetUserProperties()))
		}
	}

	// most + 1; what a broker's batch send stored (it adds no CLUSTER) but
	// its revive could not store again; RocketMQ's own limit.
	for _, size := range []int{most + 1, 32767 - 30, 32767} {
		if _, code := send(message(normal, size, nil)); code != v2.Code_MESSAGE_PROPERTIES_TOO_LARGE {
			t.Errorf("properties of %d bytes: %v, want MESSAGE_PROPERTIES_TOO_LARGE", size, code)
		}
	}
	txOver := message(tx, most-len("__transactionId__\x01\x02")-34+1, func(m *v2.Message) { m.SystemProperties.MessageType = v2.MessageType_TRANSACTION })
	if _, code := send(txOver); code != v2.Code_MESSAGE_PROPERTIES_TOO_LARGE {
		t.Errorf("transactional message one byte over: %v, want MESSAGE_PROPERTIES_TOO_LARGE", code)
	}

	sent := message(normal, most, nil)
	if _, code := send(sent); code != v2.Code_OK {
		t.Fatalf("properties of %d bytes: %v", most, code)
	}
	deferred := message(delay, most, func(m *v2.Message) {
		m.SystemProperties.MessageType = v2.MessageType_DELAY
		m.SystemProperties.DeliveryTimestamp = timestamppb.New(time.Now().Add(time.Second).Truncate(time.Millisecond))
	})
	if _, code := send(deferred); code != v2.Code_OK {
		t.Fatalf("delay message with properties of %d bytes: %v", most, code)
	}
	// A broker copies a half message's id into __transactionId__ (the
	// ids here are 34 bytes).
	half := message(tx, most-len("__transactionId__\x01\x02")-34, func(m *v2.Message) { m.SystemProperties.MessageType = v2.MessageType_TRANSACTION })
	resp, code := send(half)
	if code != v2.Code_OK {
		t.Fatalf("transactional message at the limit: %v", code)
	}
	end, err := raw.EndTransaction(raw.Ctx(t), &v2.EndTransactionRequest{Topic: &v2.Resource{Name: tx}, MessageId: half.GetSystemProperties().GetMessageId(),
		TransactionId: resp.GetEntries()[0].GetTransactionId(), Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT})
	if err != nil || end.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("commit: %v %v", end, err)
	}

	for _, c := range []struct {
		topic string
		m     *v2.Message
	}{{delay, deferred}, {tx, half}} {
		c2 := testenv.NewRawClient(t, p)
		g := testenv.Name(t, "g-props-max-"+strings.ToLower(c.m.GetSystemProperties().GetMessageType().String()))
		p.CreateGroup(t, application.GroupSpec{Name: g})
		c2.Subscribe(t, g, c.topic)
		intact(c.m.GetSystemProperties().GetMessageType().String()+" message", c.m, c2.ReceiveN(t, g, c.topic, 1, time.Minute, 30*time.Second)[0])
	}

	first := raw.ReceiveN(t, group, normal, 1, 2*time.Second, 30*time.Second)[0]
	intact("first delivery", sent, first)
	again := raw.ReceiveN(t, group, normal, 1, 2*time.Second, 30*time.Second)[0]
	intact("redelivery", sent, again)
	if a := again.GetSystemProperties().GetDeliveryAttempt(); a != 2 {
		t.Fatalf("redelivered at attempt %d, want 2", a)
	}
	// Attempt 2 of 2 is not acked either: it moves to the dead-letter
	// queue (in cluster mode when the group receives again).
	dlq := domain.DeadLetterTopic(group)
	testenv.WaitFor(t, 30*time.Second, func() error {
		if ms := raw.ReceiveAnswered(t, testenv.ReceiveRequest(group, normal, 1, 2*time.Second)); len(ms) != 0 {
			t.Fatalf("an exhausted message was delivered again (attempt %d)", ms[0].GetSystemProperties().GetDeliveryAttempt())
		}
		_, err := p.Admin.Topic(t.Context(), dlq)
		return err
	})
	testenv.WaitForRoute(t, p, dlq)
	rd := testenv.NewRawClient(t, p)
	rd.Subscribe(t, reader, dlq)
	dead := rd.ReceiveN(t, reader, dlq, 1, time.Minute, 30*time.Second)[0]
	intact("dead letter", sent, dead)
}
