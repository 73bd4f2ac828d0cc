package localbroker

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Topic returns a topic's configuration, auto-creating it when configured.
func (e *Engine) Topic(ctx context.Context, name string) (domain.Topic, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.openTopicLocked(ctx, name, true)
	if err != nil {
		return domain.Topic{}, err
	}
	return t.Topic, nil
}

// ConsumerGroup returns a group's configuration, auto-creating it when
// configured.
func (e *Engine) ConsumerGroup(ctx context.Context, name string) (domain.ConsumerGroup, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkOpenLocked(); err != nil {
		return domain.ConsumerGroup{}, err
	}
	g, err := e.groupLocked(ctx, name, true)
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	return g.ConsumerGroup, nil
}

func stamp(created, updated *time.Time, now time.Time) {
	now = now.UTC().Truncate(time.Millisecond)
	if created.IsZero() {
		*created = now
	}
	if updated.IsZero() {
		*updated = now
	}
}

// writeDefinition is the frame of the topic and group mutators: it runs write
// under e.mu on a writable engine (write checks the change, then appends and
// applies its record and returns the record's end) and, with e.mu released,
// waits until that record is durable; what names the change in errors.
func (e *Engine) writeDefinition(ctx context.Context, what string, write func() (end int64, err error)) error {
	e.mu.Lock()
	if err := e.checkWritableLocked(); err != nil {
		e.mu.Unlock()
		return err
	}
	end, err := write()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	return e.waitDurable(ctx, end, what)
}

// appendDeletedLocked appends and applies a durable deletion record of type
// typ for the named topic or group's incarnation; it returns the record's end.
func (e *Engine) appendDeletedLocked(typ record.Type, name string, incarnation uint64) (int64, error) {
	rec := record.Deleted{Name: name, Incarnation: incarnation}
	_, end, err := e.appendApplyLocked(typ, func(dst []byte) []byte { return record.AppendDeleted(dst, &rec) }, true)
	return end, err
}

// CreateTopic creates a topic; ReasonAlreadyExists when the name is taken.
// The topic-put record is durable when it returns.
func (e *Engine) CreateTopic(ctx context.Context, t domain.Topic) (domain.Topic, error) {
	if t.Permission == domain.PermNone {
		t.Permission = domain.PermReadWrite
	}
	if err := t.Validate(); err != nil {
		return domain.Topic{}, err
	}
	var created domain.Topic
	err := e.writeDefinition(ctx, "the topic creation", func() (int64, error) {
		if _, ok := e.topics[t.Name]; ok {
			return 0, domain.Errorf(domain.ReasonAlreadyExists, "topic %q already exists", t.Name)
		}
		stamp(&t.CreatedAt, &t.UpdatedAt, e.clock.Now())
		tm, end, err := e.putTopicLocked(t, 0, true)
		if err != nil {
			return 0, err
		}
		created = tm.Topic
		return end, nil
	})
	if err != nil {
		return domain.Topic{}, err
	}
	e.log.InfoContext(ctx, "topic created", "topic", t.Name, "type", t.Type.String(), "queues", t.QueueCount)
	return created, nil
}

// UpdateTopic replaces a topic's configuration; the queue count may only grow.
func (e *Engine) UpdateTopic(ctx context.Context, t domain.Topic) (domain.Topic, error) {
	if t.Permission == domain.PermNone {
		t.Permission = domain.PermReadWrite
	}
	if err := t.Validate(); err != nil {
		return domain.Topic{}, err
	}
	err := e.writeDefinition(ctx, "the topic update", func() (int64, error) {
		cur, ok := e.topics[t.Name]
		if !ok {
			return 0, topicNotFound(t.Name)
		}
		if t.QueueCount < cur.QueueCount {
			return 0, domain.Errorf(domain.ReasonBadRequest,
				"topic %q has %d queues; the queue count can only grow (messages in removed queues would become unreachable)", t.Name, cur.QueueCount)
		}
		t.CreatedAt = cur.CreatedAt
		if t.UpdatedAt.IsZero() {
			t.UpdatedAt = e.clock.Now().UTC().Truncate(time.Millisecond)
		}
		_, end, err := e.putTopicLocked(t, cur.incarnation, true)
		return end, err
	})
	if err != nil {
		return domain.Topic{}, err
	}
	return t, nil
}

// DeleteTopic deletes a topic, its queues and every group's state on it.
// The topic is gone at once; its consume-queue files are removed once the
// deletion record is durable and no kept snapshot lists them.
func (e *Engine) DeleteTopic(ctx context.Context, name string) error {
	err := e.writeDefinition(ctx, "the topic deletion", func() (int64, error) {
		t, ok := e.topics[name]
		if !ok {
			return 0, topicNotFound(name)
		}
		return e.appendDeletedLocked(record.TypeTopicDeleted, name, t.incarnation)
	})
	if err != nil {
		return err
	}
	e.log.InfoContext(ctx, "topic deleted", "topic", name)
	return nil
}

// ListTopics lists every topic sorted by name. Only the definitions are
// taken under the engine's lock (a change puts a new one in e.topics, none
// is modified); they are copied and sorted after it.
func (e *Engine) ListTopics(ctx context.Context) ([]domain.Topic, error) {
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	metas := make([]*topicMeta, 0, len(e.topics))
	for _, t := range e.topics {
		metas = append(metas, t)
	}
	e.mu.Unlock()
	out := make([]domain.Topic, len(metas))
	for i, t := range metas {
		out[i] = t.Topic
	}
	slices.SortFunc(out, func(a, b domain.Topic) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// CreateGroup creates a consumer group; ReasonAlreadyExists when taken.
func (e *Engine) CreateGroup(ctx context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error) {
	if err := g.Validate(); err != nil {
		return domain.ConsumerGroup{}, err
	}
	var created domain.ConsumerGroup
	err := e.writeDefinition(ctx, "the group creation", func() (int64, error) {
		if _, ok := e.groups[g.Name]; ok {
			return 0, domain.Errorf(domain.ReasonAlreadyExists, "consumer group %q already exists", g.Name)
		}
		stamp(&g.CreatedAt, &g.UpdatedAt, e.clock.Now())
		gm, end, err := e.putGroupLocked(g, 0, true)
		if err != nil {
			return 0, err
		}
		created = gm.ConsumerGroup
		return end, nil
	})
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	e.log.InfoContext(ctx, "consumer group created", "consumer_group", g.Name)
	return created, nil
}

// UpdateGroup replaces a group's configuration.
func (e *Engine) UpdateGroup(ctx context.Context, g domain.ConsumerGroup) (domain.ConsumerGroup, error) {
	if err := g.Validate(); err != nil {
		return domain.ConsumerGroup{}, err
	}
	err := e.writeDefinition(ctx, "the group update", func() (int64, error) {
		cur, ok := e.groups[g.Name]
		if !ok {
			return 0, groupNotFound(g.Name)
		}
		g.CreatedAt = cur.CreatedAt
		if g.UpdatedAt.IsZero() {
			g.UpdatedAt = e.clock.Now().UTC().Truncate(time.Millisecond)
		}
		_, end, err := e.putGroupLocked(g, cur.incarnation, true)
		return end, err
	})
	if err != nil {
		return domain.ConsumerGroup{}, err
	}
	return g, nil
}

// DeleteGroup deletes a group and its consumer state.
func (e *Engine) DeleteGroup(ctx context.Context, name string) error {
	err := e.writeDefinition(ctx, "the group deletion", func() (int64, error) {
		g, ok := e.groups[name]
		if !ok {
			return 0, groupNotFound(name)
		}
		return e.appendDeletedLocked(record.TypeGroupDeleted, name, g.incarnation)
	})
	if err != nil {
		return err
	}
	e.log.InfoContext(ctx, "consumer group deleted", "consumer_group", name)
	return nil
}

// ListGroups lists every consumer group sorted by name. Only the
// definitions are taken under the engine's lock (a change puts a new one
// in e.groups, none is modified); they are copied and sorted after it.
func (e *Engine) ListGroups(ctx context.Context) ([]domain.ConsumerGroup, error) {
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	metas := make([]*groupMeta, 0, len(e.groups))
	for _, g := range e.groups {
		metas = append(metas, g)
	}
	e.mu.Unlock()
	out := make([]domain.ConsumerGroup, len(metas))
	for i, g := range metas {
		out[i] = g.ConsumerGroup
	}
	slices.SortFunc(out, func(a, b domain.ConsumerGroup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// TopicQueueStats reports what a consumer group without state on the
// topic's queues (one that has not received from it yet) would see: every
// message of each queue that retention kept not acked, none in flight, the
// stored ones receivable (a first receive skips the removed ones). Sorted
// by queue id.
func (e *Engine) TopicQueueStats(ctx context.Context, topic string) ([]ports.QueueStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkOpenLocked(); err != nil {
		return nil, err
	}
	t, ok := e.topics[topic]
	if !ok {
		return nil, domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist", topic)
	}
	e.promoteLocked()
	out := make([]ports.QueueStats, 0, t.QueueCount)
	for qid := range t.QueueCount {
		var count, visible, minOff int64
		if qi := e.queues[queueKey{topic, qid}]; qi != nil {
			count, visible, minOff = qi.count, qi.visible, e.keptFromLocked(qi)
		}
		out = append(out, ports.QueueStats{Topic: topic, QueueID: qid, MaxOffset: count, AckOffset: minOff, Consumable: max(visible-minOff, 0)})
	}
	return out, nil
}

// GroupStats reports the group's progress on every queue it has state on,
// sorted by topic and queue id. Messages retention removed count as
// consumed (the group's next receive skips them). The counts are taken
// under the engine's lock; each queue's ConsumedUpTo is read after it from
// the index entry below the ack offset (the index keeps a message's store
// time), as GroupAges reads its ages.
func (e *Engine) GroupStats(ctx context.Context, group string) ([]ports.QueueStats, error) {
	out, reads, err := e.groupStatsLocked(group)
	if err != nil {
		return nil, err
	}
	for i, qi := range reads {
		if at := storedAt(qi, out[i].AckOffset-1); at > 0 {
			out[i].ConsumedUpTo = time.UnixMilli(at)
		}
	}
	return out, nil
}

// groupStatsLocked takes the engine's lock and returns the group's stats
// with the index of each row's queue (nil for none).
func (e *Engine) groupStatsLocked(group string) ([]ports.QueueStats, []*queueIndex, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.checkOpenLocked(); err != nil {
		return nil, nil, err
	}
	if _, ok := e.groups[group]; !ok {
		return nil, nil, groupNotFound(group)
	}
	e.promoteLocked()
	e.reviveDueLocked(e.clock.Now())
	states := e.groupConsLocked(group)
	out := make([]ports.QueueStats, 0, len(states))
	reads := make([]*queueIndex, 0, len(states))
	for _, c := range states {
		k := c.key
		var count, visible, minOff int64
		qi := e.queues[queueKey{k.topic, k.qid}]
		if qi != nil {
			count, visible, minOff = qi.count, qi.visible, e.keptFromLocked(qi)
		}
		ackOff := max(c.floor, minOff)
		out = append(out, ports.QueueStats{Topic: k.topic, QueueID: k.qid, MaxOffset: count, AckOffset: ackOff,
			AckedAbove: c.acked.count(ackOff, count), InFlight: c.inFlightCount(),
			Consumable: max(visible-max(c.next, minOff), 0) + int64(len(c.visible))})
		reads = append(reads, qi)
	}
	return out, reads, nil
}

// keptFromLocked is the queue's first offset retention kept, for stats:
// 0 when the search cannot read the queue (the stats then count from its
// start, as they did).
func (e *Engine) keptFromLocked(qi *queueIndex) int64 {
	off, err := e.minOffsetLocked(qi)
	if err != nil {
		return 0
	}
	return off
}
