package domain

import (
	"strings"
	"time"
)

// Limits are the message limits a proxy enforces on SendMessage. The zero
// value disables every optional check; [DefaultLimits] gives the Apache
// proxy's defaults.
type Limits struct {
	// MaxBodySize is the largest accepted body in bytes (as sent, so
	// compressed if the producer compressed it); 0 disables the check.
	MaxBodySize int64
	// RejectEmptyBody rejects messages without a body.
	RejectEmptyBody bool
	// MaxUserPropertyCount bounds the number of user properties.
	MaxUserPropertyCount int
	// MaxPropertiesSize bounds the UTF-8 bytes of all user property keys and
	// values, the tag and all keys together; 0 disables the check.
	MaxPropertiesSize int
	// MaxMessageGroupSize is the exclusive upper bound of a message group's
	// length in bytes (a group of exactly this size is rejected, as upstream).
	MaxMessageGroupSize int
	// MaxDelay is how far in the future a delivery time may lie; 0 disables.
	MaxDelay time.Duration
	// MaxTransactionRecovery bounds a transaction's requested check delay.
	MaxTransactionRecovery time.Duration
}

// DefaultLimits are the Apache proxy's defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxBodySize:            4 << 20,
		RejectEmptyBody:        true,
		MaxUserPropertyCount:   128,
		MaxPropertiesSize:      16 << 10,
		MaxMessageGroupSize:    64,
		MaxDelay:               24 * time.Hour,
		MaxTransactionRecovery: time.Hour,
	}
}

// ValidateMessage applies the per-message send rules in the Apache proxy's
// order, with its messages, and returns the first failure. now is the
// proxy's clock.
func (l Limits) ValidateMessage(m *Message, now time.Time) error {
	if l.RejectEmptyBody && len(m.Body) == 0 {
		return Errorf(ReasonBodyEmpty, "message body cannot be empty")
	}
	if l.MaxBodySize > 0 && int64(len(m.Body)) > l.MaxBodySize {
		return Errorf(ReasonBodyTooLarge, "message body cannot exceed the max %d", l.MaxBodySize)
	}
	if l.MaxUserPropertyCount > 0 && len(m.Properties) > l.MaxUserPropertyCount {
		return Errorf(ReasonPropertiesTooLarge, "too many user properties, max is %d", l.MaxUserPropertyCount)
	}
	size := 0
	for k, v := range m.Properties {
		if k == "" {
			return Errorf(ReasonIllegalPropertyKey, "the key of property cannot be empty")
		}
		if IsReservedPropertyKey(k) {
			return Errorf(ReasonIllegalPropertyKey, "property is used by system: %s", k)
		}
		if hasControl(k) {
			return Errorf(ReasonIllegalPropertyKey, "the key of property cannot contain control character")
		}
		if hasControl(v) {
			return Errorf(ReasonIllegalPropertyKey, "the value of property cannot contain control character")
		}
		size += len(k) + len(v)
	}
	if err := ValidateTag(m.Tag); err != nil {
		return err
	}
	size += len(m.Tag)
	for _, k := range m.Keys {
		if k != "" && IsBlank(k) {
			return Errorf(ReasonIllegalMessageKey, "key cannot be the char sequence of whitespace")
		}
		if hasControl(k) {
			return Errorf(ReasonIllegalMessageKey, "key cannot contain control character")
		}
		size += len(k)
	}
	if l.MaxPropertiesSize > 0 && size > l.MaxPropertiesSize {
		return Errorf(ReasonPropertiesTooLarge, "the total size of user property is too large, max is %d", l.MaxPropertiesSize)
	}
	if IsBlank(m.ID) {
		return Errorf(ReasonIllegalMessageID, "message id cannot be empty")
	}
	// Upstream checks neither these nor their length; a control character
	// (RocketMQ's property separators \x01 and \x02 among them) broke the
	// properties string a broker stores, so cluster mode could not store
	// what local mode stored.
	if hasControl(m.ID) {
		return Errorf(ReasonIllegalMessageID, "message id cannot contain control character")
	}
	if hasControl(m.TraceContext) {
		return Errorf(ReasonBadRequest, "trace context cannot contain control character")
	}
	if hasControl(m.BornHost) {
		return Errorf(ReasonBadRequest, "born host cannot contain control character")
	}
	if m.Transactional && l.MaxTransactionRecovery > 0 && m.TransactionRecovery > l.MaxTransactionRecovery {
		return Errorf(ReasonBadRequest, "the max transaction recovery time of message is too large, max is %d", int64(l.MaxTransactionRecovery/time.Second))
	}
	if !m.DeliverAt.IsZero() && !InMessageTimeRange(m.DeliverAt) {
		return Errorf(ReasonIllegalDeliveryTime, "the delivery time of message must lie between %s and %s", minMessageTimeText, maxMessageTimeText)
	}
	if !m.DeliverAt.IsZero() && l.MaxDelay > 0 && m.DeliverAt.Sub(now) > l.MaxDelay {
		return Errorf(ReasonIllegalDeliveryTime, "the max delay time of message is too large, max is %d", l.MaxDelay.Milliseconds())
	}
	// A RocketMQ broker (5.5.0) runs a half message with a delivery time
	// through its timer and then stores the commit in the half topic,
	// where no consumer ever gets it: accepted, it would be lost. The
	// official clients refuse to send one; so does rmqproxy, in both modes.
	if m.Transactional && !m.DeliverAt.IsZero() {
		return Errorf(ReasonMessageTypeConflict, "a transactional message cannot have a delivery time (RocketMQ brokers never deliver its commit); send it without one and commit it when it is due, or send a DELAY message")
	}
	// Upstream writes any value as RECONSUME_TIME; a negative count of
	// deliveries is no count, and local mode keeps the broker's own.
	if m.ReconsumeTimes < 0 {
		return Errorf(ReasonBadRequest, "the delivery attempt of message cannot be negative (got %d)", m.ReconsumeTimes)
	}
	if m.Group != "" {
		switch {
		case IsBlank(m.Group):
			return Errorf(ReasonIllegalMessageGroup, "message group cannot be the char sequence of whitespace")
		case l.MaxMessageGroupSize > 0 && len(m.Group) >= l.MaxMessageGroupSize:
			return Errorf(ReasonIllegalMessageGroup, "message group exceed the max size %d", l.MaxMessageGroupSize)
		case hasControl(m.Group):
			return Errorf(ReasonIllegalMessageGroup, "message group cannot contain control character")
		}
	}
	// Upstream leaves out a born time protobuf deems invalid (the broker
	// then records its own clock) and stores one before 1970 as sent.
	if !m.BornAt.IsZero() && !InMessageTimeRange(m.BornAt) {
		return Errorf(ReasonBadRequest, "the born time of message must lie between %s and %s", minMessageTimeText, maxMessageTimeText)
	}
	// Last, where a broker refuses it: a RocketMQ broker cannot store
	// more properties (the message id, trace context and born host count
	// as well, and none of the checks above bounds them), and it adds its
	// own to them (BrokerPropertiesReserve).
	if n, most := m.StoredPropertiesLen(), MaxStoredPropertiesLen-m.BrokerPropertiesLen(); n > most {
		return Errorf(ReasonPropertiesTooLarge,
			"the message's properties (message id, tag, keys, trace context, born host, user properties, ...) take %d bytes where at most %d are accepted: a RocketMQ broker stores at most %d and adds up to %d of its own (cluster name, delay, transaction, redelivery and dead-letter bookkeeping)",
			n, most, MaxStoredPropertiesLen, MaxStoredPropertiesLen-most)
	}
	return nil
}

// Message times (born and delivery times) are kept by RocketMQ as
// milliseconds since the Unix epoch; protobuf Timestamps end with 9999.
var (
	minMessageTime = time.Unix(0, 0)
	maxMessageTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

const (
	minMessageTimeText = "1970-01-01T00:00:00Z"
	maxMessageTimeText = "9999-12-31T23:59:59.999Z"
)

// UnrepresentableTime stands for a message time a client set that is no
// instant at all (a protobuf Timestamp outside its range or with invalid
// nanos), or that Go's zero time.Time could not tell from "not set"
// (0001-01-01T00:00:00Z). It is not zero, so the message counts as having
// the time (a delivery time makes it a DELAY message), and it lies outside
// [InMessageTimeRange], so validation refuses it.
var UnrepresentableTime = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)

// InMessageTimeRange reports whether t can be a message's born or delivery
// time: not before 1970 (RocketMQ's times are milliseconds since then, and
// a time before is an uninitialized or garbled value, such as a born time
// shown as 1878) and not after 9999 (the end of protobuf's Timestamp).
func InMessageTimeRange(t time.Time) bool {
	return !t.Before(minMessageTime) && !t.After(maxMessageTime)
}

// CheckMessageType verifies that a topic of type topicType accepts m.
func CheckMessageType(topic string, topicType MessageType, m *Message) error {
	if mt := m.Type(); !topicType.Accepts(mt) {
		return Errorf(ReasonMessageTypeConflict,
			"topic %q accepts %s messages but this message is %s (create the topic with the right type or send the matching kind of message)",
			topic, topicType, mt)
	}
	return nil
}

// KeySeparator separates a message's keys where RocketMQ stores them (the
// KEYS property, MessageConst.KEY_SEPARATOR): one space, nothing else.
const KeySeparator = " "

// SplitKeys returns keys as RocketMQ stores and reads them back: each key
// split at every [KeySeparator], without empty keys. A key "a b" is stored
// as the two keys "a" and "b" (by the Apache proxy and by a broker, so in
// cluster mode as well); local mode stores the same, so that both modes
// deliver the same keys. Other white space (a tab is refused as a control
// character; U+00A0 and the like) stays inside its key. keys is returned
// as is when nothing needs to change.
func SplitKeys(keys []string) []string {
	clean := true
	for _, k := range keys {
		if k == "" || strings.Contains(k, KeySeparator) {
			clean = false
			break
		}
	}
	if clean {
		return keys
	}
	out := make([]string, 0, len(keys)+1)
	for _, k := range keys {
		for _, part := range strings.Split(k, KeySeparator) {
			if part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// CheckUnservedKind refuses a message of a kind rmqproxy does not serve: a
// priority or lite message (RocketMQ 5.5), which the Apache proxy 5.5
// stores in topics of type PRIORITY or LITE only. Stored as a plain
// message it would lose its priority or lite topic, so it is refused as
// such a message to a topic of another type is, whatever the topic.
func CheckUnservedKind(topic string, topicType MessageType, m *Message) error {
	kind := ""
	switch {
	case m.Type() != MessageTypeNormal:
		// A transaction, delay or FIFO message: upstream derives its
		// type before priority and lite, but still stores both.
		if m.Priority == nil && m.LiteTopic == "" {
			return nil
		}
		kind = m.Type().String() + " message with a priority or lite topic"
	case m.Priority != nil:
		kind = "PRIORITY"
	case m.LiteTopic != "":
		kind = "LITE"
	default:
		return nil
	}
	return Errorf(ReasonMessageTypeConflict,
		"topic %q accepts %s messages but this message is %s; rmqproxy does not serve priority or lite messages (send it without priority and lite topic)",
		topic, topicType, kind)
}

// Invisible-time and polling bounds used by consumers (Apache proxy defaults).
const (
	DefaultMinInvisibleTime = 10 * time.Second
	DefaultMaxInvisibleTime = 12 * time.Hour
)
