package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// receiveAll acks and returns every message a simple consumer gets until
// it has want distinct ones (or the deadline passes), keyed by message id,
// with the wall-clock time each was received (see testenv.WallNow).
func receiveAll(t *testing.T, c rmq.SimpleConsumer, want int, within time.Duration) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	testenv.WaitFor(t, within, func() error {
		ms, err := c.Receive(t.Context(), 16, 20*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		for _, m := range ms {
			if _, dup := got[m.GetMessageId()]; dup {
				t.Errorf("message %s delivered twice", m.GetMessageId())
			}
			got[m.GetMessageId()] = testenv.WallNow()
			if err := c.Ack(t.Context(), m); err != nil {
				t.Errorf("ack: %v", err)
			}
		}
		if len(got) < want {
			return fmt.Errorf("%d of %d received", len(got), want)
		}
		return nil
	})
	return got
}

// TestDelayMessagesArriveOnTime sends timer messages with arbitrary delivery
// times; none is delivered early, all are delivered, and a recalled one
// never is.
func TestDelayMessagesArriveOnTime(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic := testenv.Name(t, "delay")
	p.CreateTopic(t, topic, domain.MessageTypeDelay, 4)
	pr := testenv.NewProducer(t, p, topic)
	due := map[string]time.Time{}
	now := time.Now()
	for i, d := range []time.Duration{1500 * time.Millisecond, 2700 * time.Millisecond, 3100 * time.Millisecond, -time.Second, 0} {
		m := &rmq.Message{Topic: topic, Body: []byte(fmt.Sprintf("delay-%d", i))}
		at := now.Add(d)
		m.SetDelayTimestamp(at)
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatalf("send delay message: %v", err)
		}
		due[r[0].MessageID] = testenv.DeliveryTime(at)
	}
	// A recalled message is never delivered.
	m := &rmq.Message{Topic: topic, Body: []byte("recalled")}
	m.SetDelayTimestamp(now.Add(2 * time.Second))
	r, err := pr.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if r[0].RecallHandle == "" {
		t.Fatal("a delay message's receipt has no recall handle")
	}
	if id, err := pr.Recall(t.Context(), topic, r[0].RecallHandle); err != nil || id != r[0].MessageID {
		t.Fatalf("recall: %q %v", id, err)
	}
	// Recalled again (a client retrying a recall whose answer it lost):
	// OK with the message id, in both modes, as Apache RocketMQ brokers
	// write a delete marker for every recall and do not tell a second
	// recall from the first (RecallMessageProcessor); local mode answered
	// NOT_FOUND.
	if id, err := pr.Recall(t.Context(), topic, r[0].RecallHandle); err != nil || id != r[0].MessageID {
		t.Fatalf("second recall: %q %v", id, err)
	}

	c := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-delay"), time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := receiveAll(t, c, len(due), 30*time.Second)
	for id, at := range got {
		want, ok := due[id]
		if !ok {
			t.Fatalf("unexpected message %s (the recalled one?)", id)
		}
		if at.Before(want) {
			t.Errorf("message %s delivered %v before its delivery time", id, want.Sub(at))
		}
	}
	if ms := testenv.ReceiveAnswered(t, c, 16, 3*time.Second); len(ms) != 0 {
		t.Fatalf("recalled message delivered")
	}
}

// TestMessageTypeCheckOff: with messaging.limits.topicMessageTypeCheck
// off, a topic takes messages of any type, as through the Apache proxy
// with enableTopicMessageTypeCheck off: a delay message sent to a NORMAL
// topic is delivered at its delivery time (not before), and a FIFO message
// is stored too. Local mode refused both with
// MESSAGE_PROPERTY_CONFLICT_WITH_TYPE whatever the setting said.
func TestMessageTypeCheckOff(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Messaging.Limits.TopicMessageTypeCheck = false
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "any-type")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	pr := testenv.NewProducer(t, p, topic)
	due := map[string]time.Time{}
	delayed := &rmq.Message{Topic: topic, Body: []byte("delayed")}
	at := time.Now().Add(1500 * time.Millisecond)
	delayed.SetDelayTimestamp(at)
	fifo := &rmq.Message{Topic: topic, Body: []byte("fifo")}
	fifo.SetMessageGroup("g1")
	for _, m := range []*rmq.Message{delayed, fifo} {
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatalf("send %s to a NORMAL topic with the type check off: %v", m.Body, err)
		}
		due[r[0].MessageID] = time.Time{}
		if m == delayed {
			due[r[0].MessageID] = testenv.DeliveryTime(at)
		}
	}
	c := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-any-type"), time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	for id, got := range receiveAll(t, c, len(due), 30*time.Second) {
		want, ok := due[id]
		if !ok {
			t.Fatalf("unexpected message %s", id)
		}
		if got.Before(want) {
			t.Errorf("message %s delivered %v before its delivery time", id, want.Sub(got))
		}
	}
}

// TestPastDueDelayMessageDelivered: a delay message whose delivery time
// lies 20 s in the past is stored as due (its receipt has no recall
// handle) and reaches a simple consumer that
// is already waiting in a long poll (speed: BenchmarkPastDueDelayUnderLoad).
func TestPastDueDelayMessageDelivered(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic := testenv.Name(t, "past-due")
	p.CreateTopic(t, topic, domain.MessageTypeDelay, 4)
	c := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-past-due"), 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got, failed := make(chan string, 16), make(chan error, 1)
	receiving := make(chan struct{})
	go func() {
		defer close(receiving)
		for n := 0; n < 3 && t.Context().Err() == nil; {
			ms, err := c.Receive(t.Context(), 16, 20*time.Second)
			if err != nil && !testenv.IsNoMessage(err) {
				failed <- fmt.Errorf("receive: %w", err)
				return
			}
			for _, m := range ms {
				if err := c.Ack(t.Context(), m); err != nil {
					failed <- fmt.Errorf("ack: %w", err)
					return
				}
				got <- m.GetMessageId()
				n++
			}
		}
	}()
	pr := testenv.NewProducer(t, p, topic)
	want := map[string]bool{}
	for i := range 3 {
		m := &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint("past-", i))}
		m.SetDelayTimestamp(time.Now().Add(-20 * time.Second))
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatalf("send: %v", err)
		}
		// Stored as a normal message: nothing to recall (a RocketMQ broker
		// gives no recall handle; local mode gave one whose recall was
		// NOT_FOUND).
		if r[0].RecallHandle != "" {
			t.Fatalf("past-due delay message has recall handle %q", r[0].RecallHandle)
		}
		want[r[0].MessageID] = true
	}
	deadline := time.After(60 * time.Second)
	for range 3 {
		select {
		case id := <-got:
			if !want[id] {
				t.Fatalf("unexpected message %s", id)
			}
			delete(want, id)
		case err := <-failed:
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("past-due delay messages %v not delivered within 60 s", want)
		}
	}
	<-receiving
}

// TestTransactionsCommitRollbackAndCheckBack: a committed half message is
// delivered, a rolled back one never, and orphaned ones are resolved by the
// producer's transaction checker when the broker checks back.
func TestTransactionsCommitRollbackAndCheckBack(t *testing.T) {
	waitsInParallel(t)
	cfg := testenv.Config(t)
	cfg.Local.TransactionTimeout = time.Second
	cfg.Local.TransactionCheckInterval = time.Second
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "tx")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 2)
	checker := &rmq.TransactionChecker{Check: func(m *rmq.MessageView) rmq.TransactionResolution {
		if m.GetProperties()["verdict"] == "commit" {
			return rmq.COMMIT
		}
		return rmq.ROLLBACK
	}}
	pr, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(topic), rmq.WithTransactionChecker(checker))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	defer pr.GracefulStop()
	send := func(name, verdict string, end func(rmq.Transaction) error) string {
		t.Helper()
		tx := pr.BeginTransaction()
		m := &rmq.Message{Topic: topic, Body: []byte(name)}
		m.AddProperty("verdict", verdict)
		r, err := pr.SendWithTransaction(t.Context(), m, tx)
		if err != nil {
			t.Fatalf("send %s: %v", name, err)
		}
		if end != nil {
			if err := end(tx); err != nil {
				t.Fatalf("end %s: %v", name, err)
			}
		}
		return r[0].MessageID
	}
	committed := send("committed", "", func(tx rmq.Transaction) error { return tx.Commit() })
	send("rolled back", "", func(tx rmq.Transaction) error { return tx.RollBack() })
	checkedCommit := send("orphan to commit", "commit", nil)
	send("orphan to roll back", "rollback", nil)

	c := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-tx"), time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := receiveAll(t, c, 2, 30*time.Second)
	if _, ok := got[committed]; !ok {
		t.Error("the committed message was not delivered")
	}
	if _, ok := got[checkedCommit]; !ok {
		t.Error("the orphan the checker committed was not delivered")
	}
	if ms := testenv.ReceiveAnswered(t, c, 16, 3*time.Second); len(ms) != 0 {
		t.Fatalf("a rolled back message was delivered: %s", ms[0].GetBody())
	}
}

// TestPullAndOffsets reads a queue by offset through the raw protocol (the
// Go client has no pull consumer) and keeps a group's offset.
func TestPullAndOffsets(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, groupName := testenv.Name(t, "pull"), testenv.Name(t, "g-pull")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	raw := testenv.NewRawClient(t, p)
	var ids []string
	for i := range 10 {
		m := testenv.RawMessage(topic, []byte(fmt.Sprintf("m%d", i)), []string{"even", "odd"}[i%2])
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatal(resp, err)
		}
		ids = append(ids, resp.GetEntries()[0].GetMessageId())
	}
	before := time.Now()
	route, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
	if err != nil || len(route.GetMessageQueues()) == 0 {
		t.Fatalf("route: %v %v", route, err)
	}
	mq := &v2.MessageQueue{Topic: &v2.Resource{Name: topic}, Id: 0, Broker: &v2.Broker{Name: route.GetMessageQueues()[0].GetBroker().GetName()}}
	query := func(policy v2.QueryOffsetPolicy, at time.Time) (int64, v2.Code) {
		req := &v2.QueryOffsetRequest{MessageQueue: mq, QueryOffsetPolicy: policy}
		if !at.IsZero() {
			req.Timestamp = timestamppb.New(at)
		}
		resp, err := raw.QueryOffset(raw.Ctx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetOffset(), resp.GetStatus().GetCode()
	}
	if off, code := query(v2.QueryOffsetPolicy_BEGINNING, time.Time{}); off != 0 || code != v2.Code_OK {
		t.Fatalf("beginning: %d %v", off, code)
	}
	// A RocketMQ broker (cluster mode) indexes a message in its queue after
	// it answers the send, so the end can lag behind for a moment.
	testenv.WaitFor(t, 30*time.Second, func() error {
		if off, code := query(v2.QueryOffsetPolicy_END, time.Time{}); off != 10 || code != v2.Code_OK {
			return fmt.Errorf("end: %d %v", off, code)
		}
		return nil
	})
	if off, code := query(v2.QueryOffsetPolicy_TIMESTAMP, before.Add(time.Hour)); off != 10 || code != v2.Code_OK {
		t.Fatalf("timestamp after every message: %d %v", off, code)
	}
	// The last instant a protobuf Timestamp may hold (9999-12-31) is after
	// every message too; one beyond it is not a valid Timestamp (its
	// milliseconds overflowed an int64 past ~9×10^15 s: the answer was the
	// queue's start).
	if off, code := query(v2.QueryOffsetPolicy_TIMESTAMP, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)); off != 10 || code != v2.Code_OK {
		t.Fatalf("timestamp 9999-12-31: %d %v", off, code)
	}
	for _, sec := range []int64{1e16, -1e16, 253402300800} {
		if off, code := query(v2.QueryOffsetPolicy_TIMESTAMP, time.Unix(sec, 0)); code != v2.Code_BAD_REQUEST {
			t.Errorf("timestamp of %d s, not a valid protobuf Timestamp: offset %d %v, want BAD_REQUEST", sec, off, code)
		}
	}
	pull := func(offset int64, batch int32, expr string) (*v2.Status, []*v2.Message, int64) {
		stream, err := raw.PullMessage(raw.Ctx(t), &v2.PullMessageRequest{Group: &v2.Resource{Name: groupName}, MessageQueue: mq, Offset: offset, BatchSize: batch,
			FilterExpression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: expr}})
		if err != nil {
			t.Fatal(err)
		}
		return testenv.ReadPull(stream)
	}
	st, msgs, next := pull(0, 4, "*")
	if st.GetCode() != v2.Code_OK || len(msgs) != 4 || next != 4 || msgs[0].GetSystemProperties().GetMessageId() != ids[0] {
		t.Fatalf("pull 0..4: %v, %d messages, next %d", st, len(msgs), next)
	}
	st, msgs, next = pull(4, 32, "odd")
	if st.GetCode() != v2.Code_OK || len(msgs) != 3 || next != 10 {
		t.Fatalf("pull odd from 4: %v, %d messages, next %d", st, len(msgs), next)
	}
	if st, _, _ := pull(11, 1, "*"); st.GetCode() != v2.Code_ILLEGAL_OFFSET {
		t.Fatalf("pull beyond the end: %v", st)
	}

	group := &v2.Resource{Name: groupName}
	get := func() (int64, v2.Code) {
		resp, err := raw.GetOffset(raw.Ctx(t), &v2.GetOffsetRequest{Group: group, MessageQueue: mq})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetOffset(), resp.GetStatus().GetCode()
	}
	if _, code := get(); code != v2.Code_OFFSET_NOT_FOUND {
		t.Fatalf("offset of a group that never committed: %v", code)
	}
	for offset, want := range map[int64]v2.Code{4: v2.Code_OK, -1: v2.Code_ILLEGAL_OFFSET, 11: v2.Code_ILLEGAL_OFFSET} {
		resp, err := raw.UpdateOffset(raw.Ctx(t), &v2.UpdateOffsetRequest{Group: group, MessageQueue: mq, Offset: offset})
		if err != nil || resp.GetStatus().GetCode() != want {
			t.Fatalf("update offset %d: %v %v, want %v", offset, resp, err, want)
		}
	}
	if off, code := get(); off != 4 || code != v2.Code_OK {
		t.Fatalf("committed offset %d %v", off, code)
	}

	// A queue the topic does not have is BAD_REQUEST for every call, in
	// both modes (a broker answered its offsets with 0, committed an offset
	// for it and refused its pull with SYSTEM_ERROR).
	mq = &v2.MessageQueue{Topic: mq.GetTopic(), Id: 7, Broker: mq.GetBroker()}
	if _, code := query(v2.QueryOffsetPolicy_END, time.Time{}); code != v2.Code_BAD_REQUEST {
		t.Errorf("end of a queue the topic does not have: %v", code)
	}
	if st, _, _ := pull(0, 1, "*"); st.GetCode() != v2.Code_BAD_REQUEST {
		t.Errorf("pull of a queue the topic does not have: %v", st)
	}
	if resp, err := raw.UpdateOffset(raw.Ctx(t), &v2.UpdateOffsetRequest{Group: group, MessageQueue: mq, Offset: 0}); err != nil || resp.GetStatus().GetCode() != v2.Code_BAD_REQUEST {
		t.Errorf("commit to a queue the topic does not have: %v %v", resp, err)
	}
	if _, code := get(); code != v2.Code_BAD_REQUEST {
		t.Errorf("offset of a queue the topic does not have: %v", code)
	}
}

// TestSQL92FiltersSeeTransactionProperties: a RocketMQ 5.5.0 broker keeps
// TRAN_MSG=true and __transactionId__ (the message id) in a committed
// transactional message, and its SQL92 filters read them (cluster mode);
// local mode's filters read neither, so a subscription naming them got
// nothing there that it got through a broker. Both modes now deliver the
// message to the subscription that names them and not to the one that
// wants them absent.
func TestSQL92FiltersSeeTransactionProperties(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic := testenv.Name(t, "sql-tx")
	p.CreateTopic(t, topic, domain.MessageTypeTransaction, 1)
	sub := func(group, expr string) rmq.SimpleConsumer {
		return testenv.NewSimpleConsumer(t, p, testenv.Name(t, group), time.Second,
			map[string]*rmq.FilterExpression{topic: rmq.NewFilterExpressionWithType(expr, rmq.SQL92)})
	}
	named := sub("g-sql-tx", "TRAN_MSG = 'true' AND __transactionId__ IS NOT NULL")
	absent := sub("g-sql-tx-absent", "TRAN_MSG IS NULL OR __transactionId__ IS NULL")
	pr, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(topic),
		rmq.WithTransactionChecker(&rmq.TransactionChecker{Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.COMMIT }}))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pr.GracefulStop() }()
	tx := pr.BeginTransaction()
	r, err := pr.SendWithTransaction(t.Context(), &rmq.Message{Topic: topic, Body: []byte("committed")}, tx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := receiveAll(t, named, 1, 30*time.Second); len(got) != 1 || got[r[0].MessageID].IsZero() {
		t.Fatalf("received %v, want the committed message %s", got, r[0].MessageID)
	}
	if ms := testenv.ReceiveAnswered(t, absent, 16, 2*time.Second); len(ms) != 0 {
		t.Fatalf("the committed message reached a subscription wanting no TRAN_MSG or __transactionId__: %s", ms[0].GetMessageId())
	}
}

// TestSQL92Filters subscribes with SQL92 expressions: matching messages
// arrive, others do not, and a malformed expression is refused when the
// consumer subscribes.
func TestSQL92Filters(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic := testenv.Name(t, "sql")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)
	pr := testenv.NewProducer(t, p, topic)
	want := map[string]bool{}
	for i := range 20 {
		m := &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint(i))}
		m.SetTag([]string{"red", "blue"}[i%2])
		m.AddProperty("n", fmt.Sprint(i))
		if i%3 == 0 {
			m.AddProperty("region", "eu")
		}
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		if i > 5 && i%3 == 0 && i%2 == 0 { // n > 5 AND region = 'eu' AND TAGS = 'red'
			want[r[0].MessageID] = true
		}
	}
	c := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-sql"), time.Second, map[string]*rmq.FilterExpression{
		topic: rmq.NewFilterExpressionWithType("n > 5 AND region = 'eu' AND TAGS = 'red'", rmq.SQL92)})
	got := receiveAll(t, c, len(want), 30*time.Second)
	for id := range got {
		if !want[id] {
			t.Errorf("message %s does not match the filter", id)
		}
	}
	if ms := testenv.ReceiveAnswered(t, c, 16, 2*time.Second); len(ms) != 0 {
		t.Fatalf("non-matching message delivered: %s", ms[0].GetProperties())
	}

	bad, err := rmq.NewSimpleConsumer(p.ClientConfig(testenv.Name(t, "g-sql-bad")), rmq.WithSimpleAwaitDuration(time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: rmq.NewFilterExpressionWithType("n >", rmq.SQL92)}))
	if err != nil {
		t.Fatal(err)
	}
	// The settings are accepted, as the Apache proxy accepts them (only a
	// blank SQL92 expression is refused there): the consumer starts, and
	// its receives of that subscription fail with the precise code.
	if err := bad.Start(); err != nil {
		t.Fatalf("a consumer subscribing with a malformed SQL92 filter did not start: %v", err)
	}
	defer func() { _ = bad.GracefulStop() }()
	if ms, err := bad.Receive(t.Context(), 16, 20*time.Second); err == nil || !strings.Contains(err.Error(), v2.Code_ILLEGAL_FILTER_EXPRESSION.String()) {
		t.Fatalf("receive with a malformed SQL92 subscription: %d messages, %v; want ILLEGAL_FILTER_EXPRESSION", len(ms), err)
	}
	raw := testenv.NewRawClient(t, p)
	rawGroup := testenv.Name(t, "g-sql-raw")
	raw.Subscribe(t, rawGroup, topic)
	req := testenv.ReceiveRequest(rawGroup, topic, 1, 10*time.Second)
	req.FilterExpression = &v2.FilterExpression{Type: v2.FilterType_SQL, Expression: "n > AND"}
	if st, _ := raw.Receive(t, req); st.GetCode() != v2.Code_ILLEGAL_FILTER_EXPRESSION {
		t.Fatalf("receive with a malformed SQL92 filter: %v", st)
	}
}
