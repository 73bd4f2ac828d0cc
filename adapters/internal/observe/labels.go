package observe

import "sync"

// Other is the label value that stands for every topic or group without a
// label of its own.
const Other = "_other"

// Labels bounds the label values of topics and consumer groups: with an
// allow-list only the listed names get their own value; without one the
// first max names seen do, each taking a slot until it is freed (a topic or
// group deleted through this proxy: see [Metrics.ForgetTopic]), when the
// next new name can take it. Every other name is [Other]. It also bounds the
// client languages and versions, which clients declare in free-form
// metadata (x-mq-language, x-mq-client-version): the first
// [MaxClientLanguages] and [MaxClientVersions] values seen, each at most
// [MaxClientLabelLength] bytes long, get their own value. Safe for
// concurrent use; a name seen before costs one map lookup under a read
// lock.
type Labels struct {
	topics, groups      *nameSet
	languages, versions *nameSet
}

// Bounds of the client language and version label values. The official
// clients send a dozen languages and a handful of versions each; anything
// beyond (or longer) is counted under [Other], so that clients cannot make
// a time series each by declaring made-up versions.
const (
	MaxClientLanguages   = 32
	MaxClientVersions    = 128
	MaxClientLabelLength = 64
)

// NewLabels returns the label policy: topics and groups are the allow-lists
// (empty: the first maxTopics / maxGroups names seen).
func NewLabels(topics []string, maxTopics int, groups []string, maxGroups int) *Labels {
	return &Labels{topics: newNameSet(topics, maxTopics), groups: newNameSet(groups, maxGroups),
		languages: newNameSet(nil, MaxClientLanguages), versions: newNameSet(nil, MaxClientVersions)}
}

// Topic returns the label value of a topic.
func (l *Labels) Topic(name string) string { return l.topics.label(name) }

// Group returns the label value of a consumer group.
func (l *Labels) Group(name string) string { return l.groups.label(name) }

// LiveTopic reports whether label, a value [Labels.Topic] returned, is
// still in use: [Other], "", or a name that holds its slot (not one freed
// since).
func (l *Labels) LiveTopic(label string) bool { return l.topics.live(label) }

// LiveGroup is [Labels.LiveTopic] for consumer groups.
func (l *Labels) LiveGroup(label string) bool { return l.groups.live(label) }

// FreeTopic gives the slot of a deleted topic back (see [nameSet.free]); it
// reports whether the topic had a label value of its own.
func (l *Labels) FreeTopic(name string) bool { return l.topics.free(name) }

// FreeGroup gives the slot of a deleted consumer group back.
func (l *Labels) FreeGroup(name string) bool { return l.groups.free(name) }

// Language returns the label value of a client language (x-mq-language).
func (l *Labels) Language(name string) string { return clientLabel(l.languages, name) }

// Version returns the label value of a client version
// (x-mq-client-version).
func (l *Labels) Version(name string) string { return clientLabel(l.versions, name) }

func clientLabel(s *nameSet, name string) string {
	if len(name) > MaxClientLabelLength {
		return Other
	}
	return s.label(name)
}

type nameSet struct {
	fixed bool // allow-list: seen holds exactly the allowed names
	max   int
	mu    sync.RWMutex
	seen  map[string]struct{}
}

func newNameSet(allow []string, max int) *nameSet {
	s := &nameSet{max: max, seen: map[string]struct{}{}}
	if len(allow) > 0 {
		s.fixed = true
		for _, n := range allow {
			s.seen[n] = struct{}{}
		}
	}
	return s
}

// live reports whether label is "", [Other] or a name holding its slot.
func (s *nameSet) live(label string) bool {
	if label == "" || label == Other {
		return true
	}
	s.mu.RLock()
	_, ok := s.seen[label]
	s.mu.RUnlock()
	return ok
}

// free gives name's slot back, so that the next new name can take it; it
// reports whether name had a value of its own. A name of the allow-list
// keeps its value (and so its slot): free only reports it. [Other] is never
// freed (a topic of that name shares the value of every other).
func (s *nameSet) free(name string) bool {
	if name == "" || name == Other {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[name]
	if ok && !s.fixed {
		delete(s.seen, name)
	}
	return ok
}

func (s *nameSet) label(name string) string {
	if name == "" {
		return ""
	}
	s.mu.RLock()
	_, ok := s.seen[name]
	full := s.fixed || len(s.seen) >= s.max
	s.mu.RUnlock()
	switch {
	case ok:
		return name
	case full:
		return Other
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[name]; ok {
		return name
	}
	if len(s.seen) >= s.max {
		return Other
	}
	s.seen[name] = struct{}{}
	return name
}
