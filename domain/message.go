package domain

import (
	"strings"
	"time"
)

// MessageType is the kind of a message, and of the messages a topic accepts.
// Mixed is only meaningful for topics: it accepts every kind.
type MessageType uint8

// Message types, numbered as apache.rocketmq.v2.MessageType except Mixed.
const (
	MessageTypeUnspecified MessageType = 0
	MessageTypeNormal      MessageType = 1
	MessageTypeFIFO        MessageType = 2
	MessageTypeDelay       MessageType = 3
	MessageTypeTransaction MessageType = 4
	MessageTypeMixed       MessageType = 100
)

var messageTypeNames = map[MessageType]string{
	MessageTypeUnspecified: "UNSPECIFIED",
	MessageTypeNormal:      "NORMAL",
	MessageTypeFIFO:        "FIFO",
	MessageTypeDelay:       "DELAY",
	MessageTypeTransaction: "TRANSACTION",
	MessageTypeMixed:       "MIXED",
}

func (t MessageType) String() string {
	if s, ok := messageTypeNames[t]; ok {
		return s
	}
	return "UNSPECIFIED"
}

// ParseTopicMessageType parses the name of a topic's message type
// (NORMAL, FIFO, DELAY, TRANSACTION or MIXED, case-insensitive).
func ParseTopicMessageType(s string) (MessageType, error) {
	for t, name := range messageTypeNames {
		if t != MessageTypeUnspecified && strings.EqualFold(s, name) {
			return t, nil
		}
	}
	return MessageTypeUnspecified, Errorf(ReasonBadRequest,
		"unknown message type %q: use NORMAL, FIFO, DELAY, TRANSACTION or MIXED", s)
}

// Accepts reports whether a topic of type t accepts a message of type m.
func (t MessageType) Accepts(m MessageType) bool {
	return t == MessageTypeMixed || t == m
}

// AcceptedTypes lists the message types a topic of type t accepts, as routes
// advertise them to clients.
func (t MessageType) AcceptedTypes() []MessageType {
	switch t {
	case MessageTypeMixed:
		return []MessageType{MessageTypeNormal, MessageTypeFIFO, MessageTypeDelay, MessageTypeTransaction}
	case MessageTypeNormal, MessageTypeFIFO, MessageTypeDelay, MessageTypeTransaction:
		return []MessageType{t}
	default:
		return []MessageType{MessageTypeUnspecified}
	}
}

// Message is a message as a producer sends it.
type Message struct {
	Topic string
	Body  []byte
	// Compressed says the body is gzip-compressed by the producer. The proxy
	// never (de)compresses; consumers receive the body as stored.
	Compressed bool
	Tag        string
	Keys       []string
	// ID is the message id chosen by the producer (UNIQ_KEY); opaque to the proxy.
	ID string
	// Group is the message group of a FIFO message; empty otherwise.
	Group string
	// DeliverAt is the delivery time of a delay/timer message; zero otherwise.
	DeliverAt time.Time
	// Transactional marks a half message, invisible until committed.
	Transactional bool
	// TransactionRecovery is how long the producer asks the broker to wait
	// before the first check of an orphaned transaction; zero: broker default.
	TransactionRecovery time.Duration
	TraceContext        string
	BornHost            string
	BornAt              time.Time
	// ReconsumeTimes is the delivery attempt a producer re-sends with (rare).
	ReconsumeTimes int32
	// Properties are the user properties, never a reserved system key.
	Properties map[string]string
	// LiteTopic and Priority are what producers of RocketMQ 5.5's lite and
	// priority messages set (Priority nil: not set). rmqproxy serves
	// neither kind: [CheckUnservedKind] refuses such a message rather than
	// store it as a plain one.
	LiteTopic string
	Priority  *int32
}

// Type derives the message type exactly as the Apache proxy does: a
// transaction flag wins, then a delivery time, then a message group.
func (m *Message) Type() MessageType {
	switch {
	case m.Transactional:
		return MessageTypeTransaction
	case !m.DeliverAt.IsZero():
		return MessageTypeDelay
	case m.Group != "":
		return MessageTypeFIFO
	default:
		return MessageTypeNormal
	}
}

// StoredMessage is a message as the broker keeps and delivers it.
type StoredMessage struct {
	Message
	BrokerName      string
	QueueID         int32
	QueueOffset     int64
	CommitLogOffset int64
	StoredAt        time.Time
	StoreHost       string
	// DeliveryAttempt counts deliveries of this message to the consumer group,
	// the first delivery being 1.
	DeliveryAttempt int32
	// ReceiptHandle is set on popped messages; it identifies this delivery.
	ReceiptHandle string
	// DeadLetter is set on messages read from a dead-letter queue.
	DeadLetter *DeadLetterOrigin
	// TransactionID is set on half messages (check-back) and on messages
	// sent as part of a transaction.
	TransactionID string
}

// DeadLetterOrigin tells where a dead-lettered message came from.
type DeadLetterOrigin struct {
	Topic     string
	MessageID string
}

// SendReceipt is the broker's answer for one stored message.
type SendReceipt struct {
	MessageID     string
	TransactionID string
	QueueID       int32
	// QueueOffset is the message's offset in its queue, or -1 for a message
	// that is deferred and not in a queue yet (a delay message before its
	// time, a half message before its transaction commits).
	QueueOffset int64
	// RecallHandle lets the producer recall a delay message before delivery.
	RecallHandle string
}
