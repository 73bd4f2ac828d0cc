package cluster_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestMasterSlaveGroupMasterStopped runs rmqproxy in front of a classic
// master–slave broker group (brokerId 0 ASYNC_MASTER and brokerId 1
// SLAVE, one broker name) and one other master. The route lists each
// group's queues once; while the pair's master is stopped (the NameServer
// then lists that group with its slave only) every send succeeds on the
// other master, receives keep working and group stats still shows the
// stopped group's queues (read from its slave); once the master is back,
// every acknowledged send has been consumed.
func TestMasterSlaveGroupMasterStopped(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokers(t, 2)
	slave := testenv.AddClusterSlave(t, brokers[0])
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "ms-orders"), testenv.Name(t, "g-ms-orders")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 2)

	raw := testenv.NewRawClient(t, p)
	resp, err := raw.QueryRoute(raw.Ctx(t), &v2.QueryRouteRequest{Topic: &v2.Resource{Name: topic}})
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("QueryRoute: %v %v", resp, err)
	}
	seen := map[string]bool{}
	for _, q := range resp.GetMessageQueues() {
		k := fmt.Sprint(q.GetBroker().GetName(), "/", q.GetId())
		if seen[k] {
			t.Fatalf("queue %s listed twice: %v", k, resp.GetMessageQueues())
		}
		seen[k] = true
	}
	if len(seen) != 4 {
		t.Fatalf("route of %s: %d queues %v, want 2 on each of 2 broker groups", topic, len(seen), resp.GetMessageQueues())
	}

	pr := testenv.NewProducer(t, p, topic)
	c := testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	sent, got := map[string]bool{}, map[string]bool{}
	send := func(phase string, n int) {
		for i := range n {
			body := fmt.Sprint(phase, "-", i)
			if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte(body)}); err != nil {
				t.Errorf("send %s: %v", body, err)
				continue
			}
			sent[body] = true
		}
	}
	receiveAll := func(within time.Duration) {
		testenv.WaitFor(t, within, func() error {
			ms, err := c.Receive(t.Context(), 16, 20*time.Second)
			if err != nil && !testenv.IsNoMessage(err) {
				return fmt.Errorf("receive: %v", err)
			}
			for _, m := range ms {
				if err := c.Ack(t.Context(), m); err == nil {
					got[string(m.GetBody())] = true
				}
			}
			for b := range sent {
				if !got[b] {
					return fmt.Errorf("%s not received (%d of %d)", b, len(got), len(sent))
				}
			}
			return nil
		})
	}
	send("before", 8)
	receiveAll(30 * time.Second)

	// The slave copies the group's offsets from its master once a minute
	// (BrokerController: SlaveSynchronize.syncAll when 60 s have passed
	// since the last, the first a minute after its start).
	cl := client.New(client.Config{})
	defer cl.Close()
	testenv.WaitFor(t, 2*time.Minute, func() error {
		resp, err := cl.Invoke(t.Context(), slave.Addr, remoting.NewRequest(remoting.RequestGetConsumeStats,
			remoting.EncodeHeader(&remoting.GetConsumeStatsRequestHeader{RPC: remoting.RPC{BrokerName: slave.Name}, ConsumerGroup: group}), nil))
		if err == nil {
			err = remoting.Expect(resp)
		}
		var cs remoting.ConsumeStats
		if err == nil {
			err = remoting.DecodeJSONBody(resp.Body, &cs)
		}
		if err == nil && len(cs.OffsetTable) < 2 {
			err = fmt.Errorf("%d queues", len(cs.OffsetTable))
		}
		if err != nil {
			return fmt.Errorf("the slave's consume stats of %s: %v", group, err)
		}
		return nil
	})
	brokers[0].Stop() // the NameServer keeps listing its group, with the slave only
	// rmqproxy group stats left the stopped master's queues out without a
	// word (a smaller backlog, a wrong TOTAL); mqadmin consumerProgress
	// reads them from the slave, and so does rmqproxy now.
	testenv.WaitFor(t, 30*time.Second, func() error {
		code, out := testenv.CLI(t, "group", "stats", group, "--json", "--admin.address="+p.AdminAddr())
		var rows []struct {
			Broker string `json:"broker"`
		}
		if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil {
			return fmt.Errorf("group stats --json: exit %d, %v:\n%s", code, err, out)
		}
		on := map[string]int{}
		for _, r := range rows {
			on[r.Broker]++
		}
		if on[brokers[0].Name] != 2 || on[brokers[1].Name] != 2 {
			return fmt.Errorf("group stats while %s's master is stopped: rows per broker %v, want 2 on each of %s (read from its slave) and %s:\n%s",
				brokers[0].Name, on, brokers[0].Name, brokers[1].Name, out)
		}
		return nil
	})
	send("stopped", 12)
	receiveAll(30 * time.Second)

	if err := brokers[0].Restart(); err != nil {
		t.Fatal(err)
	}
	send("after", 8)
	receiveAll(time.Minute)
	if logs := p.Logs(t); strings.Contains(logs, "dial tcp :") || strings.Contains(logs, "missing address") {
		t.Errorf("rmqproxy logged dials of an empty address:\n%s", logs)
	}
}
