package grpc

import (
	"log/slog"
	"strings"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
)

// throttleRecords returns the attributes of the log records about
// requests refused with TOO_MANY_REQUESTS.
func (h *recordingHandler) throttleRecords() []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.records {
		if r.Level != slog.LevelWarn || !strings.Contains(r.Message, "TOO_MANY_REQUESTS") {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		out = append(out, attrs)
	}
	return out
}

// An operator of a shared proxy saw rmqproxy_throttled_requests_total
// {scope="client"} grow, and nothing anywhere (unless the access log of
// every request was on) said which client or limit: refusals were not
// logged. A refusal is now logged once a minute per limit, with the
// client, RPC and limit, and the number of refusals of it left out.
func TestThrottledRequestsSayWhoWasThrottled(t *testing.T) {
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	if _, err := tr.SetRules(application.TrafficRules{
		Topics: application.ScopeRules{Named: map[string]application.Limits{"t": {Send: application.FlowLimits{Messages: application.Rate{PerSecond: 0.001, Burst: 1}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	ts := startTrafficServer(t, &fakeBroker{}, tr, func(c *Config, _ *application.Config) { c.ThrottledSendHold = 0 })
	want := []v2.Code{v2.Code_OK, v2.Code_TOO_MANY_REQUESTS, v2.Code_TOO_MANY_REQUESTS}
	for i, code := range want {
		r, err := ts.client.SendMessage(clientCtx(t.Context(), "noisy-producer"), sendRequest("t"))
		if err != nil || r.GetStatus().GetCode() != code {
			t.Fatalf("send %d: %v, %v; want %v", i, r.GetStatus(), err, code)
		}
	}
	recs := ts.logs.throttleRecords()
	if len(recs) != 1 {
		t.Fatalf("two refusals by one limit within a minute logged %d warnings, want 1: %v", len(recs), recs)
	}
	got := recs[0]
	if got["client_id"] != "noisy-producer" || !strings.Contains(got["limit"], `topic "t"`) || !strings.Contains(got["rpc"], "SendMessage") {
		t.Fatalf("the warning does not say who was throttled by which limit: %v", got)
	}
}
