package remoting

import "slices"

// sendHeaderFields is the most fields a send request header has (its own
// 14 and RPC's 5): room for them is made once.
const sendHeaderFields = 19

// SendMessageRequestHeader is the header of SEND_MESSAGE (V1 keys: the
// Java field names) and of SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE (V2 keys
// "a".."n"). Which form a request carries is decided by its code: see
// [DecodeSendMessageRequestHeader].
type SendMessageRequestHeader struct {
	RPC
	ProducerGroup         string // required
	Topic                 string // required
	DefaultTopic          string // required; "TBW102"
	DefaultTopicQueueNums int32  // required; 4
	QueueID               int32  // required
	SysFlag               int32  // required; MessageSysFlag bits
	BornTimestamp         int64  // required; ms
	Flag                  int32  // required; the user flag
	Properties            string // properties string (see [AppendProperties])
	ReconsumeTimes        int32
	UnitMode              bool
	Batch                 bool
	// MaxReconsumeTimes is sent only when set (the broker otherwise uses
	// the group's retry limit).
	MaxReconsumeTimes *int32
}

// AppendFields writes the V1 keys (SEND_MESSAGE).
func (h *SendMessageRequestHeader) AppendFields(dst Fields) Fields {
	dst = slices.Grow(dst, sendHeaderFields)
	dst = appendStr(dst, "producerGroup", h.ProducerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendStr(dst, "defaultTopic", h.DefaultTopic)
	dst = appendInt(dst, "defaultTopicQueueNums", int64(h.DefaultTopicQueueNums))
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendInt(dst, "sysFlag", int64(h.SysFlag))
	dst = appendInt(dst, "bornTimestamp", h.BornTimestamp)
	dst = appendInt(dst, "flag", int64(h.Flag))
	dst = appendOptStr(dst, "properties", h.Properties)
	dst = appendInt(dst, "reconsumeTimes", int64(h.ReconsumeTimes))
	dst = appendBool(dst, "unitMode", h.UnitMode)
	dst = appendBool(dst, "batch", h.Batch)
	dst = appendOptInt32(dst, "maxReconsumeTimes", h.MaxReconsumeTimes)
	return h.RPC.appendFields(dst)
}

// DecodeFields reads the V1 keys.
func (h *SendMessageRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "send request header"}
	h.ProducerGroup = r.str("producerGroup", true)
	h.Topic = r.str("topic", true)
	h.DefaultTopic = r.str("defaultTopic", true)
	h.DefaultTopicQueueNums = r.i32("defaultTopicQueueNums", true)
	h.QueueID = r.i32("queueId", true)
	h.SysFlag = r.i32("sysFlag", true)
	h.BornTimestamp = r.i64("bornTimestamp", true)
	h.Flag = r.i32("flag", true)
	h.Properties = r.str("properties", false)
	h.ReconsumeTimes = r.i32("reconsumeTimes", false)
	h.UnitMode = r.boolean("unitMode")
	h.Batch = r.boolean("batch")
	h.MaxReconsumeTimes = r.optI32("maxReconsumeTimes")
	h.RPC.decode(&r)
	return r.err
}

// AppendFieldsV2 writes the V2 keys (SEND_MESSAGE_V2, SEND_BATCH_MESSAGE);
// the broker name goes in "n" (and not in "bname").
func (h *SendMessageRequestHeader) AppendFieldsV2(dst Fields) Fields {
	dst = slices.Grow(dst, sendHeaderFields)
	dst = appendStr(dst, "a", h.ProducerGroup)
	dst = appendStr(dst, "b", h.Topic)
	dst = appendStr(dst, "c", h.DefaultTopic)
	dst = appendInt(dst, "d", int64(h.DefaultTopicQueueNums))
	dst = appendInt(dst, "e", int64(h.QueueID))
	dst = appendInt(dst, "f", int64(h.SysFlag))
	dst = appendInt(dst, "g", h.BornTimestamp)
	dst = appendInt(dst, "h", int64(h.Flag))
	dst = appendOptStr(dst, "i", h.Properties)
	dst = appendInt(dst, "j", int64(h.ReconsumeTimes))
	dst = appendBool(dst, "k", h.UnitMode)
	dst = appendOptInt32(dst, "l", h.MaxReconsumeTimes)
	dst = appendBool(dst, "m", h.Batch)
	dst = appendOptStr(dst, "n", h.BrokerName)
	rpc := h.RPC
	rpc.BrokerName = ""
	return rpc.appendFields(dst)
}

// DecodeFieldsV2 reads the V2 keys; "n" (or else "bname") is the broker name.
func (h *SendMessageRequestHeader) DecodeFieldsV2(f Fields) error {
	r := fieldReader{f: f, what: "send request header (V2)"}
	h.ProducerGroup = r.str("a", true)
	h.Topic = r.str("b", true)
	h.DefaultTopic = r.str("c", true)
	h.DefaultTopicQueueNums = r.i32("d", true)
	h.QueueID = r.i32("e", true)
	h.SysFlag = r.i32("f", true)
	h.BornTimestamp = r.i64("g", true)
	h.Flag = r.i32("h", true)
	h.Properties = r.str("i", false)
	h.ReconsumeTimes = r.i32("j", false)
	h.UnitMode = r.boolean("k")
	h.MaxReconsumeTimes = r.optI32("l")
	h.Batch = r.boolean("m")
	h.RPC.decode(&r)
	if n, ok := f.Get("n"); ok {
		h.BrokerName = n
	}
	return r.err
}

// DecodeSendMessageRequestHeader reads a send header in the form its code
// implies, as the broker does: SEND_MESSAGE_V2 and SEND_BATCH_MESSAGE
// carry V2 keys, anything else V1 keys.
func DecodeSendMessageRequestHeader(code int32, f Fields) (SendMessageRequestHeader, error) {
	var h SendMessageRequestHeader
	var err error
	switch RequestCode(code) {
	case RequestSendMessageV2, RequestSendBatchMessage:
		err = h.DecodeFieldsV2(f)
	default:
		err = h.DecodeFields(f)
	}
	return h, err
}

// SendMessageResponseHeader answers a send. MsgID is the offset message id
// (comma-joined for a batch).
type SendMessageResponseHeader struct {
	MsgID         string // required
	QueueID       int32  // required
	QueueOffset   int64  // required; first message's for a batch
	TransactionID string
	BatchUniqID   string
	RecallHandle  string // 5.3+: handle for RECALL_MESSAGE (delay/timer messages)
	// MsgRegion and TraceOn are extra response fields a broker may add.
	MsgRegion string // MSG_REGION
	TraceOn   string // TRACE_ON ("false" disables client tracing)
}

func (h *SendMessageResponseHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "msgId", h.MsgID)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendInt(dst, "queueOffset", h.QueueOffset)
	dst = appendOptStr(dst, "transactionId", h.TransactionID)
	dst = appendOptStr(dst, "batchUniqId", h.BatchUniqID)
	dst = appendOptStr(dst, "recallHandle", h.RecallHandle)
	dst = appendOptStr(dst, "MSG_REGION", h.MsgRegion)
	return appendOptStr(dst, "TRACE_ON", h.TraceOn)
}

func (h *SendMessageResponseHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "send response header"}
	h.MsgID = r.str("msgId", true)
	h.QueueID = r.i32("queueId", true)
	h.QueueOffset = r.i64("queueOffset", true)
	h.TransactionID = r.str("transactionId", false)
	h.BatchUniqID = r.str("batchUniqId", false)
	h.RecallHandle = r.str("recallHandle", false)
	h.MsgRegion = r.str("MSG_REGION", false)
	h.TraceOn = r.str("TRACE_ON", false)
	return r.err
}

// EndTransactionRequestHeader commits or rolls back a half message
// (END_TRANSACTION, sent oneway by Java clients).
type EndTransactionRequestHeader struct {
	RPC
	Topic                string
	ProducerGroup        string // required
	TranStateTableOffset int64  // required: the half message's queue offset
	CommitLogOffset      int64  // required: from the half message's offset msgId
	CommitOrRollback     int32  // required: TransactionCommit / TransactionRollback / TransactionNotType
	FromTransactionCheck bool
	MsgID                string // required
	TransactionID        string
}

func (h *EndTransactionRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendOptStr(dst, "topic", h.Topic)
	dst = appendStr(dst, "producerGroup", h.ProducerGroup)
	dst = appendInt(dst, "tranStateTableOffset", h.TranStateTableOffset)
	dst = appendInt(dst, "commitLogOffset", h.CommitLogOffset)
	dst = appendInt(dst, "commitOrRollback", int64(h.CommitOrRollback))
	dst = appendBool(dst, "fromTransactionCheck", h.FromTransactionCheck)
	dst = appendStr(dst, "msgId", h.MsgID)
	dst = appendOptStr(dst, "transactionId", h.TransactionID)
	return h.RPC.appendFields(dst)
}

func (h *EndTransactionRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "end transaction request header"}
	h.Topic = r.str("topic", false)
	h.ProducerGroup = r.str("producerGroup", true)
	h.TranStateTableOffset = r.i64("tranStateTableOffset", true)
	h.CommitLogOffset = r.i64("commitLogOffset", true)
	h.CommitOrRollback = r.i32("commitOrRollback", true)
	h.FromTransactionCheck = r.boolean("fromTransactionCheck")
	h.MsgID = r.str("msgId", true)
	h.TransactionID = r.str("transactionId", false)
	h.RPC.decode(&r)
	return r.err
}

// CheckTransactionStateRequestHeader is what a broker sends (oneway) to ask
// a producer about a half message; the body is the half message.
type CheckTransactionStateRequestHeader struct {
	RPC
	Topic                string
	TranStateTableOffset int64 // required
	CommitLogOffset      int64 // required
	MsgID                string
	TransactionID        string
	OffsetMsgID          string
}

func (h *CheckTransactionStateRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendOptStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "tranStateTableOffset", h.TranStateTableOffset)
	dst = appendInt(dst, "commitLogOffset", h.CommitLogOffset)
	dst = appendOptStr(dst, "msgId", h.MsgID)
	dst = appendOptStr(dst, "transactionId", h.TransactionID)
	dst = appendOptStr(dst, "offsetMsgId", h.OffsetMsgID)
	return h.RPC.appendFields(dst)
}

func (h *CheckTransactionStateRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "check transaction state request header"}
	h.Topic = r.str("topic", false)
	h.TranStateTableOffset = r.i64("tranStateTableOffset", true)
	h.CommitLogOffset = r.i64("commitLogOffset", true)
	h.MsgID = r.str("msgId", false)
	h.TransactionID = r.str("transactionId", false)
	h.OffsetMsgID = r.str("offsetMsgId", false)
	h.RPC.decode(&r)
	return r.err
}

// RecallMessageRequestHeader recalls a delay/timer message (RECALL_MESSAGE).
type RecallMessageRequestHeader struct {
	RPC
	ProducerGroup string
	Topic         string // required
	RecallHandle  string // required
}

func (h *RecallMessageRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendOptStr(dst, "producerGroup", h.ProducerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendStr(dst, "recallHandle", h.RecallHandle)
	return h.RPC.appendFields(dst)
}

func (h *RecallMessageRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "recall request header"}
	h.ProducerGroup = r.str("producerGroup", false)
	h.Topic = r.str("topic", true)
	h.RecallHandle = r.str("recallHandle", true)
	h.RPC.decode(&r)
	return r.err
}

// RecallMessageResponseHeader answers RECALL_MESSAGE.
type RecallMessageResponseHeader struct {
	MsgID string // required
}

func (h *RecallMessageResponseHeader) AppendFields(dst Fields) Fields {
	return appendStr(dst, "msgId", h.MsgID)
}

func (h *RecallMessageResponseHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "recall response header"}
	h.MsgID = r.str("msgId", true)
	return r.err
}

// ConsumerSendMsgBackRequestHeader sends a consumed message back for retry
// or to the dead-letter queue (CONSUMER_SEND_MSG_BACK).
type ConsumerSendMsgBackRequestHeader struct {
	RPC
	Offset            int64  // required: the message's commit-log offset
	Group             string // required
	DelayLevel        int32  // required: -1 dead-letter now, 0 broker decides
	OriginMsgID       string
	OriginTopic       string
	UnitMode          bool
	MaxReconsumeTimes *int32
}

func (h *ConsumerSendMsgBackRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendInt(dst, "offset", h.Offset)
	dst = appendStr(dst, "group", h.Group)
	dst = appendInt(dst, "delayLevel", int64(h.DelayLevel))
	dst = appendOptStr(dst, "originMsgId", h.OriginMsgID)
	dst = appendOptStr(dst, "originTopic", h.OriginTopic)
	dst = appendBool(dst, "unitMode", h.UnitMode)
	dst = appendOptInt32(dst, "maxReconsumeTimes", h.MaxReconsumeTimes)
	return h.RPC.appendFields(dst)
}

func (h *ConsumerSendMsgBackRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "send-back request header"}
	h.Offset = r.i64("offset", true)
	h.Group = r.str("group", true)
	h.DelayLevel = r.i32("delayLevel", true)
	h.OriginMsgID = r.str("originMsgId", false)
	h.OriginTopic = r.str("originTopic", false)
	h.UnitMode = r.boolean("unitMode")
	h.MaxReconsumeTimes = r.optI32("maxReconsumeTimes")
	h.RPC.decode(&r)
	return r.err
}
