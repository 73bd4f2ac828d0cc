package application

import (
	"context"

	"github.com/rmqproxy/rmqproxy/domain"
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

// QueryAssignment tells a push consumer which queues to receive from: for
// an orderly group each readable queue, otherwise one entry per broker.
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
	var out []Assignment
	seen := map[string]bool{}
	for _, q := range r.Queues {
		if !q.Permission.Readable() {
			continue
		}
		if orderly {
			out = append(out, Assignment{BrokerName: q.BrokerName, QueueID: q.QueueID, Permission: q.Permission})
			continue
		}
		if !seen[q.BrokerName] {
			seen[q.BrokerName] = true
			out = append(out, Assignment{BrokerName: q.BrokerName, QueueID: -1, Permission: q.Permission})
		}
	}
	if len(out) == 0 {
		return nil, domain.Errorf(domain.ReasonForbidden, "topic %q has no readable queue", topic)
	}
	return out, nil
}
