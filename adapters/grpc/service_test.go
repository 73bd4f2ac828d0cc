package grpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/goroutines"
)

// fakeBroker is the broker side of the gRPC service's unit tests. Methods a
// test does not set panic through the embedded nil interface.
type fakeBroker struct {
	ports.Broker
	mu    sync.Mutex
	sent  []domain.Message
	send  func(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error)
	pop   func(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error)
	pull  func(ctx context.Context, req ports.PullRequest) (ports.PullResult, error) // set: the broker serves pulls
	group domain.ConsumerGroup

	checkHandler ports.TransactionCheckHandler
}

// fakeOffsets serves pulls with the fake broker's pull; the other methods
// panic through the embedded nil interface.
type fakeOffsets struct {
	b *fakeBroker
}

func (o fakeOffsets) Pull(ctx context.Context, req ports.PullRequest) (ports.PullResult, error) {
	return o.b.pull(ctx, req)
}

func (fakeOffsets) UpdateOffset(context.Context, string, domain.QueueRef, int64) error {
	panic("not used")
}

func (fakeOffsets) GetOffset(context.Context, string, domain.QueueRef) (int64, error) {
	panic("not used")
}

func (fakeOffsets) QueryOffset(context.Context, domain.QueueRef, ports.OffsetPolicy, time.Time) (int64, error) {
	panic("not used")
}

func (b *fakeBroker) Route(_ context.Context, topic string) (ports.Route, error) {
	if topic == "missing" {
		return ports.Route{}, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", topic)
	}
	return ports.Route{
		Topic:  domain.Topic{Name: topic, Type: domain.MessageTypeNormal},
		Queues: []ports.RouteQueue{{BrokerName: "b", QueueID: 0, Permission: domain.PermReadWrite}},
	}, nil
}

func (b *fakeBroker) Send(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
	if b.send != nil {
		return b.send(ctx, q, msgs)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]domain.SendReceipt, len(msgs))
	for i, m := range msgs {
		b.sent = append(b.sent, m)
		out[i] = domain.SendReceipt{MessageID: m.ID, QueueID: q.QueueID, QueueOffset: int64(len(b.sent) - 1)}
	}
	return out, nil
}

func (b *fakeBroker) Pop(ctx context.Context, req ports.PopRequest) ([]domain.StoredMessage, error) {
	if b.pop != nil {
		return b.pop(ctx, req)
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

func (b *fakeBroker) EndTransaction(context.Context, ports.EndTransactionRequest) error { return nil }

func (b *fakeBroker) SetTransactionCheckHandler(h ports.TransactionCheckHandler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checkHandler = h
}

func (b *fakeBroker) handler() ports.TransactionCheckHandler {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checkHandler
}

func (b *fakeBroker) Topic(_ context.Context, name string) (domain.Topic, error) {
	return domain.Topic{Name: name, Type: domain.MessageTypeNormal}, nil
}

func (b *fakeBroker) ConsumerGroup(_ context.Context, name string) (domain.ConsumerGroup, error) {
	if name == "panics" {
		panic("a bug in the metadata port")
	}
	g := b.group
	if g.Name == "" {
		g = domain.NewConsumerGroup(name)
	}
	return g, nil
}

// recordingHandler keeps log records so tests can check levels.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// contains reports whether a record's message contains text.
func (h *recordingHandler) contains(text string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if strings.Contains(r.Message, text) {
			return true
		}
	}
	return false
}

// errors returns the messages of the Error-level records.
func (h *recordingHandler) errors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		if r.Level >= slog.LevelError {
			out = append(out, r.Message)
		}
	}
	return out
}

type testServer struct {
	lis      *bufconn.Listener
	client   v2.MessagingServiceClient
	app      *application.Messaging
	sessions *application.Sessions
	logs     *recordingHandler
	srv      *Server
}

// startTestServer serves the MessagingService with cfg over an in-memory
// listener, backed by b, and stops it when the test ends.
func startTestServer(t *testing.T, b *fakeBroker, edit ...func(*Config, *application.Config)) *testServer {
	t.Helper()
	return startTrafficServer(t, b, nil, edit...)
}

// startTrafficServer is startTestServer with traffic governance tr (nil:
// none).
func startTrafficServer(t *testing.T, b *fakeBroker, tr *application.Traffic, edit ...func(*Config, *application.Config)) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TLS.Mode = TLSDisabled
	acfg := application.DefaultConfig()
	acfg.Consumer.MinLongPolling = 100 * time.Millisecond
	for _, e := range edit {
		e(&cfg, &acfg)
	}
	logs := &recordingHandler{}
	log := slog.New(logs)
	clock := ports.SystemClock{}
	sessions := application.NewSessions(acfg, clock, log)
	renewer := application.NewRenewer(acfg, b, b, clock, log)
	var offsets ports.Offsets
	if b.pull != nil {
		offsets = fakeOffsets{b}
	}
	app := application.NewMessaging(application.MessagingParams{Config: acfg, Broker: b, Meta: b, Clock: clock, Log: log,
		Sessions: sessions, Renewer: renewer, Transactions: b, Traffic: tr, Offsets: offsets})
	runCtx, stopRun := context.WithCancel(context.Background())
	running := make(chan struct{})
	go func() { defer close(running); app.Run(runCtx) }()
	t.Cleanup(func() { stopRun(); <-running })
	svc := NewService(cfg, app, log)
	if tr != nil {
		svc.UseTraffic(tr)
	}
	srv, err := NewServer(cfg, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv.serve(tcpLikeListener{lis}, 8081)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	conn, err := grpclib.NewClient("passthrough:///bufnet",
		grpclib.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpclib.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testServer{lis: lis, client: v2.NewMessagingServiceClient(conn), app: app, sessions: sessions, logs: logs, srv: srv}
}

// tcpLikeListener gives each connection it accepts a remote address of its
// own, as over TCP: bufconn gives every connection the same one, and the
// server, which closes a stalled client's connection by its address
// (closeConn), would close them all.
type tcpLikeListener struct{ net.Listener }

// nextPort numbers the connections of tcpLikeListener.
var nextPort atomic.Int32

// addrConn is an in-memory connection with a remote address of its own.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

func (l tcpLikeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &addrConn{Conn: c, remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000 + int(nextPort.Add(1)%20000)}}, nil
}

// clientCtx carries the headers the official clients send.
func clientCtx(ctx context.Context, clientID string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-mq-client-id", clientID, "x-mq-language", "GO", "x-mq-client-version", "5.1.4")
}

func sendRequest(topic string) *v2.SendMessageRequest {
	return &v2.SendMessageRequest{Messages: []*v2.Message{{
		Topic: &v2.Resource{Name: topic},
		Body:  []byte("hello"),
		SystemProperties: &v2.SystemProperties{
			MessageId: "01000000000000000000000000000001", MessageType: v2.MessageType_NORMAL,
			BodyEncoding: v2.Encoding_IDENTITY, BornTimestamp: timestamppb.Now(), BornHost: "127.0.0.1",
		},
	}}}
}

func TestServiceSendMessage(t *testing.T) {
	b := &fakeBroker{}
	ts := startTestServer(t, b)
	ctx := clientCtx(t.Context(), "c1")
	resp, err := ts.client.SendMessage(ctx, sendRequest("t"))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK || len(resp.GetEntries()) != 1 {
		t.Fatalf("send: %v, %v", resp, err)
	}
	if len(b.sent) != 1 || string(b.sent[0].Body) != "hello" || b.sent[0].Topic != "t" {
		t.Fatalf("broker got %+v", b.sent)
	}
	cases := []struct {
		name string
		ctx  context.Context
		req  *v2.SendMessageRequest
		want v2.Code
	}{
		{"no client id", t.Context(), sendRequest("t"), v2.Code_CLIENT_ID_REQUIRED},
		{"bad topic", ctx, sendRequest("bad topic"), v2.Code_ILLEGAL_TOPIC},
		{"unknown topic", ctx, sendRequest("missing"), v2.Code_TOPIC_NOT_FOUND},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := ts.client.SendMessage(c.ctx, c.req)
			if err != nil || resp.GetStatus().GetCode() != c.want {
				t.Fatalf("got %v, %v; want %v", resp.GetStatus(), err, c.want)
			}
		})
	}
	if e := ts.logs.errors(); len(e) != 0 {
		t.Fatalf("error logs: %v", e)
	}
}

func TestServiceInternalErrorHasAnID(t *testing.T) {
	b := &fakeBroker{send: func(context.Context, domain.QueueRef, []domain.Message) ([]domain.SendReceipt, error) {
		return nil, errors.New("disk on fire at /secret")
	}}
	ts := startTestServer(t, b)
	resp, err := ts.client.SendMessage(clientCtx(t.Context(), "c1"), sendRequest("t"))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_INTERNAL_SERVER_ERROR || strings.Contains(resp.GetStatus().GetMessage(), "secret") {
		t.Fatalf("got %v, %v", resp.GetStatus(), err)
	}
	if e := ts.logs.errors(); len(e) != 1 {
		t.Fatalf("want one error log, got %v", e)
	}
}

// TestServiceClientCancelIsNotAnError cancels sends and receives while the
// broker works on them: the client sees CANCELLED, and the server logs no
// error (it is not a server fault).
func TestServiceClientCancelIsNotAnError(t *testing.T) {
	entered := make(chan struct{}, 2)
	b := &fakeBroker{
		send: func(ctx context.Context, _ domain.QueueRef, _ []domain.Message) ([]domain.SendReceipt, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, fmt.Errorf("append: %w", ctx.Err())
		},
		pop: func(ctx context.Context, _ ports.PopRequest) ([]domain.StoredMessage, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return nil, fmt.Errorf("pop: %w", ctx.Err())
		},
	}
	ts := startTestServer(t, b)
	ctx, cancel := context.WithCancel(clientCtx(t.Context(), "c1"))
	go func() { <-entered; cancel() }()
	_, err := ts.client.SendMessage(ctx, sendRequest("t"))
	if status.Code(err) != codes.Canceled {
		t.Fatalf("send: %v", err)
	}

	subscribe(t, ts, "c2", v2.ClientType_SIMPLE_CONSUMER, "g", "t")
	ctx, cancel = context.WithCancel(clientCtx(t.Context(), "c2"))
	defer cancel()
	stream, err := ts.client.ReceiveMessage(ctx, receiveRequest("g", "t"))
	if err != nil {
		t.Fatal(err)
	}
	<-entered
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("receive: %v", err)
	}
	// The handlers finish after the client saw the cancellation; stopping
	// the server waits for them.
	stopCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = ts.srv.Stop(stopCtx)
	if e := ts.logs.errors(); len(e) != 0 {
		t.Fatalf("error logs for a cancelled request: %v", e)
	}
}

func subscribe(t *testing.T, ts *testServer, clientID string, ct v2.ClientType, group, topic string) v2.MessagingService_TelemetryClient {
	t.Helper()
	ctx, cancel := context.WithCancel(clientCtx(context.Background(), clientID))
	t.Cleanup(cancel)
	stream, err := ts.client.Telemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType:     &ct,
		RequestTimeout: durationpb.New(3 * time.Second),
		PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{
			Group:         &v2.Resource{Name: group},
			Subscriptions: []*v2.SubscriptionEntry{{Topic: &v2.Resource{Name: topic}, Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}},
		}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := stream.Recv()
	if err != nil || reply.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("settings reply: %v, %v", reply, err)
	}
	return stream
}

func receiveRequest(group, topic string) *v2.ReceiveMessageRequest {
	return &v2.ReceiveMessageRequest{
		Group:             &v2.Resource{Name: group},
		MessageQueue:      &v2.MessageQueue{Topic: &v2.Resource{Name: topic}, Id: -1, Broker: &v2.Broker{Name: "b"}},
		FilterExpression:  &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"},
		BatchSize:         1,
		InvisibleDuration: durationpb.New(30 * time.Second),
	}
}

// receiveAll reads a ReceiveMessage stream to its end.
func receiveAll(t *testing.T, stream v2.MessagingService_ReceiveMessageClient) (*v2.Status, []*v2.Message) {
	t.Helper()
	var st *v2.Status
	var msgs []*v2.Message
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return st, msgs
		}
		if err != nil {
			t.Fatalf("receive stream: %v", err)
		}
		switch c := r.GetContent().(type) {
		case *v2.ReceiveMessageResponse_Status:
			st = c.Status
		case *v2.ReceiveMessageResponse_Message:
			msgs = append(msgs, c.Message)
		}
	}
}

func TestServiceAdmissionLimit(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	b := &fakeBroker{send: func(ctx context.Context, q domain.QueueRef, msgs []domain.Message) ([]domain.SendReceipt, error) {
		entered <- struct{}{}
		<-release
		return []domain.SendReceipt{{MessageID: msgs[0].ID}}, nil
	}}
	ts := startTestServer(t, b, func(c *Config, _ *application.Config) { c.MaxInflightPerKind = 1 })
	ctx := clientCtx(t.Context(), "c1")
	done := make(chan *v2.SendMessageResponse)
	go func() {
		resp, _ := ts.client.SendMessage(ctx, sendRequest("t"))
		done <- resp
	}()
	<-entered
	resp, err := ts.client.SendMessage(ctx, sendRequest("t"))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("second send: %v, %v", resp.GetStatus(), err)
	}
	// Another kind is not affected.
	if r, err := ts.client.QueryRoute(ctx, &v2.QueryRouteRequest{Topic: &v2.Resource{Name: "t"}}); err != nil || r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("route: %v, %v", r.GetStatus(), err)
	}
	close(release)
	if r := <-done; r.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("first send: %v", r.GetStatus())
	}
}

func TestReflectionIsASetting(t *testing.T) {
	for _, on := range []bool{true, false} {
		ts := startTestServer(t, &fakeBroker{}, func(c *Config, _ *application.Config) { c.Reflection = on })
		_, served := ts.srv.srv.GetServiceInfo()["grpc.reflection.v1.ServerReflection"]
		if served != on {
			t.Errorf("grpc.reflection %v: reflection served %v", on, served)
		}
	}
}

// smallWindowTelemetry opens a Telemetry stream of clientID on a connection
// of its own with a fixed 64 KiB flow-control window. The stream ends after
// a minute, so that a test waiting on it ends by itself, or when end is
// called.
func smallWindowTelemetry(t *testing.T, ts *testServer, clientID string) (stream v2.MessagingService_TelemetryClient, end func()) {
	t.Helper()
	return windowedTelemetry(t, ts, clientID, 64<<10)
}

// windowedTelemetry is smallWindowTelemetry with a fixed flow-control
// window of window bytes.
func windowedTelemetry(t *testing.T, ts *testServer, clientID string, window int32) (stream v2.MessagingService_TelemetryClient, end func()) {
	t.Helper()
	conn, err := grpclib.NewClient("passthrough:///bufnet",
		grpclib.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ts.lis.DialContext(ctx) }),
		grpclib.WithTransportCredentials(insecure.NewCredentials()),
		grpclib.WithInitialWindowSize(window), grpclib.WithInitialConnWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(clientCtx(context.Background(), clientID), time.Minute)
	t.Cleanup(cancel)
	stream, err = v2.NewMessagingServiceClient(conn).Telemetry(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream, cancel
}

// producerStream opens a Telemetry stream on its own connection (with a
// fixed 64 KiB flow-control window) and declares a producer of topic.
func producerStream(t *testing.T, ts *testServer, clientID, topic string) v2.MessagingService_TelemetryClient {
	t.Helper()
	return windowedProducerStream(t, ts, clientID, topic, 64<<10)
}

// windowedProducerStream is producerStream with a fixed flow-control
// window of window bytes.
func windowedProducerStream(t *testing.T, ts *testServer, clientID, topic string, window int32) v2.MessagingService_TelemetryClient {
	t.Helper()
	stream, _ := windowedTelemetry(t, ts, clientID, window)
	ct := v2.ClientType_PRODUCER
	err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType: &ct, RequestTimeout: durationpb.New(3 * time.Second),
		PubSub: &v2.Settings_Publishing{Publishing: &v2.Publishing{Topics: []*v2.Resource{{Name: topic}}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if reply, err := stream.Recv(); err != nil || reply.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("settings reply: %v, %v", reply, err)
	}
	return stream
}

// TestCheckBacksPassOverAStalledClient: of two producers of a topic, one
// never reads its Telemetry stream (its flow-control window fills with a
// check-back). Every check-back still reaches the other producer, except
// the few the stalled one's bounded queue took before it counted as
// stalled, and the broker's calls never block.
//
// Nothing here waits on this test's reads or on the machine's speed: the
// stalled producer gets the one large check-back (four times its window)
// while it is the only producer, the healthy one then gets small ones on a
// connection whose window holds them all, so that no write to it waits
// for its reader (one that waited past stalledAfter on a busy machine made
// it count as stalled and its check-backs were dropped: "healthy producer
// after 153 check-backs"), and the wait for room in a full queue has no end
// before the test's (CheckSendTimeout an hour).
func TestCheckBacksPassOverAStalledClient(t *testing.T) {
	b := &fakeBroker{}
	ts := startTestServer(t, b, func(_ *Config, a *application.Config) { a.CheckSendTimeout = time.Hour })
	producerStream(t, ts, "stalled", "tx") // never read again
	const checks = 200
	h := b.handler()
	check := func(i int, body []byte) ports.TransactionCheck {
		msg := domain.StoredMessage{Message: domain.Message{Topic: "tx", ID: fmt.Sprintf("m%03d", i), Body: body}, TransactionID: fmt.Sprintf("tx%03d", i)}
		return ports.TransactionCheck{Message: msg, Checks: 1}
	}
	// The large one fills the stalled producer's window (gRPC takes it in
	// its buffers); the write of the next one waits for good.
	h(context.Background(), check(0, bytes.Repeat([]byte("x"), 256<<10)))
	h(context.Background(), check(1, []byte("x")))
	waitFor(t, 10*time.Second, func() error {
		for _, g := range goroutines.Stacks() {
			if strings.Contains(g, "\ngithub.com/rmqproxy/rmqproxy/adapters/grpc.(*telemetryChannel).write(") {
				return nil
			}
		}
		return errors.New("no write to the stalled producer waits")
	})
	healthy := windowedProducerStream(t, ts, "healthy", "tx", 16<<20)
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		for i := 2; i < checks; i++ {
			h(context.Background(), check(i, []byte("x")))
		}
	}()
	got := map[string]bool{}
	// The stalled client took the message its stream is stuck on and the
	// one its stream's buffers hold, and takes at most its queue besides.
	for len(got) < checks-telemetryQueueLength-2 {
		cmd, err := healthy.Recv()
		if err != nil {
			t.Fatalf("healthy producer after %d check-backs: %v", len(got), err)
		}
		if rc := cmd.GetRecoverOrphanedTransactionCommand(); rc != nil {
			got[rc.GetTransactionId()] = true
		}
	}
	<-relayed
	if got["tx000"] || got["tx001"] {
		t.Error("the healthy producer got a check-back the stalled one had taken")
	}
	t.Logf("the healthy producer got %d of %d check-backs", len(got), checks)
}

// TestLongPollsCountInTheirOwnKind: a receive counts in admission for as
// long as it long-polls, in its own kind: a second receive beyond the limit
// gets TOO_MANY_REQUESTS, while acks (the consumer kind) still pass.
func TestLongPollsCountInTheirOwnKind(t *testing.T) {
	polling := make(chan struct{})
	b := &fakeBroker{pop: func(ctx context.Context, _ ports.PopRequest) ([]domain.StoredMessage, error) {
		close(polling)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ts := startTestServer(t, b, func(c *Config, _ *application.Config) { c.MaxInflightPerKind = 1 })
	subscribe(t, ts, "c1", v2.ClientType_SIMPLE_CONSUMER, "g", "t")
	ctx, cancel := context.WithCancel(clientCtx(t.Context(), "c1"))
	defer cancel()
	first, err := ts.client.ReceiveMessage(ctx, receiveRequest("g", "t"))
	if err != nil {
		t.Fatal(err)
	}
	<-polling
	second, err := ts.client.ReceiveMessage(clientCtx(t.Context(), "c1"), receiveRequest("g", "t"))
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := receiveAll(t, second); st.GetCode() != v2.Code_TOO_MANY_REQUESTS {
		t.Fatalf("second receive while one long-polls: %v", st)
	}
	resp, err := ts.client.AckMessage(clientCtx(t.Context(), "c1"), &v2.AckMessageRequest{Group: &v2.Resource{Name: "g"}, Topic: &v2.Resource{Name: "t"},
		Entries: []*v2.AckMessageEntry{{MessageId: "01", ReceiptHandle: "garbage"}}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_INVALID_RECEIPT_HANDLE {
		t.Fatalf("ack while a receive long-polls: %v, %v", resp.GetStatus(), err)
	}
	cancel()
	_, _ = first.Recv()
}
