package application

import (
	"context"
	"slices"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// RouteQueue is one queue of a topic as a client sees it in a route.
type RouteQueue struct {
	BrokerName  string
	QueueID     int32
	Permission  domain.Permission
	AcceptTypes []domain.MessageType
}

// QueryRoute returns the queues of a topic.
func (m *Messaging) QueryRoute(ctx context.Context, topic string) ([]RouteQueue, error) {
	if err := domain.ValidateTopicName(topic); err != nil {
		return nil, err
	}
	r, err := m.broker.Route(ctx, topic)
	if err != nil {
		return nil, err
	}
	accept := r.Topic.Type.AcceptedTypes()
	out := make([]RouteQueue, 0, len(r.Queues))
	for _, q := range r.Queues {
		out = append(out, RouteQueue{BrokerName: q.BrokerName, QueueID: q.QueueID, Permission: q.Permission, AcceptTypes: accept})
	}
	return out, nil
}

// Assignment is a queue a push consumer should receive from; QueueID -1
// means any queue of the broker (the broker picks).
type Assignment struct {
	BrokerName string
	QueueID    int32
	Permission domain.Permission
}

// QueryAssignment tells a push consumer which queues to receive from. For
// an orderly group the readable queues are shared out among the group's
// push consumers that subscribe to the topic and heartbeat (see
// [Sessions.pushConsumersOf]; each queue to one consumer, as evenly as
// possible), so that each consumer drains its own queues in order; a
// consumer that gets no queue receives an empty assignment, one not counted
// every queue. Otherwise every consumer gets one entry per broker with
// queue id -1 (any queue), as the Apache proxy does.
func (m *Messaging) QueryAssignment(ctx context.Context, topic, group string) ([]Assignment, error) {
	if err := domain.ValidateTopicName(topic); err != nil {
		return nil, err
	}
	if err := domain.ValidateGroupName(group); err != nil {
		return nil, err
	}
	r, err := m.broker.Route(ctx, topic)
	if err != nil {
		return nil, err
	}
	orderly := false
	if g, err := m.meta.ConsumerGroup(ctx, group); err == nil {
		orderly = g.Orderly
	} else if !domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
		return nil, err
	}
	var readable []Assignment
	seen := map[string]bool{}
	for _, q := range r.Queues {
		if !q.Permission.Readable() {
			continue
		}
		if orderly {
			readable = append(readable, Assignment{BrokerName: q.BrokerName, QueueID: q.QueueID, Permission: q.Permission})
			continue
		}
		if !seen[q.BrokerName] {
			seen[q.BrokerName] = true
			readable = append(readable, Assignment{BrokerName: q.BrokerName, QueueID: -1, Permission: q.Permission})
		}
	}
	if len(readable) == 0 {
		return nil, domain.Errorf(domain.ReasonForbidden, "no readable queue")
	}
	if !orderly {
		return readable, nil
	}
	consumers := m.sessions.pushConsumersOf(group, topic)
	me := slices.Index(consumers, ports.RequestInfoFrom(ctx).ClientID)
	if me < 0 {
		return readable, nil // not (or no longer) registered: serve every queue
	}
	return allocateAveragely(readable, len(consumers), me), nil
}

// allocateAveragely gives consumer index i of n its contiguous share of
// queues, the first len(queues) mod n consumers getting one more, like
// RocketMQ's AllocateMessageQueueAveragely.
func allocateAveragely(queues []Assignment, n, i int) []Assignment {
	q := len(queues)
	size, extra := q/n, q%n
	start := i*size + min(i, extra)
	if i < extra {
		size++
	}
	return queues[start : start+size]
}
