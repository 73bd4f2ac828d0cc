package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// orderLog records, per message group, the sequence numbers in the order a
// consumer processed them.
type orderLog struct {
	mu     sync.Mutex
	seqs   map[string][]int
	failed map[string]bool // ids already failed once
}

func newOrderLog() *orderLog { return &orderLog{seqs: map[string][]int{}, failed: map[string]bool{}} }

func (o *orderLog) record(m *rmq.MessageView) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seq, _ := strconv.Atoi(m.GetProperties()["seq"])
	o.seqs[*m.GetMessageGroup()] = append(o.seqs[*m.GetMessageGroup()], seq)
}

func (o *orderLog) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.seqs {
		n += len(s)
	}
	return n
}

// check verifies every group was processed exactly in send order, once.
func (o *orderLog) check(t *testing.T, groups, perGroup int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seqs) != groups {
		t.Fatalf("%d message groups processed, want %d", len(o.seqs), groups)
	}
	for g, s := range o.seqs {
		if len(s) != perGroup {
			t.Fatalf("group %s: %d messages processed, want %d: %v", g, len(s), perGroup, s)
		}
		for i, v := range s {
			if v != i {
				t.Fatalf("group %s processed out of order: %v", g, s)
			}
		}
	}
}

func sendFIFO(t *testing.T, pr rmq.Producer, topic string, groups, perGroup int) {
	t.Helper()
	for i := range perGroup {
		for g := range groups {
			m := &rmq.Message{Topic: topic, Body: []byte(fmt.Sprintf("g%d-%d", g, i))}
			m.SetMessageGroup("group-" + strconv.Itoa(g))
			m.AddProperty("seq", strconv.Itoa(i))
			if _, err := pr.Send(t.Context(), m); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
	}
}

// TestFIFOPushConsumersKeepGroupOrder sends 10 message groups × 20 messages
// to a FIFO topic and consumes them with two push consumers of an orderly
// group, one of which fails a message once: every group is processed in
// send order, exactly once, across both consumers.
//
// In cluster mode no message fails: a RocketMQ broker's orderly pop hands
// out consecutive messages of a queue in one batch (several of one message
// group), and the Go client v5.1.4 goes on with the next message of the
// batch while a failed one waits for its local retry
// (fifoConsumeService.consumeIteratively after eraseFifoMessage), so a
// failure reorders its group. The embedded broker hands out one message
// per group at a time, which hides that client bug.
func TestFIFOPushConsumersKeepGroupOrder(t *testing.T) {
	waitsInParallel(t)
	failOnce := testenv.Target == testenv.TargetLocal
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "fifo"), testenv.Name(t, "g-fifo")
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 4)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly, RetryPolicy: &domain.RetryPolicy{Delays: []time.Duration{time.Second}}})
	pr := testenv.NewProducer(t, p, topic)
	const groups, perGroup = 10, 20
	sendFIFO(t, pr, topic, groups, perGroup)

	log := newOrderLog()
	consumer := func() rmq.PushConsumer {
		return testenv.StartPushConsumer(t, p, group, topic, func(m *rmq.MessageView) rmq.ConsumerResult {
			if failOnce && *m.GetMessageGroup() == "group-3" && m.GetProperties()["seq"] == "5" {
				log.mu.Lock()
				first := !log.failed[m.GetMessageId()]
				log.failed[m.GetMessageId()] = true
				log.mu.Unlock()
				if first {
					return rmq.FAILURE // retried in place: group-3 must wait for it
				}
			}
			log.record(m)
			return rmq.SUCCESS
		}, rmq.WithPushConsumptionThreadCount(4))
	}
	stopTogether(t, consumer(), consumer())
	testenv.WaitFor(t, 90*time.Second, func() error {
		if n := log.total(); n < groups*perGroup {
			return fmt.Errorf("%d of %d processed", n, groups*perGroup)
		}
		return nil
	})
	log.check(t, groups, perGroup)
}

// fifoSimpleConsumer starts a proxy with FIFO topic name (queues queues)
// and orderly group g-name, sends perGroup messages of each of groups
// message groups to it (see sendFIFO), and returns a simple consumer of the
// group subscribed to the topic.
func fifoSimpleConsumer(t *testing.T, name string, queues int32, groups, perGroup int) rmq.SimpleConsumer {
	t.Helper()
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, name), testenv.Name(t, "g-"+name)
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, queues)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	sendFIFO(t, testenv.NewProducer(t, p, topic), topic, groups, perGroup)
	return testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
}

// receiveUpTo receives up to n messages with c, long-polling up to 20 s;
// none is no failure.
func receiveUpTo(t *testing.T, c rmq.SimpleConsumer, n int32) []*rmq.MessageView {
	t.Helper()
	ms, err := c.Receive(t.Context(), n, 20*time.Second)
	if err != nil && !testenv.IsNoMessage(err) {
		t.Fatal(err)
	}
	return ms
}

// TestFIFOSimpleConsumerBlocksGroupUntilAck shows the broker-side rule: while
// messages of a group are in flight, the next ones of that group are held
// back; other groups go on. A receive hands out a run of each group: up to
// the batch size of its consecutive messages, in order.
// A RocketMQ broker (cluster mode) holds back a whole queue instead: see
// fifoQueueBlocksUntilAck.
func TestFIFOSimpleConsumerBlocksGroupUntilAck(t *testing.T) {
	waitsInParallel(t)
	if testenv.Target == testenv.TargetCluster {
		fifoQueueBlocksUntilAck(t)
		return
	}
	c := fifoSimpleConsumer(t, "fifo-s", 1, 2, 3) // group-0 and group-1, seq 0..2 each
	seq := func(ms []*rmq.MessageView) []string {
		var out []string
		for _, m := range ms {
			out = append(out, *m.GetMessageGroup()+"/"+m.GetProperties()["seq"])
		}
		return out
	}
	first := receiveUpTo(t, c, 2)
	if !slices.Equal(seq(first), []string{"group-0/0", "group-1/0"}) {
		t.Fatalf("first receive of 2: %v, want both groups' heads", seq(first))
	}
	if more := receiveUpTo(t, c, 16); len(more) != 0 {
		t.Fatalf("a group's next message was delivered while its head was in flight: %v", seq(more))
	}
	if err := c.Ack(t.Context(), first[0]); err != nil {
		t.Fatal(err)
	}
	// group-0 goes on with a run of its remaining messages; group-1 waits.
	if next := receiveUpTo(t, c, 16); !slices.Equal(seq(next), []string{"group-0/1", "group-0/2"}) {
		t.Fatalf("after acking group-0's head: %v", seq(next))
	}
}

// TestFIFOSimpleConsumerReceivesRunsOfOneGroup: a receive with batch size 3
// on a FIFO topic with one message group gets 3 consecutive messages of it,
// in order, as from the Apache proxy. When the consumer acks the later two
// but not the first, the whole run comes again after the invisible
// duration, as the Apache broker's orderly pop does; once the first is
// acked too, the group goes on.
func TestFIFOSimpleConsumerReceivesRunsOfOneGroup(t *testing.T) {
	c := fifoSimpleConsumer(t, "fifo-run", 2, 1, 6)
	seqs := func(ms []*rmq.MessageView) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.GetProperties()["seq"])
		}
		return out
	}
	var run []*rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 3, 3*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		run = ms
		if len(run) == 0 {
			return fmt.Errorf("nothing received")
		}
		return nil
	})
	if !slices.Equal(seqs(run), []string{"0", "1", "2"}) {
		t.Fatalf("one receive of 3 got seq %v, want a run 0 1 2", seqs(run))
	}
	for _, m := range run[1:] {
		if err := c.Ack(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	var again []*rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 3, 20*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		again = append(again, ms...)
		if len(again) == 0 {
			return fmt.Errorf("the run did not come again")
		}
		return nil
	})
	if !slices.Equal(seqs(again), []string{"0", "1", "2"}) {
		t.Fatalf("after seq 0 was left unacked: seq %v, want the run 0 1 2 again", seqs(again))
	}
	for _, m := range again {
		if m.GetDeliveryAttempt() != 2 {
			t.Fatalf("seq %s attempt %d, want 2", m.GetProperties()["seq"], m.GetDeliveryAttempt())
		}
		if err := c.Ack(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := c.Receive(t.Context(), 3, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs(ms), []string{"3", "4", "5"}) {
		t.Fatalf("after the run was acked: seq %v", seqs(ms))
	}
}

// fifoQueueBlocksUntilAck is TestFIFOSimpleConsumerBlocksGroupUntilAck for
// a RocketMQ broker, whose orderly pop locks a queue: it hands out
// consecutive messages of the queue, in order, and nothing more of that
// queue until every one of them is acked.
func fifoQueueBlocksUntilAck(t *testing.T) {
	c := fifoSimpleConsumer(t, "fifo-s", 1, 2, 3) // g0-0 g1-0 g0-1 g1-1 g0-2 g1-2 in the one queue
	var first []*rmq.MessageView
	testenv.WaitFor(t, 20*time.Second, func() error {
		if first = receiveUpTo(t, c, 2); len(first) == 0 {
			return fmt.Errorf("nothing received yet")
		}
		return nil
	})
	want := []string{"g0-0", "g1-0"}
	for i, m := range first {
		if string(m.GetBody()) != want[i] {
			t.Fatalf("message %d of the first batch is %s, want %s", i, m.GetBody(), want[i])
		}
	}
	if more := receiveUpTo(t, c, 2); len(more) != 0 {
		t.Fatalf("the queue's next message %s was delivered while the first batch was in flight", more[0].GetBody())
	}
	for _, m := range first {
		if err := c.Ack(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	var next []*rmq.MessageView
	testenv.WaitFor(t, 20*time.Second, func() error {
		if next = receiveUpTo(t, c, 2); len(next) == 0 {
			return fmt.Errorf("nothing received after the acks")
		}
		return nil
	})
	if b := string(next[0].GetBody()); b != "g0-1" && len(first) == 2 {
		t.Fatalf("after acking the first batch got %s, want g0-1", b)
	}
}

// TestFIFOAssignmentsShareQueuesAmongPushConsumers checks QueryAssignment
// for an orderly group: the live push consumers get disjoint sets of queues
// that together cover the topic, and a consumer that leaves gives its
// queues back.
func TestFIFOAssignmentsShareQueuesAmongPushConsumers(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "fifo-a"), testenv.Name(t, "g-fifo-a")
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 5)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	clients := []*testenv.RawClient{testenv.NewRawClient(t, p), testenv.NewRawClient(t, p)}
	for _, c := range clients {
		c.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	}
	assigned := func(c *testenv.RawClient) []int32 {
		resp, err := c.QueryAssignment(c.Ctx(t), &v2.QueryAssignmentRequest{Topic: &v2.Resource{Name: topic}, Group: &v2.Resource{Name: group}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("query assignment: %v %v", resp, err)
		}
		var ids []int32
		for _, a := range resp.GetAssignments() {
			ids = append(ids, a.GetMessageQueue().GetId())
		}
		return ids
	}
	a, b := assigned(clients[0]), assigned(clients[1])
	seen := map[int32]bool{}
	for _, id := range append(append([]int32{}, a...), b...) {
		if seen[id] {
			t.Fatalf("queue %d assigned twice: %v and %v", id, a, b)
		}
		seen[id] = true
	}
	if len(seen) != 5 || len(a) == 0 || len(b) == 0 {
		t.Fatalf("assignments %v and %v do not share out 5 queues", a, b)
	}
	resp, err := clients[1].NotifyClientTermination(clients[1].Ctx(t), &v2.NotifyClientTerminationRequest{Group: &v2.Resource{Name: group}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("terminate: %v %v", resp, err)
	}
	if got := assigned(clients[0]); len(got) != 5 {
		t.Fatalf("after the other consumer left, assignment %v", got)
	}
}

// TestFIFOPoisonMessageGoesToDeadLetterQueue: a FIFO push consumer that
// keeps failing one message forwards it to the dead-letter queue
// (ForwardMessageToDeadLetterQueue) after the group's max attempts, and the
// rest of its message group then goes on, in order, at once: the move wakes
// the consumer's long poll (which waited for its whole polling time, 20 s,
// in local mode before).
func TestFIFOPoisonMessageGoesToDeadLetterQueue(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "fifo-p"), testenv.Name(t, "g-fifo-p")
	dlqTopic := domain.DeadLetterTopic(group)
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 1)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly, MaxDeliveryAttempts: 2,
		RetryPolicy: &domain.RetryPolicy{Delays: []time.Duration{200 * time.Millisecond}}})
	pr := testenv.NewProducer(t, p, topic)
	sendFIFO(t, pr, topic, 1, 5) // group-0, seq 0..4; seq 2 is poison
	log := newOrderLog()
	var lastFailure, after time.Time // of seq 2, of seq 3 (under log.mu)
	pc := testenv.StartPushConsumer(t, p, group, topic, func(m *rmq.MessageView) rmq.ConsumerResult {
		switch m.GetProperties()["seq"] {
		case "2":
			log.mu.Lock()
			lastFailure = time.Now()
			log.mu.Unlock()
			return rmq.FAILURE
		case "3":
			log.mu.Lock()
			after = time.Now()
			log.mu.Unlock()
		}
		log.record(m)
		return rmq.SUCCESS
	})
	defer pc.GracefulStop()
	testenv.WaitFor(t, 60*time.Second, func() error {
		if n := log.total(); n < 4 {
			return fmt.Errorf("%d of 4 processed", n)
		}
		return nil
	})
	log.mu.Lock()
	got := fmt.Sprint(log.seqs["group-0"])
	log.mu.Unlock()
	if got != "[0 1 3 4]" {
		t.Fatalf("group-0 processed %s, want [0 1 3 4] (2 dead-lettered)", got)
	}
	log.mu.Lock()
	gap := after.Sub(lastFailure)
	log.mu.Unlock()
	// The client forwards seq 2 right after its last failure (its retry
	// delay is 200 ms); seq 3 follows as soon as its long poll is woken.
	if gap > 3*time.Second {
		t.Fatalf("seq 3 came %v after the last failure of seq 2: the dead-letter move did not wake the waiting receive", gap)
	}
	testenv.WaitForRoute(t, p, dlqTopic)
	dlq := testenv.NewSimpleConsumer(t, p, testenv.Name(t, "g-fifo-p-dlq"), time.Second, map[string]*rmq.FilterExpression{dlqTopic: rmq.SUB_ALL})
	var dead []*rmq.MessageView
	testenv.WaitFor(t, 30*time.Second, func() error {
		ms, err := dlq.Receive(t.Context(), 16, 20*time.Second)
		dead = append(dead, ms...)
		if len(dead) == 0 {
			return fmt.Errorf("nothing in the DLQ yet: %v", err)
		}
		return nil
	})
	// The client retried seq 2 itself: the broker delivered it once, so its
	// dead-letter copy counts one delivery (RocketMQ's reconsume times 1)
	// and comes with attempt 2.
	if len(dead) != 1 || dead[0].GetProperties()["seq"] != "2" || dead[0].GetDeliveryAttempt() != 2 {
		for _, m := range dead {
			t.Logf("DLQ: seq %s attempt %d", m.GetProperties()["seq"], m.GetDeliveryAttempt())
		}
		t.Fatalf("DLQ holds %d messages, want seq 2 at delivery attempt 2", len(dead))
	}
	if err := dlq.Ack(t.Context(), dead[0]); err != nil {
		t.Fatal(err)
	}
}

// stopTogether stops push consumers pcs at once when the test ends. The Go
// client v5.1.4 spends about 9 s in a push consumer's GracefulStop here:
// a receive answered "no message" never leaves its count of receives in
// flight (receiveMessageImmediatelyWithAttemptId skips doAfter for
// MESSAGE_NOT_FOUND), so GracefulStop waits its whole bound (request
// timeout 3 s + long-polling time, testenv.Config's 5 s) and then sleeps
// 1 s. One after the other, each consumer paid it in turn.
func stopTogether(t *testing.T, pcs ...rmq.PushConsumer) {
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, pc := range pcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = pc.GracefulStop()
			}()
		}
		wg.Wait()
	})
}

// TestFIFODeadLetterCopyCountsAsTheBrokersDoes: a RocketMQ broker's
// orderly pop counts the deliveries of a FIFO message apart from the
// message, which keeps the reconsume times it was stored with (0 for a
// message sent fresh); a dead-letter copy takes those plus one
// (CONSUMER_SEND_MSG_BACK), so its consumers get it at delivery attempt 2
// however many deliveries it used, whether the proxy moved it when its
// attempts ran out or the consumer forwarded it. Local mode counted the
// deliveries into the copy (attempt 4 and 3 here), so a dead-letter
// consumer group allowing 3 attempts had the first moved on to its own
// dead-letter queue unseen, and local and cluster mode differed.
func TestFIFODeadLetterCopyCountsAsTheBrokersDoes(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "fifo-dl-count"), testenv.Name(t, "g-fifo-dl-count")
	orderly := true
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly, MaxDeliveryAttempts: 2})
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	ids := map[string]string{}
	for _, body := range []string{"exhausted", "forwarded"} {
		m := testenv.RawMessage(topic, []byte(body), "")
		mg := "g1"
		m.SystemProperties.MessageGroup, m.SystemProperties.MessageType = &mg, v2.MessageType_FIFO
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send: %v %v", resp, err)
		}
		ids[body] = m.GetSystemProperties().GetMessageId()
	}
	// receiveAt receives the group's next message, wanting body at attempt.
	receiveAt := func(body string, attempt int32) *v2.Message {
		t.Helper()
		ms := raw.ReceiveN(t, group, topic, 1, 30*time.Second, 30*time.Second)
		sp := ms[0].GetSystemProperties()
		if string(ms[0].GetBody()) != body || sp.GetDeliveryAttempt() != attempt {
			t.Fatalf("received %q at attempt %d, want %q at attempt %d", ms[0].GetBody(), sp.GetDeliveryAttempt(), body, attempt)
		}
		return ms[0]
	}
	nack := func(m *v2.Message) {
		t.Helper()
		sp := m.GetSystemProperties()
		resp, err := raw.ChangeInvisibleDuration(raw.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
			Topic: &v2.Resource{Name: topic}, ReceiptHandle: sp.GetReceiptHandle(), MessageId: sp.GetMessageId(), InvisibleDuration: durationpb.New(0)})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("change invisible duration: %v %v", resp, err)
		}
	}
	// The first uses both attempts of the group; the proxy moves it.
	nack(receiveAt("exhausted", 1))
	nack(receiveAt("exhausted", 2))
	// The second is forwarded by the consumer at its second delivery.
	nack(receiveAt("forwarded", 1))
	m := receiveAt("forwarded", 2)
	sp := m.GetSystemProperties()
	fw, err := raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{Group: &v2.Resource{Name: group},
		Topic: &v2.Resource{Name: topic}, ReceiptHandle: sp.GetReceiptHandle(), MessageId: sp.GetMessageId(), DeliveryAttempt: 2, MaxDeliveryAttempts: 2})
	if err != nil || fw.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("forward: %v %v", fw, err)
	}

	dlq := domain.DeadLetterTopic(group)
	testenv.WaitForRoute(t, p, dlq)
	reader := testenv.Name(t, "g-fifo-dl-count-reader")
	p.CreateGroup(t, application.GroupSpec{Name: reader, MaxDeliveryAttempts: 3})
	rr := testenv.NewRawClient(t, p)
	rr.Subscribe(t, reader, dlq)
	got := map[string]int32{}
	testenv.WaitFor(t, 30*time.Second, func() error {
		for _, dead := range rr.ReceiveAnswered(t, testenv.ReceiveRequest(reader, dlq, 2, 30*time.Second)) {
			got[string(dead.GetBody())] = dead.GetSystemProperties().GetDeliveryAttempt()
		}
		if len(got) < 2 {
			return fmt.Errorf("the reader allowing 3 attempts got %v of the dead-letter copies of %v", got, ids)
		}
		return nil
	})
	for body, attempt := range got {
		if attempt != 2 {
			t.Errorf("dead-letter copy of %q (%s) came at delivery attempt %d, want 2 (the broker's reconsume times 1)", body, ids[body], attempt)
		}
	}
}

// TestFIFOBatchOfSeveralGroupsIsRefused: a batch goes to one queue, so a
// batch holding two message groups (or a FIFO message and one of none)
// put one group's message outside its group's queue, where it was
// consumed out of order: a0 and b0 sent in one batch, then a1 and b1 on
// their own, were delivered a1, b1, a0, b0 at once (local mode). Such a
// batch is refused, in both modes.
func TestFIFOBatchOfSeveralGroupsIsRefused(t *testing.T) {
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "fifo-batch"), testenv.Name(t, "g-fifo-batch")
	orderly := true
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 8)
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	m := func(g, body string) *v2.Message {
		x := testenv.RawMessage(topic, []byte(body), "")
		x.SystemProperties.MessageGroup = &g
		return x
	}
	send := func(ms ...*v2.Message) *v2.Status {
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: ms})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	st := send(m("a", "a0"), m("b", "b0"))
	if st.GetCode() == v2.Code_BAD_REQUEST {
		return
	}
	for _, body := range []string{"a1", "b1"} {
		if st := send(m(body[:1], body)); st.GetCode() != v2.Code_OK {
			t.Fatalf("send %s: %v", body, st)
		}
	}
	got := raw.ReceiveN(t, group, topic, 2, time.Minute, 30*time.Second)
	var order []string
	for _, x := range got {
		order = append(order, fmt.Sprintf("%s (queue %d)", x.Body, x.GetSystemProperties().GetQueueId()))
	}
	t.Fatalf("a batch of groups a and b was answered %v, want BAD_REQUEST; then delivered %v while a0 and b0 were not acked", st, order)
}

// groupHolders checks, for consumers of one orderly group, that no message
// of a message group goes to one consumer while another holds one of that
// group, and that each group's messages come in send order, once.
type groupHolders struct {
	mu     sync.Mutex
	holder map[string]string // message group → consumer holding it
	next   map[string]int    // message group → next seq expected
	done   int
	bad    []string
}

// take records that consumer who got m.
func (h *groupHolders) take(who string, m *rmq.MessageView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := *m.GetMessageGroup()
	seq, _ := strconv.Atoi(m.GetProperties()["seq"])
	if other, ok := h.holder[g]; ok && other != who {
		h.bad = append(h.bad, fmt.Sprintf("%s got %s/%d while %s held the group", who, g, seq, other))
	}
	if seq != h.next[g] {
		h.bad = append(h.bad, fmt.Sprintf("%s got %s/%d, want seq %d", who, g, seq, h.next[g]))
	}
	h.holder[g], h.next[g] = who, seq+1
}

// finish records that ms are processed; called before they are acked, so
// that the next message of their groups cannot come before.
func (h *groupHolders) finish(ms ...*rmq.MessageView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range ms {
		delete(h.holder, *m.GetMessageGroup())
	}
	h.done += len(ms)
}

// TestFIFOPushAndSimpleConsumersShareGroups: two push consumers and two
// simple consumers (receiving runs of 3) of one orderly group consume 6
// message groups over 4 queues: no message group is ever held by two
// consumers at once, and each is consumed in send order, once.
func TestFIFOPushAndSimpleConsumersShareGroups(t *testing.T) {
	waitsInParallel(t)
	p := testenv.Start(t, testenv.Config(t))
	topic, group := testenv.Name(t, "fifo-mix"), testenv.Name(t, "g-fifo-mix")
	p.CreateTopic(t, topic, domain.MessageTypeFIFO, 4)
	orderly := true
	p.CreateGroup(t, application.GroupSpec{Name: group, Orderly: &orderly})
	const groups, perGroup = 6, 20
	sendFIFO(t, testenv.NewProducer(t, p, topic), topic, groups, perGroup)
	h := &groupHolders{holder: map[string]string{}, next: map[string]int{}}
	var pcs []rmq.PushConsumer
	for i := range 2 {
		who := fmt.Sprint("push consumer ", i)
		pcs = append(pcs, testenv.StartPushConsumer(t, p, group, topic, func(m *rmq.MessageView) rmq.ConsumerResult {
			h.take(who, m)
			h.finish(m)
			return rmq.SUCCESS
		}))
	}
	stopTogether(t, pcs...)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for i := range 2 {
		who := fmt.Sprint("simple consumer ", i)
		c := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
		wg.Go(func() {
			for ctx.Err() == nil {
				ms, err := c.Receive(ctx, 3, 20*time.Second)
				if err != nil && !testenv.IsNoMessage(err) && ctx.Err() == nil {
					t.Errorf("%s: receive: %v", who, err)
					return
				}
				for _, m := range ms {
					h.take(who, m)
				}
				h.finish(ms...)
				for _, m := range ms {
					if err := c.Ack(t.Context(), m); err != nil {
						t.Errorf("%s: ack: %v", who, err)
					}
				}
			}
		})
	}
	testenv.WaitFor(t, 90*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.bad) > 0 {
			return nil
		}
		if h.done < groups*perGroup {
			return fmt.Errorf("%d of %d consumed", h.done, groups*perGroup)
		}
		return nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bad) > 0 {
		t.Fatalf("%d violations, the first: %v", len(h.bad), h.bad[:min(len(h.bad), 5)])
	}
}
