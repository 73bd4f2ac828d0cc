package grpc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
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

// TestThrottledSendHeldWithoutItsSlots: the answer to a send refused with
// TOO_MANY_REQUESTS (here a topic's rate limit) is held for
// grpc.throttledSendHold, and while it is held its admission slot is free:
// with one slot per kind, another producer's send is served meanwhile.
func TestThrottledSendHeldWithoutItsSlots(t *testing.T) {
	// limited serves a topic whose one token the first send takes: the
	// next send to it is refused.
	limited := func(t *testing.T, hold time.Duration) *testServer {
		t.Helper()
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
		return ts
	}
	type answer struct {
		r   *v2.SendMessageResponse
		err error
	}
	t.Run("without its slot", func(t *testing.T) {
		// Held for an hour: however slow the machine, the refusal is
		// still held when the other producer's send is served. Stopping
		// the server ends the hold. (A hold of seconds, with the other
		// send to be served within it, was a race with the machine's load.)
		ts := limited(t, time.Hour)
		refused := make(chan answer, 1)
		go func() {
			r, err := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("limited"))
			refused <- answer{r, err}
		}()
		waitFor(t, 10*time.Second, func() error {
			for _, g := range goroutines.Stacks() {
				if strings.Contains(g, "\ngithub.com/rmqproxy/rmqproxy/adapters/grpc.(*Service).holdAnswer(") {
					return nil
				}
			}
			return errors.New("the refusal of the second send is not held")
		})
		if n := ts.srv.svc.admit.inflight[kindProducer].Load(); n != 0 {
			t.Fatalf("%d producer requests admitted while only a refusal is held: it kept its slot", n)
		}
		ctx, cancel := context.WithTimeout(clientCtx(t.Context(), "p2"), time.Minute)
		r, err := ts.client.SendMessage(ctx, sendRequest("free"))
		cancel()
		if err != nil || r.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send of another producer while the refusal is held: %v, %v", r.GetStatus(), err)
		}
		select {
		case a := <-refused:
			t.Fatalf("the refusal was answered while held for an hour: %v, %v", a.r.GetStatus(), a.err)
		default:
		}
		sctx, stop := context.WithTimeout(context.Background(), time.Minute)
		defer stop()
		_ = ts.srv.Stop(sctx)
		select {
		case a := <-refused:
			if a.err != nil || a.r.GetStatus().GetCode() != v2.Code_TOO_MANY_REQUESTS {
				t.Fatalf("send over the limit: %v, %v; want TOO_MANY_REQUESTS", a.r.GetStatus(), a.err)
			}
		case <-sctx.Done():
			t.Fatal("the held refusal was not answered when the server stopped")
		}
	})
	t.Run("for the hold", func(t *testing.T) {
		const hold = 100 * time.Millisecond
		ts := limited(t, hold)
		start := time.Now()
		r, err := ts.client.SendMessage(clientCtx(t.Context(), "p1"), sendRequest("limited"))
		if took := time.Since(start); err != nil || r.GetStatus().GetCode() != v2.Code_TOO_MANY_REQUESTS || took < hold {
			t.Fatalf("send over the limit: %v, %v after %v; want TOO_MANY_REQUESTS after the %v hold", r.GetStatus(), err, took, hold)
		}
	})
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

// TestClientBudgetNeverRefusesFinishingRequests: a consumer whose
// Telemetry stream and long polls fill traffic.maxInflightPerClient (a
// push consumer long-polls every queue it is assigned) must still ack,
// change invisible times, dead-letter, end transactions and heartbeat:
// refused with TOO_MANY_REQUESTS, its acks failed while its polls waited
// (the official Go push consumer retried them; messages whose acks kept
// failing came again), and its heartbeats could let its session expire.
// They count apart (application.TestTrafficFinishingRequestsCountApart);
// new work (another receive, a send) is still refused.
func TestClientBudgetNeverRefusesFinishingRequests(t *testing.T) {
	polling := make(chan struct{}, 1)
	b := &fakeBroker{pop: func(ctx context.Context, _ ports.PopRequest) ([]domain.StoredMessage, error) {
		polling <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	cfg := application.DefaultTrafficConfig()
	cfg.MaxInflightPerClient = 2 // the Telemetry stream and one long poll
	ts := startTrafficServer(t, b, application.NewTraffic(cfg, ports.SystemClock{}))
	subscribe(t, ts, "c1", v2.ClientType_SIMPLE_CONSUMER, "g", "t")
	ctx, cancel := context.WithCancel(clientCtx(t.Context(), "c1"))
	defer cancel()
	first, err := ts.client.ReceiveMessage(ctx, receiveRequest("g", "t"))
	if err != nil {
		t.Fatal(err)
	}
	<-polling
	c1 := clientCtx(t.Context(), "c1")
	second, err := ts.client.ReceiveMessage(c1, receiveRequest("g", "t"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := receiveAll(t, second); st.GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("a receive beyond the client's budget: %v, want TOO_MANY_REQUESTS", st)
	}
	if r, err := ts.client.SendMessage(c1, sendRequest("t")); err != nil || r.GetStatus().GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("a send beyond the client's budget: %v, %v; want TOO_MANY_REQUESTS", r.GetStatus(), err)
	}
	res := func(name string) *v2.Resource { return &v2.Resource{Name: name} }
	calls := []struct {
		name string
		call func() (*v2.Status, error)
	}{
		{"ack", func() (*v2.Status, error) {
			r, err := ts.client.AckMessage(c1, &v2.AckMessageRequest{Group: res("g"), Topic: res("t"),
				Entries: []*v2.AckMessageEntry{{MessageId: "01", ReceiptHandle: "garbage"}}})
			return r.GetStatus(), err
		}},
		{"change invisible duration", func() (*v2.Status, error) {
			r, err := ts.client.ChangeInvisibleDuration(c1, &v2.ChangeInvisibleDurationRequest{Group: res("g"), Topic: res("t"),
				ReceiptHandle: "garbage", InvisibleDuration: durationpb.New(time.Minute), MessageId: "01"})
			return r.GetStatus(), err
		}},
		{"forward to the dead-letter queue", func() (*v2.Status, error) {
			r, err := ts.client.ForwardMessageToDeadLetterQueue(c1, &v2.ForwardMessageToDeadLetterQueueRequest{Group: res("g"), Topic: res("t"),
				ReceiptHandle: "garbage", MessageId: "01", DeliveryAttempt: 1, MaxDeliveryAttempts: 16})
			return r.GetStatus(), err
		}},
		{"end transaction", func() (*v2.Status, error) {
			r, err := ts.client.EndTransaction(c1, &v2.EndTransactionRequest{Topic: res("t"), MessageId: "01", TransactionId: "tx",
				Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT})
			return r.GetStatus(), err
		}},
		{"heartbeat", func() (*v2.Status, error) {
			r, err := ts.client.Heartbeat(c1, &v2.HeartbeatRequest{Group: res("g"), ClientType: v2.ClientType_SIMPLE_CONSUMER})
			return r.GetStatus(), err
		}},
	}
	for _, c := range calls {
		st, err := c.call()
		if err != nil || st.GetCode() == v2.Code_TOO_MANY_REQUESTS {
			t.Errorf("%s while the client's polls fill its budget: %v, %v; want it served", c.name, st, err)
		}
	}
	cancel()
	_, _ = first.Recv()
}
