package domain

import (
	"strings"
	"unicode"
	"unicode/utf16"
)

// Name limits, as the Apache proxy and clients enforce them.
const (
	MaxTopicNameLength = 127
	MaxGroupNameLength = 120
)

// Prefixes of the topics the broker derives from consumer groups.
const (
	RetryTopicPrefix      = "%RETRY%"
	DeadLetterTopicPrefix = "%DLQ%"
)

var systemTopics = map[string]struct{}{
	"TBW102": {}, "SCHEDULE_TOPIC_XXXX": {}, "BenchmarkTest": {},
	"RMQ_SYS_TRANS_HALF_TOPIC": {}, "RMQ_SYS_TRACE_TOPIC": {},
	"RMQ_SYS_TRANS_OP_HALF_TOPIC": {}, "TRANS_CHECK_MAX_TIME_TOPIC": {},
	"SELF_TEST_TOPIC": {}, "OFFSET_MOVED_EVENT": {}, "CHECKPOINT_TOPIC": {},
	// RocketMQ 5.5.0's transaction topics of its RocksDB transaction store
	// (every 5.5.0 broker creates them).
	"RMQ_SYS_ROCKSDB_TRANS_HALF_TOPIC": {}, "RMQ_SYS_ROCKSDB_TRANS_OP_HALF_TOPIC": {},
}

// IsSystemTopic reports whether name is reserved for the broker itself.
func IsSystemTopic(name string) bool {
	if _, ok := systemTopics[name]; ok {
		return true
	}
	return strings.HasPrefix(name, "rmq_sys_")
}

// validNameChars reports whether every byte of s is in [%|a-zA-Z0-9_-].
func validNameChars(s string) (bad rune, ok bool) {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
			r == '%', r == '|', r == '_', r == '-':
		default:
			return r, false
		}
	}
	return 0, true
}

// IsBlank reports whether s is empty or only white space, as RocketMQ's
// StringUtils.isBlank decides: by Java's Character.isWhitespace, for
// which the no-break spaces are text and U+0085 a control character (Go's
// unicode.IsSpace counts all four as space, so a tag of U+00A0 was
// refused where upstream stores it).
func IsBlank(s string) bool {
	for _, r := range s {
		if !isJavaWhitespace(r) {
			return false
		}
	}
	return true
}

// isJavaWhitespace is Java's Character.isWhitespace: a Unicode space,
// line or paragraph separator other than the no-break spaces, or one of
// U+0009–U+000D and U+001C–U+001F.
func isJavaWhitespace(r rune) bool {
	switch {
	case r == '\u00a0' || r == '\u2007' || r == '\u202f':
		return false
	case r >= '\t' && r <= '\r', r >= 0x1c && r <= 0x1f:
		return true
	}
	return unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp)
}

// nameCharsPattern is how the Apache proxy's messages describe the
// characters allowed in topic and group names.
const nameCharsPattern = "^[%|a-zA-Z0-9_-]+$"

// javaLength is the length of s as Java's String.length counts it (UTF-16
// code units), which is how upstream measures names.
func javaLength(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// ValidateTopicName checks a topic name as the Apache proxy does, with its
// messages (the client library's Validators.checkTopic, then the proxy's
// system-topic check).
func ValidateTopicName(name string) error {
	if IsBlank(name) {
		return Errorf(ReasonIllegalTopic, "The specified topic is blank")
	}
	if javaLength(name) > MaxTopicNameLength {
		return Errorf(ReasonIllegalTopic, "The specified topic is longer than topic max length %d.", MaxTopicNameLength)
	}
	if _, ok := validNameChars(name); !ok {
		return Errorf(ReasonIllegalTopic, "The specified topic[%s] contains illegal characters, allowing only %s", name, nameCharsPattern)
	}
	if IsSystemTopic(name) {
		return Errorf(ReasonIllegalTopic, "cannot access system topic")
	}
	return nil
}

// ValidateNewTopicName checks the name of a topic an operator creates or
// changes (the admin API, in both modes): a valid name, neither one of
// RocketMQ's own topics nor a consumer group's retry topic, which the
// brokers keep for the group (the local engine has none). Its message
// names the reserved name or prefix. Dead-letter topics (%DLQ%group) are
// allowed, as upstream's brokers allow them: operators create one ahead
// of its first message to pick its queues or make it readable. Stored
// topics are not checked with it, so one created before the check still
// loads.
func ValidateNewTopicName(name string) error {
	if _, ok := systemTopics[name]; ok {
		return Errorf(ReasonIllegalTopic, "topic %q is reserved: RocketMQ's brokers use %s themselves", name, name)
	}
	if strings.HasPrefix(name, "rmq_sys_") {
		return Errorf(ReasonIllegalTopic, "topic %q is reserved: the prefix %q is RocketMQ's, for the brokers' own topics", truncate(name), "rmq_sys_")
	}
	if IsRetryTopic(name) {
		return Errorf(ReasonIllegalTopic, "topic %q is reserved: the prefix %q names a consumer group's retry topic, which the brokers keep for the group (it holds the messages waiting to be delivered again)", truncate(name), RetryTopicPrefix)
	}
	if group, ok := strings.CutPrefix(name, DeadLetterTopicPrefix); ok {
		// A dead-letter topic is the prefix and a group's name: one of no
		// group, or of a group no one can create, never receives a message.
		if group == "" {
			return Errorf(ReasonIllegalTopic, "topic %q is reserved: the prefix %q names a consumer group's dead-letter topic (%%DLQ%%<group>), and this one names no group", name, DeadLetterTopicPrefix)
		}
		if err := ValidateNewGroupName(group); err != nil {
			return Errorf(ReasonIllegalTopic, "topic %q is reserved: the prefix %q names a consumer group's dead-letter topic, and no group can be named %q: %s", truncate(name), DeadLetterTopicPrefix, truncate(group), MessageOf(err))
		}
	}
	return ValidateTopicName(name)
}

// systemGroups are RocketMQ's own consumer groups (MixAll), which its
// brokers and tools use.
var systemGroups = map[string]struct{}{
	"DEFAULT_CONSUMER": {}, "TOOLS_CONSUMER": {}, "SCHEDULE_CONSUMER": {},
	"FILTERSRV_CONSUMER": {}, "__MONITOR_CONSUMER": {}, "SELF_TEST_C_GROUP": {},
	"CID_ONS-HTTP-PROXY": {}, "CID_ONSAPI_PERMISSION": {}, "CID_ONSAPI_OWNER": {},
	"CID_ONSAPI_PULL": {},
}

// IsSystemGroup reports whether name is one of RocketMQ's own consumer
// groups (the listed names and the CID_RMQ_SYS_ prefix).
func IsSystemGroup(name string) bool {
	if _, ok := systemGroups[name]; ok {
		return true
	}
	return strings.HasPrefix(name, "CID_RMQ_SYS_")
}

// ValidateNewGroupName checks the name of a consumer group an operator
// creates (the admin API, in both modes): a valid name, neither one of
// RocketMQ's own groups nor one starting with the retry or dead-letter
// prefix, which name the topics the brokers derive from a group (a group
// "%RETRY%g" would have the retry topic "%RETRY%%RETRY%g"). Its message
// names the reserved name or prefix. Stored groups are not checked with
// it, so one created before the check still loads.
func ValidateNewGroupName(name string) error {
	if _, ok := systemGroups[name]; ok {
		return Errorf(ReasonIllegalConsumerGroup, "consumer group %q is reserved: it is RocketMQ's own, which its brokers and tools use", name)
	}
	for _, p := range []string{RetryTopicPrefix, DeadLetterTopicPrefix} {
		if strings.HasPrefix(name, p) {
			return Errorf(ReasonIllegalConsumerGroup, "consumer group %q is reserved: the prefix %q names the topics the brokers derive from a group (%sgroup), not a group", truncate(name), p, p)
		}
	}
	return ValidateGroupName(name)
}

// ValidateGroupName checks a consumer group name as the Apache proxy does,
// with its messages.
func ValidateGroupName(name string) error {
	if IsBlank(name) {
		return Errorf(ReasonIllegalConsumerGroup, "the specified group is blank")
	}
	if javaLength(name) > MaxGroupNameLength {
		return Errorf(ReasonIllegalConsumerGroup, "the specified group[%s] is longer than group max length: %d.", truncate(name), MaxGroupNameLength)
	}
	if _, ok := validNameChars(name); !ok {
		return Errorf(ReasonIllegalConsumerGroup, "the specified group[%s] contains illegal characters, allowing only %s", name, nameCharsPattern)
	}
	if strings.HasPrefix(name, "CID_RMQ_SYS_") {
		return Errorf(ReasonIllegalConsumerGroup, "cannot use system consumer group")
	}
	return nil
}

// ValidateTag checks a message tag as the Apache proxy does: empty is
// allowed (no tag); otherwise it must not be blank, contain '|' or contain
// control characters.
func ValidateTag(tag string) error {
	if tag == "" {
		return nil
	}
	if IsBlank(tag) {
		return Errorf(ReasonIllegalMessageTag, "tag cannot be the char sequence of whitespace")
	}
	if strings.ContainsRune(tag, '|') {
		return Errorf(ReasonIllegalMessageTag, "tag cannot contain '|'")
	}
	if hasControl(tag) {
		return Errorf(ReasonIllegalMessageTag, "tag cannot contain control character")
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// RetryTopic names the retry topic of a consumer group (v1 form).
func RetryTopic(group string) string { return RetryTopicPrefix + group }

// DeadLetterTopic names the dead-letter topic of a consumer group.
func DeadLetterTopic(group string) string { return DeadLetterTopicPrefix + group }

// IsDeadLetterTopic reports whether topic is a %DLQ% topic.
func IsDeadLetterTopic(topic string) bool { return strings.HasPrefix(topic, DeadLetterTopicPrefix) }

// IsRetryTopic reports whether topic is a %RETRY% topic.
func IsRetryTopic(topic string) bool { return strings.HasPrefix(topic, RetryTopicPrefix) }

// truncate shortens user input echoed in messages so a huge name cannot
// blow up a log line or a response.
func truncate(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// WrapNamespace qualifies a topic or group name with a namespace the way
// RocketMQ does ("ns%name", "%RETRY%ns%group", "%DLQ%ns%group"). An empty
// namespace, or a name that already carries it, is returned unchanged.
func WrapNamespace(namespace, name string) string {
	if namespace == "" || name == "" || IsSystemTopic(name) {
		return name
	}
	// One retry or dead-letter prefix is kept in front, as upstream's
	// NamespaceUtil does and as SplitNamespace reads it back: wrapping
	// below a second prefix ("%RETRY%%DLQ%ns%x") put the name outside
	// every namespace, where a client without one reached it too.
	prefix := ""
	for _, p := range []string{RetryTopicPrefix, DeadLetterTopicPrefix} {
		if strings.HasPrefix(name, p) {
			prefix, name = p, name[len(p):]
			break
		}
	}
	if strings.HasPrefix(name, namespace+"%") {
		return prefix + name
	}
	return prefix + namespace + "%" + name
}

// SplitNamespace undoes WrapNamespace for a plain (non retry/DLQ) name,
// returning the namespace ("" if none) and the bare name. Retry and DLQ
// prefixes are kept on the bare name.
func SplitNamespace(name string) (namespace, bare string) {
	prefix := ""
	for _, p := range []string{RetryTopicPrefix, DeadLetterTopicPrefix} {
		if strings.HasPrefix(name, p) {
			prefix, name = p, name[len(p):]
			break
		}
	}
	if i := strings.IndexByte(name, '%'); i > 0 {
		return name[:i], prefix + name[i+1:]
	}
	return "", prefix + name
}
