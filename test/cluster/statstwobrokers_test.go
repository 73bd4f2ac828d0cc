package cluster_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestGroupStatsNameTheBrokerOfEachQueue puts rmqproxy in front of two
// masters that share a topic of one queue each. rmqproxy group stats (and
// GET /v1/groups/{name}/stats) listed two rows "topic 0" that said nothing
// of their broker, in either order from one call to the next: an operator
// could not tell which broker's queue was behind, nor follow a row from one
// look to the next. Each row names its broker (as mqadmin consumerProgress
// does), and rows are sorted by it.
func TestGroupStatsNameTheBrokerOfEachQueue(t *testing.T) {
	t.Parallel() // see TestMain
	brokers := testenv.AddClusterBrokers(t, 2)
	cfg, _ := testenv.ClusterConfig(t)
	cfg.Cluster.ClusterName = brokers[0].Cluster
	p := testenv.Start(t, cfg)
	topic, group := testenv.Name(t, "stats-two-brokers"), testenv.Name(t, "g-stats-two-brokers")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	pr := testenv.NewProducer(t, p, topic)
	const sent = 6
	for i := range sent {
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	c := testenv.NewSimpleConsumer(t, p, group, 5*time.Second, map[string]*rmq.FilterExpression{topic: rmq.SUB_ALL})
	got := 0
	testenv.WaitFor(t, 2*time.Minute, func() error {
		ms, _ := c.Receive(t.Context(), 16, time.Minute)
		for _, m := range ms {
			if err := c.Ack(t.Context(), m); err != nil {
				return err
			}
		}
		if got += len(ms); got < sent {
			return fmt.Errorf("%d of %d received", got, sent)
		}
		return nil
	})
	type row struct {
		Topic     string `json:"topic"`
		Broker    string `json:"broker"`
		MaxOffset int64  `json:"maxOffset"`
		AckOffset int64  `json:"ackOffset"`
	}
	testenv.WaitFor(t, time.Minute, func() error {
		code, out := testenv.CLI(t, "group", "stats", group, "--json", "--admin.address="+p.AdminAddr())
		var st []row
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
			return fmt.Errorf("group stats --json: exit %d, %v:\n%s", code, err, out)
		}
		var rows []row
		var total int64
		for _, r := range st {
			if r.Topic == topic {
				rows = append(rows, r)
				total += r.MaxOffset
			}
		}
		names := []string{brokers[0].Name, brokers[1].Name}
		slices.Sort(names)
		if len(rows) != 2 || total != sent || rows[0].Broker != names[0] || rows[1].Broker != names[1] {
			return fmt.Errorf("rows of %s %+v, want one on %s and one on %s, in that order, holding %d messages", topic, rows, names[0], names[1], sent)
		}
		return nil
	})
	code, out := testenv.CLI(t, "group", "stats", group, "--admin.address="+p.AdminAddr())
	if code != 0 || !strings.Contains(out, "BROKER") || !strings.Contains(out, brokers[0].Name) || !strings.Contains(out, brokers[1].Name) {
		t.Fatalf("rmqproxy group stats: exit %d, want a BROKER column naming %s and %s:\n%s", code, brokers[0].Name, brokers[1].Name, out)
	}
}
