package ports

import (
	"context"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// Metadata answers questions about topics and consumer groups on the hot
// path; implementations cache as they see fit.
type Metadata interface {
	// Topic returns a topic's configuration or a ReasonTopicNotFound error.
	Topic(ctx context.Context, name string) (domain.Topic, error)
	// ConsumerGroup returns a group's configuration or a
	// ReasonConsumerGroupNotFound error.
	ConsumerGroup(ctx context.Context, name string) (domain.ConsumerGroup, error)
}

// Admin changes topics and consumer groups. Create fails with
// ReasonAlreadyExists, update and delete with ReasonTopicNotFound or
// ReasonConsumerGroupNotFound.
type Admin interface {
	CreateTopic(ctx context.Context, t domain.Topic) (domain.Topic, error)
	UpdateTopic(ctx context.Context, t domain.Topic) (domain.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	ListTopics(ctx context.Context) ([]domain.Topic, error)

	CreateGroup(ctx context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error)
	UpdateGroup(ctx context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error)
	DeleteGroup(ctx context.Context, name string) error
	ListGroups(ctx context.Context) ([]domain.ConsumerGroup, error)

	// GroupStats reports, per queue of each subscribed topic, what the group
	// has consumed and what is still in flight.
	GroupStats(ctx context.Context, group string) ([]QueueStats, error)

	// ResetOffset moves a group's position on a topic's queues (all of
	// them, or the one req.QueueID names) to the offset req.Policy and
	// req.At select, as mqadmin resetOffsetByTime does: the group's next
	// receive there starts at that offset, backwards (the messages from
	// there are delivered again) or forwards (the ones before are
	// skipped). It fails with ReasonConsumerGroupNotFound,
	// ReasonTopicNotFound or ReasonBadRequest (a queue the topic does not
	// have) and changes nothing then. The answer is sorted by broker and
	// queue id.
	ResetOffset(ctx context.Context, req ResetOffsetRequest) ([]OffsetReset, error)
}

// ResetOffsetRequest selects the queues and the new position of a
// consumer offset reset.
type ResetOffsetRequest struct {
	Group string
	Topic string
	// QueueID is the one queue to reset, or -1 for every queue of the
	// topic (in cluster mode one queue id names that queue on every
	// broker holding the topic).
	QueueID int32
	// Policy is OffsetBeginning (the first message still stored),
	// OffsetEnd (after the last: skip every message stored) or
	// OffsetTimestamp (the first message stored at or after At; after
	// the last when none was).
	Policy OffsetPolicy
	At     time.Time
}

// OffsetReset reports the reset of one queue.
type OffsetReset struct {
	Broker  string // "" in local mode
	QueueID int32
	// OldOffset is where the group stood (its ack offset: every message
	// below it consumed); NewOffset where it stands now.
	OldOffset int64
	NewOffset int64
}

// TopicQueueStats is an optional capability of a broker whose GroupStats
// lists only the queues a group has consumer state on (the embedded
// engine: a group has none on a queue before its first receive of it):
// TopicQueueStats reports, per queue of a topic, what such a group sees
// there (every message not acked, none in flight, the stored ones
// consumable), so that the admin use case can list every queue of the
// topics the group's consumers subscribe to. It fails with
// ReasonTopicNotFound for a topic that does not exist.
type TopicQueueStats interface {
	TopicQueueStats(ctx context.Context, topic string) ([]QueueStats, error)
}

// QueueStats describes a group's progress on one queue.
type QueueStats struct {
	Topic string
	// Broker names the broker holding the queue (cluster mode: a topic's
	// queues on different brokers share their ids); "" in local mode.
	Broker    string
	QueueID   int32
	MaxOffset int64 // next offset a new message will get
	AckOffset int64 // every message below this offset is consumed
	// AckedAbove counts the messages at or above AckOffset consumed
	// already (acked out of order, dead-lettered or filtered out): the
	// group's unacked messages are MaxOffset-AckOffset-AckedAbove. Local
	// mode; 0 in cluster mode, whose brokers do not report it.
	AckedAbove int64
	InFlight   int64 // delivered, not yet acked
	Consumable int64 // not yet delivered or visible again
	// InFlightUnknown says that the broker does not report what is in
	// flight (cluster mode: a RocketMQ broker counts popped messages
	// only in its metrics), so InFlight is 0 without meaning nothing is
	// in flight; AckOffset is then the offset up to which messages were
	// delivered, and Consumable counts only messages never delivered.
	InFlightUnknown bool
	// InFlightInConsumable (cluster mode, with InFlightUnknown: an
	// orderly group) says that Consumable counts the messages in flight
	// too: a broker moves an orderly group's offset when its messages are
	// acked, not when they are delivered, so AckOffset is the ack offset
	// and Consumable every message not acked, which the broker does not
	// split into delivered and not.
	InFlightInConsumable bool
	// ConsumedUpTo is the store time of the message just below AckOffset,
	// the last one of the consumed prefix (upstream's consumerProgress
	// #LastTime): how far in time the group has got on this queue. Zero
	// when nothing is consumed, or when the store time of that message is
	// gone (cluster mode: its commit log removed; local mode keeps the
	// store time in the queue's index after retention removed the message).
	ConsumedUpTo time.Time
}
