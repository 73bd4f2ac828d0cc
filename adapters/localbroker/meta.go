package localbroker

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/atomicfile"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// Topics and consumer groups are defined by commit-log records (topic-put,
// group-put and the deletion records), applied live and in replay by the
// same function and checkpointed in snapshots: the log is their source of
// truth. Versions before that kept them in two JSON files under
// <dataDir>/meta/, which are imported once and then renamed with the
// suffix importedSuffix:
//
//	topics.json  every topic, with its incarnation id (legacy, imported)
//	groups.json  every consumer group, with its incarnation id (legacy, imported)
//	boot         the boot counter (high bits of every receipt id), two
//	             checksummed slots overwritten in place (see bootSlotSize)
//	brokerNames  every value local.brokerName had at a start, in order
//	             (JSON, replaced atomically; see loadBrokerNames)
const (
	topicsFile      = "topics.json"
	groupsFile      = "groups.json"
	bootFile        = "boot"
	brokerNamesFile = "brokerNames"
	metaFormat      = 1
	importedSuffix  = ".imported"
)

// topicMeta is a topic's definition: a change puts a new one in e.topics,
// none is modified (ListTopics reads them after the engine's lock) but for
// route, set under the lock.
type topicMeta struct {
	domain.Topic
	incarnation uint64
	// route is the queues Route answers, built on the first call.
	route []ports.RouteQueue
}

// groupMeta is a group's definition: a change puts a new one in e.groups,
// none is modified (ListGroups reads them after the engine's lock).
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

// encodeTopics writes the legacy topics.json (tests build old data
// directories with it).
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

// encodeGroups writes the legacy groups.json (for tests, as encodeTopics).
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

// decodeBoot parses the JSON boot file of older versions (only its first
// JSON value: a slot written over its tail does not matter).
func decodeBoot(b []byte) (uint64, error) {
	var doc bootDoc
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
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

// The boot file holds two slots of bootSlotSize bytes at offsets 0 and
// bootSlotSize: magic "RMQBOOT1", the counter (8 bytes, big endian), the
// CRC-32C of those 16 bytes, zero padding. The counter is the largest of
// the valid slots. A new counter overwrites the other slot in place and is
// fdatasync'ed before use: a torn write damages only the slot being
// written, and overwriting the file's first block needs no free space, so
// a restart works on a full disk. A file of an older version holds JSON
// (decodeBoot), read as slot 0.
const bootSlotSize = 64

var bootMagic = []byte("RMQBOOT1")

// decodeBootFile returns the boot counter in b and the slot holding it.
func decodeBootFile(b []byte) (boot uint64, slot int, err error) {
	found := false
	for i := range 2 {
		p := b[min(i*bootSlotSize, len(b)):min((i+1)*bootSlotSize, len(b))]
		if len(p) < 20 || !bytes.Equal(p[:8], bootMagic) || binary.BigEndian.Uint32(p[16:20]) != crc32.Checksum(p[:16], snapCRC) {
			continue
		}
		if v := binary.BigEndian.Uint64(p[8:16]); !found || v > boot {
			boot, slot, found = v, i, true
		}
	}
	if found {
		return boot, slot, nil
	}
	boot, err = decodeBoot(b)
	return boot, 0, err
}

func encodeBootSlot(boot uint64) []byte {
	b := make([]byte, bootSlotSize)
	copy(b, bootMagic)
	binary.BigEndian.PutUint64(b[8:], boot)
	binary.BigEndian.PutUint32(b[16:], crc32.Checksum(b[:16], snapCRC))
	return b
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

func badMeta(path string, err error) error {
	return domain.Wrap(domain.ReasonInternal, err, fmt.Sprintf("metadata file %s is unreadable or invalid; fix or restore it (it is JSON)", path))
}

// loadBoot loads the boot counter and persists the next one before any
// receipt id of this boot is issued.
func (e *Engine) loadBoot() error {
	var boot uint64
	b, err := e.readMeta(bootFile)
	if err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot read the boot counter "+e.metaPath(bootFile))
	}
	e.bootSlot = 1 // a new file: write slot 0
	if b != nil {
		if boot, e.bootSlot, err = decodeBootFile(b); err != nil {
			return domain.Wrap(domain.ReasonInternal, err, fmt.Sprintf(
				"the boot counter %s is damaged; it only has to be larger than before: stop rmqproxy and write a larger number into it as {\"format\":1,\"boot\":N}, for example 1000000", e.metaPath(bootFile)))
		}
	}
	return e.newBootLocked(boot + 1)
}

type brokerNamesJSON struct {
	Format int      `json:"format"`
	Names  []string `json:"names"`
}

// loadBrokerNames reads the broker names this data directory was started
// under and adds the current one. Local mode has one broker, and a client
// whose route is from before a rename of local.brokerName names the old
// name in its pulls and offset calls until it reads the route again: those
// names are this broker's (checkQueueRefLocked). A name it never had stays
// refused, as cluster mode refuses a broker it does not know. A damaged
// file is replaced (with a warning): only the former names are lost.
func (e *Engine) loadBrokerNames() error {
	p := e.metaPath(brokerNamesFile)
	var f brokerNamesJSON
	b, err := e.readMeta(brokerNamesFile)
	if err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot read "+p)
	}
	if b != nil {
		if err := json.Unmarshal(b, &f); err != nil || f.Format != metaFormat {
			e.log.Warn("the list of former broker names is damaged; starting it anew (pulls and offset calls naming a former local.brokerName are refused until the clients read their routes again)",
				"path", p, "error", err, "format", f.Format)
			f = brokerNamesJSON{}
		}
	}
	e.formerNames = map[string]bool{}
	for _, n := range f.Names {
		if n != e.cfg.BrokerName {
			e.formerNames[n] = true
		}
	}
	if slices.Contains(f.Names, e.cfg.BrokerName) {
		return nil
	}
	f.Format, f.Names = metaFormat, append(f.Names, e.cfg.BrokerName)
	out, err := json.Marshal(f)
	if err == nil {
		err = atomicfile.Write(p, out)
	}
	if err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot write "+p)
	}
	return nil
}

// importLegacyMeta reads topics.json and groups.json of a data directory
// written by a version that kept definitions there, when the snapshot
// recovery starts from predates definitions in the log. It reports whether
// it found either file; Start then records every definition in the log and
// renames the files (see finishImportLocked).
func (e *Engine) importLegacyMeta() (bool, error) {
	found := false
	b, err := e.readMeta(topicsFile)
	if err != nil {
		return false, badMeta(e.metaPath(topicsFile), err)
	}
	if b != nil {
		found = true
		ts, err := decodeTopics(b)
		if err != nil {
			return false, badMeta(e.metaPath(topicsFile), err)
		}
		for _, t := range ts {
			e.topics[t.Name] = &topicMeta{Topic: t.Topic, incarnation: t.incarnation}
		}
	}
	if b, err = e.readMeta(groupsFile); err != nil {
		return false, badMeta(e.metaPath(groupsFile), err)
	}
	if b != nil {
		found = true
		gs, err := decodeGroups(b)
		if err != nil {
			return false, badMeta(e.metaPath(groupsFile), err)
		}
		for _, g := range gs {
			e.groups[g.Name] = &groupMeta{ConsumerGroup: g.ConsumerGroup, incarnation: g.incarnation}
		}
	}
	return found, nil
}

// ignoreLegacyMeta warns about JSON metadata files next to a snapshot that
// holds the definitions already (they are not read: importing them again
// could bring back deleted topics).
func (e *Engine) ignoreLegacyMeta() {
	for _, name := range []string{topicsFile, groupsFile} {
		if _, err := os.Stat(e.metaPath(name)); err == nil {
			e.log.Warn("ignoring a metadata file of an older version: topics and groups are recovered from the commit log and snapshots; delete the file",
				"path", e.metaPath(name))
		}
	}
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
	if err := e.writeBootSlot(1-e.bootSlot, boot); err != nil {
		return domain.Wrap(domain.ReasonInternal, err, "cannot persist the boot counter "+e.metaPath(bootFile))
	}
	e.boot, e.seq, e.bootSlot = boot, 0, 1-e.bootSlot
	return nil
}

// writeBootSlot overwrites one slot of the boot file in place and makes it
// durable.
func (e *Engine) writeBootSlot(slot int, boot uint64) error {
	p := e.metaPath(bootFile)
	_, statErr := os.Stat(p)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(encodeBootSlot(boot), int64(slot*bootSlotSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && statErr != nil {
		err = atomicfile.SyncDir(filepath.Dir(p))
	}
	return err
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

func topicNotFound(name string) error {
	return domain.Errorf(domain.ReasonTopicNotFound, "topic %q does not exist; create it with `rmqproxy topic create %s`", name, name)
}

func groupNotFound(name string) error {
	return domain.Errorf(domain.ReasonConsumerGroupNotFound, "consumer group %q does not exist; create it with `rmqproxy group create %s`", name, name)
}

// allowAutoCreateLocked applies the auto-creation bounds: at most
// autoCreateMaxTopics topics (autoCreateMaxGroups groups) may exist for
// auto-creation to add one, and at most autoCreateRate creations per second
// happen (a token bucket holding one second of creations).
func (e *Engine) allowAutoCreateLocked(kind, name string, have, limit int, setting string, notFound domain.Reason) error {
	if have >= limit {
		return domain.Errorf(notFound, "%s %q does not exist and is not auto-created: %d %ss exist, the limit of local.%s; create it with `rmqproxy %s create %s`, or raise local.%s",
			kind, name, have, kind, setting, kind, name, setting)
	}
	now := e.clock.Now()
	burst := max(e.cfg.AutoCreateRate, 1)
	if e.autoLast.IsZero() {
		e.autoTokens = burst
	} else if dt := now.Sub(e.autoLast).Seconds(); dt > 0 {
		e.autoTokens = min(burst, e.autoTokens+dt*e.cfg.AutoCreateRate)
	}
	e.autoLast = now
	if e.autoTokens < 1 {
		return domain.Errorf(domain.ReasonTooManyRequests, "%s %q does not exist and auto-creation is limited to %g per second (local.autoCreateRate); retry, or create it with `rmqproxy %s create %s`",
			kind, name, e.cfg.AutoCreateRate, kind, name)
	}
	e.autoTokens--
	return nil
}

// topicLocked returns the topic, creating it when auto-creation is enabled
// and create is set. An auto-created topic is one topic-put record, not
// waited for: anything that depends on it (a send) is stored after it.
func (e *Engine) topicLocked(ctx context.Context, name string, create bool) (*topicMeta, error) {
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
	if err := e.allowAutoCreateLocked("topic", name, len(e.topics), e.cfg.AutoCreateMaxTopics, "autoCreateMaxTopics", domain.ReasonTopicNotFound); err != nil {
		return nil, err
	}
	tm, _, err := e.putTopicLocked(t, 0, false)
	if err == nil {
		e.log.InfoContext(ctx, "topic auto-created", "topic", name, "type", t.Type.String(), "queues", t.QueueCount)
	}
	return tm, err
}

// putTopicLocked appends a topic-put record for t and applies it;
// incarnation 0 creates a new incarnation. t must be valid and the change
// allowed: applying the record cannot fail. It returns the record's end for
// callers that wait for durability.
func (e *Engine) putTopicLocked(t domain.Topic, incarnation uint64, durable bool) (*topicMeta, int64, error) {
	if incarnation == 0 {
		inc, err := e.nextIDLocked()
		if err != nil {
			return nil, 0, err
		}
		incarnation = uint64(inc)
	}
	rec := record.TopicPut{Topic: t, Incarnation: incarnation}
	_, end, err := e.appendApplyLocked(record.TypeTopicPut, func(dst []byte) []byte { return record.AppendTopicPut(dst, &rec) }, durable)
	if err != nil {
		return nil, 0, err
	}
	return e.topics[t.Name], end, nil
}

// putGroupLocked is putTopicLocked for a consumer group.
func (e *Engine) putGroupLocked(g domain.ConsumerGroup, incarnation uint64, durable bool) (*groupMeta, int64, error) {
	if incarnation == 0 {
		inc, err := e.nextIDLocked()
		if err != nil {
			return nil, 0, err
		}
		incarnation = uint64(inc)
	}
	rec := record.GroupPut{Group: g, Incarnation: incarnation}
	_, end, err := e.appendApplyLocked(record.TypeGroupPut, func(dst []byte) []byte { return record.AppendGroupPut(dst, &rec) }, durable)
	if err != nil {
		return nil, 0, err
	}
	return e.groups[g.Name], end, nil
}

// applyTopicPutLocked and applyGroupPutLocked apply definition records.
func (e *Engine) applyTopicPutLocked(p *record.TopicPut) {
	e.topics[p.Topic.Name] = &topicMeta{Topic: p.Topic, incarnation: p.Incarnation}
}

func (e *Engine) applyGroupPutLocked(p *record.GroupPut) {
	e.groups[p.Group.Name] = &groupMeta{ConsumerGroup: p.Group, incarnation: p.Incarnation}
}

// groupLocked returns the group, creating it when auto-creation is enabled
// and create is set.
func (e *Engine) groupLocked(ctx context.Context, name string, create bool) (*groupMeta, error) {
	if g, ok := e.groups[name]; ok {
		return g, nil
	}
	if err := domain.ValidateGroupName(name); err != nil {
		return nil, err
	}
	if !create || !e.cfg.AutoCreateGroups {
		return nil, groupNotFound(name)
	}
	if err := e.allowAutoCreateLocked("group", name, len(e.groups), e.cfg.AutoCreateMaxGroups, "autoCreateMaxGroups", domain.ReasonConsumerGroupNotFound); err != nil {
		return nil, err
	}
	g := domain.NewConsumerGroup(name)
	now := e.clock.Now().UTC().Truncate(time.Millisecond)
	g.CreatedAt, g.UpdatedAt = now, now
	gm, _, err := e.putGroupLocked(g, 0, false)
	if err == nil {
		e.log.InfoContext(ctx, "consumer group auto-created", "consumer_group", name)
	}
	return gm, err
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
	tm, _, err := e.putTopicLocked(t, 0, false)
	return tm, err
}
