package cluster

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestConsumeDirectlyAnswers: the answer to a broker's
// CONSUME_MESSAGE_DIRECTLY for each kind of consumer answer, with the
// message the handler got decoded from the request's body (a retried
// message under the topic it was sent to). The real broker's side is
// test/cluster TestConsumeMessageDirectlyThroughTheBroker.
func TestConsumeDirectlyAnswers(t *testing.T) {
	b := newTestBroker(t, "127.0.0.1:9", nil)
	stored := remoting.Message{MagicCode: remoting.MagicV1, QueueID: 1, QueueOffset: 5, CommitLogOffset: 777,
		BornTimestamp: 1700000000000, BornHost: netip.MustParseAddrPort("10.0.0.5:50000"), StoreTimestamp: 1700000000001,
		StoreHost: netip.MustParseAddrPort("192.168.0.10:10911"), ReconsumeTimes: 1, Body: []byte("hello"), Topic: "%RETRY%g",
		Properties: remoting.Properties{{Key: remoting.PropertyUniqKey, Value: "AC110001000118B4AAC2000000000000"},
			{Key: remoting.PropertyTags, Value: "TagA"}, {Key: remoting.PropertyRetryTopic, Value: "T"}, {Key: "k", Value: "v"}}}
	body, err := remoting.AppendMessage(nil, &stored)
	if err != nil {
		t.Fatal(err)
	}
	request := func(clientID string, body []byte) *remoting.Command {
		h := remoting.ConsumeMessageDirectlyRequestHeader{ConsumerGroup: "g", ClientID: clientID, MsgID: stored.OffsetMsgID(), BrokerName: "broker-a"}
		return remoting.NewRequest(remoting.RequestConsumeMessageDirectly, remoting.EncodeHeader(&h), body)
	}
	if resp := b.onConsumeDirectly(t.Context(), "b:1", request(b.id, body)); resp.Code != int32(remoting.ResponseRequestCodeNotSupported) {
		t.Fatalf("without a handler: %d %s", resp.Code, resp.Remark)
	}

	var got domain.StoredMessage
	var answer ports.ConsumeDirectlyAnswer
	var answerErr error
	b.SetConsumeDirectlyHandler(func(ctx context.Context, group string, msg domain.StoredMessage) (ports.ConsumeDirectlyAnswer, error) {
		if _, ok := ctx.Deadline(); !ok || group != "g" {
			t.Errorf("handler called for group %q, deadline %v", group, ok)
		}
		got = msg
		return answer, answerErr
	})
	tests := []struct {
		name   string
		answer ports.ConsumeDirectlyAnswer
		err    error
		code   remoting.ResponseCode
		result string // consumeResult of a SUCCESS answer, or a part of the remark
	}{
		{"consumed", ports.ConsumeDirectlyAnswer{ClientID: "c1", Code: "OK", Asked: 1}, nil, remoting.ResponseSuccess, remoting.CMResultSuccess},
		{"listener failed", ports.ConsumeDirectlyAnswer{ClientID: "c1", Code: "FAILED_TO_CONSUME_MESSAGE", Asked: 1}, nil,
			remoting.ResponseSuccess, remoting.CMResultLater},
		{"corrupted", ports.ConsumeDirectlyAnswer{ClientID: "c1", Code: "MESSAGE_CORRUPTED", Asked: 1}, nil, remoting.ResponseSuccess, remoting.CMResultReturnNull},
		{"not implemented", ports.ConsumeDirectlyAnswer{ClientID: "c1", Code: "NOT_IMPLEMENTED", Message: "nope", Asked: 1}, nil,
			remoting.ResponseRequestCodeNotSupported, `client c1 of group g connected to this proxy answered NOT_IMPLEMENTED "nope": only the official Java push consumer`},
		{"none implements", ports.ConsumeDirectlyAnswer{ClientID: "c2", Code: "NOT_IMPLEMENTED", Asked: 2}, nil,
			remoting.ResponseRequestCodeNotSupported, "all 2 consumers (the last: c2) of group g"},
		{"fifo", ports.ConsumeDirectlyAnswer{ClientID: "c1", Code: "VERIFY_FIFO_MESSAGE_UNSUPPORTED", Message: "fifo", Asked: 1}, nil,
			remoting.ResponseSystemError, `client c1 of group g answered VERIFY_FIFO_MESSAGE_UNSUPPORTED "fifo"`},
		{"no consumer", ports.ConsumeDirectlyAnswer{}, domain.Errorf(domain.ReasonNotFound, "no consumer of group g is connected to this proxy"),
			remoting.ResponseSystemError, "no consumer of group g is connected to this proxy"},
		{"no answer", ports.ConsumeDirectlyAnswer{}, domain.Errorf(domain.ReasonTimeout, "client c1 did not answer"),
			remoting.ResponseConsumeMsgTimeout, "client c1 did not answer"},
	}
	for _, tt := range tests {
		answer, answerErr = tt.answer, tt.err
		resp := b.onConsumeDirectly(t.Context(), "b:1", request(b.id, body))
		if resp.Code != int32(tt.code) {
			t.Errorf("%s: code %d %s, want %d", tt.name, resp.Code, resp.Remark, tt.code)
			continue
		}
		if tt.code != remoting.ResponseSuccess {
			if !strings.Contains(resp.Remark, tt.result) || len(resp.Body) != 0 {
				t.Errorf("%s: remark %q body %q, want %q in the remark", tt.name, resp.Remark, resp.Body, tt.result)
			}
			continue
		}
		var r remoting.ConsumeMessageDirectlyResult
		if err := remoting.DecodeJSONBody(resp.Body, &r); err != nil || r.ConsumeResult != tt.result || !r.AutoCommit || r.Order ||
			r.Remark != "from gRPC client c1" || r.SpentTimeMills < 0 {
			t.Errorf("%s: body %s (%+v, %v), want %s", tt.name, resp.Body, r, err, tt.result)
		}
	}
	if got.Topic != "T" || got.ID != "AC110001000118B4AAC2000000000000" || string(got.Body) != "hello" || got.Tag != "TagA" ||
		got.BrokerName != "broker-a" || got.CommitLogOffset != 777 || got.DeliveryAttempt != 1 || got.Properties["k"] != "v" {
		t.Errorf("the handler got %+v", got)
	}

	for name, req := range map[string]*remoting.Command{
		"another client id": request("someone-else", body),
		"no message":        request(b.id, nil),
		"a broken message":  request(b.id, body[:len(body)-3]),
		"no group":          remoting.NewRequest(remoting.RequestConsumeMessageDirectly, remoting.Fields{{Key: "clientId", Value: b.id}}, body),
	} {
		got = domain.StoredMessage{}
		if resp := b.onConsumeDirectly(t.Context(), "b:1", req); resp.Code != int32(remoting.ResponseSystemError) || resp.Remark == "" || got.ID != "" {
			t.Errorf("%s: code %d %q; handler got %q", name, resp.Code, resp.Remark, got.ID)
		}
	}
}

// TestConsumeDirectlyOfAPopRetryMessage: a message a broker revived into
// the group's pop retry topic (%RETRY%G+T with enableRetryTopicV2,
// %RETRY%G_T without) carries no RETRY_TOPIC property; the consumer is
// asked to consume it as a message of T, the topic it subscribes to, not
// of the retry topic, which no consumer subscribes to. A message of a
// retry topic that is not the request group's stays under its own name.
func TestConsumeDirectlyOfAPopRetryMessage(t *testing.T) {
	b := newTestBroker(t, "127.0.0.1:9", nil)
	var got string
	b.SetConsumeDirectlyHandler(func(ctx context.Context, group string, msg domain.StoredMessage) (ports.ConsumeDirectlyAnswer, error) {
		got = msg.Topic
		return ports.ConsumeDirectlyAnswer{ClientID: "c1", Code: "OK", Asked: 1}, nil
	})
	for stored, want := range map[string]string{
		"%RETRY%g+T":       "T",
		"%RETRY%g_T":       "T",
		"%RETRY%g+a_b":     "a_b",
		"%RETRY%other+T":   "%RETRY%other+T",
		"%RETRY%g":         "%RETRY%g",
		"T":                "T",
		"%RETRY%gx+T":      "%RETRY%gx+T",
		"%RETRY%g+":        "%RETRY%g+",
		"%DLQ%g":           "%DLQ%g",
		"%RETRY%g_%RETRY%": "%RETRY%g_%RETRY%",
	} {
		m := remoting.Message{MagicCode: remoting.MagicV1, QueueOffset: 5, CommitLogOffset: 777, BornTimestamp: 1700000000000,
			BornHost: netip.MustParseAddrPort("10.0.0.5:50000"), StoreTimestamp: 1700000000001,
			StoreHost: netip.MustParseAddrPort("192.168.0.10:10911"), ReconsumeTimes: 1, Body: []byte("hello"), Topic: stored,
			Properties: remoting.Properties{{Key: remoting.PropertyUniqKey, Value: "AC110001000118B4AAC2000000000000"}}}
		body, err := remoting.AppendMessage(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		h := remoting.ConsumeMessageDirectlyRequestHeader{ConsumerGroup: "g", ClientID: b.id, MsgID: m.OffsetMsgID(), BrokerName: "broker-a"}
		got = ""
		resp := b.onConsumeDirectly(t.Context(), "b:1", remoting.NewRequest(remoting.RequestConsumeMessageDirectly, remoting.EncodeHeader(&h), body))
		if resp.Code != int32(remoting.ResponseSuccess) || got != want {
			t.Errorf("a message of %s: the consumer was asked about topic %q (answer %d %q), want %q", stored, got, resp.Code, resp.Remark, want)
		}
	}
}
