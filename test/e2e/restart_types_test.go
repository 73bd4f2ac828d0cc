package e2e_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/freeport"
)

// createTopicOfType creates a topic of type typ on a child proxy through
// its admin API.
func createTopicOfType(t *testing.T, c *testenv.Child, name string, typ domain.MessageType, queues int32) {
	t.Helper()
	testenv.Claim(t, "topic", name)
	if _, err := adminClient(t, c).CreateTopic(t.Context(), application.TopicSpec{Name: name, Type: typ, QueueCount: queues}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

func adminClient(t *testing.T, c *testenv.Child) *admin.Client {
	t.Helper()
	ac, err := admin.NewClient(c.AdminAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ac
}

// TestKill9KeepsPendingTimers kills rmqproxy while delay messages wait for
// their time: after a restart every one is delivered, none early.
func TestKill9KeepsPendingTimers(t *testing.T) {
	waitsInParallel(t)
	dir := t.TempDir()
	c1 := testenv.StartChild(t, dir, fastConsumer...)
	topic := testenv.Name(t, "timers")
	createTopicOfType(t, c1, topic, domain.MessageTypeDelay, 2)
	pr := testenv.NewProducer(t, c1.Proxy(t), topic)
	due := map[string]time.Time{}
	start := time.Now()
	for i := range 20 {
		m := &rmq.Message{Topic: topic, Body: []byte(strconv.Itoa(i))}
		at := start.Add(3*time.Second + time.Duration(i)*100*time.Millisecond)
		m.SetDelayTimestamp(at)
		r, err := pr.Send(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		due[r[0].MessageID] = testenv.DeliveryTime(at)
	}
	_ = pr.GracefulStop()
	c1.Kill(t)
	restartAt := time.Now()
	c2 := testenv.StartChild(t, dir, fastConsumer...)
	restart := time.Since(restartAt)
	c := testenv.NewSimpleConsumer(t, c2.Proxy(t), testenv.Name(t, "g-timers"), time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := receiveAll(t, c, len(due), 60*time.Second)
	var latest time.Duration
	for id, at := range got {
		latest = max(latest, at.Sub(due[id]))
		if want, ok := due[id]; !ok {
			t.Errorf("unexpected message %s", id)
		} else if at.Before(want) {
			t.Errorf("message %s delivered %v early after the restart", id, want.Sub(at))
		}
	}
	t.Logf("restart took %v; latest delivery %v after its time", restart, latest)
}

// TestKill9KeepsFIFOProgress acks the first half of each message group,
// then receives a run of each group and acks all of it but its first
// message, kills rmqproxy, and checks after a restart that each group's
// run comes again from its unacked first message and the rest follows in
// order, without the acked half.
func TestKill9KeepsFIFOProgress(t *testing.T) {
	waitsInParallel(t)
	dir := t.TempDir()
	c1 := testenv.StartChild(t, dir, fastConsumer...)
	topic, group := testenv.Name(t, "fifo-r"), testenv.Name(t, "g-fifo-r")
	createTopicOfType(t, c1, topic, domain.MessageTypeFIFO, 2)
	orderly := true
	testenv.Claim(t, "consumer group", group)
	if _, err := adminClient(t, c1).CreateGroup(t.Context(), application.GroupSpec{Name: group, Orderly: &orderly}); err != nil {
		t.Fatal(err)
	}
	pr := testenv.NewProducer(t, c1.Proxy(t), topic)
	const groups, perGroup = 3, 12
	sendFIFO(t, pr, topic, groups, perGroup)
	_ = pr.GracefulStop()

	next := map[string]int{}
	consume := func(c rmq.SimpleConsumer, batch int32, until func() bool) {
		t.Helper()
		testenv.WaitFor(t, 60*time.Second, func() error {
			ms, err := c.Receive(t.Context(), batch, 10*time.Second)
			if err != nil && !testenv.IsNoMessage(err) {
				return err
			}
			for _, m := range ms {
				g := *m.GetMessageGroup()
				seq, _ := strconv.Atoi(m.GetProperties()["seq"])
				if seq != next[g] {
					t.Fatalf("group %s: got seq %d, expected %d", g, seq, next[g])
				}
				if err := c.Ack(t.Context(), m); err != nil {
					t.Fatal(err)
				}
				next[g]++
			}
			if !until() {
				return fmt.Errorf("progress %v", next)
			}
			return nil
		})
	}
	c := testenv.NewSimpleConsumer(t, c1.Proxy(t), group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	consume(c, 1, func() bool {
		for g := range groups {
			if next["group-"+strconv.Itoa(g)] < perGroup/2 {
				return false
			}
		}
		return true
	})
	// A run of each group with its later messages acked and its first
	// not: the acks are final only once the first one is acked.
	runs := map[string][]string{}
	want := 0 // groups with two or more messages left
	for g := range groups {
		if next["group-"+strconv.Itoa(g)] <= perGroup-2 {
			want++
		}
	}
	// A group that comes as a run of one is left unacked, so its queue
	// (in cluster mode: every group sharing its queue, as the broker's
	// orderly pop locks the queue) waits out the receive's 10 s invisible
	// time before it can come as a longer run: the wait allows several
	// such rounds, even on a loaded machine.
	testenv.WaitFor(t, 90*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 3*groups, 10*time.Second)
		if err != nil && !testenv.IsNoMessage(err) {
			return err
		}
		got := map[string][]*rmq.MessageView{}
		for _, m := range ms {
			got[*m.GetMessageGroup()] = append(got[*m.GetMessageGroup()], m)
		}
		for g, run := range got {
			if _, seen := runs[g]; seen || len(run) < 2 {
				continue // a run of one, or one seen before that came again
			}
			for i, m := range run {
				runs[g] = append(runs[g], m.GetProperties()["seq"])
				if i > 0 {
					if err := c.Ack(t.Context(), m); err != nil {
						return err
					}
				}
			}
		}
		if len(runs) < want {
			return fmt.Errorf("runs %v, want %d", runs, want)
		}
		return nil
	})
	if want == 0 {
		t.Fatal("no group has two messages left for a run; send more")
	}
	for g, r := range runs {
		if r[0] != strconv.Itoa(next[g]) {
			t.Fatalf("group %s: run %v, expected one from seq %d", g, r, next[g])
		}
	}
	_ = c.GracefulStop()
	c1.Kill(t)

	c2 := testenv.StartChild(t, dir, fastConsumer...)
	c = testenv.NewSimpleConsumer(t, c2.Proxy(t), group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	consume(c, 16, func() bool {
		for g := range groups {
			if next["group-"+strconv.Itoa(g)] < perGroup {
				return false
			}
		}
		return true
	})
}

// TestKill9KeepsTransactions resolves some half messages, kills rmqproxy
// with one still open, and checks after a restart: the committed one is
// delivered, the rolled back one never, and the open one is checked back
// with a producer and committed.
func TestKill9KeepsTransactions(t *testing.T) {
	waitsInParallel(t)
	dir := t.TempDir()
	flags := append(fastConsumer, "--local.transactionTimeout=1s", "--local.transactionCheckInterval=1s")
	c1 := testenv.StartChild(t, dir, flags...)
	topic := testenv.Name(t, "tx-r")
	createTopicOfType(t, c1, topic, domain.MessageTypeTransaction, 1)
	// This producer never answers check-backs.
	pr, err := rmq.NewProducer(c1.Proxy(t).ClientConfig(""), rmq.WithTopics(topic))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	send := func(body string, end func(rmq.Transaction) error) string {
		tx := pr.BeginTransaction()
		r, err := pr.SendWithTransaction(t.Context(), &rmq.Message{Topic: topic, Body: []byte(body)}, tx)
		if err != nil {
			t.Fatal(err)
		}
		if end != nil {
			if err := end(tx); err != nil {
				t.Fatal(err)
			}
		}
		return r[0].MessageID
	}
	committed := send("committed", func(tx rmq.Transaction) error { return tx.Commit() })
	send("rolled back", func(tx rmq.Transaction) error { return tx.RollBack() })
	open := send("open", nil)
	_ = pr.GracefulStop()
	c1.Kill(t)

	c2 := testenv.StartChild(t, dir, flags...)
	checker := &rmq.TransactionChecker{Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.COMMIT }}
	pr2, err := rmq.NewProducer(c2.Proxy(t).ClientConfig(""), rmq.WithTopics(topic), rmq.WithTransactionChecker(checker))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr2.Start(); err != nil {
		t.Fatal(err)
	}
	defer pr2.GracefulStop()
	c := testenv.NewSimpleConsumer(t, c2.Proxy(t), testenv.Name(t, "g-tx-r"), time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := receiveAll(t, c, 2, 60*time.Second)
	if _, ok := got[committed]; !ok {
		t.Error("the transaction committed before the kill was not delivered")
	}
	if _, ok := got[open]; !ok {
		t.Error("the open transaction was not checked back and committed after the restart")
	}
	if ms := testenv.ReceiveAnswered(t, c, 16, 3*time.Second); len(ms) != 0 {
		t.Fatalf("the rolled back message was delivered: %s", ms[0].GetBody())
	}
}

// TestTransactionRestartUsesNoCheck: a restart of rmqproxy used up one
// check-back of every pending half message, asked at start before any
// producer could reconnect, so with transactionCheckMax 1 the half message
// was rolled back without its producer ever being asked. A check-back no
// producer took does not count: after the restart the producer reconnects,
// is asked, and commits.
func TestTransactionRestartUsesNoCheck(t *testing.T) {
	testenv.LocalOnly(t, "it sets the embedded broker's check-backs (local.transaction*)")
	dir := t.TempDir()
	// No check-back before the restart.
	c1 := testenv.StartChild(t, dir, append(fastConsumer, "--local.transactionTimeout=1h")...)
	if _, err := adminClient(t, c1).CreateTopic(t.Context(), application.TopicSpec{Name: "tx-restart", Type: domain.MessageTypeTransaction, QueueCount: 1}); err != nil {
		t.Fatal(err)
	}
	pr, err := rmq.NewProducer(c1.Proxy(t).ClientConfig(""), rmq.WithTopics("tx-restart"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	tx := pr.BeginTransaction()
	r, err := pr.SendWithTransaction(t.Context(), &rmq.Message{Topic: "tx-restart", Body: []byte("open")}, tx)
	if err != nil {
		t.Fatal(err)
	}
	open := r[0].MessageID
	_ = pr.GracefulStop()
	c1.Kill(t)

	// Overdue at once after the restart (the restart takes longer than the
	// timeout); one check-back allowed, then the default action (rollback)
	// one interval later.
	c2 := testenv.StartChild(t, dir, append(fastConsumer, "--local.transactionTimeout=10ms",
		"--local.transactionCheckInterval=3s", "--local.transactionCheckMax=1")...)
	checker := &rmq.TransactionChecker{Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.COMMIT }}
	pr2, err := rmq.NewProducer(c2.Proxy(t).ClientConfig(""), rmq.WithTopics("tx-restart"), rmq.WithTransactionChecker(checker))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr2.Start(); err != nil {
		t.Fatal(err)
	}
	defer pr2.GracefulStop()
	c := testenv.NewSimpleConsumer(t, c2.Proxy(t), "g-tx-restart", time.Second, map[string]*rmq.FilterExpression{"tx-restart": rmq.SUB_ALL})
	got := receiveAll(t, c, 1, 60*time.Second)
	if _, ok := got[open]; !ok {
		t.Fatalf("the open transaction was not committed by its producer after the restart: got %v; logs:\n%s", got, c2.Output())
	}
}

// TestKill9KeepsTheHandleOfARenewedFIFOMessage: a push consumer (as the Go
// client receives: auto-renewed, from its assigned queue) holds the first
// message of a FIFO message group, which rmqproxy renews past the
// handle's own invisible time; rmqproxy is killed with SIGKILL and
// restarted. The consumer's ack with the handle it received is taken, and
// the group goes on with its next message. Before, the restarted proxy,
// which no longer knew the renewals, refused the ack (INVALID_RECEIPT_HANDLE,
// "expired", and in local mode the renewal's new receipt superseded the
// handle anyway), so the message stayed invisible until the renewed
// invisible time ended (1 minute to an hour, by renewal step), blocking its
// group that long, and then came again.
func TestKill9KeepsTheHandleOfARenewedFIFOMessage(t *testing.T) {
	kill9RenewedFIFOHead(t, "fifo-renewed", func(raw *testenv.RawClient, group, topic string, head []*v2.Message) (*v2.Status, error) {
		ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, head))
		return ack.GetStatus(), err
	})
}

// TestKill9KeepsTheHandleOfARenewedFIFOMessageForAForward: as
// TestKill9KeepsTheHandleOfARenewedFIFOMessage, but the consumer gave the
// message up and forwards it to the dead-letter queue with the handle it
// received (as the Go client's FIFO push consumer does after its local
// retries). It is moved and the group goes on. Before, cluster mode
// answered the forward of the expired orderly handle OK and moved
// nothing, so the group stayed blocked until the renewed invisible time
// ended, then the message came again; local mode moved it at once.
func TestKill9KeepsTheHandleOfARenewedFIFOMessageForAForward(t *testing.T) {
	kill9RenewedFIFOHead(t, "fifo-renewed-dlq", func(raw *testenv.RawClient, group, topic string, head []*v2.Message) (*v2.Status, error) {
		sp := head[0].GetSystemProperties()
		fw, err := raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{Group: &v2.Resource{Name: group},
			Topic: &v2.Resource{Name: topic}, ReceiptHandle: sp.GetReceiptHandle(), MessageId: sp.GetMessageId(), DeliveryAttempt: 1, MaxDeliveryAttempts: 16})
		return fw.GetStatus(), err
	})
}

// kill9RenewedFIFOHead has a push consumer hold the first message of a
// FIFO message group past its handle's own invisible time (renewed by
// rmqproxy), kills rmqproxy with SIGKILL and restarts it, ends the
// delivery with end (an ack or a dead-letter forward, with the handle
// received before the restart), and checks that it is answered OK and
// that the group goes on with its next message.
func kill9RenewedFIFOHead(t *testing.T, name string, end func(raw *testenv.RawClient, group, topic string, head []*v2.Message) (*v2.Status, error)) {
	waitsInParallel(t)
	dir := t.TempDir()
	flags := append(slices.Clone(fastConsumer), "--messaging.consumer.defaultInvisibleTime=5s",
		"--messaging.consumer.renewAhead=2s", "--messaging.consumer.renewPeriod=1s")
	c1 := testenv.StartChild(t, dir, append(flags, "--grpc.address="+freeport.Addr(t))...)
	topic, group := testenv.Name(t, name), testenv.Name(t, "g-"+name)
	createTopicOfType(t, c1, topic, domain.MessageTypeFIFO, 1)
	orderly := true
	testenv.Claim(t, "consumer group", group)
	if _, err := adminClient(t, c1).CreateGroup(t.Context(), application.GroupSpec{Name: group, Orderly: &orderly}); err != nil {
		t.Fatal(err)
	}
	raw := testenv.NewRawClient(t, c1.Proxy(t))
	raw.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	mg := "g"
	for _, body := range []string{"m0", "m1"} {
		m := testenv.RawMessage(topic, []byte(body), "")
		m.SystemProperties.MessageGroup, m.SystemProperties.MessageType = &mg, v2.MessageType_FIFO
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send %s: %v %v", body, resp, err)
		}
	}
	receive := autoRenewedReceive(t, raw, group, topic)
	head := heldPastItsHandle(t, receive)
	if string(head[0].GetBody()) != "m0" {
		t.Fatalf("received %s first", head[0].GetBody())
	}

	c1.Kill(t)
	testenv.StartChild(t, dir, append(flags, "--grpc.address="+c1.GRPCAddr)...)
	var st *v2.Status
	testenv.WaitFor(t, 30*time.Second, func() error {
		var err error
		st, err = end(raw, group, topic, head)
		return err
	})
	if st.GetCode() != v2.Code_OK {
		t.Fatalf("the ack or forward after the restart with the handle received before it: %v", st)
	}
	var next []*v2.Message
	testenv.WaitFor(t, 90*time.Second, func() error {
		if next = receive(); len(next) == 0 {
			return fmt.Errorf("nothing received after the ack or forward")
		}
		return nil
	})
	if got := string(next[0].GetBody()); got != "m1" {
		t.Fatalf("after the ack or forward the group gave %s (delivery attempt %d), want m1", got, next[0].GetSystemProperties().GetDeliveryAttempt())
	}
}

// TestKill9KeepsTheHandleOfARenewedMessageForANack: a push consumer holds
// a message, which rmqproxy renews past the handle's own invisible time;
// rmqproxy is killed with SIGKILL and restarted, and the consumer's
// consumption fails: it nacks the message (ChangeInvisibleDuration to its
// retry policy's backoff, with the handle it received, as the Go client's
// push consumer does). In local mode the broker still holds the delivery
// under that handle (renewals keep its receipt id, as for an ack), so the
// nack is taken and the message comes again after the backoff. Before,
// the proxy refused it by the handle's own time (INVALID_RECEIPT_HANDLE
// "expired": the Go client gives the nack up), and the message stayed
// invisible until the renewed invisible time ended (1 minute to an hour,
// by renewal step). In cluster mode the expired handle is refused, as the
// Apache proxy refuses it (docs/compatibility.md).
func TestKill9KeepsTheHandleOfARenewedMessageForANack(t *testing.T) {
	waitsInParallel(t)
	dir := t.TempDir()
	flags := append(slices.Clone(fastConsumer), "--messaging.consumer.defaultInvisibleTime=5s",
		"--messaging.consumer.renewAhead=2s", "--messaging.consumer.renewPeriod=1s")
	c1 := testenv.StartChild(t, dir, append(flags, "--grpc.address="+freeport.Addr(t))...)
	topic, group := testenv.Name(t, "nack-renewed"), testenv.Name(t, "g-nack-renewed")
	createTopicOfType(t, c1, topic, domain.MessageTypeNormal, 1)
	testenv.Claim(t, "consumer group", group)
	if _, err := adminClient(t, c1).CreateGroup(t.Context(), application.GroupSpec{Name: group}); err != nil {
		t.Fatal(err)
	}
	raw := testenv.NewRawClient(t, c1.Proxy(t))
	raw.SubscribeAs(t, v2.ClientType_PUSH_CONSUMER, group, topic)
	resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte("m0"), "")}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("send: %v %v", resp, err)
	}
	receive := autoRenewedReceive(t, raw, group, topic)
	got := heldPastItsHandle(t, receive)
	sp := got[0].GetSystemProperties()

	c1.Kill(t)
	testenv.StartChild(t, dir, append(flags, "--grpc.address="+c1.GRPCAddr)...)
	var nack *v2.ChangeInvisibleDurationResponse
	testenv.WaitFor(t, 30*time.Second, func() error {
		nack, err = raw.ChangeInvisibleDuration(raw.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
			Topic: &v2.Resource{Name: topic}, ReceiptHandle: sp.GetReceiptHandle(), MessageId: sp.GetMessageId(), InvisibleDuration: durationpb.New(time.Second)})
		return err
	})
	if testenv.Target == testenv.TargetCluster {
		if nack.GetStatus().GetCode() != v2.Code_INVALID_RECEIPT_HANDLE {
			t.Fatalf("cluster mode: the nack of an expired handle after the restart: %v, want INVALID_RECEIPT_HANDLE as upstream", nack)
		}
		return
	}
	if nack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("the nack after the restart with the handle received before it: %v", nack)
	}
	// The message comes again after the nack's second, well within the
	// renewal's minute.
	testenv.WaitFor(t, 20*time.Second, func() error {
		if got = receive(); len(got) == 0 {
			return fmt.Errorf("the nacked message has not come again")
		}
		return nil
	})
	if string(got[0].GetBody()) != "m0" || got[0].GetSystemProperties().GetDeliveryAttempt() != 2 {
		t.Fatalf("after the nack: %s at attempt %d, want m0 at attempt 2", got[0].GetBody(), got[0].GetSystemProperties().GetDeliveryAttempt())
	}
}

// autoRenewedReceive returns a push consumer's receive of one message of
// group and topic whose invisible time rmqproxy renews (auto_renew, no
// invisible duration), long polling 5 s.
func autoRenewedReceive(t *testing.T, raw *testenv.RawClient, group, topic string) func() []*v2.Message {
	return func() []*v2.Message {
		req := testenv.ReceiveRequest(group, topic, 1, 0)
		req.InvisibleDuration, req.AutoRenew = nil, true
		req.LongPollingTimeout = durationpb.New(5 * time.Second)
		_, ms := raw.Receive(t, req)
		return ms
	}
}

// heldPastItsHandle receives a message with receive (see
// autoRenewedReceive), waits until its handle's own invisible time has
// ended, and fails t if a receive then gets a message: the proxy renewed
// the delivery, so nothing comes while it is held. It returns what the
// first receive got.
func heldPastItsHandle(t *testing.T, receive func() []*v2.Message) []*v2.Message {
	t.Helper()
	var got []*v2.Message
	testenv.WaitFor(t, 30*time.Second, func() error {
		if got = receive(); len(got) == 0 {
			return fmt.Errorf("the first message has not come")
		}
		return nil
	})
	h, err := domain.ParseReceiptHandle(got[0].GetSystemProperties().GetReceiptHandle())
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, func() error {
		if !h.Expired(time.Now()) {
			return fmt.Errorf("the handle's invisible time has not ended")
		}
		return nil
	})
	if ms := receive(); len(ms) > 0 {
		t.Fatalf("%s came while %s was held (renewed by the proxy)", ms[0].GetBody(), got[0].GetBody())
	}
	return got
}
