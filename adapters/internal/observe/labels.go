package observe

import "sync"

// Other is the label value that stands for every topic or group without a
// label of its own.
const Other = "_other"

// Labels bounds the label values of topics and consumer groups: with an
// allow-list only the listed names get their own value; without one the
// first max names seen do. Every other name is [Other]. Safe for concurrent
// use; a name seen before costs one map lookup under a read lock.
type Labels struct {
	topics, groups *nameSet
}

// NewLabels returns the label policy: topics and groups are the allow-lists
// (empty: the first maxTopics / maxGroups names seen).
func NewLabels(topics []string, maxTopics int, groups []string, maxGroups int) *Labels {
	return &Labels{topics: newNameSet(topics, maxTopics), groups: newNameSet(groups, maxGroups)}
}

// Topic returns the label value of a topic.
func (l *Labels) Topic(name string) string { return l.topics.label(name) }

// Group returns the label value of a consumer group.
func (l *Labels) Group(name string) string { return l.groups.label(name) }

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
