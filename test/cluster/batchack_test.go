package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBatchAckIsFinalOnTheBroker acks every other one of six received
// messages in one AckMessage request, which rmqproxy sends to the broker
// as one BATCH_ACK_MESSAGE (cluster.batchAck, on by default) naming the
// acked offsets of each pop checkpoint in a bit set. When the invisible
// time is over the broker revives exactly the three others: it revives a
// checkpoint's unacked offsets together, so had it read another offset set
// from the body, or not applied the batch, an acked message would come
// back with them. The broker did not refuse the batch either (rmqproxy
// would then have acked one by one, and logged it).
func TestBatchAckIsFinalOnTheBroker(t *testing.T) {
	const topic, group = "batch-ack", "g-batch-ack"
	cfg, _ := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	p.CreateGroup(t, application.GroupSpec{Name: group})
	raw := testenv.NewRawClient(t, p)
	raw.Subscribe(t, group, topic)
	for i := range 6 {
		resp, err := raw.SendMessage(raw.Ctx(t), &v2.SendMessageRequest{Messages: []*v2.Message{testenv.RawMessage(topic, []byte(fmt.Sprint("m", i)), "")}})
		if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("send: %v %v", resp, err)
		}
	}
	got := raw.ReceiveN(t, group, topic, 6, 3*time.Second, 60*time.Second)
	var acked, kept []*v2.Message
	for i, m := range got {
		if i%2 == 0 {
			acked = append(acked, m)
		} else {
			kept = append(kept, m)
		}
	}
	ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, acked))
	if err != nil || ack.GetStatus().GetCode() != v2.Code_OK || len(ack.GetEntries()) != len(acked) {
		t.Fatalf("ack of %d entries: %v %v", len(acked), ack, err)
	}
	for _, e := range ack.GetEntries() {
		if e.GetStatus().GetCode() != v2.Code_OK {
			t.Fatalf("ack entry %s: %v", e.GetMessageId(), e.GetStatus())
		}
	}
	ids := func(ms []*v2.Message) map[string]bool {
		s := map[string]bool{}
		for _, m := range ms {
			s[m.GetSystemProperties().GetMessageId()] = true
		}
		return s
	}
	ackedIDs, keptIDs, back := ids(acked), ids(kept), map[string]bool{}
	receiveAgain := func(poll time.Duration) {
		t.Helper()
		req := testenv.ReceiveRequest(group, topic, 16, time.Minute)
		req.LongPollingTimeout = durationpb.New(poll)
		_, msgs := raw.Receive(t, req)
		for _, m := range msgs {
			id := m.GetSystemProperties().GetMessageId()
			if ackedIDs[id] {
				t.Fatalf("message %s was acked in the batch but delivered again", id)
			}
			back[id] = true
		}
		if len(msgs) > 0 {
			if a, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, msgs)); err != nil || a.GetStatus().GetCode() != v2.Code_OK {
				t.Fatalf("ack of the redelivered: %v %v", a, err)
			}
		}
	}
	// The broker revives after the invisible time (3 s) once its revive
	// service reaches the checkpoint.
	testenv.WaitFor(t, 3*time.Minute, func() error {
		receiveAgain(time.Second)
		for id := range keptIDs {
			if !back[id] {
				return fmt.Errorf("%d of the %d unacked messages delivered again", len(back), len(keptIDs))
			}
		}
		return nil
	})
	// Anything revived with them is there by now.
	receiveAgain(5 * time.Second)
	if logs := p.Logs(t); strings.Contains(logs, "refused BATCH_ACK_MESSAGE") {
		t.Fatalf("the broker refused the batch; rmqproxy acked one by one:\n%s", logs)
	}
}
