package application

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// SendMessage validates a batch of messages for one topic in the Apache
// proxy's order, selects a queue (consistent hash of the message group for
// a single FIFO message, round robin otherwise) and stores the batch. It
// returns one receipt per message, in order, or an error for the whole batch.
func (m *Messaging) SendMessage(ctx context.Context, msgs []domain.Message) ([]domain.SendReceipt, error) {
	if len(msgs) == 0 {
		return nil, domain.Errorf(domain.ReasonMessageCorrupted, "no message to send")
	}
	topic := msgs[0].Topic
	if err := domain.ValidateTopicName(topic); err != nil {
		return nil, err
	}
	now := m.clock.Now()
	limits := m.cfg.limits()
	for i := range msgs {
		if msgs[i].Topic != topic {
			return nil, domain.Errorf(domain.ReasonMessageCorrupted, "topic in message is not same")
		}
		if err := limits.ValidateMessage(&msgs[i], now); err != nil {
			return nil, err
		}
		msgs[i].Keys = domain.SplitKeys(msgs[i].Keys)
		msgs[i].Properties = domain.StorableProperties(msgs[i].Properties)
	}
	if m.traffic != nil {
		var bytes int64
		for i := range msgs {
			bytes += int64(len(msgs[i].Body))
		}
		if err := m.traffic.AdmitSend(ctx, topic, len(msgs), bytes); err != nil {
			return nil, err
		}
	}
	route, err := m.broker.Route(ctx, topic)
	if err != nil {
		return nil, withCreateType(err, topic, msgs)
	}
	for i := range msgs {
		if err := domain.CheckUnservedKind(topic, route.Topic.Type, &msgs[i]); err != nil {
			return nil, err
		}
	}
	if m.cfg.Limits.TopicMessageTypeCheck {
		// Every message, not only the first as upstream checks: a batch
		// must not smuggle a message of another type into the topic. This
		// is the only check, in both modes: a RocketMQ broker and the
		// local broker store any type, so with the setting off a topic
		// takes every type (as the Apache proxy's
		// enableTopicMessageTypeCheck off).
		for i := range msgs {
			if err := domain.CheckMessageType(topic, route.Topic.Type, &msgs[i]); err != nil {
				return nil, err
			}
		}
	}
	// A batch is stored in one queue: a message of another group than
	// the first's (or of a group, after one of none) would be stored
	// outside its group's queue and consumed out of order with the
	// group's other messages. Upstream stores such a batch round robin.
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Group != msgs[0].Group {
			return nil, domain.Errorf(domain.ReasonBadRequest,
				"message %d of the batch has message group %q where the first has %q; a batch is stored in one queue, and a message group's messages must all go to its own: send the messages of each message group (and those without one) in requests of their own",
				i, msgs[i].Group, msgs[0].Group)
		}
	}
	queue, err := m.selectQueue(route, msgs)
	if err != nil {
		return nil, err
	}
	return m.broker.Send(ctx, queue, msgs)
}

// withCreateType puts the topic type a send needs into the command a
// TOPIC_NOT_FOUND answer suggests (`rmqproxy topic create T`): the
// brokers name none (a route lookup carries no message type), and a FIFO,
// delay or transactional producer that created the topic as suggested got
// MESSAGE_TYPE_CONFLICT next. A batch of mixed types gets no type.
func withCreateType(err error, topic string, msgs []domain.Message) error {
	var de *domain.Error
	if !errors.As(err, &de) || de.Reason != domain.ReasonTopicNotFound {
		return err
	}
	typ := msgs[0].Type()
	for i := range msgs {
		if msgs[i].Type() != typ {
			return err
		}
	}
	cmd := "`rmqproxy topic create " + topic + "`"
	if typ == domain.MessageTypeNormal || !strings.Contains(de.Msg, cmd) {
		return err
	}
	typed := "`rmqproxy topic create " + topic + " --type " + typ.String() + "`"
	return &domain.Error{Reason: de.Reason, Msg: strings.Replace(de.Msg, cmd, typed, 1), Err: de.Err}
}

// selectQueue picks the queue a batch is stored in: of the route's
// writable queues in (broker name, queue id) order, the one the batch's
// message group hashes to, or else the topic's next in turn.
func (m *Messaging) selectQueue(route ports.Route, msgs []domain.Message) (domain.QueueRef, error) {
	n := 0
	for i := range route.Queues {
		if route.Queues[i].Permission.Writable() {
			n++
		}
	}
	if n == 0 {
		return domain.QueueRef{}, domain.Errorf(domain.ReasonForbidden, "topic %q has no writable queue", route.Topic.Name)
	}
	var k int
	if g := msgs[0].Group; g != "" {
		k = domain.FIFOQueueIndex(g, n)
	} else {
		k = int(nextTurn(&m.sendTurns, route.Topic.Name) % uint64(n))
	}
	q, ok := kthWritable(route.Queues, k)
	if !ok {
		writable := route.WritableQueues()
		slices.SortFunc(writable, compareQueues)
		q = writable[k]
	}
	return domain.QueueRef{Topic: route.Topic.Name, BrokerName: q.BrokerName, QueueID: q.QueueID}, nil
}

func compareQueues(a, b ports.RouteQueue) int {
	if c := strings.Compare(a.BrokerName, b.BrokerName); c != 0 {
		return c
	}
	return cmp.Compare(a.QueueID, b.QueueID)
}

// kthWritable returns the k-th writable queue (from 0) of queues when they
// are in (broker name, queue id) order already, as the brokers' adapters
// give them, without copying them; ok is false when they are not.
func kthWritable(queues []ports.RouteQueue, k int) (q ports.RouteQueue, ok bool) {
	if !slices.IsSortedFunc(queues, compareQueues) {
		return q, false
	}
	for i := range queues {
		if queues[i].Permission.Writable() {
			if k == 0 {
				return queues[i], true
			}
			k--
		}
	}
	return q, false
}
