package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestGroupStatsInFlight receives 3 of 5 messages without acking them, then
// acks them, and reads the group's stats each time. Local mode counts the 3
// in flight until the ack. A RocketMQ broker does not report them (it
// moves the group's offset when it delivers, and counts in-flight messages
// only in its metrics), so cluster mode says the count is unknown rather
// than 0, and its ack offset is the delivered offset.
func TestGroupStatsInFlight(t *testing.T) {
	const topic, group = "stats-inflight", "g-stats-inflight"
	p := testenv.Start(t, testenv.Config(t))
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := testenv.NewRawClient(t, p)
	for i := range 5 {
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte(fmt.Sprint("m", i)), "")}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send: %v %v", resp, err)
		}
	}
	raw.Subscribe(t, group, topic)
	var got []*v2.Message
	testenv.WaitFor(t, 60*time.Second, func() error {
		_, msgs := raw.Receive(t, testenv.ReceiveRequest(group, topic, 3-int32(len(got)), 2*time.Minute))
		got = append(got, msgs...)
		if len(got) < 3 {
			return fmt.Errorf("received %d of 3", len(got))
		}
		return nil
	})
	cluster := testenv.Target == testenv.TargetCluster
	expect := func(when string, want ports.QueueStats) {
		t.Helper()
		want.Topic, want.MaxOffset, want.InFlightUnknown = topic, 5, cluster
		testenv.WaitFor(t, 30*time.Second, func() error {
			stats, err := p.Admin.GroupStats(t.Context(), group)
			if err != nil {
				return err
			}
			if len(stats) != 1 || stats[0] != want {
				return fmt.Errorf("%s: stats %+v, want %+v", when, stats, want)
			}
			return nil
		})
	}
	if cluster {
		expect("3 received, not acked", ports.QueueStats{AckOffset: 3, Consumable: 2})
	} else {
		expect("3 received, not acked", ports.QueueStats{AckOffset: 0, InFlight: 3, Consumable: 2})
	}
	code, out := testenv.CLI(t, "group", "stats", group, "--admin.address="+p.AdminAddr())
	if code != 0 || strings.Contains(out, "IN-FLIGHT ?") != cluster {
		t.Fatalf("rmqproxy group stats: exit %d:\n%s", code, out)
	}
	if ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, got)); err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("ack: %v %v", ack, err)
	}
	expect("3 acked", ports.QueueStats{AckOffset: 3, Consumable: 2})
}
