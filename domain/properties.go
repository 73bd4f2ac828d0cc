package domain

import "strings"

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
