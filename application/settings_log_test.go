package application

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain/filter"
)

// A consumer's settings may list any number of subscriptions (a Telemetry
// command may be grpc.maxRecvMessageSize, 130 MiB), and the client may send
// them again and again on its stream. The warning about subscriptions to
// topics it cannot receive from was written once per such subscription and
// per command: a misbehaving client made the proxy write millions of log
// lines a minute. It is one line at most a minute, counting the others.
func TestIgnoredSubscriptionsAreLoggedSparingly(t *testing.T) {
	m, _, clock := newTestMessaging(DefaultConfig())
	var buf bytes.Buffer
	m.log = slog.New(slog.NewTextHandler(&buf, nil))
	settings := ClientSettings{ClientType: ClientTypeSimpleConsumer, RequestTimeout: 3 * time.Second,
		Subscription: &SubscriptionSettings{Group: "g", Entries: []SubscriptionEntry{{Topic: "t", Filter: filter.Expression{Text: "*"}}}}}
	for i := range 1000 {
		settings.Subscription.Entries = append(settings.Subscription.Entries,
			SubscriptionEntry{Topic: fmt.Sprintf("bad topic %d", i), Filter: filter.Expression{Text: "*"}})
	}
	const warning = "subscribe to a topic it cannot receive from"
	for c := range 3 {
		ctx := asClient(t.Context(), fmt.Sprint("c", c))
		if _, err := m.UpdateSettings(ctx, settings, newOpenChannel()); err != nil {
			t.Fatal(err)
		}
	}
	if lines := strings.Count(buf.String(), warning); lines != 1 {
		t.Fatalf("3 settings commands of 1000 unreceivable subscriptions each logged %d warnings, want 1", lines)
	}
	if !strings.Contains(buf.String(), "ignored_subscriptions=1000 ") {
		t.Fatalf("the warning does not count the command's ignored subscriptions:\n%.2000s", buf.String())
	}
	buf.Reset()
	clock.Advance(time.Minute)
	ctx := asClient(t.Context(), "c9")
	if _, err := m.UpdateSettings(ctx, settings, newOpenChannel()); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(buf.String(), warning); lines != 1 || !strings.Contains(buf.String(), "commands_not_logged=2\n") {
		t.Fatalf("a minute later: %d warnings, want 1 saying commands_not_logged=2:\n%.2000s", lines, buf.String())
	}
}
