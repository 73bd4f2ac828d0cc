package domain

import (
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
// order and returns the first failure. now is the proxy's clock.
func (l Limits) ValidateMessage(m *Message, now time.Time) error {
	if l.RejectEmptyBody && len(m.Body) == 0 {
		return Errorf(ReasonBodyEmpty, "message body is empty")
	}
	if l.MaxBodySize > 0 && int64(len(m.Body)) > l.MaxBodySize {
		return Errorf(ReasonBodyTooLarge, "message body is %d bytes, larger than the limit of %d bytes", len(m.Body), l.MaxBodySize)
	}
	if l.MaxUserPropertyCount > 0 && len(m.Properties) > l.MaxUserPropertyCount {
		return Errorf(ReasonPropertiesTooLarge, "message has %d user properties, more than the limit of %d", len(m.Properties), l.MaxUserPropertyCount)
	}
	size := 0
	for k, v := range m.Properties {
		if IsReservedPropertyKey(k) {
			return Errorf(ReasonIllegalPropertyKey, "property key %q is used by the system; choose another name", k)
		}
		if hasControl(k) || hasControl(v) {
			return Errorf(ReasonIllegalPropertyKey, "property %q contains a control character", truncate(k))
		}
		size += len(k) + len(v)
	}
	if err := ValidateTag(m.Tag); err != nil {
		return err
	}
	size += len(m.Tag)
	for _, k := range m.Keys {
		if IsBlank(k) {
			return Errorf(ReasonIllegalMessageKey, "message key cannot be blank")
		}
		if hasControl(k) {
			return Errorf(ReasonIllegalMessageKey, "message key %q contains a control character", truncate(k))
		}
		size += len(k)
	}
	if l.MaxPropertiesSize > 0 && size > l.MaxPropertiesSize {
		return Errorf(ReasonPropertiesTooLarge, "user properties, tag and keys take %d bytes, more than the limit of %d bytes", size, l.MaxPropertiesSize)
	}
	if IsBlank(m.ID) {
		return Errorf(ReasonIllegalMessageID, "message id cannot be blank")
	}
	if m.Transactional && l.MaxTransactionRecovery > 0 && m.TransactionRecovery > l.MaxTransactionRecovery {
		return Errorf(ReasonBadRequest, "orphaned transaction recovery duration %v exceeds the limit of %v", m.TransactionRecovery, l.MaxTransactionRecovery)
	}
	if !m.DeliverAt.IsZero() && l.MaxDelay > 0 && m.DeliverAt.Sub(now) > l.MaxDelay {
		return Errorf(ReasonIllegalDeliveryTime, "delivery time %s is more than %v in the future", m.DeliverAt.UTC().Format(time.RFC3339Nano), l.MaxDelay)
	}
	if m.Group != "" {
		switch {
		case IsBlank(m.Group):
			return Errorf(ReasonIllegalMessageGroup, "message group cannot be whitespace only")
		case l.MaxMessageGroupSize > 0 && len(m.Group) >= l.MaxMessageGroupSize:
			return Errorf(ReasonIllegalMessageGroup, "message group is %d bytes; it must be shorter than %d bytes", len(m.Group), l.MaxMessageGroupSize)
		case hasControl(m.Group):
			return Errorf(ReasonIllegalMessageGroup, "message group %q contains a control character", truncate(m.Group))
		}
	}
	return nil
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

// Invisible-time and polling bounds used by consumers (Apache proxy defaults).
const (
	DefaultMinInvisibleTime = 10 * time.Second
	DefaultMaxInvisibleTime = 12 * time.Hour
)
