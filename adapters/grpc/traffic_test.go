package grpc

import (
	"context"
	"runtime"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// blockingSends makes the fake broker hold every send until release is
// closed, signalling each arrival on entered.
func blockingSends() (*fakeBroker, chan struct{}, chan struct{}) {
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	b := &fakeBroker{send: func(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
		entered <- struct{}{}
		<-release
		return []domain.SendReceipt{{MessageID: msgs[0].ID}}, nil
	}}
	return b, entered, release
}

func TestClientInflightBound(t *testing.T) {
	b, entered, release := blockingSends()
	cfg := application.DefaultTrafficConfig()
	cfg.MaxInflightPerClient = 1
	ts := startTrafficServer(t, b, application.NewTraffic(cfg, ports.SystemClock{}))
	done := make(chan *v2.SendMessageResponse)
	go func() {
		resp, _ := ts.client.SendMessage(clientCtx(t.Context(), "c1"), sendRequest("t"))
		done <- resp
	}()
	<-entered
	resp, err := ts.client.SendMessage(clientCtx(t.Context(), "c1"), sendRequest("t"))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("second send of c1: %v, %v", resp.GetStatus(), err)
	}
	go func() {
		resp, _ := ts.client.SendMessage(clientCtx(t.Context(), "c2"), sendRequest("t"))
		done <- resp
	}()
	<-entered // c2's send reached the broker beside c1's
	close(release)
	for range 2 {
		if r := <-done; r.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("held send: %v", r.GetStatus())
		}
	}
	if r, err := ts.client.SendMessage(clientCtx(t.Context(), "c1"), sendRequest("t")); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("c1 after its send ended: %v, %v", r.GetStatus(), err)
	}
}

func TestInflightBytesBudget(t *testing.T) {
	b, entered, release := blockingSends()
	cfg := application.DefaultTrafficConfig()
	cfg.MaxInflightBytes = 8 // one "hello" (5 bytes) at a time
	tr := application.NewTraffic(cfg, ports.SystemClock{})
	ts := startTrafficServer(t, b, tr)
	done := make(chan *v2.SendMessageResponse)
	go func() {
		resp, _ := ts.client.SendMessage(clientCtx(t.Context(), "c1"), sendRequest("t"))
		done <- resp
	}()
	<-entered
	if got := tr.InflightBytes(); got != 5 {
		t.Fatalf("in flight %d bytes, want 5", got)
	}
	resp, err := ts.client.SendMessage(clientCtx(t.Context(), "c2"), sendRequest("t"))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("send beyond the budget: %v, %v", resp.GetStatus(), err)
	}
	close(release)
	if r := <-done; r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("held send: %v", r.GetStatus())
	}
	if got := tr.InflightBytes(); got != 0 {
		t.Fatalf("in flight %d bytes after the sends, want 0", got)
	}
	if r, err := ts.client.SendMessage(clientCtx(t.Context(), "c2"), sendRequest("t")); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send after the budget freed: %v, %v", r.GetStatus(), err)
	}
}

func TestRateLimitedSendAndReceive(t *testing.T) {
	popped := 0
	b := &fakeBroker{pop: func(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
		popped++
		msgs := make([]domain.StoredMessage, req.MaxMessages)
		for i := range msgs {
			msgs[i] = domain.StoredMessage{Message: domain.Message{Topic: "t", ID: "01", Body: []byte("x")}, ReceiptHandle: "h"}
		}
		return msgs, nil
	}}
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	if _, err := tr.SetRules(application.TrafficRules{
		Clients: application.Limits{Send: application.FlowLimits{Messages: application.Rate{PerSecond: 0.001, Burst: 2}}},
		Groups:  application.ScopeRules{Named: map[string]application.Limits{"g": {Receive: application.FlowLimits{Messages: application.Rate{PerSecond: 0.001, Burst: 3}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	ts := startTrafficServer(t, b, tr)
	for i := range 2 {
		if r, err := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("t")); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send %d: %v, %v", i, r.GetStatus(), err)
		}
	}
	r, err := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("t"))
	if err != nil || r.GetStatus().GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("third send: %v, %v", r.GetStatus(), err)
	}
	if r, err := ts.client.SendMessage(clientCtx(t.Context(), "p2"), sendRequest("t")); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("another producer: %v, %v", r.GetStatus(), err)
	}

	subscribe(t, ts, "c1", v2.ClientType_SIMPLE_CONSUMER, "g", "t")
	req := receiveRequest("g", "t")
	req.BatchSize = 32
	req.LongPollingTimeout = durationpb.New(200 * time.Millisecond)
	stream, err := ts.client.ReceiveMessage(clientCtx(t.Context(), "c1"), req)
	if err != nil {
		t.Fatal(err)
	}
	// The batch is cut to the group's three tokens.
	if st, msgs := receiveAll(t, stream); st.GetCode() != v2.Code_OK || len(msgs) != 3 {
		t.Fatalf("first receive: %v, %d messages; want 3", st, len(msgs))
	}
	stream, err = ts.client.ReceiveMessage(clientCtx(t.Context(), "c1"), req)
	if err != nil {
		t.Fatal(err)
	}
	// Out of tokens for far longer than the poll: held for the poll, then
	// throttled, without reaching the broker.
	if st, msgs := receiveAll(t, stream); st.GetCode() != v2.Code_TOO_MANY_REQUESTS || len(msgs) != 0 {
		t.Fatalf("second receive: %v, %d messages; want TOO_MANY_REQUESTS", st, len(msgs))
	}
	if popped != 1 {
		t.Fatalf("broker popped %d times, want 1", popped)
	}
}

func TestThrottledSendHeldWithoutItsSlots(t *testing.T) {
	// The other producer's sends below are refused too while they meet the
	// slot, and their refusals are held as well (at most half of their
	// 400 ms deadline): the hold under test is long enough for several of
	// them, however slow the machine.
	const hold = 3 * time.Second
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	if _, err := tr.SetRules(application.TrafficRules{
		Topics: application.ScopeRules{Named: map[string]application.Limits{"limited": {Send: application.FlowLimits{Messages: application.Rate{PerSecond: 0.001, Burst: 1}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	ts := startTrafficServer(t, &fakeBroker{}, tr, func(c *Config, _ *application.Config) {
		c.ThrottledSendHold = hold
		c.MaxInflightPerKind = 1 // a held refusal keeping its slot would refuse every other send
	})
	if r, err := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("limited")); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("first send: %v, %v", r.GetStatus(), err)
	}
	type answer struct {
		code v2.Code
		took time.Duration
	}
	refused := make(chan answer, 1)
	go func() {
		start := time.Now()
		r, _ := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("limited"))
		refused <- answer{r.GetStatus().GetCode(), time.Since(start)}
	}()
	throttled := func() uint64 {
		var n uint64
		for _, c := range tr.Stats().Throttled {
			n += c.Count
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for throttled() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the second send was not refused within 10 s")
		}
		runtime.Gosched()
	}
	// The refusal is being held: its slot is free, so a send of another
	// producer is served (one may still meet the slot for a moment).
	served := false
	for {
		select {
		case a := <-refused:
			if a.code != v2.Code_TOO_MANY_REQUESTS {
				t.Fatalf("send over the limit: %v", a.code)
			}
			if a.took < hold {
				t.Fatalf("refusal answered after %v, before the %v hold", a.took, hold)
			}
			if !served {
				t.Fatal("no other send was served while the refusal was held: it kept its slot")
			}
			return
		default:
		}
		if served {
			continue
		}
		ctx, cancel := context.WithTimeout(clientCtx(t.Context(), "p2"), 400*time.Millisecond)
		r, err := ts.client.SendMessage(ctx, sendRequest("free"))
		cancel()
		switch {
		case err == nil && r.GetStatus().GetCode() == v2.Code_OK:
			served = true
		case err == nil && r.GetStatus().GetCode() == v2.Code_TOO_MANY_REQUESTS:
		case status.Code(err) == codes.DeadlineExceeded: // a slow machine: try again
		default:
			t.Fatalf("send of another producer: %v, %v", r.GetStatus(), err)
		}
	}
}

// A send whose handler panics gives its admission slot back: with one slot
// per kind, the next send is served.
func TestPanickingSendFreesItsSlot(t *testing.T) {
	var calls int
	b := &fakeBroker{send: func(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
		calls++
		if calls == 1 {
			panic("a bug in the broker port")
		}
		return []domain.SendReceipt{{MessageID: msgs[0].ID}}, nil
	}}
	ts := startTestServer(t, b, func(c *Config, _ *application.Config) { c.MaxInflightPerKind = 1 })
	if _, err := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("t")); status.Code(err) != codes.Internal {
		t.Fatalf("panicking send: %v", err)
	}
	if r, err := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("t")); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send after the panic: %v, %v", r.GetStatus(), err)
	}
}

// TestRateLimitedPull: a pull is a receive for the rate limits, so that a
// consumer group limited in messages per second cannot read past its limit
// by pulling instead of receiving. The batch is cut to the tokens left,
// and a pull with no token left is throttled without reaching the broker.
func TestRateLimitedPull(t *testing.T) {
	pulled := 0
	b := &fakeBroker{pull: func(ctx context.Context, req ports.PullRequest) (ports.PullResult, error) {
		pulled++
		msgs := make([]domain.StoredMessage, req.BatchSize)
		for i := range msgs {
			msgs[i] = domain.StoredMessage{Message: domain.Message{Topic: "t", ID: "01", Body: []byte("x")}, QueueOffset: req.Offset + int64(i)}
		}
		return ports.PullResult{Messages: msgs, NextOffset: req.Offset + int64(len(msgs)), MaxOffset: 1000}, nil
	}}
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	if _, err := tr.SetRules(application.TrafficRules{
		Groups: application.ScopeRules{Named: map[string]application.Limits{"g": {Receive: application.FlowLimits{Messages: application.Rate{PerSecond: 0.001, Burst: 3}}}}},
	}); err != nil {
		t.Fatal(err)
	}
	ts := startTrafficServer(t, b, tr)
	ctx, cancel := context.WithTimeout(clientCtx(t.Context(), "c1"), 20*time.Second)
	defer cancel()
	req := pullRequest(0)
	req.BatchSize = 32
	req.LongPollingTimeout = durationpb.New(200 * time.Millisecond)
	stream, err := ts.client.PullMessage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if st, next := pullAll(t, stream); st.GetCode() != v2.Code_OK || next != 3 {
		t.Fatalf("first pull: %v, next offset %d; want OK and 3 (the batch cut to the group's three tokens)", st, next)
	}
	req = pullRequest(3)
	req.LongPollingTimeout = durationpb.New(200 * time.Millisecond)
	if stream, err = ts.client.PullMessage(ctx, req); err != nil {
		t.Fatal(err)
	}
	if st, _ := pullAll(t, stream); st.GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("second pull: %v; want TOO_MANY_REQUESTS", st)
	}
	for _, c := range tr.Stats().Throttled {
		if c.Scope == "group" && c.Direction == application.DirectionReceive && c.Count != 1 {
			t.Fatalf("group receive throttles %d, want 1", c.Count)
		}
	}
	if pulled != 1 {
		t.Fatalf("broker pulled %d times, want 1", pulled)
	}
}

// TestPanickingTelemetryCommandFreesItsSlot: a Telemetry command that
// panics ends its stream with INTERNAL and gives its client-kind slot
// back, as a panicking unary request does; a leaked slot would count for
// ever, and once grpc.maxInflightPerKind of them leaked every settings
// command and heartbeat would be refused with "flow limit".
func TestPanickingTelemetryCommandFreesItsSlot(t *testing.T) {
	ts := startTestServer(t, &fakeBroker{}, func(c *Config, _ *application.Config) { c.MaxInflightPerKind = 1 })
	ctx, cancel := context.WithTimeout(clientCtx(t.Context(), "c1"), 10*time.Second)
	defer cancel()
	stream, err := ts.client.Telemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ct := v2.ClientType_SIMPLE_CONSUMER
	if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType: &ct,
		PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: &v2.Resource{Name: "panics"},
			Subscriptions: []*v2.SubscriptionEntry{{Topic: &v2.Resource{Name: "t"}, Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}}}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("panicking settings command: %v; want INTERNAL", err)
	}
	subscribe(t, ts, "c2", v2.ClientType_SIMPLE_CONSUMER, "g", "t")
}
