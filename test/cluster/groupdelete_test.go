package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestGroupDeleteRemovesItsRetryTopics: `rmqproxy group delete` removes
// the group's retry topics (%RETRY%G, where a broker keeps what waits to
// be delivered again, and the pop retry topic %RETRY%G_T of a subscribed
// topic) from the broker and the NameServer, as local mode drops a deleted
// group's consumption state; they were left behind (list hides them and
// topic delete refuses them, so nothing could remove them), and a group
// created again under the name got the old group's redeliveries. The
// dead-letter topic is kept, and the command says so.
func TestGroupDeleteRemovesItsRetryTopics(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, broker := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "gdel-orders"), testenv.Name(t, "gdel-group")
	createTopicAndGroup(t, p, topic, group)

	rc := client.New(client.Config{})
	defer rc.Close()
	call := func(addr string, code remoting.RequestCode, h remoting.Header) *remoting.Command {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		resp, err := rc.Invoke(ctx, addr, remoting.NewRequest(code, remoting.EncodeHeader(h), nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	retry := []string{"%RETRY%" + group, remoting.PopRetryTopic(topic, group, false)}
	dlq := "%DLQ%" + group
	// Created as the broker creates them (consumer registration, revive,
	// dead-lettering), one queue each.
	for _, name := range append([]string{dlq}, retry...) {
		resp := call(broker.Addr, remoting.RequestUpdateAndCreateTopic, &remoting.CreateTopicRequestHeader{Topic: name, DefaultTopic: "TBW102",
			ReadQueueNums: 1, WriteQueueNums: 1, Perm: remoting.PermRead | remoting.PermWrite, TopicFilterType: "SINGLE_TAG"})
		if err := remoting.Expect(resp); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	routed := func(name string) bool {
		resp := call(testenv.NameServer().NameServer, remoting.RequestGetRouteinfoByTopic, &remoting.GetRouteInfoRequestHeader{Topic: name})
		return resp.Code == int32(remoting.ResponseSuccess)
	}
	for _, name := range retry {
		testenv.WaitFor(t, 30*time.Second, func() error {
			if !routed(name) {
				return fmt.Errorf("the NameServer does not route %s", name)
			}
			return nil
		})
	}

	code, out := testenv.CLI(t, "group", "delete", group, "--admin.address="+p.AdminAddr())
	if code != 0 {
		t.Fatalf("group delete: exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "kept its dead-letter topic "+dlq) {
		t.Errorf("group delete does not say that it kept %s:\n%s", dlq, out)
	}
	var w remoting.TopicConfigWrapper
	if err := remoting.DecodeJSONBody(call(broker.Addr, remoting.RequestGetAllTopicConfig, &remoting.RPCHeader{}).Body, &w); err != nil {
		t.Fatal(err)
	}
	for _, name := range retry {
		if _, ok := w.TopicConfigTable[name]; ok {
			t.Errorf("the broker still has the deleted group's retry topic %s", name)
		}
		if routed(name) {
			t.Errorf("the NameServer still routes the deleted group's retry topic %s", name)
		}
	}
	if _, ok := w.TopicConfigTable[dlq]; !ok {
		t.Errorf("the dead-letter topic %s was deleted", dlq)
	}
	if _, ok := w.TopicConfigTable[topic]; !ok {
		t.Errorf("the subscribed topic %s was deleted", topic)
	}
	// Nothing is left to delete.
	if code, out := testenv.CLI(t, "group", "delete", group, "--admin.address="+p.AdminAddr()); code == 0 || !strings.Contains(out, "does not exist") {
		t.Errorf("group delete again: exit %d:\n%s", code, out)
	}
}
