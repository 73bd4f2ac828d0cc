package cluster_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestBatchAckIsFinalOnTheBroker acks every other one of the messages of
// one receive, once in one AckMessage request (which rmqproxy sends to the
// broker as one BATCH_ACK_MESSAGE naming the acked offsets of each pop
// checkpoint in a bit set) and once in concurrent requests of one entry
// each (as a push consumer's consumption threads ack; rmqproxy coalesces
// those that wait for a request in flight into BATCH_ACK_MESSAGEs). When
// the invisible time is over the broker revives exactly the others: it
// revives a checkpoint's unacked offsets together, so had it read another
// offset set from a body, or not applied a batch, an acked message would
// come back with them. The broker did not refuse a batch either (rmqproxy
// would then have acked one by one, and logged it).
func TestBatchAckIsFinalOnTheBroker(t *testing.T) {
	t.Parallel() // see TestMain
	cfg, _ := testenv.ClusterConfig(t)
	p := testenv.Start(t, cfg)
	t.Run("one request", func(t *testing.T) {
		ackHalfAndWatchRevival(t, p, "batch-ack", 6, func(raw *testenv.RawClient, group, topic string, acked []*v2.Message) {
			ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, acked))
			if err != nil || ack.GetStatus().GetCode() != v2.Code_OK || len(ack.GetEntries()) != len(acked) {
				t.Fatalf("ack of %d entries: %v %v", len(acked), ack, err)
			}
			for _, e := range ack.GetEntries() {
				if e.GetStatus().GetCode() != v2.Code_OK {
					t.Fatalf("ack entry %s: %v", e.GetMessageId(), e.GetStatus())
				}
			}
		})
	})
	t.Run("concurrent requests", func(t *testing.T) {
		ackHalfAndWatchRevival(t, p, "batch-ack-concurrent", 32, func(raw *testenv.RawClient, group, topic string, acked []*v2.Message) {
			var wg sync.WaitGroup
			for _, m := range acked {
				wg.Go(func() {
					ack, err := raw.AckMessage(raw.Ctx(t), testenv.AckRequest(group, topic, []*v2.Message{m}))
					if err != nil || ack.GetStatus().GetCode() != v2.Code_OK {
						t.Errorf("ack of %s: %v %v", m.GetSystemProperties().GetMessageId(), ack, err)
					}
				})
			}
			wg.Wait()
		})
	})
	if logs := p.Logs(t); strings.Contains(logs, "refused BATCH_ACK_MESSAGE") {
		t.Fatalf("the broker refused a batch; rmqproxy acked one by one:\n%s", logs)
	}
}

// ackHalfAndWatchRevival sends n messages to a one-queue topic of its own,
// receives them with an invisible time of 3 s, acks every other one with
// ack, and checks that the broker delivers exactly the others again.
func ackHalfAndWatchRevival(t *testing.T, p *testenv.Proxy, topic string, n int, ack func(raw *testenv.RawClient, group, topic string, acked []*v2.Message)) {
	topic = testenv.Name(t, topic)
	group := "g-" + topic
	raw := p.Subscriber(t, topic, group, 1)
	raw.SendN(t, topic, n)
	got := raw.ReceiveN(t, group, topic, n, 3*time.Second, 60*time.Second)
	var acked, kept []*v2.Message
	for i, m := range got {
		if i%2 == 0 {
			acked = append(acked, m)
		} else {
			kept = append(kept, m)
		}
	}
	ack(raw, group, topic, acked)
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
		msgs := raw.ReceiveAnswered(t, req)
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
}
