package e2e_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestSentFieldsReadBack sends messages whose fields are legal but unusual
// (non-ASCII text, RocketMQ's key separator inside a key, white space that
// is not a separator, long values, a property without a value, no born
// time) and checks that a consumer reads back what the Apache proxy in
// front of a broker would deliver, in both modes.
func TestSentFieldsReadBack(t *testing.T) {
	cfg := testenv.Config(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "fields"), testenv.Name(t, "g-fields")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)

	cases := []struct {
		name     string
		tag      string
		keys     []string
		props    map[string]string
		wantKeys []string // nil: the keys as sent
		// wantProps are the properties delivered (nil: as sent).
		wantProps map[string]string
		noBorn    bool // sent without a born time
	}{
		{name: "unicode", tag: "标签 ü", keys: []string{"ключ", "🔑"}, props: map[string]string{"名前": "値 with spaces", "emoji": "🚀"}},
		// Upstream joins keys with a space and splits them at each space
		// when delivering; a non-breaking space is not a separator.
		{name: "key separator", keys: []string{"order 42", "a\u00a0b", "", "last"}, wantKeys: []string{"order", "42", "a\u00a0b", "last"}},
		{name: "long values", tag: strings.Repeat("t", 1000), keys: []string{strings.Repeat("k", 2000)},
			props: map[string]string{"big": strings.Repeat("v", 8000), "=;:,": "\\\"'"}},
		// RocketMQ's properties string cannot carry an empty value: a
		// broker drops it, so local mode must not deliver it either.
		{name: "empty property value", props: map[string]string{"empty": "", "x": "1"}, wantProps: map[string]string{"x": "1"}},
		// Without a born time the broker records the proxy's clock at
		// the send, which consumers get as the born time.
		{name: "no born time", noBorn: true},
	}
	sent := map[string]int{}
	before := time.Now().Truncate(time.Millisecond)
	for i, c := range cases {
		m := testenv.RawMessage(topic, []byte(c.name), c.tag)
		m.SystemProperties.Keys = c.keys
		m.UserProperties = c.props
		if c.noBorn {
			m.SystemProperties.BornTimestamp = nil
		}
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send %s: %v %v", c.name, resp, err)
		}
		sent[c.name] = i
	}
	for _, m := range raw.ReceiveN(t, group, topic, len(cases), 30*time.Second, 20*time.Second) {
		c := cases[sent[string(m.GetBody())]]
		sp := m.GetSystemProperties()
		want := c.wantKeys
		if want == nil {
			want = c.keys
		}
		if !slices.Equal(sp.GetKeys(), want) {
			t.Errorf("%s: keys %q, want %q", c.name, sp.GetKeys(), want)
		}
		if sp.GetTag() != c.tag {
			t.Errorf("%s: tag %q, want %q", c.name, sp.GetTag(), c.tag)
		}
		wantProps := c.wantProps
		if wantProps == nil {
			wantProps = c.props
		}
		if got := m.GetUserProperties(); !maps.Equal(got, wantProps) && len(got)+len(wantProps) > 0 {
			t.Errorf("%s: properties %q, want %q", c.name, got, wantProps)
		}
		if born := sp.GetBornTimestamp(); born == nil || born.AsTime().Before(before) || born.AsTime().After(time.Now()) {
			t.Errorf("%s: born time %v, want one between the send and now", c.name, born)
		}
	}
}
