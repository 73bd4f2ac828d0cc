package observe

import "sync"

// Other is the label value that stands for every topic or group without a
// label of its own.
const Other = "_other"

// Labels bounds the label values of topics and consumer groups: with an
// allow-list only the listed names get their own value; without one the
// first max names seen do. Every other name is [Other]. It also bounds the
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
