package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// RawClient is a MessagingService stub built from the protocol types of the
// official Go client module, for what the client's API does not expose
// (batch sends, malformed requests). It dials TLS like the clients do.
type RawClient struct {
	v2.MessagingServiceClient
	clientID string
}

var rawSeq atomic.Int64

func NewRawClient(t testing.TB, p *Proxy) *RawClient {
	t.Helper()
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &RawClient{MessagingServiceClient: v2.NewMessagingServiceClient(conn), clientID: fmt.Sprintf("raw-client-%d", rawSeq.Add(1))}
}

// NewRawClientAs is NewRawClient on a connection of its own that sends
// the client id of other, as a second process using the same id would.
func NewRawClientAs(t testing.TB, p *Proxy, other *RawClient) *RawClient {
	t.Helper()
	c := NewRawClient(t, p)
	c.clientID = other.clientID
	return c
}

// ID is the client id the raw client sends.
func (c *RawClient) ID() string { return c.clientID }

// ctx returns a request context carrying the headers the official clients send.
func (c *RawClient) Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c.WithHeaders(ctx)
}

// WithHeaders returns ctx carrying the headers the official Go client
// sends, with this client's id.
func (c *RawClient) WithHeaders(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx,
		"x-mq-client-id", c.clientID, "x-mq-language", "GO", "x-mq-client-version", "5.1.4", "x-mq-protocol", "v2")
}

// NewMessageID returns a unique id in the v1 layout the clients use.
func NewMessageID() string {
	return fmt.Sprintf("01%032X", rawSeq.Add(1))[:34]
}

func RawMessage(topic string, body []byte, tag string) *v2.Message {
	sp := &v2.SystemProperties{
		MessageId:     NewMessageID(),
		BodyEncoding:  v2.Encoding_IDENTITY,
		MessageType:   v2.MessageType_NORMAL,
		BornTimestamp: timestamppb.Now(),
		BornHost:      "127.0.0.1",
	}
	if tag != "" {
		sp.Tag = &tag
	}
	return &v2.Message{Topic: &v2.Resource{Name: topic}, Body: body, SystemProperties: sp, UserProperties: map[string]string{}}
}

// subscribe opens a Telemetry stream and sends consumer settings, as the
// clients do before receiving.
func (c *RawClient) Subscribe(t testing.TB, group, topic string) {
	t.Helper()
	c.SubscribeAs(t, v2.ClientType_SIMPLE_CONSUMER, group, topic)
}

// SubscribeAs is Subscribe for a given client type (e.g. a push consumer).
func (c *RawClient) SubscribeAs(t testing.TB, ct v2.ClientType, group, topic string) {
	t.Helper()
	Claim(t, "consumer group", group)
	stream, err := c.Telemetry(c.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	SendSettings(t, stream, ct, group, topic)
}

// SendN sends n one-message requests to topic (bodies "m0", "m1", ...)
// and fails the test unless each is answered OK.
func (c *RawClient) SendN(t testing.TB, topic string, n int) {
	t.Helper()
	for i := range n {
		resp, err := c.SendMessage(c.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{RawMessage(topic, []byte(fmt.Sprint("m", i)), "")}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send %d to %s: %v %v", i, topic, resp, err)
		}
	}
}

// ReceiveN receives from group and topic, asking for at most the
// messages still missing each time, until n have come (within timeout),
// and returns them. Each receive's messages stay invisible for invisible.
func (c *RawClient) ReceiveN(t testing.TB, group, topic string, n int, invisible, timeout time.Duration) []*v2.Message {
	t.Helper()
	var got []*v2.Message
	WaitFor(t, timeout, func() error {
		st, msgs := c.Receive(t, ReceiveRequest(group, topic, int32(n-len(got)), invisible))
		got = append(got, msgs...)
		if len(got) < n {
			return fmt.Errorf("received %d of %d (last status %v)", len(got), n, st)
		}
		return nil
	})
	return got
}

// Receive reads one ReceiveMessage stream to its end.
func (c *RawClient) Receive(t testing.TB, req *v2.ReceiveMessageRequest) (*v2.Status, []*v2.Message) {
	t.Helper()
	st, msgs, err := c.ReceiveWith(c.Ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	return st, msgs
}

// ReceiveAnswered is Receive for a check that nothing is delivered (or
// what is): it returns the messages of a receive the proxy answered, with
// messages or with MESSAGE_NOT_FOUND, and fails t unless one was answered
// so within receiveAnsweredWithin (a receive answered otherwise, or whose
// stream broke, saw nothing and would pass without looking; it is
// retried). See [ReceiveAnswered] for the official client's consumer.
func (c *RawClient) ReceiveAnswered(t testing.TB, req *v2.ReceiveMessageRequest) []*v2.Message {
	t.Helper()
	var msgs []*v2.Message
	err := waitfor.Poll(receiveAnsweredWithin, 100*time.Millisecond, func() error {
		st, got, err := c.ReceiveWith(c.Ctx(t), req)
		switch {
		case err != nil:
			return err
		case st.GetCode() == v2.Code_OK || st.GetCode() == v2.Code_MESSAGE_NOT_FOUND:
			msgs = got
			return nil
		}
		return fmt.Errorf("receive answered %v", st)
	})
	if err != nil {
		t.Fatalf("no receive was answered: %v", err)
	}
	return msgs
}

// ReceiveWith is Receive under ctx (which must carry the client's headers,
// see WithHeaders), returning an error when the call cannot start; a stream
// that breaks ends the reading (the status is then nil when none came).
func (c *RawClient) ReceiveWith(ctx context.Context, req *v2.ReceiveMessageRequest) (*v2.Status, []*v2.Message, error) {
	stream, err := c.ReceiveMessage(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var st *v2.Status
	var msgs []*v2.Message
	for {
		r, err := stream.Recv()
		if err != nil {
			break
		}
		switch x := r.Content.(type) {
		case *v2.ReceiveMessageResponse_Status:
			st = x.Status
		case *v2.ReceiveMessageResponse_Message:
			msgs = append(msgs, x.Message)
		}
	}
	return st, msgs, nil
}

// ReadPull reads a PullMessage stream to its end: the status (nil when
// none came), the messages and the next offset (-1 when none came). A
// stream that breaks ends the reading.
func ReadPull(stream v2.MessagingService_PullMessageClient) (*v2.Status, []*v2.Message, int64) {
	var st *v2.Status
	var msgs []*v2.Message
	next := int64(-1)
	for {
		r, err := stream.Recv()
		if err != nil {
			return st, msgs, next
		}
		switch x := r.Content.(type) {
		case *v2.PullMessageResponse_Status:
			st = x.Status
		case *v2.PullMessageResponse_Message:
			msgs = append(msgs, x.Message)
		case *v2.PullMessageResponse_NextOffset:
			next = x.NextOffset
		}
	}
}

func ReceiveRequest(group, topic string, batch int32, invisible time.Duration) *v2.ReceiveMessageRequest {
	return &v2.ReceiveMessageRequest{
		Group:              &v2.Resource{Name: group},
		MessageQueue:       &v2.MessageQueue{Topic: &v2.Resource{Name: topic}, Id: -1},
		FilterExpression:   &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"},
		BatchSize:          batch,
		InvisibleDuration:  durationpb.New(invisible),
		LongPollingTimeout: durationpb.New(time.Second),
	}
}

func AckRequest(group, topic string, msgs []*v2.Message) *v2.AckMessageRequest {
	req := &v2.AckMessageRequest{Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: topic}}
	for _, m := range msgs {
		req.Entries = append(req.Entries, &v2.AckMessageEntry{MessageId: m.GetSystemProperties().GetMessageId(), ReceiptHandle: m.GetSystemProperties().GetReceiptHandle()})
	}
	return req
}

// WaitForRoute waits until the proxy routes a topic (QueryRoute answers
// OK): in cluster mode a topic a broker created on its own (a dead-letter
// topic) is routable once the broker has registered it with the
// NameServers, a moment after it exists.
func WaitForRoute(t testing.TB, p *Proxy, topic string) {
	t.Helper()
	raw := NewRawClient(t, p)
	WaitFor(t, 30*time.Second, func() error {
		resp, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
		if err != nil {
			return err
		}
		if resp.GetStatus().GetCode() != v2.Code_OK {
			return fmt.Errorf("route of %s: %v", topic, resp.GetStatus())
		}
		return nil
	})
}

// SendSettings sends a consumer's settings (group, a "*" subscription to
// topic) on a Telemetry stream and waits for the settings reply, as the
// official clients do when they start.
func SendSettings(t testing.TB, stream v2.MessagingService_TelemetryClient, ct v2.ClientType, group, topic string) {
	t.Helper()
	err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
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
	if err != nil || reply.GetSettings() == nil {
		t.Fatalf("settings reply: %v %v", reply, err)
	}
}

// SendProducerSettings sends a producer's settings for topic on stream and
// waits for their answer, skipping commands that come before it.
func SendProducerSettings(t testing.TB, stream v2.MessagingService_TelemetryClient, topic string) {
	t.Helper()
	ct := v2.ClientType_PRODUCER
	err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType:     &ct,
		RequestTimeout: durationpb.New(3 * time.Second),
		PubSub:         &v2.Settings_Publishing{Publishing: &v2.Publishing{Topics: []*v2.Resource{{Name: topic}}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		reply, err := stream.Recv()
		if err != nil {
			t.Fatalf("settings reply: %v", err)
		}
		if reply.GetSettings() != nil {
			return
		}
	}
}

// PadStoredProperties sets m's trace context (which nothing bounds but
// the properties' total) so that the properties string a RocketMQ broker
// stores for m, as a proxy sends it (domain.Message.StoredPropertiesLen),
// takes n bytes. m's other fields must be final.
func PadStoredProperties(m *v2.Message, n int) {
	sp := m.GetSystemProperties()
	dm := domain.Message{ID: sp.GetMessageId(), Topic: m.GetTopic().GetName(), Tag: sp.GetTag(), Keys: sp.GetKeys(),
		Group: sp.GetMessageGroup(), BornHost: sp.GetBornHost(), Properties: m.GetUserProperties(), TraceContext: "t",
		Transactional: sp.GetMessageType() == v2.MessageType_TRANSACTION, ReconsumeTimes: sp.GetDeliveryAttempt()}
	if sp.BornTimestamp != nil {
		dm.BornAt = sp.GetBornTimestamp().AsTime()
	}
	if sp.DeliveryTimestamp != nil {
		dm.DeliverAt = sp.GetDeliveryTimestamp().AsTime()
	}
	if sp.OrphanedTransactionRecoveryDuration != nil {
		dm.TransactionRecovery = sp.GetOrphanedTransactionRecoveryDuration().AsDuration()
	}
	tc := strings.Repeat("t", n-dm.StoredPropertiesLen()+1)
	sp.TraceContext = &tc
}
