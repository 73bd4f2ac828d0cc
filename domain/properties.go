package domain

import (
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// reservedPropertyKeys are the property names RocketMQ uses for itself
// (MessageConst.STRING_HASH_SET of RocketMQ 5.5.0, the brokers cluster mode
// fronts). A user property with one of these names is rejected with
// ReasonIllegalPropertyKey: a broker would act on it (TIMER_DELAY_MS delays
// a message, __LITE_TOPIC and _SYS_MSG_PRIORITY_ change how it is stored)
// and consumers would not get it back as a user property.
var reservedPropertyKeys = map[string]struct{}{}

func init() {
	for _, k := range []string{
		"TRACE_ON", "MSG_REGION", "KEYS", "TAGS", "WAIT", "DELAY", "RETRY_TOPIC",
		"REAL_TOPIC", "REAL_QID", "TRAN_MSG", "PGROUP", "MIN_OFFSET", "MAX_OFFSET",
		"BUYER_ID", "ORIGIN_MESSAGE_ID", "TRANSFER_FLAG", "CORRECTION_FLAG",
		"MQ2_FLAG", "RECONSUME_TIME", "UNIQ_KEY", "MAX_RECONSUME_TIMES",
		"CONSUME_START_TIME", "POP_CK", "POP_CK_OFFSET", "1ST_POP_TIME",
		"TRAN_PREPARED_QUEUE_OFFSET", "DUP_INFO", "EXTEND_UNIQ_INFO", "INSTANCE_ID",
		"CORRELATION_ID", "REPLY_TO_CLIENT", "TTL", "ARRIVE_TIME", "PUSH_REPLY_TIME",
		"CLUSTER", "MSG_TYPE", "INNER_MULTI_QUEUE_OFFSET", "TIMER_DELAY_SEC",
		"TIMER_DELIVER_MS", "TIMER_ENQUEUE_MS", "TIMER_DEQUEUE_MS", "TIMER_ROLL_TIMES",
		"TIMER_OUT_MS", "TIMER_DEL_UNIQKEY", "TIMER_DELAY_LEVEL", "__BORNHOST",
		"BORN_TIMESTAMP", "ORIGIN_GROUP", "TIMER_DELAY_MS", "DLQ_ORIGIN_TOPIC",
		"DLQ_ORIGIN_MESSAGE_ID", "__CRC32#", "_SYS_MSG_PRIORITY_", "__LITE_TOPIC",
	} {
		reservedPropertyKeys[k] = struct{}{}
	}
	// Not in the brokers' set, but written by proxies (the Apache proxy and
	// rmqproxy in cluster mode) or by brokers for themselves and read back
	// as system data: a user property of that name would be stored next to
	// (or instead of) the system one, and consumers would see it as the
	// message group, trace context, ... of the message, not as a user
	// property. The Apache proxy accepts these names; rmqproxy refuses them
	// in both modes (docs/compatibility.md).
	for _, k := range []string{
		"__SHARDINGKEY", "TRACE_CONTEXT", "__transactionId__", "TRANSACTION_CHECK_TIMES",
		"CHECK_IMMUNITY_TIME_IN_SECONDS", "INNER_NUM", "INNER_BASE", "__STARTDELIVERTIME",
	} {
		reservedPropertyKeys[k] = struct{}{}
	}
}

// transientPropertyPrefix starts the names of properties RocketMQ keeps
// only in memory (MessageConst.PROPERTY_TRANSIENT_PREFIX); a broker does
// not return them.
const transientPropertyPrefix = "__RMQ.TRANSIENT."

// IsReservedPropertyKey reports whether key is a system property name that a
// user property may not use.
func IsReservedPropertyKey(key string) bool {
	_, ok := reservedPropertyKeys[key]
	return ok || strings.HasPrefix(key, transientPropertyPrefix)
}

// MaxStoredPropertiesLen is the most bytes the properties string of one
// message can take in a RocketMQ broker: the commit log keeps its length
// in a signed 16-bit field, and a broker refuses a longer one.
const MaxStoredPropertiesLen = 32767

// BrokerPropertiesReserve is what a message's properties as sent must
// leave free of [MaxStoredPropertiesLen] for the properties a RocketMQ
// broker adds to them over the message's life, each time storing it anew:
// at every single send CLUSTER (its cluster name), MSG_REGION (its region)
// and TRACE_ON; TIMER_OUT_MS, REAL_TOPIC, REAL_QID,
// TIMER_ENQUEUE_MS, TIMER_DEQUEUE_MS and TIMER_ROLL_TIMES for a delay
// message; REAL_TOPIC, REAL_QID, TRANSACTION_CHECK_TIMES and
// TRAN_PREPARED_QUEUE_OFFSET for a transactional one (which also gets its
// message id again, see [Message.BrokerPropertiesLen]); 1ST_POP_TIME at a
// redelivery; RETRY_TOPIC (a pop retry topic of up to about 255 bytes),
// WAIT, ORIGIN_MESSAGE_ID and DELAY when a consumer sends it back or it
// moves to the dead-letter queue. Together they take less than 1000 bytes
// with the longest names RocketMQ allows (topics of 127 bytes) and a
// cluster name and region of up to 64 bytes each. A message that leaves less was refused by
// the broker (MESSAGE_ILLEGAL, which clients get as INTERNAL_SERVER_ERROR),
// or, stored, was never delivered again once its invisible time had
// passed: the broker's revive could not store it anew (RocketMQ 5.5.0
// with a message 60 bytes short of the limit).
const BrokerPropertiesReserve = 1024

// propTransactionID is the property a broker copies a half message's id
// into (TransactionalMessageUtil.TRANSACTION_ID).
const propTransactionID = "__transactionId__"

// BrokerPropertiesLen is how many bytes of [MaxStoredPropertiesLen] m
// must leave free for the properties a RocketMQ broker adds:
// [BrokerPropertiesReserve], and for a transactional message the copy of
// its message id the broker writes into the half message (unbounded but
// by the properties' total, like the id itself).
func (m *Message) BrokerPropertiesLen() int {
	n := BrokerPropertiesReserve
	if m.Transactional {
		n += len(propTransactionID) + len(m.ID) + 2
	}
	return n
}

// StoredProperties yields, in order, the properties a RocketMQ broker
// stores for m when a proxy sends it as the Apache proxy's
// SendMessageActivity does: the message id, tag and keys, the transaction
// and delay properties, the reconsume times, the producer group (the
// topic), the message group, trace context, born host and born time, then
// the user properties sorted by name. A user property with an empty value
// is left out: RocketMQ's properties string cannot carry it.
//
// It is the one definition both modes share: cluster mode sends exactly
// these to the brokers, and [Limits.ValidateMessage] refuses in every mode
// a message whose properties a broker could not store
// ([StoredPropertiesLen]).
func (m *Message) StoredProperties() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		_ = yieldStoredProperties(m, yield)
	}
}

// yieldStoredProperties calls yield for each stored property until it
// returns false; it reports whether all were yielded.
func yieldStoredProperties(m *Message, yield func(string, string) bool) bool {
	if !yield(propUniqKey, m.ID) {
		return false
	}
	if m.Tag != "" && !yield(propTags, m.Tag) {
		return false
	}
	if keys := SplitKeys(m.Keys); len(keys) > 0 && !yield(propKeys, strings.Join(keys, KeySeparator)) {
		return false
	}
	if m.Transactional {
		if !yield(propTransactionPrepared, "true") {
			return false
		}
		if m.TransactionRecovery > 0 && !yield(propCheckImmunityTime, strconv.FormatInt(int64(m.TransactionRecovery/time.Second), 10)) {
			return false
		}
	}
	if !m.DeliverAt.IsZero() && !yield(propTimerDeliverMS, strconv.FormatInt(m.DeliverAt.UnixMilli(), 10)) {
		return false
	}
	if !yield(propReconsumeTime, strconv.FormatInt(int64(m.ReconsumeTimes), 10)) ||
		!yield(propProducerGroup, m.Topic) {
		return false
	}
	if m.Group != "" && !yield(propShardingKey, m.Group) {
		return false
	}
	if m.TraceContext != "" && !yield(propTraceContext, m.TraceContext) {
		return false
	}
	if m.BornHost != "" && !yield(propBornHost, m.BornHost) {
		return false
	}
	if !m.BornAt.IsZero() && !yield(propBornTimestamp, strconv.FormatInt(m.BornAt.UnixMilli(), 10)) {
		return false
	}
	if len(m.Properties) == 0 {
		return true // (sorting no keys still allocates)
	}
	for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
		if v := m.Properties[k]; v != "" && !yield(k, v) {
			return false
		}
	}
	return true
}

// StorableProperties returns the user properties a RocketMQ broker keeps
// of props: those with a value (its properties string cannot carry an
// empty one, so a broker drops it, and local mode must not deliver what
// cluster mode cannot). props is returned as is when all have a value.
func StorableProperties(props map[string]string) map[string]string {
	for _, v := range props {
		if v == "" {
			out := make(map[string]string, len(props))
			for k, v := range props {
				if v != "" {
					out[k] = v
				}
			}
			return out
		}
	}
	return props
}

// StoredPropertiesLen is the length in bytes of the properties string a
// RocketMQ broker stores for m: each of [Message.StoredProperties] as
// name, \x01, value, \x02. It computes the sum without building the values
// (no allocation: every send is checked with it); FuzzStoredPropertiesLen
// holds it to the iterator, and the cluster encoder's fuzz test to what it
// writes.
func (m *Message) StoredPropertiesLen() int {
	entry := func(name string, value int) int { return len(name) + value + 2 }
	n := entry(propUniqKey, len(m.ID))
	if m.Tag != "" {
		n += entry(propTags, len(m.Tag))
	}
	if k := splitKeysLen(m.Keys); k > 0 {
		n += entry(propKeys, k)
	}
	if m.Transactional {
		n += entry(propTransactionPrepared, len("true"))
		if m.TransactionRecovery > 0 {
			n += entry(propCheckImmunityTime, decimalLen(int64(m.TransactionRecovery/time.Second)))
		}
	}
	if !m.DeliverAt.IsZero() {
		n += entry(propTimerDeliverMS, decimalLen(m.DeliverAt.UnixMilli()))
	}
	n += entry(propReconsumeTime, decimalLen(int64(m.ReconsumeTimes))) + entry(propProducerGroup, len(m.Topic))
	if m.Group != "" {
		n += entry(propShardingKey, len(m.Group))
	}
	if m.TraceContext != "" {
		n += entry(propTraceContext, len(m.TraceContext))
	}
	if m.BornHost != "" {
		n += entry(propBornHost, len(m.BornHost))
	}
	if !m.BornAt.IsZero() {
		n += entry(propBornTimestamp, decimalLen(m.BornAt.UnixMilli()))
	}
	for k, v := range m.Properties {
		if v != "" {
			n += entry(k, len(v))
		}
	}
	return n
}

// splitKeysLen is the length of the KEYS value of keys: the parts
// [SplitKeys] keeps, joined by [KeySeparator] (0: no KEYS property).
func splitKeysLen(keys []string) int {
	n, parts := 0, 0
	for _, k := range keys {
		for part := range strings.SplitSeq(k, KeySeparator) {
			if part != "" {
				n += len(part)
				parts++
			}
		}
	}
	if parts == 0 {
		return 0
	}
	return n + (parts-1)*len(KeySeparator)
}

// decimalLen is the length of strconv.FormatInt(v, 10).
func decimalLen(v int64) int {
	var buf [20]byte
	return len(strconv.AppendInt(buf[:0], v, 10))
}

// Names of the properties [Message.StoredProperties] writes
// (MessageConst upstream).
const (
	propUniqKey             = "UNIQ_KEY"
	propTags                = "TAGS"
	propKeys                = "KEYS"
	propTransactionPrepared = "TRAN_MSG"
	propCheckImmunityTime   = "CHECK_IMMUNITY_TIME_IN_SECONDS"
	propTimerDeliverMS      = "TIMER_DELIVER_MS"
	propReconsumeTime       = "RECONSUME_TIME"
	propProducerGroup       = "PGROUP"
	propShardingKey         = "__SHARDINGKEY"
	propTraceContext        = "TRACE_CONTEXT"
	propBornHost            = "__BORNHOST"
	propBornTimestamp       = "BORN_TIMESTAMP"
)
