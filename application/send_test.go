package application

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestSendToAMissingTopicSuggestsItsType: the TOPIC_NOT_FOUND answer to a
// send says how to create the topic with the type the send needs; it
// suggested a NORMAL topic to FIFO, delay and transactional producers,
// whose next send then met MESSAGE_TYPE_CONFLICT.
func TestSendToAMissingTopicSuggestsItsType(t *testing.T) {
	m, b, clock := newTestMessaging(DefaultConfig())
	b.routeErr = domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist; create it with `rmqproxy topic create t`", "t")
	for want, msg := range map[string]domain.Message{
		"`rmqproxy topic create t`":                    {},
		"`rmqproxy topic create t --type FIFO`":        {Group: "g"},
		"`rmqproxy topic create t --type DELAY`":       {DeliverAt: clock.Now().Add(time.Minute)},
		"`rmqproxy topic create t --type TRANSACTION`": {Transactional: true},
	} {
		msg.Topic, msg.ID, msg.Body = "t", "0A0000000000000000000000", []byte("x")
		_, err := m.SendMessage(t.Context(), []domain.Message{msg})
		if domain.ReasonOf(err) != domain.ReasonTopicNotFound || !strings.Contains(err.Error(), want) {
			t.Errorf("%s message: %v, want TOPIC_NOT_FOUND suggesting %s", msg.Type(), err, want)
		}
	}
}

// TestSelectQueueIgnoresTheRoutesOrder: a send picks among the writable
// queues in (broker name, queue id) order however the route lists them;
// a route in that order already is walked without a copy.
func TestSelectQueueIgnoresTheRoutesOrder(t *testing.T) {
	var sorted []ports.RouteQueue
	for _, b := range []string{"a", "b", "c"} {
		for id := range int32(4) {
			p := domain.PermRead | domain.PermWrite
			if id == 1 || b == "b" && id == 3 {
				p = domain.PermRead // not writable
			}
			sorted = append(sorted, ports.RouteQueue{BrokerName: b, QueueID: id, Permission: p})
		}
	}
	shuffled := slices.Clone(sorted)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	m, _, _ := newTestMessaging(DefaultConfig())
	for i := range 16 {
		msgs := []domain.Message{{Topic: "t", Group: "group-" + strconv.Itoa(i)}}
		a, err := m.selectQueue(ports.Route{Topic: domain.Topic{Name: "t"}, Queues: sorted}, msgs)
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.selectQueue(ports.Route{Topic: domain.Topic{Name: "t"}, Queues: shuffled}, msgs)
		if err != nil || a != b {
			t.Fatalf("group %d: %v from the sorted route, %v (%v) from the shuffled one", i, a, b, err)
		}
	}
	// Round robin: the queues in turn, in order, whichever way the route lists them.
	for _, queues := range [][]ports.RouteQueue{sorted, shuffled} {
		var turn []domain.QueueRef
		for range 9 {
			q, err := m.selectQueue(ports.Route{Topic: domain.Topic{Name: "t"}, Queues: queues}, []domain.Message{{Topic: "t"}})
			if err != nil {
				t.Fatal(err)
			}
			turn = append(turn, q)
		}
		for i := 1; i < len(turn); i++ {
			prev, cur := turn[i-1], turn[i]
			if prev.BrokerName == cur.BrokerName && prev.QueueID >= cur.QueueID || prev.BrokerName > cur.BrokerName && !(prev.BrokerName == "c" && cur.BrokerName == "a") {
				t.Fatalf("round robin went %v -> %v", prev, cur)
			}
		}
	}
	if _, err := m.selectQueue(ports.Route{Topic: domain.Topic{Name: "t"}, Queues: []ports.RouteQueue{{BrokerName: "a", Permission: domain.PermRead}}},
		[]domain.Message{{Topic: "t"}}); domain.ReasonOf(err) != domain.ReasonForbidden {
		t.Fatalf("no writable queue: %v, want FORBIDDEN", err)
	}
}
