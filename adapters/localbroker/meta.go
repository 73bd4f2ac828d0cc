package localbroker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/atomicfile"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Metadata files under <dataDir>/meta/, each replaced atomically:
//
//	topics.json  every topic, with its incarnation id
//	groups.json  every consumer group, with its incarnation id
//	boot         the boot counter (high bits of every receipt id)
const (
	topicsFile = "topics.json"
	groupsFile = "groups.json"
	bootFile   = "boot"
	metaFormat = 1
)

type topicMeta struct {
	domain.Topic
	incarnation uint64
}

type groupMeta struct {
	domain.ConsumerGroup
	incarnation uint64
}

type topicJSON struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	QueueCount  int32     `json:"queueCount"`
	Permission  uint8     `json:"permission"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	Incarnation uint64    `json:"incarnation"`
}

type retryJSON struct {
	Initial    time.Duration   `json:"initial,omitempty"`
	Max        time.Duration   `json:"max,omitempty"`
	Multiplier float64         `json:"multiplier,omitempty"`
	Delays     []time.Duration `json:"delays,omitempty"`
}

type groupJSON struct {
	Name                string    `json:"name"`
	MaxDeliveryAttempts int32     `json:"maxDeliveryAttempts"`
	Retry               retryJSON `json:"retry"`
	Orderly             bool      `json:"orderly,omitempty"`
	Description         string    `json:"description,omitempty"`
	CreatedAt           time.Time `json:"createdAt"`
	UpdatedAt           time.Time `json:"updatedAt"`
	Incarnation         uint64    `json:"incarnation"`
}

type topicsDoc struct {
	Format int         `json:"format"`
	Topics []topicJSON `json:"topics"`
}

type groupsDoc struct {
	Format int         `json:"format"`
	Groups []groupJSON `json:"groups"`
}

type bootDoc struct {
	Format int    `json:"format"`
	Boot   uint64 `json:"boot"`
}

func encodeTopics(ts []topicMeta) []byte {
	doc := topicsDoc{Format: metaFormat, Topics: []topicJSON{}}
	for _, t := range ts {
		doc.Topics = append(doc.Topics, topicJSON{Name: t.Name, Type: t.Type.String(), QueueCount: t.QueueCount,
			Permission: uint8(t.Permission), Description: t.Description, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
			Incarnation: t.incarnation})
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}

// decodeTopics parses topics.json; it never panics and validates every topic.
func decodeTopics(b []byte) ([]topicMeta, error) {
	var doc topicsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if doc.Format != metaFormat {
		return nil, fmt.Errorf("unknown format %d", doc.Format)
	}
	out := make([]topicMeta, 0, len(doc.Topics))
	seen := map[string]bool{}
	for _, j := range doc.Topics {
		typ, err := domain.ParseTopicMessageType(j.Type)
		if err != nil {
			return nil, fmt.Errorf("topic %q: %w", j.Name, err)
		}
		t := domain.Topic{Name: j.Name, Type: typ, QueueCount: j.QueueCount, Permission: domain.Permission(j.Permission),
			Description: j.Description, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
		if err := validateStoredTopic(t); err != nil {
			return nil, err
		}
		if j.Permission&^uint8(domain.PermReadWrite) != 0 {
			return nil, fmt.Errorf("topic %q: bad permission %d", j.Name, j.Permission)
		}
		if seen[j.Name] {
			return nil, fmt.Errorf("topic %q listed twice", j.Name)
		}
		seen[j.Name] = true
		out = append(out, topicMeta{Topic: t, incarnation: j.Incarnation})
	}
	return out, nil
}

// validateStoredTopic is domain.Topic.Validate, except that the broker's own
// dead-letter topics are accepted.
func validateStoredTopic(t domain.Topic) error {
	return t.Validate()
}

func encodeGroups(gs []groupMeta) []byte {
	doc := groupsDoc{Format: metaFormat, Groups: []groupJSON{}}
	for _, g := range gs {
		p := g.RetryPolicy
		doc.Groups = append(doc.Groups, groupJSON{Name: g.Name, MaxDeliveryAttempts: g.MaxDeliveryAttempts,
			Retry:   retryJSON{Initial: p.Initial, Max: p.Max, Multiplier: p.Multiplier, Delays: p.Delays},
			Orderly: g.Orderly, Description: g.Description, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt,
			Incarnation: g.incarnation})
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}

// decodeGroups parses groups.json; it never panics and validates every group.
func decodeGroups(b []byte) ([]groupMeta, error) {
	var doc groupsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if doc.Format != metaFormat {
		return nil, fmt.Errorf("unknown format %d", doc.Format)
	}
	out := make([]groupMeta, 0, len(doc.Groups))
	seen := map[string]bool{}
	for _, j := range doc.Groups {
		g := domain.ConsumerGroup{Name: j.Name, MaxDeliveryAttempts: j.MaxDeliveryAttempts,
			RetryPolicy: domain.RetryPolicy{Initial: j.Retry.Initial, Max: j.Retry.Max, Multiplier: j.Retry.Multiplier, Delays: j.Retry.Delays},
			Orderly:     j.Orderly, Description: j.Description, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
		if err := g.Validate(); err != nil {
			return nil, err
		}
		if seen[j.Name] {
			return nil, fmt.Errorf("group %q listed twice", j.Name)
		}
		seen[j.Name] = true
		out = append(out, groupMeta{ConsumerGroup: g, incarnation: j.Incarnation})
	}
	return out, nil
}

func decodeBoot(b []byte) (uint64, error) {
	var doc bootDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, fmt.Errorf("not valid JSON: %w", err)
	}
	if doc.Format != metaFormat {
		return 0, fmt.Errorf("unknown format %d", doc.Format)
	}
	return doc.Boot, nil
}

func encodeBoot(n uint64) []byte {
	b, _ := json.Marshal(bootDoc{Format: metaFormat, Boot: n})
	return append(b, '\n')
}

func (e *Engine) metaPath(name string) string { return filepath.Join(e.cfg.DataDir, "meta", name) }

// readMeta reads a meta file; a missing file yields nil, nil.
func (e *Engine) readMeta(name string) ([]byte, error) {
	b, err := os.ReadFile(e.metaPath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// loadMeta loads topics, groups and the boot counter, and persists the next
// boot counter before any receipt id of this boot is issued.
func (e *Engine) loadMeta() error {
	bad := func(name string, err error) error {
		return domain.Wrap(domain.ReasonInternal, err, fmt.Sprintf("metadata file %s is unreadable or invalid; fix or restore it (it is JSON)", e.metaPath(name)))
	}
	b, err := e.readMeta(topicsFile)
	if err != nil {
		return bad(topicsFile, err)
	}
	if b != nil {
		ts, err := decodeTopics(b)
		if err != nil {
			return bad(topicsFile, err)
		}
		for _, t := range ts {
			e.topics[t.Name] = &topicMeta{Topic: t.Topic, incarnation: t.incarnation}
		}
	}
	if b, err = e.readMeta(groupsFile); err != nil {
		return bad(groupsFile, err)
	}
	if b != nil {
		gs, err := decodeGroups(b)
		if err != nil {
			return bad(groupsFile, err)
		}
		for _, g := range gs {
			e.groups[g.Name] = &groupMeta{ConsumerGroup: g.ConsumerGroup, incarnation: g.incarnation}
		}
	}
	var boot uint64
	if b, err = e.readMeta(bootFile); err != nil {
		return bad(bootFile, err)
	}
	if b != nil {
		if boot, err = decodeBoot(b); err != nil {
			return bad(bootFile, err)
		}
	}
	return e.newBootLocked(boot + 1)
}

// Receipt ids (and topic/group incarnations) are boot<<idSeqBits | seq. The
// boot counter is persisted before the first id of a boot is handed out, so
// ids never repeat across restarts, even after kill -9.
const (
	idSeqBits = 40
	maxBoot   = 1<<(63-idSeqBits) - 1
)

func (e *Engine) newBootLocked(boot uint64) error {
	if boot > maxBoot {
		return domain.Errorf(domain.ReasonInternal, "boot counter exhausted (%d); receipt ids cannot be kept unique", boot)
	}
	if err := atomicfile.Write(e.metaPath(bootFile), encodeBoot(boot)); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot persist the boot counter")
	}
	e.boot, e.seq = boot, 0
	return nil
}

// nextIDLocked returns a new receipt id, unique forever.
func (e *Engine) nextIDLocked() (int64, error) {
	if e.seq+1 >= 1<<idSeqBits {
		if err := e.newBootLocked(e.boot + 1); err != nil {
			return 0, err
		}
	}
	e.seq++
	return int64(e.boot<<idSeqBits | e.seq), nil
}

func (e *Engine) saveTopicsLocked() error {
	ts := make([]topicMeta, 0, len(e.topics))
	for _, t := range e.topics {
		ts = append(ts, *t)
	}
	slices.SortFunc(ts, func(a, b topicMeta) int { return strings.Compare(a.Name, b.Name) })
	if err := atomicfile.Write(e.metaPath(topicsFile), encodeTopics(ts)); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot persist topic metadata")
	}
	return nil
}

func (e *Engine) saveGroupsLocked() error {
	gs := make([]groupMeta, 0, len(e.groups))
	for _, g := range e.groups {
		gs = append(gs, *g)
	}
	slices.SortFunc(gs, func(a, b groupMeta) int { return strings.Compare(a.Name, b.Name) })
	if err := atomicfile.Write(e.metaPath(groupsFile), encodeGroups(gs)); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot persist consumer group metadata")
	}
	return nil
}

func topicNotFound(name string) error {
	return domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist; create it with `rmqproxy topic create %s --type NORMAL`", name, name)
}

func groupNotFound(name string) error {
	return domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist; create it with `rmqproxy group create %s`", name, name)
}

// topicLocked returns the topic, creating it when auto-creation is enabled
// and create is set.
func (e *Engine) topicLocked(name string, create bool) (*topicMeta, error) {
	if t, ok := e.topics[name]; ok {
		return t, nil
	}
	if !create || !e.cfg.AutoCreateTopics {
		if err := domain.ValidateTopicName(name); err != nil {
			return nil, err
		}
		return nil, topicNotFound(name)
	}
	typ, _ := domain.ParseTopicMessageType(e.cfg.AutoCreateTopicType)
	now := e.clock.Now().UTC().Truncate(time.Millisecond)
	t := domain.Topic{Name: name, Type: typ, QueueCount: e.cfg.DefaultQueueCount, Permission: domain.PermReadWrite, CreatedAt: now, UpdatedAt: now}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	tm, err := e.addTopicLocked(t)
	if err == nil {
		e.log.Info("topic auto-created", "topic", name, "type", t.Type.String(), "queues", t.QueueCount)
	}
	return tm, err
}

func (e *Engine) addTopicLocked(t domain.Topic) (*topicMeta, error) {
	inc, err := e.nextIDLocked()
	if err != nil {
		return nil, err
	}
	tm := &topicMeta{Topic: t, incarnation: uint64(inc)}
	e.topics[t.Name] = tm
	if err := e.saveTopicsLocked(); err != nil {
		delete(e.topics, t.Name)
		return nil, err
	}
	return tm, nil
}

// groupLocked returns the group, creating it when auto-creation is enabled
// and create is set.
func (e *Engine) groupLocked(name string, create bool) (*groupMeta, error) {
	if g, ok := e.groups[name]; ok {
		return g, nil
	}
	if err := domain.ValidateGroupName(name); err != nil {
		return nil, err
	}
	if !create || !e.cfg.AutoCreateGroups {
		return nil, groupNotFound(name)
	}
	g := domain.NewConsumerGroup(name)
	now := e.clock.Now().UTC().Truncate(time.Millisecond)
	g.CreatedAt, g.UpdatedAt = now, now
	gm, err := e.addGroupLocked(g)
	if err == nil {
		e.log.Info("consumer group auto-created", "consumer_group", name)
	}
	return gm, err
}

func (e *Engine) addGroupLocked(g domain.ConsumerGroup) (*groupMeta, error) {
	inc, err := e.nextIDLocked()
	if err != nil {
		return nil, err
	}
	gm := &groupMeta{ConsumerGroup: g, incarnation: uint64(inc)}
	e.groups[g.Name] = gm
	if err := e.saveGroupsLocked(); err != nil {
		delete(e.groups, g.Name)
		return nil, err
	}
	return gm, nil
}

// dlqTopicLocked returns the dead-letter topic of group, creating it (one
// read-write NORMAL queue) whatever the auto-create settings.
func (e *Engine) dlqTopicLocked(group string) (*topicMeta, error) {
	name := domain.DeadLetterTopic(group)
	if t, ok := e.topics[name]; ok {
		return t, nil
	}
	now := e.clock.Now().UTC().Truncate(time.Millisecond)
	t := domain.Topic{Name: name, Type: domain.MessageTypeNormal, QueueCount: 1, Permission: domain.PermReadWrite,
		Description: "dead-letter queue of consumer group " + group, CreatedAt: now, UpdatedAt: now}
	return e.addTopicLocked(t)
}
