package cluster_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/cluster"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// brokerAuthSettings turn on a 5.5.0 broker's authentication (RocketMQ's
// ACL 2.0, which checks the classic AclClientRPCHook signature that
// rmqproxy signs with when cluster.acl is set) with one user, which the
// broker's own clients use too.
var brokerAuthSettings = []string{
	"authenticationEnabled=true",
	"authenticationProvider=org.apache.rocketmq.auth.authentication.provider.DefaultAuthenticationProvider",
	"authenticationMetadataProvider=org.apache.rocketmq.auth.authentication.provider.LocalAuthenticationMetadataProvider",
	`initAuthenticationUser={"username":"rmqproxy","password":"s3cret-key"}`,
	`innerClientAuthenticationCredentials={"accessKey":"rmqproxy","secretKey":"s3cret-key"}`,
	// Authorization too, so that Normal users get only their ACL entries
	// (the Super user above skips them).
	"authorizationEnabled=true",
	"authorizationProvider=org.apache.rocketmq.auth.authorization.provider.DefaultAuthorizationProvider",
	"authorizationMetadataProvider=org.apache.rocketmq.auth.authorization.provider.LocalAuthorizationMetadataProvider",
}

// TestBrokerWithAuthentication puts rmqproxy in front of a broker that
// authenticates every request. With cluster.acl set to the broker's user,
// admin commands, sends, receives and acks (one by one, several in one
// request, and concurrent) work through it; with a wrong secret key the
// broker refuses rmqproxy, and the client gets an error that says so and
// names the settings to check.
func TestBrokerWithAuthentication(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokersWith(t, 1, brokerAuthSettings...)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "rmqproxy", SecretKey: "s3cret-key"}
	// This test is about authentication, not time: its own broker, just
	// started, answered its first admin requests in more than the default
	// 5 s once when CI's other suites loaded the 2 cores.
	cfg.Cluster.RequestTimeout = 20 * time.Second
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "auth-orders"), testenv.Name(t, "g-auth-orders")
	raw := p.Subscriber(t, topic, group, 1)
	const n = 12
	raw.SendN(t, topic, n)
	got := raw.ReceiveN(t, group, topic, n, time.Minute, 60*time.Second)
	ackOK := func(msgs []*v2.Message) {
		t.Helper()
		ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, msgs))
		if err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
			t.Errorf("ack of %d: %v %v", len(msgs), ack, err)
		}
	}
	ackOK(got[:1])  // ACK_MESSAGE
	ackOK(got[1:4]) // BATCH_ACK_MESSAGE
	var wg sync.WaitGroup
	for _, m := range got[4:] { // concurrent, coalesced when they wait
		wg.Go(func() { ackOK([]*v2.Message{m}) })
	}
	wg.Wait()
	if logs := p.Logs(t); strings.Contains(logs, "refused BATCH_ACK_MESSAGE") {
		t.Fatalf("the broker refused a signed batch ack:\n%s", logs)
	}

	bad := cfg
	bad.Cluster.ACL.SecretKey = "not-the-key"
	q := testenv.Start(t, bad)
	rawQ := testenv.NewRawClient(t, q)
	resp, err := rawQ.SendMessage(rawQ.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte("refused"), "")}})
	// The Apache proxy's code for it (INTERNAL_SERVER_ERROR, which clients
	// retry), with what the operator has to check.
	if err != nil || resp.GetStatus().GetCode() != v2.Code_INTERNAL_SERVER_ERROR ||
		!strings.Contains(resp.GetStatus().GetMessage(), "check signature failed") || !strings.Contains(resp.GetStatus().GetMessage(), "cluster.acl.secretKey") {
		t.Fatalf("send with a wrong broker secret: %v %v", resp, err)
	}

	t.Run("documented permissions", func(t *testing.T) { brokerUserPermissions(t, cfg, p, brokers[0]) })
}

// aclEntry is one ACL 2.0 policy entry for a broker user.
type aclEntry struct {
	resource string
	actions  []string
}

// addBrokerUser creates a Normal user of the broker with the given Allow
// entries (none: no ACL at all), signed as the broker's Super user.
func addBrokerUser(t *testing.T, b *testenv.ClusterBroker, name, secret string, entries ...aclEntry) {
	t.Helper()
	rc := client.New(client.Config{Sign: remoting.Credentials{AccessKey: "rmqproxy", SecretKey: "s3cret-key"}.Sign})
	defer rc.Close()
	call := func(code remoting.RequestCode, key, value string, body any) {
		t.Helper()
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rc.Invoke(t.Context(), b.Addr, remoting.NewRequest(code, remoting.Fields{{Key: key, Value: value}}, raw))
		if err != nil || resp.Code != 0 {
			t.Fatalf("broker request %d for %s: %v %v", code, name, resp, err)
		}
	}
	call(authCreateUser, "username", name, map[string]string{"username": name, "password": secret, "userType": "Normal"})
	if len(entries) == 0 {
		return // a user without any ACL entry
	}
	var policy []map[string]any
	for _, e := range entries {
		policy = append(policy, map[string]any{"resource": e.resource, "actions": e.actions, "decision": "Allow"})
	}
	call(authCreateACL, "subject", "User:"+name, map[string]any{"subject": "User:" + name,
		"policies": []map[string]any{{"policyType": "Custom", "entries": policy}}})
}

// Request codes of RocketMQ's ACL 2.0 user and ACL administration.
const (
	authCreateUser remoting.RequestCode = 3001
	authCreateACL  remoting.RequestCode = 3006
)

// brokerUserPermissions runs rmqproxy signed as a Normal broker user with
// exactly the permissions docs/security.md lists for the broker user (on
// each topic Pub, Sub and Get; on each group Sub and Get), and checks that
// what rmqproxy does for its clients works: sends of every type, ending a
// transaction, recall, receive, ack, change of the invisible time,
// dead-letter forward (which reads the message first, VIEW_MESSAGE_BY_ID),
// assignment, pull and offsets. Then, signed as a user without Get on the
// topic, that the client is told which permission of which request the
// broker user lacks (it was told to check rmqproxy's credentials).
func brokerUserPermissions(t *testing.T, superCfg app.Root, super *testenv.Proxy, b *testenv.ClusterBroker) {
	topic, group := testenv.Name(t, "auth-perm-orders"), testenv.Name(t, "g-auth-perm-orders")
	fifo, delay, tx := testenv.Name(t, "auth-perm-fifo"), testenv.Name(t, "auth-perm-delay"), testenv.Name(t, "auth-perm-tx")
	super.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	super.CreateTopic(t, fifo, domain.MessageTypeFIFO, 1)
	super.CreateTopic(t, delay, domain.MessageTypeDelay, 1)
	super.CreateTopic(t, tx, domain.MessageTypeTransaction, 1)
	super.CreateGroup(t, application.GroupSpec{Name: group})
	var documented []aclEntry
	for _, tp := range []string{topic, fifo, delay, tx} {
		documented = append(documented, aclEntry{"Topic:" + tp, []string{"Pub", "Sub", "Get"}})
	}
	txGroup := testenv.Name(t, "g-auth-perm-tx")
	super.CreateGroup(t, application.GroupSpec{Name: txGroup})
	// The group's pop retry topic %RETRY%G_T, which a broker authorizes as
	// the group "G_T", holds the redelivered messages.
	documented = append(documented, aclEntry{"Group:" + txGroup, []string{"Sub", "Get"}}, aclEntry{"Group:" + txGroup + "_" + tx, []string{"Sub", "Get"}},
		aclEntry{"Group:" + group + "_" + topic, []string{"Sub", "Get"}}, aclEntry{"Group:" + group, []string{"Sub", "Get"}})
	addBrokerUser(t, b, "app", "app-secret-1", documented...)
	// One permission less: no Get on the topic, and no Get on the group.
	addBrokerUser(t, b, "app-noget", "app-secret-2", aclEntry{"Topic:" + topic, []string{"Pub", "Sub"}}, documented[len(documented)-1])
	addBrokerUser(t, b, "app-nogroupget", "app-secret-3", documented[0], aclEntry{"Group:" + group, []string{"Sub"}})
	retryGroup := testenv.Name(t, "g-auth-perm-retry")
	super.CreateGroup(t, application.GroupSpec{Name: retryGroup})
	addBrokerUser(t, b, "app-noretryget", "app-secret-4", documented[0], aclEntry{"Group:" + retryGroup, []string{"Sub", "Get"}},
		aclEntry{"Group:" + retryGroup + "_" + topic, []string{"Sub"}})

	cfg := superCfg
	cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "app", SecretKey: "app-secret-1"}
	p := testenv.Start(t, cfg)
	raw := testenv.NewRawClient(t, p)
	ok := func(what string, st *v2.Status, err error) {
		t.Helper()
		if err != nil || st.GetCode() != v2.Code_OK {
			t.Errorf("%s: %v %v", what, st, err)
		}
	}
	send := func(m *v2.Message) *v2.SendMessageResponse {
		t.Helper()
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{m}})
		ok("send to "+m.GetTopic().GetName(), resp.GetStatus(), err)
		return resp
	}
	fm := testenv.RawMessage(fifo, []byte("fifo"), "")
	fm.SystemProperties.MessageType, fm.SystemProperties.MessageGroup = v2.MessageType_FIFO, proto.String("mg")
	send(fm)
	dm := testenv.RawMessage(delay, []byte("delay"), "")
	dm.SystemProperties.MessageType, dm.SystemProperties.DeliveryTimestamp = v2.MessageType_DELAY, timestamppb.New(time.Now().Add(time.Hour))
	handle := send(dm).GetEntries()[0].GetRecallHandle()
	rc, err := raw.RecallMessage(raw.Ctx(t), &v2.RecallMessageRequest{Topic: &v2.Resource{Name: delay}, RecallHandle: handle})
	ok("recall", rc.GetStatus(), err)

	// A transaction committed by its producer, and one committed on the
	// broker's check-back (CHECK_TRANSACTION_STATE relayed to the producer).
	pr, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(tx),
		rmq.WithTransactionChecker(&rmq.TransactionChecker{Check: func(*rmq.MessageView) rmq.TransactionResolution { return rmq.COMMIT }}))
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.Start(); err != nil {
		t.Fatal(err)
	}
	defer pr.GracefulStop()
	for _, commit := range []bool{true, false} {
		trx := pr.BeginTransaction()
		if _, err := pr.SendWithTransaction(t.Context(), &rmq.Message{Topic: tx, Body: []byte("tx")}, trx); err != nil {
			t.Fatalf("transactional send: %v", err)
		}
		if commit {
			if err := trx.Commit(); err != nil {
				t.Errorf("commit: %v", err)
			}
		}
	}

	raw.Subscribe(t, group, topic)
	raw.SendN(t, topic, 3)
	got := raw.ReceiveN(t, group, topic, 3, time.Minute, 60*time.Second)
	ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got[:1]))
	ok("ack", ack.GetStatus(), err)
	change, err := raw.ChangeInvisibleDuration(raw.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
		Topic: &v2.Resource{Name: topic}, ReceiptHandle: got[1].GetSystemProperties().GetReceiptHandle(),
		InvisibleDuration: durationpb.New(time.Second), MessageId: got[1].GetSystemProperties().GetMessageId()})
	ok("change invisible duration", change.GetStatus(), err)
	// Redelivered from the group's pop retry topic (got[1] among them),
	// its invisible time changed, acked.
	again := retried(t, raw, group, topic)
	ack, err = raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, again))
	if err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Errorf("ack of a redelivered message: %v %v", ack, err)
	}
	fw, err := raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{
		Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: topic},
		ReceiptHandle: got[2].GetSystemProperties().GetReceiptHandle(), MessageId: got[2].GetSystemProperties().GetMessageId(),
		DeliveryAttempt: 1, MaxDeliveryAttempts: 16})
	ok("dead-letter forward", fw.GetStatus(), err)
	raw.SendN(t, topic, 1)
	again = retried(t, raw, group, topic)
	fw, err = raw.ForwardMessageToDeadLetterQueue(raw.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{
		Group: &v2.Resource{Name: group}, Topic: &v2.Resource{Name: topic},
		ReceiptHandle: again[0].GetSystemProperties().GetReceiptHandle(), MessageId: again[0].GetSystemProperties().GetMessageId(),
		DeliveryAttempt: 2, MaxDeliveryAttempts: 16})
	ok("dead-letter forward of a redelivered message", fw.GetStatus(), err)
	qa, err := raw.QueryAssignment(raw.Ctx(t), &v2.QueryAssignmentRequest{Topic: &v2.Resource{Name: topic}, Group: &v2.Resource{Name: group}})
	ok("query assignment", qa.GetStatus(), err)

	// Pull and offsets of the topic's queue.
	route, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
	if err != nil || len(route.GetMessageQueues()) == 0 {
		t.Fatalf("route: %v %v", route, err)
	}
	mq := &v2.MessageQueue{Topic: &v2.Resource{Name: topic}, Id: 0, Broker: &v2.Broker{Name: route.GetMessageQueues()[0].GetBroker().GetName()}}
	stream, err := raw.PullMessage(raw.Ctx(t), &v2.PullMessageRequest{Group: &v2.Resource{Name: group}, MessageQueue: mq, Offset: 0, BatchSize: 8,
		FilterExpression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}, LongPollingTimeout: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	pullStatus, pulled, _ := testenv.ReadPull(stream)
	if pullStatus.GetCode() != v2.Code_OK || len(pulled) == 0 {
		t.Errorf("pull: %v, %d messages", pullStatus, len(pulled))
	}
	uo, err := raw.UpdateOffset(raw.Ctx(t), &v2.UpdateOffsetRequest{Group: &v2.Resource{Name: group}, MessageQueue: mq, Offset: 1})
	ok("update offset", uo.GetStatus(), err)
	go_, err := raw.GetOffset(raw.Ctx(t), &v2.GetOffsetRequest{Group: &v2.Resource{Name: group}, MessageQueue: mq})
	ok("get offset", go_.GetStatus(), err)
	qo, err := raw.QueryOffset(raw.Ctx(t), &v2.QueryOffsetRequest{MessageQueue: mq, QueryOffsetPolicy: v2.QueryOffsetPolicy_END})
	ok("query offset", qo.GetStatus(), err)

	// The check-back's commit made the second transaction's message
	// visible: the transaction topic gets both.
	rawTx := testenv.NewRawClient(t, p)
	rawTx.Subscribe(t, txGroup, tx)
	rawTx.ReceiveN(t, txGroup, tx, 2, time.Minute, 60*time.Second)
	if logs := p.Logs(t); strings.Contains(logs, "NO_PERMISSION") {
		t.Errorf("a broker request was refused:\n%s", logs)
	}

	// One permission less.
	cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "app-noget", SecretKey: "app-secret-2"}
	q := testenv.Start(t, cfg)
	rawQ := testenv.NewRawClient(t, q)
	resp, err := rawQ.SendMessage(rawQ.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte("x"), "")}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_INTERNAL_SERVER_ERROR ||
		!strings.Contains(resp.GetStatus().GetMessage(), "GET_TOPIC_CONFIG, which needs Get on Topic:"+topic) {
		t.Errorf("send without Get on the topic: %v %v", resp, err)
	}
	cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "app-nogroupget", SecretKey: "app-secret-3"}
	r := testenv.Start(t, cfg)
	rawR := testenv.NewRawClient(t, r)
	tel, err := rawR.Telemetry(rawR.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	ct := v2.ClientType_SIMPLE_CONSUMER
	if err := tel.Send(&v2.TelemetryCommand{Command: &v2.TelemetryCommand_Settings{Settings: &v2.Settings{
		ClientType: &ct, RequestTimeout: durationpb.New(3 * time.Second),
		PubSub: &v2.Settings_Subscription{Subscription: &v2.Subscription{Group: &v2.Resource{Name: group},
			Subscriptions: []*v2.SubscriptionEntry{{Topic: &v2.Resource{Name: topic}, Expression: &v2.FilterExpression{Type: v2.FilterType_TAG, Expression: "*"}}}}},
	}}}); err != nil {
		t.Fatal(err)
	}
	reply, err := tel.Recv()
	if reply.GetSettings() != nil || !strings.Contains(fmt.Sprint(err), "GET_SUBSCRIPTIONGROUP_CONFIG, which needs Get on Group:"+group) {
		t.Errorf("consumer settings without Get on the group: %v %v", reply, err)
	}

	// Without Get on the pop retry topic's group, the forward of a
	// redelivered message cannot read it first.
	cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: "app-noretryget", SecretKey: "app-secret-4"}
	u := testenv.Start(t, cfg)
	rawU := testenv.NewRawClient(t, u)
	rawU.Subscribe(t, retryGroup, topic)
	rawU.SendN(t, topic, 1)
	redelivered := retried(t, rawU, retryGroup, topic)
	fw, err = rawU.ForwardMessageToDeadLetterQueue(rawU.Ctx(t), &v2.ForwardMessageToDeadLetterQueueRequest{
		Group: &v2.Resource{Name: retryGroup}, Topic: &v2.Resource{Name: topic},
		ReceiptHandle: redelivered[0].GetSystemProperties().GetReceiptHandle(), MessageId: redelivered[0].GetSystemProperties().GetMessageId(),
		DeliveryAttempt: 2, MaxDeliveryAttempts: 16})
	if err != nil || fw.GetStatus().GetCode() != v2.Code_INTERNAL_SERVER_ERROR ||
		!strings.Contains(fw.GetStatus().GetMessage(), "VIEW_MESSAGE_BY_ID, which needs Get on Group:"+retryGroup+"_"+topic) {
		t.Errorf("forward of a redelivered message without Get on the retry topic's group: %v %v", fw, err)
	}

	// Last, as it deletes group (and its retry topics).
	adminPermissions(t, superCfg, b, topic, group)
}

// adminPermissions runs each admin command through rmqproxy signed as a
// Normal broker user with exactly the permissions docs/security.md lists
// for it (none for the lists, the describes and a group's create and
// update), so that a change that makes a command need more fails here.
// group, which consumed topic and had messages redelivered from its pop
// retry topic, is deleted last: its delete needs Delete on the group of
// that retry topic too.
func adminPermissions(t *testing.T, superCfg app.Root, b *testenv.ClusterBroker, topic, group string) {
	adminTopic, adminGroup := testenv.Name(t, "auth-perm-admin"), testenv.Name(t, "g-auth-perm-admin")
	testenv.Claim(t, "topic", adminTopic)
	testenv.Claim(t, "consumer group", adminGroup)
	// as runs f with an rmqproxy signed as a new broker user that has
	// exactly entries.
	as := func(user string, entries []aclEntry, f func(p *testenv.Proxy, ac *admin.Client)) {
		t.Helper()
		addBrokerUser(t, b, user, user+"-secret", entries...)
		cfg := superCfg
		cfg.Cluster.ACL = cluster.BrokerACL{AccessKey: user, SecretKey: user + "-secret"}
		p := testenv.Start(t, cfg)
		ac, err := admin.NewClient(p.AdminAddr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		f(p, ac)
		if logs := p.Logs(t); strings.Contains(logs, "NO_PERMISSION") {
			t.Errorf("a broker request of %s was refused:\n%s", user, logs)
		}
	}
	adminOK := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("admin %s: %v", what, err)
		}
	}
	as("adm-topic-create", []aclEntry{{"Topic:" + adminTopic, []string{"Create", "Get"}}}, func(p *testenv.Proxy, _ *admin.Client) {
		_, err := p.Admin.CreateTopic(t.Context(), application.TopicSpec{Name: adminTopic, Type: domain.MessageTypeNormal, QueueCount: 1})
		adminOK("create topic", err)
	})
	as("adm-topic-update", []aclEntry{{"Topic:" + adminTopic, []string{"Create", "Get"}}}, func(p *testenv.Proxy, _ *admin.Client) {
		desc := "updated"
		_, err := p.Admin.UpdateTopic(t.Context(), application.TopicSpec{Name: adminTopic, Type: domain.MessageTypeNormal, QueueCount: 2, Description: &desc})
		adminOK("update topic", err)
	})
	as("adm-none", nil, func(p *testenv.Proxy, ac *admin.Client) {
		_, err := ac.Topics(t.Context())
		adminOK("list topics", err)
		_, err = p.Admin.Topic(t.Context(), adminTopic)
		adminOK("describe topic", err)
		_, err = p.Admin.CreateGroup(t.Context(), application.GroupSpec{Name: adminGroup})
		adminOK("create group", err)
		_, err = p.Admin.UpdateGroup(t.Context(), application.GroupSpec{Name: adminGroup, MaxDeliveryAttempts: 5})
		adminOK("update group", err)
		_, err = ac.Groups(t.Context())
		adminOK("list groups", err)
		_, err = ac.Group(t.Context(), adminGroup)
		adminOK("describe group", err)
	})
	as("adm-group-stats", []aclEntry{{"Group:" + group, []string{"Get"}}}, func(p *testenv.Proxy, _ *admin.Client) {
		stats, err := p.Admin.GroupStats(t.Context(), group)
		adminOK("group stats", err)
		if err == nil && len(stats) == 0 {
			t.Errorf("group stats of %s: no queue", group)
		}
	})
	popRetry := remoting.RetryGroupTopicPrefix + group + "_" + topic
	if !slices.Contains(brokerTopics(t, b), popRetry) {
		t.Fatalf("the broker has no pop retry topic %s to delete with the group", popRetry)
	}
	as("adm-group-delete", []aclEntry{{"Group:" + adminGroup, []string{"Delete"}}, {"Group:" + group, []string{"Delete"}},
		{"Group:" + group + "_" + topic, []string{"Delete"}}}, func(_ *testenv.Proxy, ac *admin.Client) {
		adminOK("delete group", ac.DeleteGroup(t.Context(), adminGroup))
		adminOK("delete group with its retry topics", ac.DeleteGroup(t.Context(), group))
	})
	if slices.Contains(brokerTopics(t, b), popRetry) {
		t.Errorf("the group's delete left its pop retry topic %s", popRetry)
	}
	as("adm-topic-delete", []aclEntry{{"Topic:" + adminTopic, []string{"Delete"}}}, func(_ *testenv.Proxy, ac *admin.Client) {
		adminOK("delete topic", ac.DeleteTopic(t.Context(), adminTopic))
	})
}

// brokerTopics returns the names of the broker's topics, asked as its
// Super user.
func brokerTopics(t *testing.T, b *testenv.ClusterBroker) []string {
	t.Helper()
	rc := client.New(client.Config{Sign: remoting.Credentials{AccessKey: "rmqproxy", SecretKey: "s3cret-key"}.Sign})
	defer rc.Close()
	resp, err := rc.Invoke(t.Context(), b.Addr, remoting.NewRequest(remoting.RequestGetAllTopicConfig, nil, nil))
	if err != nil || resp.Code != 0 {
		t.Fatalf("the broker's topics: %v %v", resp, err)
	}
	var w remoting.TopicConfigWrapper
	if err := remoting.DecodeJSONBody(resp.Body, &w); err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := range w.TopicConfigTable {
		out = append(out, n)
	}
	return out
}

// retried receives messages of topic for group, 2 s invisible, until one
// comes from the group's pop retry topic (its receipt handle's topic type,
// the fifth field, is not 0: a first redelivery may come from the topic
// itself), changes its invisible time to a minute and returns it with the
// new handle.
func retried(t *testing.T, raw *testenv.RawClient, group, topic string) []*v2.Message {
	t.Helper()
	var m *v2.Message
	testenv.WaitFor(t, 90*time.Second, func() error {
		ms := raw.ReceiveN(t, group, topic, 1, 2*time.Second, 60*time.Second)
		if h := strings.Fields(ms[0].GetSystemProperties().GetReceiptHandle()); len(h) < 5 || h[4] == "0" {
			return fmt.Errorf("delivered from the topic itself: %v", h)
		}
		m = ms[0]
		return nil
	})
	change, err := raw.ChangeInvisibleDuration(raw.Ctx(t), &v2.ChangeInvisibleDurationRequest{Group: &v2.Resource{Name: group},
		Topic: &v2.Resource{Name: topic}, ReceiptHandle: m.GetSystemProperties().GetReceiptHandle(),
		InvisibleDuration: durationpb.New(time.Minute), MessageId: m.GetSystemProperties().GetMessageId()})
	if err != nil || change.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("change invisible duration of a redelivered message: %v %v", change, err)
	}
	m.SystemProperties.ReceiptHandle = proto.String(change.GetReceiptHandle())
	return []*v2.Message{m}
}
