package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// diffAnswer is what a client sees of one request: the gRPC status, the
// RocketMQ status of the response, and the other fields compared (note).
type diffAnswer struct {
	code codes.Code
	st   *v2.Status
	note string
}

// diffRow asks one request through a client of the proxy under test.
type diffRow func(raw *testenv.RawClient) diffAnswer

// diffEnv is what the rows of TestDifferentialAgainstApacheProxy share:
// the names they use and a way to a client of their own.
type diffEnv struct {
	t                                                          *testing.T
	broker                                                     string // the cluster broker's name
	normal, fifo, delay, txTopic, live, pull, group, fifoGroup string
	proxyOf                                                    map[*testenv.RawClient]*testenv.Proxy
	seq                                                        atomic.Int64
}

// fresh returns a new client of raw's proxy: one without settings, or for
// settings of its own.
func (e *diffEnv) fresh(raw *testenv.RawClient) *testenv.RawClient {
	return testenv.NewRawClient(e.t, e.proxyOf[raw])
}

// name returns a name no other row (nor the other target) uses.
func (e *diffEnv) name(base string) string {
	return testenv.Name(e.t, fmt.Sprintf("%s-%d", base, e.seq.Add(1)))
}

func res(name string) *v2.Resource { return &v2.Resource{Name: name} }

// reply is the answer of a unary call.
func reply[R interface{ GetStatus() *v2.Status }](resp R, err error) diffAnswer {
	if err != nil {
		return diffAnswer{code: status.Code(err)}
	}
	return diffAnswer{st: resp.GetStatus()}
}

// withSettings returns a new client of raw's proxy that sent s on a
// Telemetry stream (left open) and got a reply.
func (e *diffEnv) withSettings(raw *testenv.RawClient, s *v2.Settings) *testenv.RawClient {
	t := e.t
	c := e.fresh(raw)
	stream, err := c.Telemetry(c.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: s}}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetSettings() == nil {
		t.Fatalf("settings %v: %v %v", s, r, err)
	}
	return c
}

func producerSettings(topics ...string) *v2.Settings {
	p := &v2.Publishing{}
	for _, topic := range topics {
		p.Topics = append(p.Topics, res(topic))
	}
	return &v2.Settings{ClientType: v2.ClientType_PRODUCER.Enum(), RequestTimeout: durationpb.New(3 * time.Second),
		PubSub: &v2.Settings_Publishing{Publishing: p}}
}

func consumerSettings(ct v2.ClientType, group, topic string) *v2.Settings {
	return &v2.Settings{ClientType: ct.Enum(), RequestTimeout: durationpb.New(3 * time.Second),
		PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: res(group),
			Subscriptions: []*v2.SubscriptionEntry{{Topic: res(topic), Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}}}}}
}

// received returns a new client of raw's proxy, subscribed to e.live as a
// simple consumer of a group of its own, the group, and a message it
// received there (invisible for a minute).
func (e *diffEnv) received(raw *testenv.RawClient) (*testenv.RawClient, string, *v2.Message) {
	c, group := e.fresh(raw), e.name("g-diff-live")
	c.Subscribe(e.t, group, e.live)
	m := c.ReceiveN(e.t, group, e.live, 1, time.Minute, 30*time.Second)[0]
	return c, group, m
}

// halfSent sends a transactional message to e.txTopic through raw and
// returns its message and transaction ids.
func (e *diffEnv) halfSent(raw *testenv.RawClient) (string, string) {
	t := e.t
	m := testenv.RawMessage(e.txTopic, []byte("half"), "")
	m.SystemProperties.MessageType = v2.MessageType_TRANSACTION
	resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK || len(resp.GetEntries()) != 1 {
		t.Fatalf("half message: %v %v", resp, err)
	}
	return m.SystemProperties.MessageId, resp.GetEntries()[0].GetTransactionId()
}

// addRows adds the rows of the RPCs beyond routes, sends, receives and
// acks: QueryAssignment, Heartbeat, NotifyClientTermination, Telemetry
// settings, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue,
// RecallMessage and EndTransaction, with good and bad inputs.
func (e *diffEnv) addRows(ask map[string]diffRow) {
	t := e.t
	expired := "0 1700000000000 10000 0 0 " + e.broker + " 0 0 0"

	// QueryAssignment.
	assignment := func(topic, group string) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			resp, err := raw.QueryAssignment(raw.Ctx(t), &v2.QueryAssignmentRequest{Topic: res(topic), Group: res(group)})
			a := reply(resp, err)
			var shape []string
			for _, x := range resp.GetAssignments() {
				q := x.GetMessageQueue()
				shape = append(shape, fmt.Sprintf("%s/%s/%d/%v", q.GetTopic().GetName(), q.GetBroker().GetName(), q.GetId(), q.GetPermission()))
			}
			a.note = strings.Join(shape, " ")
			return a
		}
	}
	ask["assignment/unknown topic"] = assignment("diff-nope", e.group)
	ask["assignment/system topic"] = assignment("TBW102", e.group)
	ask["assignment/blank group"] = assignment(e.normal, "")
	ask["assignment/illegal group"] = assignment(e.normal, "a b")
	ask["assignment/system group"] = assignment(e.normal, "CID_RMQ_SYS_X")
	ask["assignment/normal topic"] = assignment(e.normal, e.group)
	ask["assignment/delay topic"] = assignment(e.delay, e.group)
	ask["assignment/fifo topic, orderly group"] = assignment(e.fifo, e.fifoGroup)
	ask["assignment/fifo topic, group not orderly"] = assignment(e.fifo, e.group)

	// Heartbeat, after the client's settings and before.
	heartbeat := func(s *v2.Settings, group string, ct v2.ClientType) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			c := e.fresh(raw)
			if s != nil {
				c = e.withSettings(raw, s)
			}
			req := &v2.HeartbeatRequest{ClientType: ct}
			if group != "" {
				req.Group = res(group)
			}
			resp, err := c.Heartbeat(c.Ctx(t), req)
			return reply(resp, err)
		}
	}
	consumerOf := func(ct v2.ClientType) *v2.Settings { return consumerSettings(ct, e.name("g-diff-hb"), e.normal) }
	ask["heartbeat/producer"] = heartbeat(producerSettings(e.normal), "", v2.ClientType_PRODUCER)
	ask["heartbeat/producer naming no client type"] = heartbeat(producerSettings(e.normal), "", v2.ClientType_CLIENT_TYPE_UNSPECIFIED)
	ask["heartbeat/producer naming a group"] = heartbeat(producerSettings(e.normal), e.group, v2.ClientType_PRODUCER)
	ask["heartbeat/producer of no topic"] = heartbeat(producerSettings(), "", v2.ClientType_PRODUCER)
	ask["heartbeat/simple consumer"] = func(raw *testenv.RawClient) diffAnswer {
		s := consumerOf(v2.ClientType_SIMPLE_CONSUMER)
		return heartbeat(s, s.GetSubscription().GetGroup().GetName(), v2.ClientType_SIMPLE_CONSUMER)(raw)
	}
	ask["heartbeat/push consumer"] = func(raw *testenv.RawClient) diffAnswer {
		s := consumerOf(v2.ClientType_PUSH_CONSUMER)
		return heartbeat(s, s.GetSubscription().GetGroup().GetName(), v2.ClientType_PUSH_CONSUMER)(raw)
	}
	ask["heartbeat/consumer naming no group"] = func(raw *testenv.RawClient) diffAnswer {
		return heartbeat(consumerOf(v2.ClientType_SIMPLE_CONSUMER), "", v2.ClientType_SIMPLE_CONSUMER)(raw)
	}
	ask["heartbeat/consumer naming an illegal group"] = func(raw *testenv.RawClient) diffAnswer {
		return heartbeat(consumerOf(v2.ClientType_SIMPLE_CONSUMER), "a b", v2.ClientType_SIMPLE_CONSUMER)(raw)
	}
	ask["heartbeat/consumer naming another group"] = func(raw *testenv.RawClient) diffAnswer {
		return heartbeat(consumerOf(v2.ClientType_SIMPLE_CONSUMER), e.name("g-diff-hb-other"), v2.ClientType_SIMPLE_CONSUMER)(raw)
	}
	ask["heartbeat/consumer naming the producer type"] = func(raw *testenv.RawClient) diffAnswer {
		s := consumerOf(v2.ClientType_PUSH_CONSUMER)
		return heartbeat(s, s.GetSubscription().GetGroup().GetName(), v2.ClientType_PRODUCER)(raw)
	}
	ask["heartbeat/no settings, no client type"] = heartbeat(nil, e.group, v2.ClientType_CLIENT_TYPE_UNSPECIFIED)
	ask["heartbeat/consumer before settings"] = heartbeat(nil, e.group, v2.ClientType_SIMPLE_CONSUMER)
	ask["heartbeat/consumer before settings, no group"] = heartbeat(nil, "", v2.ClientType_PUSH_CONSUMER)
	ask["heartbeat/producer before settings"] = heartbeat(nil, "", v2.ClientType_PRODUCER)
	ask["heartbeat/pull consumer before settings"] = heartbeat(nil, e.group, v2.ClientType_PULL_CONSUMER)
	ask["heartbeat/unknown client type before settings"] = heartbeat(nil, e.group, v2.ClientType(99))
	ask["heartbeat/lite push consumer before settings"] = heartbeat(nil, e.group, v2.ClientType_LITE_PUSH_CONSUMER)

	// NotifyClientTermination.
	goodbye := func(s *v2.Settings, group string) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			c := e.fresh(raw)
			if s != nil {
				c = e.withSettings(raw, s)
			}
			req := &v2.NotifyClientTerminationRequest{}
			if group != "" {
				req.Group = res(group)
			}
			resp, err := c.NotifyClientTermination(c.Ctx(t), req)
			return reply(resp, err)
		}
	}
	ask["goodbye/unknown client"] = goodbye(nil, e.group)
	ask["goodbye/unknown client, no group"] = goodbye(nil, "")
	ask["goodbye/producer"] = goodbye(producerSettings(e.normal), "")
	ask["goodbye/consumer"] = func(raw *testenv.RawClient) diffAnswer {
		s := consumerOf(v2.ClientType_SIMPLE_CONSUMER)
		return goodbye(s, s.GetSubscription().GetGroup().GetName())(raw)
	}
	ask["goodbye/consumer naming no group"] = func(raw *testenv.RawClient) diffAnswer {
		return goodbye(consumerOf(v2.ClientType_PUSH_CONSUMER), "")(raw)
	}
	ask["goodbye/consumer naming an illegal group"] = func(raw *testenv.RawClient) diffAnswer {
		return goodbye(consumerOf(v2.ClientType_PUSH_CONSUMER), "a b")(raw)
	}
	ask["goodbye/consumer naming another group"] = func(raw *testenv.RawClient) diffAnswer {
		return goodbye(consumerOf(v2.ClientType_PUSH_CONSUMER), e.name("g-diff-bye-other"))(raw)
	}

	// Telemetry settings: the first reply, or how the stream ends.
	settings := func(s *v2.Settings) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			c := e.fresh(raw)
			ctx, cancel := context.WithTimeout(c.Ctx(t), 20*time.Second)
			defer cancel()
			stream, err := c.Telemetry(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: s}}); err != nil {
				t.Fatal(err)
			}
			r, err := stream.Recv()
			if err != nil {
				return diffAnswer{code: status.Code(err)}
			}
			a := diffAnswer{st: r.GetStatus(), note: "no settings"}
			if r.GetSettings() != nil {
				a.note = fmt.Sprintf("settings of %v", r.GetSettings().GetClientType())
			}
			return a
		}
	}
	sub := func(ct v2.ClientType, group string, entries ...*v2.SubscriptionEntry) *v2.Settings {
		s := &v2.Settings{RequestTimeout: durationpb.New(3 * time.Second),
			PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Subscriptions: entries}}}
		if ct != v2.ClientType_CLIENT_TYPE_UNSPECIFIED {
			s.ClientType = ct.Enum()
		}
		if group != "" {
			s.GetSubscription().Group = res(group)
		}
		return s
	}
	entry := func(topic string, ft v2.FilterType, expr string) *v2.SubscriptionEntry {
		return &v2.SubscriptionEntry{Topic: res(topic), Expression: &v2.FilterExpression{Type: ft, Expression: expr}}
	}
	all := func(topic string) *v2.SubscriptionEntry { return entry(topic, v2.FilterType_TAG, "*") }
	simple := v2.ClientType_SIMPLE_CONSUMER
	ask["settings/neither publishing nor subscription"] = settings(&v2.Settings{ClientType: v2.ClientType_PRODUCER.Enum(), RequestTimeout: durationpb.New(3 * time.Second)})
	ask["settings/producer"] = settings(producerSettings(e.normal, e.fifo))
	ask["settings/producer of no topic"] = settings(producerSettings())
	ask["settings/producer, illegal topic"] = settings(producerSettings(e.normal, "a b"))
	ask["settings/producer, system topic"] = settings(producerSettings("TBW102"))
	ask["settings/producer, unknown topic"] = settings(producerSettings("diff-nope"))
	ask["settings/publishing without client type"] = settings(func() *v2.Settings { s := producerSettings(e.normal); s.ClientType = nil; return s }())
	ask["settings/publishing of a simple consumer"] = settings(func() *v2.Settings {
		s := producerSettings(e.normal)
		s.ClientType = simple.Enum()
		return s
	}())
	ask["settings/subscription without client type"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(v2.ClientType_CLIENT_TYPE_UNSPECIFIED, e.name("g-diff-set"), all(e.normal)))(raw)
	}
	ask["settings/subscription of a pull consumer"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(v2.ClientType_PULL_CONSUMER, e.name("g-diff-set"), all(e.normal)))(raw)
	}
	ask["settings/subscription of a producer"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(v2.ClientType_PRODUCER, e.name("g-diff-set"), all(e.normal)))(raw)
	}
	ask["settings/publishing of an unknown client type"] = settings(func() *v2.Settings {
		s := producerSettings(e.normal)
		s.ClientType = v2.ClientType(99).Enum()
		return s
	}())
	ask["settings/subscription of an unknown client type"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(v2.ClientType(99), e.name("g-diff-set"), all(e.normal)))(raw)
	}
	ask["settings/subscription, unknown filter type"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(simple, e.name("g-diff-set"), entry(e.normal, v2.FilterType(9), "*")))(raw)
	}
	ask["settings/subscription without group"] = settings(sub(simple, "", all(e.normal)))
	ask["settings/subscription, illegal group"] = settings(sub(simple, "a b", all(e.normal)))
	ask["settings/subscription, system group"] = settings(sub(simple, "CID_RMQ_SYS_X", all(e.normal)))
	ask["settings/subscription without entries"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(simple, e.name("g-diff-set")))(raw)
	}
	ask["settings/subscription, illegal topic"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(simple, e.name("g-diff-set"), all("a b")))(raw)
	}
	ask["settings/subscription, unknown topic"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(simple, e.name("g-diff-set"), all("diff-nope")))(raw)
	}
	ask["settings/subscription, bad SQL filter"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(simple, e.name("g-diff-set"), entry(e.normal, v2.FilterType_SQL, "a ==")))(raw)
	}
	ask["settings/subscription, filter without type"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(simple, e.name("g-diff-set"), entry(e.normal, v2.FilterType_FILTER_TYPE_UNSPECIFIED, "TagA")))(raw)
	}
	ask["settings/subscription, entry without filter"] = func(raw *testenv.RawClient) diffAnswer {
		return settings(sub(simple, e.name("g-diff-set"), &v2.SubscriptionEntry{Topic: res(e.normal)}))(raw)
	}

	// ChangeInvisibleDuration.
	change := func(handle func(raw *testenv.RawClient) (*testenv.RawClient, string, *v2.Message), mutate func(*v2.ChangeInvisibleDurationRequest)) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			c, group, m := handle(raw)
			req := &v2.ChangeInvisibleDurationRequest{Group: res(group), Topic: res(m.GetTopic().GetName()),
				ReceiptHandle: m.GetSystemProperties().GetReceiptHandle(), InvisibleDuration: durationpb.New(time.Minute),
				MessageId: m.GetSystemProperties().GetMessageId()}
			mutate(req)
			resp, err := c.ChangeInvisibleDuration(c.Ctx(t), req)
			a := reply(resp, err)
			if a.st.GetCode() == v2.Code_OK {
				// compatibility.md: rmqproxy echoes the handle on failures.
				a.note = fmt.Sprint("new handle ", resp.GetReceiptHandle() != "" && resp.GetReceiptHandle() != req.GetReceiptHandle())
			}
			return a
		}
	}
	old := func(raw *testenv.RawClient) (*testenv.RawClient, string, *v2.Message) {
		m := testenv.RawMessage(e.normal, nil, "")
		m.SystemProperties.ReceiptHandle = &expired
		return raw, e.group, m
	}
	keep := func(*v2.ChangeInvisibleDurationRequest) {}
	ask["change/expired handle"] = change(old, keep)
	ask["change/expired handle, negative time"] = change(old, func(r *v2.ChangeInvisibleDurationRequest) { r.InvisibleDuration = durationpb.New(-time.Second) })
	ask["change/expired handle, no time"] = change(old, func(r *v2.ChangeInvisibleDurationRequest) { r.InvisibleDuration = nil })
	ask["change/illegal group"] = change(old, func(r *v2.ChangeInvisibleDurationRequest) { r.Group = res("a b") })
	ask["change/illegal topic"] = change(old, func(r *v2.ChangeInvisibleDurationRequest) { r.Topic = res("a b") })
	ask["change/blank handle"] = change(old, func(r *v2.ChangeInvisibleDurationRequest) { r.ReceiptHandle = "" })
	ask["change/received message"] = change(e.received, keep)
	ask["change/received message, no time"] = change(e.received, func(r *v2.ChangeInvisibleDurationRequest) { r.InvisibleDuration = nil })
	ask["change/received message, negative time"] = change(e.received, func(r *v2.ChangeInvisibleDurationRequest) {
		r.InvisibleDuration = &durationpb.Duration{Seconds: -5}
	})
	ask["change/received message, time beyond int64 ms"] = change(e.received, func(r *v2.ChangeInvisibleDurationRequest) {
		r.InvisibleDuration = &durationpb.Duration{Seconds: math.MaxInt64 / 100}
	})
	ask["change/received message, negative nanos"] = change(e.received, func(r *v2.ChangeInvisibleDurationRequest) {
		r.InvisibleDuration = &durationpb.Duration{Seconds: 30, Nanos: -1}
	})
	ask["change/received message, unknown group"] = change(e.received, func(r *v2.ChangeInvisibleDurationRequest) { r.Group = res("g-diff-none") })
	// The fifo topic holds no message (its sends are refused): the broker
	// finds none at the handle's offset (NO_MESSAGE).
	ask["change/received message, other topic"] = change(e.received, func(r *v2.ChangeInvisibleDurationRequest) { r.Topic = res(e.fifo) })

	// ForwardMessageToDeadLetterQueue.
	forward := func(handle func(raw *testenv.RawClient) (*testenv.RawClient, string, *v2.Message), mutate func(*v2.ForwardMessageToDeadLetterQueueRequest)) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			c, group, m := handle(raw)
			req := &v2.ForwardMessageToDeadLetterQueueRequest{Group: res(group), Topic: res(m.GetTopic().GetName()),
				ReceiptHandle: m.GetSystemProperties().GetReceiptHandle(), MessageId: m.GetSystemProperties().GetMessageId(),
				DeliveryAttempt: 1, MaxDeliveryAttempts: 16}
			mutate(req)
			resp, err := c.ForwardMessageToDeadLetterQueue(c.Ctx(t), req)
			return reply(resp, err)
		}
	}
	keepF := func(*v2.ForwardMessageToDeadLetterQueueRequest) {}
	ask["forward/malformed handle"] = forward(old, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.ReceiptHandle = "garbage" })
	ask["forward/blank handle"] = forward(old, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.ReceiptHandle = "" })
	ask["forward/expired handle"] = forward(old, keepF)
	ask["forward/handle without commit-log offset"] = forward(old, func(r *v2.ForwardMessageToDeadLetterQueueRequest) {
		r.ReceiptHandle = strings.TrimSuffix(expired, " 0")
	})
	ask["forward/illegal group"] = forward(old, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.Group = res("a b") })
	ask["forward/illegal topic"] = forward(old, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.Topic = res("a b") })
	ask["forward/received message"] = forward(e.received, keepF)
	ask["forward/received message, delivery attempt 0"] = forward(e.received, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.DeliveryAttempt = 0 })
	ask["forward/received message, max attempts 0"] = forward(e.received, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.MaxDeliveryAttempts = 0 })
	ask["forward/received message, unknown group"] = forward(e.received, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.Group = res(e.name("g-diff-fwd-none")) })
	ask["forward/received message, no message id"] = forward(e.received, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.MessageId = "" })
	// A made-up handle: the received one with a commit-log offset (its
	// last field) far beyond the broker's commit log.
	ask["forward/received message, commit-log offset beyond the log"] = forward(e.received, func(r *v2.ForwardMessageToDeadLetterQueueRequest) {
		f := strings.Fields(r.ReceiptHandle)
		f[len(f)-1] = "1125899906842624" // 1 PiB
		r.ReceiptHandle = strings.Join(f, " ")
	})

	// AckMessage of a live handle.
	ack := func(mutate func(*v2.AckMessageRequest), twice bool) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			c, group, m := e.received(raw)
			req := testenv.AckRequest(group, e.live, []*v2.Message{m})
			mutate(req)
			if twice {
				if resp, err := c.AckMessage(c.Ctx(t), req); err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
					t.Fatalf("first ack: %v %v", resp, err)
				}
			}
			resp, err := c.AckMessage(c.Ctx(t), req)
			a := reply(resp, err)
			for _, x := range resp.GetEntries() {
				a.note += fmt.Sprintf("[%v, handle echoed %v]", x.GetStatus().GetCode(), x.GetReceiptHandle() == m.GetSystemProperties().GetReceiptHandle())
			}
			return a
		}
	}
	ask["ack/received message"] = ack(func(*v2.AckMessageRequest) {}, false)
	ask["ack/received message twice"] = ack(func(*v2.AckMessageRequest) {}, true)
	ask["ack/received message, unknown group"] = ack(func(r *v2.AckMessageRequest) { r.Group = res(e.name("g-diff-ack-none")) }, false)
	ask["ack/received message, other topic"] = ack(func(r *v2.AckMessageRequest) { r.Topic = res(e.fifo) }, false)
	ask["forward/received message, other topic"] = forward(e.received, func(r *v2.ForwardMessageToDeadLetterQueueRequest) { r.Topic = res(e.fifo) })

	// RecallMessage.
	var sentID string // of the last delay message sent
	recall := func(topic string, handle func(raw *testenv.RawClient) string) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			resp, err := raw.RecallMessage(raw.Ctx(t), &v2.RecallMessageRequest{Topic: res(topic), RecallHandle: handle(raw)})
			a := reply(resp, err)
			if a.st.GetCode() == v2.Code_OK {
				a.note = fmt.Sprint("message id as sent ", resp.GetMessageId() == sentID)
			}
			return a
		}
	}
	text := func(s string) func(*testenv.RawClient) string { return func(*testenv.RawClient) string { return s } }
	delayed := func(raw *testenv.RawClient) string {
		m := testenv.RawMessage(e.delay, []byte("later"), "")
		m.SystemProperties.MessageType = v2.MessageType_DELAY
		m.SystemProperties.DeliveryTimestamp = timestamppb.New(time.Now().Add(time.Hour))
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK || resp.GetEntries()[0].GetRecallHandle() == "" {
			t.Fatalf("delay message: %v %v", resp, err)
		}
		sentID = m.SystemProperties.MessageId
		return resp.GetEntries()[0].GetRecallHandle()
	}
	ask["recall/blank handle"] = recall(e.delay, text(""))
	ask["recall/malformed handle"] = recall(e.delay, text("garbage"))
	ask["recall/handle of five fields"] = recall(e.delay, text("djEgYSBiIGMgZA")) // base64url of "v1 a b c d"
	ask["recall/illegal topic"] = recall("a b", text("garbage"))
	ask["recall/unknown topic"] = recall("diff-nope", text("garbage"))
	ask["recall/delay message"] = recall(e.delay, delayed)
	ask["recall/delay message, unknown topic"] = recall("diff-nope", delayed)

	// EndTransaction.
	end := func(mutate func(r *v2.EndTransactionRequest, raw *testenv.RawClient)) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			msgID, txID := e.halfSent(raw)
			req := &v2.EndTransactionRequest{Topic: res(e.txTopic), MessageId: msgID, TransactionId: txID,
				Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT}
			mutate(req, raw)
			resp, err := raw.EndTransaction(raw.Ctx(t), req)
			return reply(resp, err)
		}
	}
	ask["end/commit"] = end(func(*v2.EndTransactionRequest, *testenv.RawClient) {})
	ask["end/rollback from a check"] = end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) {
		r.Resolution, r.Source = v2.TransactionResolution_ROLLBACK, v2.TransactionSource_SOURCE_SERVER_CHECK
	})
	ask["end/commit, no source"] = end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) {
		r.Source = v2.TransactionSource_SOURCE_UNSPECIFIED
	})
	ask["end/commit, blank message id"] = end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) { r.MessageId = "" })
	ask["end/commit, another message id"] = end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) { r.MessageId = testenv.NewMessageID() })
	ask["end/commit, illegal topic"] = end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) { r.Topic = res("a b") })
	ask["end/commit twice"] = end(func(r *v2.EndTransactionRequest, raw *testenv.RawClient) {
		if resp, err := raw.EndTransaction(raw.Ctx(t), r); err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("first commit: %v %v", resp, err)
		}
	})
	ask["end/commit, another topic"] = end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) { r.Topic = res(e.normal) })
	ask["end/no resolution"] = end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) {
		r.Resolution = v2.TransactionResolution_TRANSACTION_RESOLUTION_UNSPECIFIED
	})
	bogus := func(source v2.TransactionSource) diffRow {
		return end(func(r *v2.EndTransactionRequest, _ *testenv.RawClient) { r.TransactionId, r.Source = "01AB", source })
	}
	ask["end/unknown transaction id from a check"] = bogus(v2.TransactionSource_SOURCE_SERVER_CHECK)
	ask["end/unknown transaction id, no source"] = bogus(v2.TransactionSource_SOURCE_UNSPECIFIED)
	ask["end/unknown topic"] = func(raw *testenv.RawClient) diffAnswer {
		resp, err := raw.EndTransaction(raw.Ctx(t), &v2.EndTransactionRequest{Topic: res("diff-nope"), MessageId: "01AB", TransactionId: "01AB",
			Resolution: v2.TransactionResolution_COMMIT, Source: v2.TransactionSource_SOURCE_CLIENT})
		return reply(resp, err)
	}
}

// addPullRows adds the rows of PullMessage, GetOffset, UpdateOffset and
// QueryOffset on e.pull (one queue holding 3 messages), asked of rmqproxy
// in both modes (the Apache proxy does not serve them). group and
// group-commit exist; only the update rows commit, for group-commit.
func (e *diffEnv) addPullRows(ask map[string]diffRow, topic, group string) {
	t := e.t
	// queue is queue id of topic on the broker of e.pull's queue 0.
	queue := func(raw *testenv.RawClient, topic string, id int32) *v2.MessageQueue {
		resp, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: res(e.pull)})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK || len(resp.GetMessageQueues()) == 0 {
			t.Fatalf("route of %s: %v %v", e.pull, resp, err)
		}
		b := resp.GetMessageQueues()[0].GetBroker()
		return &v2.MessageQueue{Topic: res(topic), Id: id, Broker: &v2.Broker{Name: b.GetName()}}
	}
	pull := func(mutate func(r *v2.PullMessageRequest)) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			req := &v2.PullMessageRequest{Group: res(group), MessageQueue: queue(raw, e.pull, 0), Offset: 0, BatchSize: 32,
				FilterExpression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}, LongPollingTimeout: durationpb.New(time.Second)}
			mutate(req)
			stream, err := raw.PullMessage(raw.Ctx(t), req)
			if err != nil {
				return diffAnswer{code: status.Code(err)}
			}
			var a diffAnswer
			var bodies []string
			next := "none"
			for {
				r, err := stream.Recv()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						a.code = status.Code(err)
					}
					break
				}
				switch x := r.Content.(type) {
				case *v2.PullMessageResponse_Status:
					a.st = x.Status
				case *v2.PullMessageResponse_Message:
					bodies = append(bodies, fmt.Sprintf("%s (%s)", x.Message.GetBody(), messageView(x.Message)))
				case *v2.PullMessageResponse_NextOffset:
					next = fmt.Sprint(x.NextOffset)
				}
			}
			a.note = fmt.Sprintf("%d messages %q, next offset %s", len(bodies), bodies, next)
			return a
		}
	}
	ask["pull/from the start"] = pull(func(*v2.PullMessageRequest) {})
	ask["pull/from the middle, batch 1"] = pull(func(r *v2.PullMessageRequest) { r.Offset, r.BatchSize = 1, 1 })
	ask["pull/at the end"] = pull(func(r *v2.PullMessageRequest) { r.Offset = 3 })
	ask["pull/past the end"] = pull(func(r *v2.PullMessageRequest) { r.Offset = 1000 })
	ask["pull/negative offset"] = pull(func(r *v2.PullMessageRequest) { r.Offset = -1 })
	ask["pull/zero batch size"] = pull(func(r *v2.PullMessageRequest) { r.BatchSize = 0 })
	ask["pull/batch size above 32"] = pull(func(r *v2.PullMessageRequest) { r.BatchSize = 1000 })
	ask["pull/unknown group"] = pull(func(r *v2.PullMessageRequest) { r.Group = res(e.name("g-diff-pull-none")) })
	ask["pull/blank group"] = pull(func(r *v2.PullMessageRequest) { r.Group = res("") })
	ask["pull/illegal group"] = pull(func(r *v2.PullMessageRequest) { r.Group = res("a b") })
	ask["pull/unknown topic"] = pull(func(r *v2.PullMessageRequest) { r.MessageQueue.Topic = res("diff-nope") })
	ask["pull/illegal topic"] = pull(func(r *v2.PullMessageRequest) { r.MessageQueue.Topic = res("a b") })
	ask["pull/queue id out of range"] = pull(func(r *v2.PullMessageRequest) { r.MessageQueue.Id = 7 })
	ask["pull/negative queue id"] = pull(func(r *v2.PullMessageRequest) { r.MessageQueue.Id = -1 })
	ask["pull/unknown broker"] = pull(func(r *v2.PullMessageRequest) { r.MessageQueue.Broker = &v2.Broker{Name: "diff-nope"} })
	ask["pull/no broker"] = pull(func(r *v2.PullMessageRequest) { r.MessageQueue.Broker = nil })
	ask["pull/no queue"] = pull(func(r *v2.PullMessageRequest) { r.MessageQueue = nil })
	ask["pull/no filter expression"] = pull(func(r *v2.PullMessageRequest) { r.FilterExpression = nil })
	ask["pull/tag matching none"] = pull(func(r *v2.PullMessageRequest) { r.FilterExpression.Expression = "TagZ" })
	ask["pull/bad SQL filter"] = pull(func(r *v2.PullMessageRequest) {
		r.FilterExpression = &v2.FilterExpression{Type: v2.FilterType_SQL, Expression: "a =="}
	})
	ask["pull/no polling time"] = pull(func(r *v2.PullMessageRequest) { r.LongPollingTimeout = nil })

	get := func(group string, mq func(raw *testenv.RawClient) *v2.MessageQueue) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			resp, err := raw.GetOffset(raw.Ctx(t), &v2.GetOffsetRequest{Group: res(group), MessageQueue: mq(raw)})
			a := reply(resp, err)
			a.note = fmt.Sprint("offset ", resp.GetOffset())
			return a
		}
	}
	q := func(topic string, id int32) func(raw *testenv.RawClient) *v2.MessageQueue {
		return func(raw *testenv.RawClient) *v2.MessageQueue { return queue(raw, topic, id) }
	}
	update := func(group string, mq func(raw *testenv.RawClient) *v2.MessageQueue, offset int64) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			resp, err := raw.UpdateOffset(raw.Ctx(t), &v2.UpdateOffsetRequest{Group: res(group), MessageQueue: mq(raw), Offset: offset})
			return reply(resp, err)
		}
	}
	ask["offset/get, nothing committed"] = get(group, q(e.pull, 0))
	ask["offset/get, unknown group"] = get(e.name("g-diff-pull-none"), q(e.pull, 0))
	ask["offset/get, illegal group"] = get("a b", q(e.pull, 0))
	ask["offset/get, unknown topic"] = get(group, q("diff-nope", 0))
	ask["offset/get, queue id out of range"] = get(group, q(e.pull, 7))
	commit := group + "-commit"
	ask["offset/update then get"] = func(raw *testenv.RawClient) diffAnswer {
		if a := update(commit, q(e.pull, 0), 2)(raw); a.code != 0 || a.st.GetCode() != v2.Code_OK {
			return a
		}
		return get(commit, q(e.pull, 0))(raw)
	}
	ask["offset/update at the end"] = update(commit, q(e.pull, 0), 3)
	ask["offset/update past the end"] = update(commit, q(e.pull, 0), 1000)
	ask["offset/update negative"] = update(commit, q(e.pull, 0), -1)
	ask["offset/update, unknown group"] = update(e.name("g-diff-pull-none"), q(e.pull, 0), 1)
	ask["offset/update, illegal group"] = update("a b", q(e.pull, 0), 1)
	ask["offset/update, unknown topic"] = update(commit, q("diff-nope", 0), 1)
	ask["offset/update, queue id out of range"] = update(commit, q(e.pull, 7), 1)

	query := func(mq func(raw *testenv.RawClient) *v2.MessageQueue, policy v2.QueryOffsetPolicy, at *timestamppb.Timestamp) diffRow {
		return func(raw *testenv.RawClient) diffAnswer {
			resp, err := raw.QueryOffset(raw.Ctx(t), &v2.QueryOffsetRequest{MessageQueue: mq(raw), QueryOffsetPolicy: policy, Timestamp: at})
			a := reply(resp, err)
			a.note = fmt.Sprint("offset ", resp.GetOffset())
			return a
		}
	}
	ask["offset/query beginning"] = query(q(e.pull, 0), v2.QueryOffsetPolicy_BEGINNING, nil)
	ask["offset/query end"] = query(q(e.pull, 0), v2.QueryOffsetPolicy_END, nil)
	ask["offset/query time in the future"] = query(q(e.pull, 0), v2.QueryOffsetPolicy_TIMESTAMP, timestamppb.New(time.Now().Add(time.Hour)))
	ask["offset/query time 1970"] = query(q(e.pull, 0), v2.QueryOffsetPolicy_TIMESTAMP, timestamppb.New(time.Unix(0, 0)))
	ask["offset/query time beyond year 9999"] = query(q(e.pull, 0), v2.QueryOffsetPolicy_TIMESTAMP, &timestamppb.Timestamp{Seconds: 1e16})
	ask["offset/query time left out"] = query(q(e.pull, 0), v2.QueryOffsetPolicy_TIMESTAMP, nil)
	ask["offset/query unknown topic"] = query(q("diff-nope", 0), v2.QueryOffsetPolicy_END, nil)
	ask["offset/query illegal topic"] = query(q("a b", 0), v2.QueryOffsetPolicy_END, nil)
	ask["offset/query queue id out of range"] = query(q(e.pull, 7), v2.QueryOffsetPolicy_END, nil)
	ask["offset/query no queue"] = query(func(*testenv.RawClient) *v2.MessageQueue { return nil }, v2.QueryOffsetPolicy_END, nil)
}
