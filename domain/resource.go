package domain

import (
	"fmt"
	"math"
	"time"
)

// Permission says what clients may do with a topic's queues.
type Permission uint8

// Permissions, as RocketMQ's PermName bits (read 4, write 2).
const (
	PermNone      Permission = 0
	PermWrite     Permission = 2
	PermRead      Permission = 4
	PermReadWrite Permission = PermRead | PermWrite
)

// Readable reports whether the read bit is set.
func (p Permission) Readable() bool { return p&PermRead != 0 }

// Writable reports whether the write bit is set.
func (p Permission) Writable() bool { return p&PermWrite != 0 }

// Topic is the configuration of a topic.
type Topic struct {
	Name        string
	Type        MessageType
	QueueCount  int32 // read and write queues are equal in rmqproxy's local mode
	Permission  Permission
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Validate checks a topic configuration for creation or update.
func (t Topic) Validate() error {
	if err := ValidateTopicName(t.Name); err != nil {
		return err
	}
	switch t.Type {
	case MessageTypeNormal, MessageTypeFIFO, MessageTypeDelay, MessageTypeTransaction, MessageTypeMixed:
	default:
		return Errorf(ReasonBadRequest, "topic %q: message type must be NORMAL, FIFO, DELAY, TRANSACTION or MIXED", t.Name)
	}
	if t.QueueCount < 1 || t.QueueCount > MaxQueueCount {
		return Errorf(ReasonBadRequest, "topic %q: queue count %d is out of range [1, %d]", t.Name, t.QueueCount, MaxQueueCount)
	}
	return nil
}

// MaxQueueCount bounds the queues of one topic.
const MaxQueueCount = 1024

// RetryPolicy says how long a consumer waits before a failed message is
// delivered again. Exactly one of the two strategies is used.
type RetryPolicy struct {
	// Exponential backoff: Initial * Multiplier^(attempt-1), capped at Max.
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	// Customized backoff: Delays[attempt-1], the last one repeating.
	// When non-empty it wins over the exponential fields.
	Delays []time.Duration
}

// DefaultRetryDelays are RocketMQ's default customized retry delays
// (1s 5s 10s 30s 1m 2m ... 2h).
func DefaultRetryDelays() []time.Duration {
	m, h := time.Minute, time.Hour
	return []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
		m, 2 * m, 3 * m, 4 * m, 5 * m, 6 * m, 7 * m, 8 * m, 9 * m, 10 * m, 20 * m, 30 * m, h, 2 * h}
}

// Delay returns the wait before redelivery after the given failed attempt
// (1 = first delivery failed).
func (p RetryPolicy) Delay(attempt int32) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if len(p.Delays) > 0 {
		i := int(attempt) - 1
		if i >= len(p.Delays) {
			i = len(p.Delays) - 1
		}
		return p.Delays[i]
	}
	d := float64(p.Initial)
	for i := int32(1); i < attempt && d < float64(p.Max); i++ {
		d *= p.Multiplier
	}
	if p.Max > 0 && d > float64(p.Max) {
		d = float64(p.Max)
	}
	return time.Duration(d)
}

// Capped returns the policy with every wait cut to longest (none when
// longest is not positive): a consumer's nack asks for the wait as its
// invisible time, which the proxy refuses beyond its longest.
func (p RetryPolicy) Capped(longest time.Duration) RetryPolicy {
	if longest <= 0 {
		return p
	}
	out := RetryPolicy{Initial: min(p.Initial, longest), Max: min(p.Max, longest), Multiplier: p.Multiplier}
	if len(p.Delays) > 0 {
		out.Delays = make([]time.Duration, len(p.Delays))
		for i, d := range p.Delays {
			out.Delays[i] = min(d, longest)
		}
	}
	return out
}

// ConsumerGroup is the configuration of a consumer group.
type ConsumerGroup struct {
	Name string
	// MaxDeliveryAttempts is how often a message is delivered before it goes
	// to the group's dead-letter queue (retryMaxTimes + 1 upstream; default 17).
	MaxDeliveryAttempts int32
	RetryPolicy         RetryPolicy
	// Orderly makes the group consume FIFO topics in message-group order.
	Orderly     bool
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// DefaultMaxDeliveryAttempts is RocketMQ's default (16 retries + 1).
const DefaultMaxDeliveryAttempts = 17

// Validate checks a group configuration for creation or update.
func (g ConsumerGroup) Validate() error {
	if err := ValidateGroupName(g.Name); err != nil {
		return err
	}
	if g.MaxDeliveryAttempts < 1 || g.MaxDeliveryAttempts > 1000 {
		return Errorf(ReasonBadRequest, "group %q: max delivery attempts %d is out of range [1, 1000]", g.Name, g.MaxDeliveryAttempts)
	}
	p := g.RetryPolicy
	if len(p.Delays) == 0 {
		if p.Initial <= 0 || p.Max < p.Initial || !(p.Multiplier >= 1) || math.IsInf(p.Multiplier, 1) { // NaN fails >= 1
			return Errorf(ReasonBadRequest, "group %q: exponential retry needs initial > 0, max ≥ initial and a finite multiplier ≥ 1 (got %v, %v, %v)", g.Name, p.Initial, p.Max, p.Multiplier)
		}
	}
	for _, d := range p.Delays {
		if d <= 0 {
			return Errorf(ReasonBadRequest, "group %q: retry delays must be positive", g.Name)
		}
	}
	return nil
}

// NewConsumerGroup returns a group with RocketMQ's defaults.
func NewConsumerGroup(name string) ConsumerGroup {
	return ConsumerGroup{
		Name:                name,
		MaxDeliveryAttempts: DefaultMaxDeliveryAttempts,
		RetryPolicy:         RetryPolicy{Delays: DefaultRetryDelays()},
	}
}

// QueueRef names one message queue of a topic on a broker.
type QueueRef struct {
	Topic      string
	BrokerName string
	QueueID    int32
}

func (q QueueRef) String() string { return fmt.Sprintf("%s@%s#%d", q.Topic, q.BrokerName, q.QueueID) }
