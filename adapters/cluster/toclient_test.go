package cluster

import (
	"context"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// TestClientRequestsCheckedAlike: both requests a broker sends this proxy
// as a client are refused, before any handler, when their header cannot be
// read or names another client id.
func TestClientRequestsCheckedAlike(t *testing.T) {
	b := newTestBroker(t, "127.0.0.1:9", nil)
	handlers := map[string]func(context.Context, string, *remoting.Command) *remoting.Command{
		"running info": b.onConsumerRunningInfo, "consume directly": b.onConsumeDirectly,
	}
	for name, on := range handlers {
		for _, tc := range []struct {
			fields remoting.Fields
			remark string
		}{
			{nil, "cannot read the request: "},
			{remoting.Fields{{Key: "consumerGroup", Value: "g"}, {Key: "clientId", Value: "other@1"}},
				"this proxy is client " + b.id + ", not other@1"},
		} {
			resp := on(t.Context(), "b:1", remoting.NewRequest(remoting.RequestGetConsumerRunningInfo, tc.fields, nil))
			if resp.Code != int32(remoting.ResponseSystemError) || !strings.HasPrefix(resp.Remark, tc.remark) {
				t.Errorf("%s: %d %q, want SYSTEM_ERROR %q", name, resp.Code, resp.Remark, tc.remark)
			}
		}
	}
}
