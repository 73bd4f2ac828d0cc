package cluster

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestAdminLeavesTheBrokersOwnTopicsAndGroups: list and describe do not
// show a consumer group's retry topic, the topics named after a broker or
// the cluster, or RocketMQ's own groups, so create, update and delete
// refuse them too: deleting a retry topic lost the messages waiting in it
// for redelivery (while describe said it did not exist), and a topic
// created with such a name was never listed (a group too). No change
// reaches a broker.
// RocketMQ 5.5.0's own topics are among them: the RocksDB transaction
// topics and the cluster's reply topic (<cluster>_REPLY_TOPIC), which
// every 5.5.0 broker creates, were listed as the operator's topics.
func TestAdminLeavesTheBrokersOwnTopicsAndGroups(t *testing.T) {
	var mu sync.Mutex
	changes := 0
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{
				"%RETRY%g1": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}, "b1": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 7},
				"DefaultCluster": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 7}, "DefaultCluster_REPLY_TOPIC": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6},
				"RMQ_SYS_ROCKSDB_TRANS_HALF_TOPIC": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}, "RMQ_SYS_ROCKSDB_TRANS_OP_HALF_TOPIC": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6},
				"orders": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}}})
		case remoting.RequestGetAllSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: map[string]remoting.SubscriptionGroupConfig{
				"TOOLS_CONSUMER": remoting.NewSubscriptionGroupConfig("TOOLS_CONSUMER")}})
		case remoting.RequestGetKvlistByNamespace: // no descriptions
			return remoting.NewResponse(req, remoting.ResponseQueryNotFound, "No config item")
		default:
			mu.Lock()
			changes++
			mu.Unlock()
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	topics, err := b.ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range topics {
		names = append(names, tp.Name)
	}
	if !slices.Equal(names, []string{"orders"}) {
		t.Errorf("list shows %q, want only the operator's topic orders", names)
	}
	for _, name := range []string{"%RETRY%g1", "%RETRY%g2", "b1", "DefaultCluster", "DefaultCluster_REPLY_TOPIC", "RMQ_SYS_ROCKSDB_TRANS_HALF_TOPIC", "RMQ_SYS_ROCKSDB_TRANS_OP_HALF_TOPIC"} {
		topic := domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermReadWrite}
		if err := b.DeleteTopic(t.Context(), name); domain.ReasonOf(err) != domain.ReasonIllegalTopic {
			t.Errorf("delete %s: %v", name, err)
		}
		if _, err := b.CreateTopic(t.Context(), topic); domain.ReasonOf(err) != domain.ReasonIllegalTopic {
			t.Errorf("create %s: %v", name, err)
		}
		if _, err := b.UpdateTopic(t.Context(), topic); domain.ReasonOf(err) != domain.ReasonIllegalTopic {
			t.Errorf("update %s: %v", name, err)
		}
	}
	if err := b.DeleteGroup(t.Context(), "TOOLS_CONSUMER"); domain.ReasonOf(err) != domain.ReasonIllegalConsumerGroup {
		t.Errorf("delete TOOLS_CONSUMER: %v", err)
	}
	// Neither one the broker has nor one it does not have yet: a group
	// created under such a name was never listed, and delete refused it.
	for _, name := range []string{"TOOLS_CONSUMER", "SCHEDULE_CONSUMER"} {
		g := domain.NewConsumerGroup(name)
		if _, err := b.CreateGroup(t.Context(), g); domain.ReasonOf(err) != domain.ReasonIllegalConsumerGroup {
			t.Errorf("create %s: %v", name, err)
		}
		if _, err := b.UpdateGroup(t.Context(), g); domain.ReasonOf(err) != domain.ReasonIllegalConsumerGroup {
			t.Errorf("update %s: %v", name, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if changes != 0 {
		t.Fatalf("%d changes reached the broker", changes)
	}
}

// TestPartialFailuresSayWhatHappened: with one of two brokers failing, a
// create names the broker and says how to create the topic there too (a
// second create answers that it exists), and a list does not claim that a
// change was applied.
func TestPartialFailuresSayWhatHappened(t *testing.T) {
	var failList atomic.Bool
	b := newTestBroker(t, startTwoMasters(t, func(broker string, req, resp *remoting.Command) *remoting.Command {
		second := broker == "b2"
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			if second && failList.Load() {
				return remoting.NewResponse(req, remoting.ResponseSystemError, "disk full")
			}
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{}})
		case remoting.RequestGetTopicConfig:
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic in this broker")
		case remoting.RequestUpdateAndCreateTopic:
			if second {
				return remoting.NewResponse(req, remoting.ResponseSystemError, "disk full")
			}
		}
		return resp
	}), nil)

	_, err := b.CreateTopic(t.Context(), domain.Topic{Name: "orders", Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermReadWrite})
	if msg := domain.MessageOf(err); msg != "1 of 2 brokers failed (broker b2: disk full); the others applied the change; once they answer, run `rmqproxy topic update orders` with the same options to create it on them too (create would answer that it exists)" {
		t.Errorf("create on one of two brokers: %q", msg)
	}
	failList.Store(true)
	_, err = b.ListTopics(t.Context())
	if msg := domain.MessageOf(err); msg != "1 of 2 brokers failed (broker b2: disk full); the others answered, but a result without them would be incomplete; retry once they answer" {
		t.Errorf("list with one of two brokers failing: %q", msg)
	}
}

// TestEveryMasterFailingIsNamedEach: when every master failed an admin
// change, the error was the first master's failure alone, without its
// name: an operator fixing it found the next master failing otherwise
// only on the next try. Each master is named with its failure.
func TestEveryMasterFailingIsNamedEach(t *testing.T) {
	failure := map[string]string{"b1": "disk full", "b2": "the store is read-only"}
	b := newTestBroker(t, startTwoMasters(t, func(broker string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{
				"orders": {TopicName: "orders", ReadQueueNums: 1, WriteQueueNums: 1, Perm: rw}}})
		case remoting.RequestGetTopicConfig:
			if req.Fields.Value("topic") != "orders" {
				return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic in this broker")
			}
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfig{TopicName: "orders", ReadQueueNums: 1, WriteQueueNums: 1, Perm: rw})
		case remoting.RequestGetAllSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: map[string]remoting.SubscriptionGroupConfig{
				"g": remoting.NewSubscriptionGroupConfig("g")}})
		case remoting.RequestGetRouteinfoByTopic:
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "no route")
		case remoting.RequestUpdateAndCreateTopic, remoting.RequestDeleteTopicInBroker,
			remoting.RequestUpdateAndCreateSubscriptiongroup, remoting.RequestDeleteSubscriptiongroup:
			return remoting.NewResponse(req, remoting.ResponseSystemError, failure[broker])
		}
		return resp
	}), nil)
	topic := func(name string) domain.Topic {
		return domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermReadWrite}
	}
	for what, call := range map[string]func() error{
		"topic create": func() error { _, err := b.CreateTopic(t.Context(), topic("new")); return err },
		"topic update": func() error { _, err := b.UpdateTopic(t.Context(), topic("orders")); return err },
		"topic delete": func() error { return b.DeleteTopic(t.Context(), "orders") },
		"group create": func() error { _, err := b.CreateGroup(t.Context(), domain.NewConsumerGroup("new-g")); return err },
		"group update": func() error { _, err := b.UpdateGroup(t.Context(), domain.NewConsumerGroup("g")); return err },
		"group delete": func() error { return b.DeleteGroup(t.Context(), "g") },
	} {
		err := call()
		if msg := domain.MessageOf(err); domain.ReasonOf(err) != domain.ReasonBrokerError ||
			!strings.Contains(msg, "broker b1: disk full") || !strings.Contains(msg, "broker b2: the store is read-only") {
			t.Errorf("%s with both brokers failing: %v (reason %v); want each broker named with its failure", what, err, domain.ReasonOf(err))
		}
	}
}

// TestEveryMasterFailingIsNamedInBoundedText: the failures named are
// bounded, however long the brokers' remarks (a Java stack trace) and
// however many masters fail, and a failure several masters share is
// given once, with their names.
func TestEveryMasterFailingIsNamedInBoundedText(t *testing.T) {
	const masters = 40
	trace := strings.Repeat("\n\tat org.apache.rocketmq.store.Some.frame(Some.java:1)", 300)
	var addr string
	addr = startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetBrokerClusterInfo:
			ci := remoting.ClusterInfo{BrokerAddrTable: map[string]remoting.BrokerData{}, ClusterAddrTable: map[string][]string{}}
			for i := range masters {
				name := fmt.Sprintf("b%02d", i)
				ci.BrokerAddrTable[name] = remoting.BrokerData{Cluster: "DefaultCluster", BrokerName: name, BrokerAddrs: map[int64]string{0: addr}}
				ci.ClusterAddrTable["DefaultCluster"] = append(ci.ClusterAddrTable["DefaultCluster"], name)
			}
			resp.Body, _ = remoting.EncodeJSONBody(ci)
		case remoting.RequestGetAllTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{
				"orders": {TopicName: "orders", ReadQueueNums: 1, WriteQueueNums: 1, Perm: rw}}})
		case remoting.RequestDeleteTopicInBroker:
			broker := req.Fields.Value("bname")
			if n, _ := strconv.Atoi(strings.TrimPrefix(broker, "b")); n%2 == 1 {
				return remoting.NewResponse(req, remoting.ResponseSystemError, "disk full")
			}
			return remoting.NewResponse(req, remoting.ResponseSystemError, "java.lang.IllegalStateException: store of "+broker+" broken"+trace)
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	err := b.DeleteTopic(t.Context(), "orders")
	msg := domain.MessageOf(err)
	if domain.ReasonOf(err) != domain.ReasonBrokerError || !strings.HasPrefix(msg, "40 of 40 brokers failed (broker b00: java.lang.IllegalStateException: store of b00 broken") ||
		!strings.Contains(msg, "; brokers b01, b03, b05, b07, b09, b11, b13, b15 and 12 more: disk full;") || strings.Count(msg, "disk full") != 1 {
		t.Errorf("delete with 40 brokers failing: %q (reason %v); want the first ones named with their failures, the brokers with one failure together", msg, domain.ReasonOf(err))
	}
	if len(msg) > 4096 {
		t.Errorf("delete with 40 brokers failing: a message of %d bytes, want at most 4096", len(msg))
	}
	t.Log(msg)
}

// TestRetryPoliciesTheBrokersCannotHoldAreRefused: a broker keeps an
// exponential multiplier as a whole number and times in milliseconds; a
// group created with a multiplier of 1.5 was stored with 2 (describe
// showed 2) while create answered 1.5.
func TestRetryPoliciesTheBrokersCannotHoldAreRefused(t *testing.T) {
	var mu sync.Mutex
	var stored []remoting.SubscriptionGroupConfig
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: map[string]remoting.SubscriptionGroupConfig{}})
		case remoting.RequestUpdateAndCreateSubscriptiongroup:
			var sg remoting.SubscriptionGroupConfig
			_ = remoting.DecodeJSONBody(req.Body, &sg)
			mu.Lock()
			stored = append(stored, sg)
			mu.Unlock()
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	for name, p := range map[string]domain.RetryPolicy{
		"g-multiplier": {Initial: time.Second, Max: time.Minute, Multiplier: 1.5},
		"g-initial":    {Initial: 1500 * time.Microsecond, Max: time.Minute, Multiplier: 2},
		"g-delay":      {Delays: []time.Duration{time.Second, 500 * time.Microsecond}},
	} {
		g := domain.NewConsumerGroup(name)
		g.RetryPolicy = p
		if _, err := b.CreateGroup(t.Context(), g); domain.ReasonOf(err) != domain.ReasonBadRequest {
			t.Errorf("create %s with %+v: %v", name, p, err)
		}
	}
	g := domain.NewConsumerGroup("g-ok")
	g.RetryPolicy = domain.RetryPolicy{Initial: time.Second, Max: time.Minute, Multiplier: 3}
	if _, err := b.CreateGroup(t.Context(), g); err != nil && !strings.Contains(err.Error(), "description") {
		t.Fatalf("create g-ok: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != 1 || stored[0].GroupName != "g-ok" || stored[0].GroupRetryPolicy.ExponentialRetryPolicy.Multiplier != 3 {
		t.Fatalf("stored on the broker: %+v", stored)
	}
}

// TestGroupRetryTopics: a deleted group's retry topics are %RETRY%g, its
// pop retry topics in both forms, and nothing another group could own
// under upstream's ambiguous naming (%RETRY%a_b is group a_b's and, with a
// topic b, group a's pop retry topic of b).
func TestGroupRetryTopics(t *testing.T) {
	topics := map[string]remoting.TopicConfig{}
	for _, n := range []string{"orders", "b", "x_y", "%RETRY%g", "%RETRY%g_orders", "%RETRY%g+orders", "%RETRY%g_gone", "%DLQ%g",
		"%RETRY%gx", "%RETRY%a", "%RETRY%a_b", "%RETRY%a_b_x_y", "%RETRY%g_b", "%RETRY%g_x_y", "g"} {
		topics[n] = remoting.TopicConfig{}
	}
	groups := map[string]remoting.SubscriptionGroupConfig{"g": {}, "gx": {}, "a": {}, "a_b": {}, "g_x": {}}
	for _, tt := range []struct {
		group string
		want  []string
	}{
		// No topic "gone"; group g_x would own %RETRY%g_x_y only with a topic y.
		{"g", []string{"%RETRY%g", "%RETRY%g+orders", "%RETRY%g_b", "%RETRY%g_orders", "%RETRY%g_x_y"}},
		{"gx", []string{"%RETRY%gx"}},
		{"a", []string{"%RETRY%a"}},         // %RETRY%a_b is also group a_b's
		{"a_b", []string{"%RETRY%a_b_x_y"}}, // %RETRY%a_b is also group a's pop retry topic of b
		{"none", nil},
	} {
		if got := groupRetryTopics(tt.group, topics, groups); !slices.Equal(got, tt.want) {
			t.Errorf("retry topics of %s: %q, want %q", tt.group, got, tt.want)
		}
	}
}

// TestGroupDeleteNamesTheRetryTopicItLeft: a retry topic one of two brokers
// does not delete is named with the broker, the command says that the
// group is deleted and to run it again, and running it again (the group
// gone, its retry topic left) deletes the retry topic.
func TestGroupDeleteNamesTheRetryTopicItLeft(t *testing.T) {
	var mu sync.Mutex
	groupThere, retryThere, fail := true, map[string]bool{"b1": true, "b2": true}, true
	b := newTestBroker(t, startTwoMasters(t, func(name string, req, resp *remoting.Command) *remoting.Command {
		mu.Lock()
		defer mu.Unlock()
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			table := map[string]remoting.TopicConfig{"orders": {}}
			if retryThere[name] {
				table["%RETRY%g"] = remoting.TopicConfig{}
			}
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: table})
		case remoting.RequestGetAllSubscriptiongroupConfig:
			table := map[string]remoting.SubscriptionGroupConfig{}
			if groupThere {
				table["g"] = remoting.SubscriptionGroupConfig{}
			}
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: table})
		case remoting.RequestGetRouteinfoByTopic:
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "no route")
		case remoting.RequestDeleteSubscriptiongroup:
			groupThere = false
		case remoting.RequestDeleteTopicInBroker:
			if name == "b2" && fail {
				return remoting.NewResponse(req, remoting.ResponseSystemError, "disk full")
			}
			retryThere[name] = false
		}
		return resp
	}), nil)

	err := b.DeleteGroup(t.Context(), "g")
	want := `consumer group "g" was deleted, but its retry topic "%RETRY%g" (the messages waiting to be delivered again) was not deleted from every broker: ` +
		"1 of 2 brokers failed (broker b2: disk full); the others applied the change; once they answer, run `rmqproxy group delete g` again to delete it"
	if msg := domain.MessageOf(err); msg != want {
		t.Fatalf("delete with one broker failing:\n got %q\nwant %q", msg, want)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if err := b.DeleteGroup(t.Context(), "g"); err != nil && !strings.Contains(err.Error(), "description") {
		t.Fatalf("delete again: %v", err)
	}
	mu.Lock()
	left := retryThere["b2"]
	mu.Unlock()
	if left {
		t.Fatal("running delete again left the retry topic on b2")
	}
	if err := b.DeleteGroup(t.Context(), "g"); domain.ReasonOf(err) != domain.ReasonConsumerGroupNotFound {
		t.Fatalf("delete a third time: %v", err)
	}
}

// TestGroupDeleteKeepsAnotherGroupsRetryTopic: %RETRY%a_b is group a_b's
// retry topic and, with a topic b, group a's pop retry topic of b. Deleting
// group a_b must leave it on the brokers and the NameServers even though a
// NameServer routes it (every live topic is routed): the NameServer check
// is for a retry topic no master has any more (a delete that failed
// half-way), not a way around the ambiguity rule.
func TestGroupDeleteKeepsAnotherGroupsRetryTopic(t *testing.T) {
	var mu sync.Mutex
	var deleted []string
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{
				"b": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}, "%RETRY%a_b": {ReadQueueNums: 1, WriteQueueNums: 1, Perm: 6}}})
		case remoting.RequestGetAllSubscriptiongroupConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.SubscriptionGroupWrapper{SubscriptionGroupTable: map[string]remoting.SubscriptionGroupConfig{
				"a": remoting.NewSubscriptionGroupConfig("a"), "a_b": remoting.NewSubscriptionGroupConfig("a_b")}})
		case remoting.RequestGetRouteinfoByTopic:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicRouteData{
				BrokerDatas: []remoting.BrokerData{{Cluster: "DefaultCluster", BrokerName: "b1", BrokerAddrs: map[int64]string{0: addr}}}})
		case remoting.RequestDeleteTopicInBroker, remoting.RequestDeleteTopicInNamesrv:
			mu.Lock()
			deleted = append(deleted, req.Fields.Value("topic"))
			mu.Unlock()
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	if err := b.DeleteGroup(t.Context(), "a_b"); err != nil && !strings.Contains(err.Error(), "description") {
		t.Fatalf("delete a_b: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deleted) != 0 {
		t.Fatalf("deleting group a_b deleted %q, group a's pop retry topic of b", deleted)
	}
}

// TestMixedTopicRefusedByTheBrokerSaysWhatToSet: a 5.5.0 broker refuses a
// MIXED topic unless enableMixedMessageType=true; the CLI printed only the
// broker's "MIXED message type is not supported.", which does not tell the
// operator what to change.
func TestMixedTopicRefusedByTheBrokerSaysWhatToSet(t *testing.T) {
	addr := startFakeBroker(t, func(addr string, req, resp *remoting.Command) *remoting.Command {
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetAllTopicConfig:
			resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{}})
		case remoting.RequestGetTopicConfig:
			return remoting.NewResponse(req, remoting.ResponseTopicNotExist, "No topic in this broker")
		case remoting.RequestUpdateAndCreateTopic:
			return remoting.NewResponse(req, remoting.ResponseInvalidParameter, "MIXED message type is not supported.")
		}
		return resp
	})
	b := newTestBroker(t, addr, nil)
	_, err := b.CreateTopic(t.Context(), domain.Topic{Name: "mixed", Type: domain.MessageTypeMixed, QueueCount: 1, Permission: domain.PermReadWrite})
	if msg := domain.MessageOf(err); !strings.Contains(msg, "enableMixedMessageType=true") || !strings.Contains(msg, "MIXED message type is not supported.") {
		t.Fatalf("create of a MIXED topic the broker refuses: %v", err)
	}
	if domain.ReasonOf(err) != domain.ReasonBrokerError {
		t.Errorf("reason %v, want the broker's error as before", domain.ReasonOf(err))
	}
}

// TestAdminAsksEveryMasterAtOnce: an admin command asked the masters one
// after the other, each waited for up to cluster.requestTimeout: a hung
// broker held the command up for its whole timeout before the next was
// asked, and when the admin request's deadline passed meanwhile, the
// brokers after it were never asked (a topic delete left the topic on
// them). Every master is now asked at once, as every NameServer is: two
// brokers that hang on DELETE_TOPIC_IN_BROKER are both asked before
// either has answered, and the error names both.
func TestAdminAsksEveryMasterAtOnce(t *testing.T) {
	hungBroker := func() (string, *atomic.Int32) {
		asked := new(atomic.Int32)
		return startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
			resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
			switch remoting.RequestCode(req.Code) {
			case remoting.RequestGetAllTopicConfig:
				resp.Body, _ = remoting.EncodeJSONBody(remoting.TopicConfigWrapper{TopicConfigTable: map[string]remoting.TopicConfig{
					"orders": {TopicName: "orders", ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite}}})
			case remoting.RequestDeleteTopicInBroker:
				asked.Add(1)
				return noAnswer
			}
			return resp
		}), asked
	}
	b1, asked1 := hungBroker()
	b2, asked2 := hungBroker()
	ns := startFakeSocket(t, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		switch remoting.RequestCode(req.Code) {
		case remoting.RequestGetBrokerClusterInfo:
			resp.Body = twoBrokerCluster(b1, b2)
		case remoting.RequestGetKvlistByNamespace:
			return remoting.NewResponse(req, remoting.ResponseQueryNotFound, "No config item")
		}
		return resp
	})
	cfg := DefaultConfig()
	cfg.NameServers = []string{ns}
	cfg.RequestTimeout = time.Hour // the admin request's deadline ends the wait
	b := newBroker(t, cfg, nil)

	if err := deleteWhileBothHang(t, b, "brokers", asked1, asked2); err == nil || !strings.Contains(err.Error(), "broker b1") || !strings.Contains(err.Error(), "broker b2") {
		t.Errorf("delete with two hung brokers: %v; want it to name both", err)
	}
}
