package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/cluster"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// retryTopicV2 makes a broker name the pop retry topic of group G and
// topic T %RETRY%G+T instead of %RETRY%G_T (BrokerConfig, off by default).
const retryTopicV2 = "enableRetryTopicV2=true"

// TestBrokerWithRetryTopicV2 puts rmqproxy in front of a broker with
// enableRetryTopicV2, which keeps what a group did not ack in time in
// %RETRY%G+T, signed as a Normal broker user with the permissions
// docs/security.md lists for that naming (Group:G+T for the retry topic).
// A message not acked comes back from the retry topic (its handle's topic
// type 2) as attempt 2 of its own topic; ChangeInvisibleDuration of it
// holds on the broker; past the group's maximum attempts it is moved to
// the dead-letter queue. A client's dead-letter forward of a redelivered
// message moves it, while one whose handle names a message of the group's
// retry topic for another topic, or of another group's retry topic for
// the topic, moves nothing. A broker's CONSUME_MESSAGE_DIRECTLY for the copy
// in the retry topic reaches the group's consumer of the topic. Deleting a
// group, signed as a broker user with exactly what docs/security.md lists
// for group delete with this naming (Delete on Group:G and on Group:G+T of
// each retry topic), deletes it and its retry topics; with one Group:G+T
// entry less the broker refuses that retry topic's delete.
func TestBrokerWithRetryTopicV2(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokersWith(t, 1, append(slices.Clone(brokerAuthSettings), retryTopicV2)...)
	superCfg, _ := testenv.ClusterConfig(t)
	superCfg.Cluster.ClusterName = brokers[0].Cluster
	superCfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "rmqproxy", SecretKey: "s3cret-key"}
	super := testenv.Start(t, superCfg)

	topic, fwTopic, other := testenv.Name(t, "v2-orders"), testenv.Name(t, "v2-forward"), testenv.Name(t, "v2-other")
	directTopic, directGroup := testenv.Name(t, "v2-direct"), testenv.Name(t, "g-v2-direct")
	batchTopic, batchGroup := testenv.Name(t, "v2-batch"), testenv.Name(t, "g-v2-batch")
	group, fwGroup, otherGroup := testenv.Name(t, "g-v2-orders"), testenv.Name(t, "g-v2-forward"), testenv.Name(t, "g-v2-foreign")
	dlqReader, fwDLQReader := testenv.Name(t, "g-v2-dlq-reader"), testenv.Name(t, "g-v2-forward-dlq-reader")
	for _, tp := range []string{topic, fwTopic, other, directTopic, batchTopic} {
		super.CreateTopic(t, tp, domain.MessageTypeNormal, 1)
	}
	super.CreateGroup(t, application.GroupSpec{Name: group, MaxDeliveryAttempts: 2})
	for _, g := range []string{fwGroup, otherGroup, dlqReader, fwDLQReader, directGroup, batchGroup} {
		super.CreateGroup(t, application.GroupSpec{Name: g})
	}
	var entries []aclEntry
	for _, tp := range []string{topic, fwTopic, other, directTopic, batchTopic, domain.DeadLetterTopic(group), domain.DeadLetterTopic(fwGroup)} {
		entries = append(entries, aclEntry{"Topic:" + tp, []string{"Pub", "Sub", "Get"}})
	}
	for _, g := range []string{group, fwGroup, otherGroup, dlqReader, fwDLQReader, directGroup, batchGroup} {
		entries = append(entries, aclEntry{"Group:" + g, []string{"Sub", "Get"}})
	}
	// The pop retry topics, which a broker authorizes as the groups G+T.
	for _, g := range []string{group + "+" + topic, fwGroup + "+" + fwTopic, fwGroup + "+" + other, otherGroup + "+" + fwTopic,
		directGroup + "+" + directTopic, batchGroup + "+" + batchTopic} {
		entries = append(entries, aclEntry{"Group:" + g, []string{"Sub", "Get"}})
	}
	addBrokerUser(t, brokers[0], "app-v2", "app-v2-secret", entries...)
	cfg := superCfg
	cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "app-v2", SecretKey: "app-v2-secret"}
	p := testenv.Start(t, cfg)

	// The four wait on the broker's revivals, on topics and groups of their
	// own: they run at once. The group delete needs what the dead-letter
	// forward left (fwGroup's retry topics), so it runs after them.
	t.Run("redeliveries", func(t *testing.T) {
		t.Run("redelivery, invisible time and dead letter", func(t *testing.T) {
			t.Parallel()
			pr := testenv.NewProducer(t, p, topic)
			msg := &rmq.Message{Topic: topic, Body: []byte("payload")}
			msg.AddProperty("p", "v")
			msg.SetTag("tg")
			r, err := pr.Send(t.Context(), msg)
			if err != nil {
				t.Fatal(err)
			}
			id := r[0].MessageID
			c := testenv.NewSimpleConsumer(t, p, group, time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
			var first *rmq.MessageView
			testenv.WaitFor(t, 30*time.Second, func() error {
				ms, err := c.Receive(t.Context(), 1, 2*time.Second)
				if len(ms) == 0 {
					return fmt.Errorf("no message yet: %v", err)
				}
				first = ms[0]
				return nil
			})
			if first.GetMessageId() != id || first.GetDeliveryAttempt() != 1 || handleTopicType(first.GetReceiptHandle()) != "0" {
				t.Fatalf("first delivery: %s attempt %d handle %q", first.GetMessageId(), first.GetDeliveryAttempt(), first.GetReceiptHandle())
			}
			// Not acked: the broker revives it into %RETRY%group+topic.
			again := redeliveredV2(t, c, 3*time.Second)
			if again.GetMessageId() != id || again.GetTopic() != topic || again.GetDeliveryAttempt() != 2 || string(again.GetBody()) != "payload" ||
				fmt.Sprint(again.GetProperties()) != "map[p:v]" || again.GetTag() == nil || *again.GetTag() != "tg" {
				t.Fatalf("redelivery: %s topic %q attempt %d body %q properties %v tag %v", again.GetMessageId(), again.GetTopic(),
					again.GetDeliveryAttempt(), again.GetBody(), again.GetProperties(), again.GetTag())
			}
			// Its invisible time changed on the broker: it comes back (and,
			// its last attempt used, goes to the dead-letter queue) only after
			// the new one, not after the 3 s it was received with.
			const changed = 15 * time.Second
			tc := testenv.WallNow()
			if err := c.ChangeInvisibleDuration(again, changed); err != nil {
				t.Fatalf("change invisible duration of a redelivered message: %v", err)
			}
			// The group's stats have a row of its retry topic, under the
			// broker's name for it.
			retry := remoting.PopRetryTopic(topic, group, true)
			testenv.WaitFor(t, 30*time.Second, func() error {
				stats, err := p.Admin.GroupStats(t.Context(), group)
				if err != nil || !slices.ContainsFunc(stats, func(s ports.QueueStats) bool { return s.Topic == retry }) {
					return fmt.Errorf("group stats without a row of %s: %+v %v", retry, stats, err)
				}
				return nil
			})
			dlq := domain.DeadLetterTopic(group)
			testenv.WaitFor(t, 2*time.Minute, func() error {
				if ms := testenv.ReceiveAnswered(t, c, 1, time.Second); len(ms) != 0 {
					t.Fatalf("an exhausted message was delivered again (attempt %d, handle %q)", ms[0].GetDeliveryAttempt(), ms[0].GetReceiptHandle())
				}
				_, err := p.Admin.Topic(t.Context(), dlq)
				return err
			})
			testenv.WaitForRoute(t, p, dlq)
			raw := testenv.NewRawClient(t, p)
			raw.Subscribe(t, dlqReader, dlq)
			dead := raw.ReceiveN(t, dlqReader, dlq, 1, time.Minute, 30*time.Second)[0]
			sp := dead.GetSystemProperties()
			if sp.GetMessageId() != id || dead.GetTopic().GetName() != dlq || string(dead.GetBody()) != "payload" || sp.GetTag() != "tg" ||
				fmt.Sprint(dead.GetUserProperties()) != "map[p:v]" {
				t.Fatalf("dead letter: %s topic %q body %q tag %q properties %v", sp.GetMessageId(), dead.GetTopic().GetName(), dead.GetBody(),
					sp.GetTag(), dead.GetUserProperties())
			}
			if stored := sp.GetStoreTimestamp().AsTime(); stored.Before(tc.Add(changed - time.Second)) {
				t.Errorf("moved to the dead-letter queue at %v, %v after its invisible time was changed to %v: the change did not hold",
					stored, stored.Sub(tc), changed)
			}
		})

		t.Run("dead-letter forward", func(t *testing.T) {
			t.Parallel()
			raw := testenv.NewRawClient(t, p)
			raw.Subscribe(t, fwGroup, fwTopic)
			rawOther := testenv.NewRawClient(t, p)
			rawOther.Subscribe(t, fwGroup, other)
			rawForeign := testenv.NewRawClient(t, p)
			rawForeign.Subscribe(t, otherGroup, fwTopic)
			// The group delete after this subtest deletes fwGroup: its
			// clients leave first, as the official clients do when they
			// shut down. Otherwise rmqproxy goes on registering them with
			// the broker (heartbeats, until they expire), whose
			// autoCreateSubscriptionGroup makes the group again, and the
			// delete's check found it.
			for _, c := range []*testenv.RawClient{raw, rawOther} {
				defer leave(t, c, fwGroup)
			}
			raw.SendN(t, fwTopic, 1)
			raw.SendN(t, other, 1)
			// Each redelivered from its pop retry topic: %RETRY%fwGroup+fwTopic,
			// %RETRY%fwGroup+other, %RETRY%otherGroup+fwTopic.
			own := retried(t, raw, fwGroup, fwTopic)
			ofOther := retried(t, rawOther, fwGroup, other)
			foreign := retried(t, rawForeign, otherGroup, fwTopic)
			for _, m := range [][]*v2.Message{own, ofOther, foreign} {
				if tt := handleTopicType(m[0].GetSystemProperties().GetReceiptHandle()); tt != "2" {
					t.Fatalf("redelivered with topic type %s, want 2: %v", tt, m[0])
				}
			}
			if own[0].GetTopic().GetName() != fwTopic || ofOther[0].GetTopic().GetName() != other || foreign[0].GetTopic().GetName() != fwTopic {
				t.Errorf("redelivered messages show topics %q, %q, %q; want %q, %q, %q", own[0].GetTopic().GetName(),
					ofOther[0].GetTopic().GetName(), foreign[0].GetTopic().GetName(), fwTopic, other, fwTopic)
			}
			forward := func(what string, m *v2.Message) {
				t.Helper()
				fw, err := raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{
					Group: &v2.Resource{Name: fwGroup}, Topic: &v2.Resource{Name: fwTopic},
					ReceiptHandle: m.GetSystemProperties().GetReceiptHandle(), MessageId: m.GetSystemProperties().GetMessageId(),
					DeliveryAttempt: 2, MaxDeliveryAttempts: 16})
				if err != nil || fw.GetStatus().GetCode() != v2.Code_OK {
					t.Fatalf("dead-letter forward of %s: %v %v", what, fw, err)
				}
			}
			// Named as fwGroup's delivery of fwTopic: answered OK, nothing moved.
			forward("a message of the group's retry topic for another topic", ofOther[0])
			forward("a message of another group's retry topic", foreign[0])
			forward("a redelivered message", own[0])

			dlq := domain.DeadLetterTopic(fwGroup)
			testenv.WaitForRoute(t, p, dlq)
			reader := testenv.NewRawClient(t, p)
			reader.Subscribe(t, fwDLQReader, dlq)
			dead := reader.ReceiveN(t, fwDLQReader, dlq, 1, time.Minute, 30*time.Second)
			dead = append(dead, reader.ReceiveAnswered(t, testenv.ReceiveRequest(fwDLQReader, dlq, 16, time.Minute))...)
			var got []string
			for _, m := range dead {
				got = append(got, m.GetSystemProperties().GetMessageId()+" "+string(m.GetBody()))
			}
			if want := own[0].GetSystemProperties().GetMessageId() + " " + string(own[0].GetBody()); len(got) != 1 || got[0] != want {
				t.Errorf("%s holds %q, want only %q", dlq, got, want)
			}
			// The messages the refused forwards named are still their groups'.
			for _, c := range []struct {
				raw          *testenv.RawClient
				group, topic string
				m            []*v2.Message
			}{{rawOther, fwGroup, other, ofOther}, {rawForeign, otherGroup, fwTopic, foreign}} {
				ack, err := c.raw.AckMessage(c.raw.Ctx(t), testenv.AckRequest(c.group, c.topic, c.m))
				if err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
					t.Errorf("ack of %s's redelivered message of %s: %v %v", c.group, c.topic, ack, err)
				}
			}
		})
		t.Run("consume directly a redelivered message", func(t *testing.T) {
			t.Parallel()
			pr := testenv.NewProducer(t, p, directTopic)
			r, err := pr.Send(t.Context(), &rmq.Message{Topic: directTopic, Body: []byte("consume me directly")})
			if err != nil {
				t.Fatal(err)
			}
			c := testenv.NewSimpleConsumer(t, p, directGroup, time.Second, map[string]*rmq.FilterExpression{directTopic: rmq.SUB_ALL})
			testenv.WaitFor(t, 30*time.Second, func() error {
				if ms, err := c.Receive(t.Context(), 1, time.Second); len(ms) == 0 {
					return fmt.Errorf("no message yet: %v", err)
				}
				return nil
			})
			if err := c.ChangeInvisibleDuration(redeliveredV2(t, c, 3*time.Second), time.Minute); err != nil {
				t.Fatal(err)
			}
			// mqadmin queryMsgById -g directGroup -d <the proxy> with the
			// offset id of the copy in %RETRY%directGroup+directTopic: the
			// broker sends that copy; the Go consumer, asked about a message of
			// the topic it subscribes to, answers that it does not implement it.
			bc := superBrokerClient(t, brokers[0].Addr)
			resp := bc.do(remoting.RequestConsumeMessageDirectly, &remoting.ConsumeMessageDirectlyRequestHeader{ConsumerGroup: directGroup,
				ClientID: bc.groupClient(directGroup), MsgID: bc.offsetID(remoting.PopRetryTopic(directTopic, directGroup, true), r[0].MessageID),
				Topic: directTopic})
			if want := "of group " + directGroup + " connected to this proxy answered NOT_IMPLEMENTED"; resp.Code != int32(remoting.ResponseRequestCodeNotSupported) ||
				!strings.Contains(resp.Remark, want) {
				t.Errorf("consume directly: code %d %q, want %d and %q", resp.Code, resp.Remark, remoting.ResponseRequestCodeNotSupported, want)
			}
		})
		t.Run("batch ack of redelivered messages", func(t *testing.T) {
			t.Parallel()
			ackHalfOfRedelivered(t, p, batchGroup, batchTopic)
		})
	})
	t.Run("group delete", func(t *testing.T) {
		// Signed as a broker user with exactly the permissions
		// docs/security.md lists for group delete with this naming
		// (Delete on Group:G and on Group:G+T for each retry topic
		// %RETRY%G+T), the retry topics the broker made for fwGroup go
		// with it (from the broker and the NameServer); otherGroup's stays.
		bc := superBrokerClient(t, brokers[0].Addr)
		ns := superBrokerClient(t, testenv.NameServer().NameServer)
		topics := func() map[string]remoting.TopicConfig {
			t.Helper()
			var w remoting.TopicConfigWrapper
			if err := remoting.DecodeJSONBody(bc.do(remoting.RequestGetAllTopicConfig, &remoting.RPCHeader{}).Body, &w); err != nil {
				t.Fatal(err)
			}
			return w.TopicConfigTable
		}
		gone := []string{remoting.PopRetryTopic(fwTopic, fwGroup, true), remoting.PopRetryTopic(other, fwGroup, true)}
		slices.Sort(gone) // the order rmqproxy deletes them in
		kept := remoting.PopRetryTopic(fwTopic, otherGroup, true)
		before := topics()
		for _, r := range append(slices.Clone(gone), kept) {
			if _, ok := before[r]; !ok {
				t.Fatalf("the broker has no retry topic %s", r)
			}
		}
		asUser := func(user string, entries ...aclEntry) *admin.Client {
			t.Helper()
			addBrokerUser(t, brokers[0], user, user+"-secret", entries...)
			ucfg := superCfg
			ucfg.Cluster.ACL = cluster.BrokerACL{AccessKey: user, SecretKey: user + "-secret"}
			ac, err := admin.NewClient(testenv.Start(t, ucfg).AdminAddr(), nil)
			if err != nil {
				t.Fatal(err)
			}
			return ac
		}
		groupOf := func(retryTopic string) string {
			return "Group:" + strings.TrimPrefix(retryTopic, remoting.RetryGroupTopicPrefix)
		}
		minimum := []aclEntry{{"Group:" + fwGroup, []string{"Delete"}}}
		for _, r := range gone {
			minimum = append(minimum, aclEntry{groupOf(r), []string{"Delete"}})
		}
		// One grant less (Group:G+T of the retry topic deleted first): the
		// broker refuses that retry topic's delete, naming the group G+T;
		// the group's subscription is gone by then, so it is created again.
		err := asUser("adm-v2-group-delete-less", slices.Delete(slices.Clone(minimum), 1, 2)...).DeleteGroup(t.Context(), fwGroup)
		if want := "DELETE_TOPIC_IN_BROKER, which needs Delete on " + groupOf(gone[0]); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("delete group %s without Delete on %s: %v; want %q", fwGroup, groupOf(gone[0]), err, want)
		}
		if _, ok := topics()[gone[0]]; !ok {
			t.Fatalf("the refused delete deleted %s", gone[0])
		}
		if _, err := super.Admin.CreateGroup(t.Context(), application.GroupSpec{Name: fwGroup}); err != nil && domain.ReasonOf(err) != domain.ReasonAlreadyExists {
			t.Fatalf("create group %s again: %v", fwGroup, err)
		}

		if err := asUser("adm-v2-group-delete", minimum...).DeleteGroup(t.Context(), fwGroup); err != nil {
			t.Fatalf("delete group %s: %v", fwGroup, err)
		}
		after := topics()
		for _, r := range gone {
			if _, ok := after[r]; ok {
				t.Errorf("the broker still has the deleted group's retry topic %s", r)
			}
			if resp := ns.do(remoting.RequestGetRouteinfoByTopic, &remoting.GetRouteInfoRequestHeader{Topic: r}); resp.Code == int32(remoting.ResponseSuccess) {
				t.Errorf("the NameServer still routes the deleted group's retry topic %s", r)
			}
		}
		if _, ok := after[kept]; !ok {
			t.Errorf("deleting %s deleted %s", fwGroup, kept)
		}
		superAdmin, err := admin.NewClient(super.AdminAddr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := superAdmin.Group(t.Context(), fwGroup); domain.ReasonOf(err) != domain.ReasonConsumerGroupNotFound {
			t.Errorf("group %s after its delete: %v, want not found", fwGroup, err)
		}
	})
	if logs := p.Logs(t); strings.Contains(logs, "NO_PERMISSION") {
		t.Errorf("a broker request was refused:\n%s", logs)
	}
}

// ackHalfOfRedelivered: four messages of topic that group does not ack
// wait in %RETRY%group+topic; received from there in one receive (shown
// as messages of topic, attempt 2, topic type 2), two are acked in one
// request (one BATCH_ACK_MESSAGE, whose entries name the topic and retry
// flag 2). The broker revives the other two, and the two acked never come
// back: had the broker not applied the batch to the retry topic's
// checkpoints, they would come back with the others.
func ackHalfOfRedelivered(t *testing.T, p *testenv.Proxy, group, topic string) {
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	raw.SendN(t, topic, 4)
	raw.ReceiveN(t, group, topic, 4, time.Second, 60*time.Second)
	retry := remoting.PopRetryTopic(topic, group, true)
	testenv.WaitFor(t, 2*time.Minute, func() error {
		stats, err := p.Admin.GroupStats(t.Context(), group)
		if err != nil {
			return err
		}
		for _, s := range stats {
			if s.Topic == retry && s.Consumable == 4 {
				return nil
			}
		}
		return fmt.Errorf("not all 4 in %s yet: %+v", retry, stats)
	})
	got := raw.ReceiveN(t, group, topic, 4, 3*time.Second, 30*time.Second)
	for _, m := range got {
		if tt := handleTopicType(m.GetSystemProperties().GetReceiptHandle()); tt != "2" || m.GetSystemProperties().GetDeliveryAttempt() != 2 ||
			m.GetTopic().GetName() != topic {
			t.Fatalf("delivered from topic type %s, attempt %d, as a message of %q; want 2, 2 and %q", tt,
				m.GetSystemProperties().GetDeliveryAttempt(), m.GetTopic().GetName(), topic)
		}
	}
	acked, kept := got[:2], got[2:]
	ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, acked))
	if err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack of 2 redelivered messages: %v %v", ack, err)
	}
	ids := func(ms []*v2.Message) map[string]bool {
		out := map[string]bool{}
		for _, m := range ms {
			out[m.GetSystemProperties().GetMessageId()] = true
		}
		return out
	}
	ackedIDs, keptIDs, back := ids(acked), ids(kept), map[string]bool{}
	receiveAgain := func(poll time.Duration) {
		t.Helper()
		req := testenv.ReceiveRequest(group, topic, 16, time.Minute)
		req.LongPollingTimeout = durationpb.New(poll)
		for _, m := range raw.ReceiveAnswered(t, req) {
			if id := m.GetSystemProperties().GetMessageId(); ackedIDs[id] {
				t.Fatalf("message %s was acked but delivered again (attempt %d)", id, m.GetSystemProperties().GetDeliveryAttempt())
			} else {
				back[id] = true
			}
		}
	}
	testenv.WaitFor(t, 2*time.Minute, func() error {
		receiveAgain(time.Second)
		if len(back) < len(keptIDs) {
			return fmt.Errorf("%d of the %d unacked messages delivered again", len(back), len(keptIDs))
		}
		return nil
	})
	receiveAgain(5 * time.Second)
	if logs := p.Logs(t); strings.Contains(logs, "refused BATCH_ACK_MESSAGE") {
		t.Errorf("the broker refused the batch; rmqproxy acked one by one:\n%s", logs)
	}
}

// TestBrokerReturningTheActualRetryTopic: a broker with
// popResponseReturnActualRetryTopic answers a pop with the messages of the
// retry topic %RETRY%G+T under that name and without their checkpoint
// (POP_CK), which rmqproxy then builds from the answer's offset infos, as
// for any message: clients still see them as messages of their topic, and
// their acks, in one batch, hold.
func TestBrokerReturningTheActualRetryTopic(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokersWith(t, 1, retryTopicV2, "popResponseReturnActualRetryTopic=true")
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "v2-actual"), testenv.Name(t, "g-v2-actual")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	ackHalfOfRedelivered(t, p, group, topic)
}

// superBrokerClient talks to addr straight, signed as the Super user of
// brokerAuthSettings.
func superBrokerClient(t *testing.T, addr string) brokerClient {
	rc := client.New(client.Config{Sign: remoting.Credentials{AccessKey: "rmqproxy", SecretKey: "s3cret-key"}.Sign})
	t.Cleanup(func() { _ = rc.Close() })
	return brokerClient{t, func(ctx context.Context, code remoting.RequestCode, h remoting.Header) (*remoting.Command, error) {
		return rc.Invoke(ctx, addr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
	}}
}

// redeliveredV2 receives from c (invisible for invisible) until a message
// comes from its group's pop retry topic %RETRY%G+T (a first redelivery may
// come from the topic itself) and returns it; a message from a retry topic
// named the other way fails the test.
func redeliveredV2(t *testing.T, c rmq.SimpleConsumer, invisible time.Duration) *rmq.MessageView {
	t.Helper()
	var m *rmq.MessageView
	testenv.WaitFor(t, 90*time.Second, func() error {
		ms, err := c.Receive(t.Context(), 1, invisible)
		if len(ms) == 0 {
			return fmt.Errorf("not redelivered yet: %v", err)
		}
		if tt := handleTopicType(ms[0].GetReceiptHandle()); tt != "2" {
			if tt != "0" {
				t.Fatalf("redelivered with topic type %s, want 2 (%%RETRY%%G+T): %q", tt, ms[0].GetReceiptHandle())
			}
			return fmt.Errorf("redelivered from the topic itself: %q", ms[0].GetReceiptHandle())
		}
		m = ms[0]
		return nil
	})
	return m
}

// handleTopicType is the topic type of a receipt handle (its fifth field):
// 0 the topic itself, 1 %RETRY%G_T, 2 %RETRY%G+T.
func handleTopicType(handle string) string {
	if f := strings.Fields(handle); len(f) >= 5 {
		return f[4]
	}
	return ""
}

// leave says goodbye (NotifyClientTermination) for a raw client of group.
func leave(t *testing.T, c *testenv.RawClient, group string) {
	t.Helper()
	resp, err := c.NotifyClientTermination(c.Ctx(t), &v2.NotifyClientTerminationRequest{Group: &v2.Resource{Name: group}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Errorf("goodbye of %s (%s): %v %v", c.ID(), group, resp, err)
	}
}
