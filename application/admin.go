package application

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Admin is the use case behind every administrative surface (the admin HTTP
// API, the CLI that calls it, and later Remoting admin codes): it validates
// requests, fills defaults and delegates to [ports.Admin].
type Admin struct {
	store ports.Admin
	clock ports.Clock
	// subscriptions and topics, when set (WithSubscribedQueues), let
	// GroupStats add the queues of subscribed topics, and of topics it
	// has consumed, that the store reports no state on.
	subscriptions func() []Subscription
	topics        ports.TopicQueueStats
}

// NewAdmin returns the admin use case over store.
func NewAdmin(store ports.Admin, clock ports.Clock) *Admin {
	return &Admin{store: store, clock: clock}
}

// WithSubscribedQueues makes GroupStats list every queue of the topics a
// group's known consumers subscribe to (sessions' Subscriptions): for a
// queue store's GroupStats leaves out, because the group has not received
// from it yet, topics' TopicQueueStats tells what the group sees there,
// as the consumer gauges count it. The other queues of a topic the store
// lists some queues of are added too, consumers connected or not (see
// [UnreportedQueues]). Without topics (a broker whose
// GroupStats lists them itself) it changes nothing. Call it before a
// is used; it returns a.
func (a *Admin) WithSubscribedQueues(sessions *Sessions, topics ports.TopicQueueStats) *Admin {
	if sessions != nil && topics != nil {
		a.subscriptions, a.topics = sessions.Subscriptions, topics
	}
	return a
}

// DefaultTopicQueueCount is the queue count of a topic created without one
// (RocketMQ's defaultTopicQueueNums).
const DefaultTopicQueueCount = 8

// TopicSpec is a request to create or update a topic. Zero fields take
// defaults on create and keep the current value on update.
type TopicSpec struct {
	Name        string
	Type        domain.MessageType
	QueueCount  int32
	Description *string
}

// CreateTopic creates a topic; it fails with ReasonAlreadyExists when the
// name is taken.
func (a *Admin) CreateTopic(ctx context.Context, s TopicSpec) (domain.Topic, error) {
	t := domain.Topic{
		Name:       s.Name,
		Type:       s.Type,
		QueueCount: s.QueueCount,
		Permission: domain.PermReadWrite,
	}
	if t.Type == domain.MessageTypeUnspecified {
		t.Type = domain.MessageTypeNormal
	}
	if t.QueueCount == 0 {
		t.QueueCount = DefaultTopicQueueCount
	}
	if s.Description != nil {
		t.Description = *s.Description
	}
	now := a.clock.Now().UTC().Truncate(time.Millisecond)
	t.CreatedAt, t.UpdatedAt = now, now
	if err := domain.ValidateNewTopicName(t.Name); err != nil {
		return domain.Topic{}, err
	}
	if err := t.Validate(); err != nil {
		return domain.Topic{}, err
	}
	return a.store.CreateTopic(ctx, t)
}

// UpdateTopic changes the given fields of an existing topic.
func (a *Admin) UpdateTopic(ctx context.Context, s TopicSpec) (domain.Topic, error) {
	if err := domain.ValidateNewTopicName(s.Name); err != nil {
		return domain.Topic{}, err
	}
	cur, err := a.findTopic(ctx, s.Name)
	if err != nil {
		return domain.Topic{}, err
	}
	if s.Type != domain.MessageTypeUnspecified {
		cur.Type = s.Type
	}
	if s.QueueCount != 0 {
		if s.QueueCount < cur.QueueCount {
			return domain.Topic{}, domain.Errorf(domain.ReasonBadRequest,
				"topic %q has %d queues; the queue count can only grow (messages in removed queues would become unreachable)", s.Name, cur.QueueCount)
		}
		cur.QueueCount = s.QueueCount
	}
	if s.Description != nil {
		cur.Description = *s.Description
	}
	cur.UpdatedAt = a.clock.Now().UTC().Truncate(time.Millisecond)
	if err := cur.Validate(); err != nil {
		return domain.Topic{}, err
	}
	return a.store.UpdateTopic(ctx, cur)
}

// DeleteTopic removes a topic and, eventually, its messages.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	if err := domain.ValidateTopicName(name); err != nil {
		return err
	}
	err := a.store.DeleteTopic(ctx, name)
	if domain.HasReason(err, domain.ReasonTopicNotFound) {
		// The stores' not-found errors suggest creating the topic, which
		// is what a send or receive needs, not a delete.
		return domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist, so there is nothing to delete (`rmqproxy topic list` lists the topics)", name)
	}
	return err
}

// Topic describes one topic.
func (a *Admin) Topic(ctx context.Context, name string) (domain.Topic, error) {
	if err := domain.ValidateTopicName(name); err != nil {
		return domain.Topic{}, err
	}
	return a.findTopic(ctx, name)
}

// Topics lists every topic, sorted by name.
func (a *Admin) Topics(ctx context.Context) ([]domain.Topic, error) {
	return a.store.ListTopics(ctx)
}

func (a *Admin) findTopic(ctx context.Context, name string) (domain.Topic, error) {
	all, err := a.store.ListTopics(ctx)
	if err != nil {
		return domain.Topic{}, err
	}
	for _, t := range all {
		if t.Name == name {
			return t, nil
		}
	}
	return domain.Topic{}, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist; create it with `rmqproxy topic create %s`", name, name)
}

// GroupSpec is a request to create or update a consumer group. Nil or zero
// fields take defaults on create and keep the current value on update.
type GroupSpec struct {
	Name                string
	MaxDeliveryAttempts int32
	RetryPolicy         *domain.RetryPolicy
	Orderly             *bool
	Description         *string
}

// CreateGroup creates a consumer group with RocketMQ's defaults for the
// fields the spec leaves out.
func (a *Admin) CreateGroup(ctx context.Context, s GroupSpec) (domain.ConsumerGroup, error) {
	g := domain.NewConsumerGroup(s.Name)
	applyGroupSpec(&g, s)
	now := a.clock.Now().UTC().Truncate(time.Millisecond)
	g.CreatedAt, g.UpdatedAt = now, now
	if err := domain.ValidateNewGroupName(g.Name); err != nil {
		return domain.ConsumerGroup{}, err
	}
	if err := g.Validate(); err != nil {
		return domain.ConsumerGroup{}, err
	}
	return a.store.CreateGroup(ctx, g)
}

// UpdateGroup changes the given fields of an existing group.
func (a *Admin) UpdateGroup(ctx context.Context, s GroupSpec) (domain.ConsumerGroup, error) {
	g, err := a.Group(ctx, s.Name)
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	applyGroupSpec(&g, s)
	g.UpdatedAt = a.clock.Now().UTC().Truncate(time.Millisecond)
	if err := g.Validate(); err != nil {
		return domain.ConsumerGroup{}, err
	}
	return a.store.UpdateGroup(ctx, g)
}

func applyGroupSpec(g *domain.ConsumerGroup, s GroupSpec) {
	if s.MaxDeliveryAttempts != 0 {
		g.MaxDeliveryAttempts = s.MaxDeliveryAttempts
	}
	if s.RetryPolicy != nil {
		g.RetryPolicy = *s.RetryPolicy
	}
	if s.Orderly != nil {
		g.Orderly = *s.Orderly
	}
	if s.Description != nil {
		g.Description = *s.Description
	}
}

// DeleteGroup removes a consumer group and its consumption state.
func (a *Admin) DeleteGroup(ctx context.Context, name string) error {
	if err := domain.ValidateGroupName(name); err != nil {
		return err
	}
	err := a.store.DeleteGroup(ctx, name)
	if domain.HasReason(err, domain.ReasonConsumerGroupNotFound) {
		return domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist, so there is nothing to delete (`rmqproxy group list` lists the groups)", name)
	}
	return err
}

// Group describes one consumer group.
func (a *Admin) Group(ctx context.Context, name string) (domain.ConsumerGroup, error) {
	if err := domain.ValidateGroupName(name); err != nil {
		return domain.ConsumerGroup{}, err
	}
	all, err := a.store.ListGroups(ctx)
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	for _, g := range all {
		if g.Name == name {
			return g, nil
		}
	}
	return domain.ConsumerGroup{}, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist; create it with `rmqproxy group create %s`", name, name)
}

// Groups lists every consumer group, sorted by name.
func (a *Admin) Groups(ctx context.Context) ([]domain.ConsumerGroup, error) {
	return a.store.ListGroups(ctx)
}

// GroupStats reports a group's progress per queue.
func (a *Admin) GroupStats(ctx context.Context, name string) ([]ports.QueueStats, error) {
	if err := domain.ValidateGroupName(name); err != nil {
		return nil, err
	}
	stats, err := a.store.GroupStats(ctx, name)
	if err != nil || a.topics == nil {
		return stats, err
	}
	var topics []string
	for _, s := range a.subscriptions() {
		if s.Group == name {
			topics = append(topics, s.Topic)
		}
	}
	added := UnreportedQueues(ctx, a.topics, topics, stats)
	if len(added) == 0 {
		return stats, nil
	}
	stats = append(stats, added...)
	slices.SortFunc(stats, func(x, y ports.QueueStats) int {
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return c
		}
		return cmp.Compare(x.QueueID, y.QueueID)
	})
	return stats, nil
}

// UnreportedQueues returns the queues that a group's stats do not list,
// because it has not received from them yet, of the topics it subscribes
// to (subscribed) and of those its stats list some queues of (consumed
// before, by consumers gone since, from some of the topic's queues, or
// before queues were added: a RocketMQ broker too reports every queue of
// a topic a group has offsets on), as topics reports them; a topic that
// cannot be read (deleted since, or never created) adds none. GroupStats
// and the consumer gauges both add them.
func UnreportedQueues(ctx context.Context, topics ports.TopicQueueStats, subscribed []string, stats []ports.QueueStats) []ports.QueueStats {
	// The subscribed topics, then those of the stats, each once, in the
	// order they come (a set: a group may have consumed thousands).
	seen := make(map[string]bool, len(subscribed))
	var names []string
	for _, t := range subscribed {
		if !seen[t] {
			seen[t] = true
			names = append(names, t)
		}
	}
	for _, q := range stats {
		if !seen[q.Topic] {
			seen[q.Topic] = true
			names = append(names, q.Topic)
		}
	}
	if len(names) == 0 {
		return nil
	}
	type queue struct {
		topic string
		id    int32
	}
	listed := make(map[queue]bool, len(stats))
	for _, q := range stats {
		listed[queue{q.Topic, q.QueueID}] = true
	}
	var out []ports.QueueStats
	for _, t := range names {
		qs, err := topics.TopicQueueStats(ctx, t)
		if err != nil {
			continue
		}
		for _, q := range qs {
			if k := (queue{q.Topic, q.QueueID}); !listed[k] {
				listed[k] = true
				out = append(out, q)
			}
		}
	}
	return out
}

// ResetSpec is a request to reset a consumer group's offsets on a topic
// (rmqproxy group reset, mqadmin resetOffsetByTime).
type ResetSpec struct {
	Group string
	Topic string
	// QueueID is the queue to reset, or -1 for every queue of the topic.
	QueueID int32
	// To is where: "earliest" (the first message stored), "latest" (after
	// the last: skip the backlog), an RFC 3339 time (the first message
	// stored at or after it) or a duration (that long ago, by the proxy's
	// clock), as [ParseResetTarget] reads it.
	To string
}

// ResetTarget is a parsed ResetSpec.To.
type ResetTarget struct {
	Policy ports.OffsetPolicy
	At     time.Time // OffsetTimestamp
}

// ParseResetTarget reads where a reset moves to: "earliest", "latest",
// an RFC 3339 time, or a positive Go duration ("90m", "1h30m", "24h")
// meaning that long before now. Errors are ReasonBadRequest.
func ParseResetTarget(s string, now time.Time) (ResetTarget, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return ResetTarget{}, domain.Errorf(domain.ReasonBadRequest, "say where to reset to: earliest, latest, an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (1h)")
	case "earliest":
		return ResetTarget{Policy: ports.OffsetBeginning}, nil
	case "latest":
		return ResetTarget{Policy: ports.OffsetEnd}, nil
	}
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.Year() < 1970 || t.Year() > 9999 {
			return ResetTarget{}, domain.Errorf(domain.ReasonBadRequest, "reset time %q is out of range (years 1970 to 9999)", s)
		}
		return ResetTarget{Policy: ports.OffsetTimestamp, At: t}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return ResetTarget{}, domain.Errorf(domain.ReasonBadRequest, "cannot read reset target %q: want earliest, latest, an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (1h)", s)
	}
	if d <= 0 {
		return ResetTarget{}, domain.Errorf(domain.ReasonBadRequest, "reset target %q: a duration means that long ago and must be positive", s)
	}
	return ResetTarget{Policy: ports.OffsetTimestamp, At: now.Add(-d)}, nil
}

// ResetOffset moves a group's position on a topic's queues: its next
// receive there starts at the first message stored at or after the time
// (earlier messages acked or not are skipped, later ones delivered again),
// at the first stored, or after the last. See [ports.Admin].
func (a *Admin) ResetOffset(ctx context.Context, s ResetSpec) ([]ports.OffsetReset, error) {
	if err := domain.ValidateGroupName(s.Group); err != nil {
		return nil, err
	}
	if s.Topic == "" {
		return nil, domain.Errorf(domain.ReasonBadRequest, "say which topic's offsets to reset (--topic)")
	}
	if err := domain.ValidateTopicName(s.Topic); err != nil {
		return nil, err
	}
	if s.QueueID < -1 {
		return nil, domain.Errorf(domain.ReasonBadRequest, "queue id %d is negative", s.QueueID)
	}
	to, err := ParseResetTarget(s.To, a.clock.Now())
	if err != nil {
		return nil, err
	}
	out, err := a.store.ResetOffset(ctx, ports.ResetOffsetRequest{Group: s.Group, Topic: s.Topic, QueueID: s.QueueID, Policy: to.Policy, At: to.At})
	switch {
	case domain.HasReason(err, domain.ReasonConsumerGroupNotFound):
		return nil, domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist, so it has no offsets to reset (`rmqproxy group list` lists the groups)", s.Group)
	case domain.HasReason(err, domain.ReasonTopicNotFound):
		return nil, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist (`rmqproxy topic list` lists the topics)", s.Topic)
	}
	return out, err
}
