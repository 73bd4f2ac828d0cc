package e2e_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBatchKeepsEachMessagesFields sends one batch (in cluster mode one
// SEND_BATCH_MESSAGE, whose messages a broker stores from one record)
// of messages with unusual fields: non-ASCII tag, keys and properties, a
// 16 KiB property value, 128 properties, and properties at the most
// rmqproxy accepts; each is delivered with its own fields, in both modes.
func TestBatchKeepsEachMessagesFields(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "batch-fields"), testenv.Name(t, "g-batch-fields")
	raw := p.Subscriber(t, topic, group, 1)
	unicode := testenv.RawMessage(topic, []byte("unicode"), "标签 ü")
	unicode.SystemProperties.Keys = []string{"ключ", "🔑", "a\u00a0b"}
	unicode.UserProperties = map[string]string{"名前": "値 with spaces", "emoji": "🚀", "=;:,": "\\\"'"}
	long := testenv.RawMessage(topic, []byte("long"), "t")
	long.UserProperties = map[string]string{"long": strings.Repeat("v", 16<<10-len("long")-len("t"))}
	many := testenv.RawMessage(topic, []byte("many"), "")
	for i := range 128 {
		many.UserProperties[strings.Repeat("p", 1+i%7)+string(rune('A'+i%26))+string(rune('a'+i/26))] = strings.Repeat("x", i+1)
	}
	full := testenv.RawMessage(topic, []byte("full"), "tag")
	full.SystemProperties.Keys = []string{"k1", "k2"}
	full.UserProperties = map[string]string{"p": strings.Repeat("v", 8000)}
	testenv.PadStoredProperties(full, domain.MaxStoredPropertiesLen-domain.BrokerPropertiesReserve)
	sent := []*v2.Message{unicode, long, many, full}
	resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: sent})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("batch: %v %v", resp.GetStatus(), err)
	}
	byBody := map[string]*v2.Message{}
	for _, m := range sent {
		byBody[string(m.GetBody())] = m
	}
	for _, got := range raw.ReceiveN(t, group, topic, len(sent), time.Minute, 30*time.Second) {
		s := byBody[string(got.GetBody())]
		if s == nil {
			t.Fatalf("received %q, not sent", got.GetBody())
		}
		ss, gs := s.GetSystemProperties(), got.GetSystemProperties()
		if gs.GetMessageId() != ss.GetMessageId() || gs.GetTag() != ss.GetTag() || !slices.Equal(gs.GetKeys(), ss.GetKeys()) ||
			gs.GetTraceContext() != ss.GetTraceContext() || !maps.Equal(got.GetUserProperties(), s.GetUserProperties()) {
			t.Errorf("%s: delivered id %s tag %q keys %q trace context of %d bytes, %d properties; sent id %s tag %q keys %q trace context of %d bytes, %d properties",
				s.GetBody(), gs.GetMessageId(), gs.GetTag(), gs.GetKeys(), len(gs.GetTraceContext()), len(got.GetUserProperties()),
				ss.GetMessageId(), ss.GetTag(), ss.GetKeys(), len(ss.GetTraceContext()), len(s.GetUserProperties()))
		}
	}
}
