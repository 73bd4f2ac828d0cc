package remoting

import "strings"

// Pull request sysFlag bits (PullSysFlag).
const (
	PullCommitOffset int32 = 1 << 0
	PullSuspend      int32 = 1 << 1 // long polling
	PullSubscription int32 = 1 << 2 // subscription in the header
	PullClassFilter  int32 = 1 << 3
	PullLitePull     int32 = 1 << 4
)

// PullMessageRequestHeader asks for messages of one queue from an offset
// (PULL_MESSAGE, LITE_PULL_MESSAGE).
type PullMessageRequestHeader struct {
	RPC
	ConsumerGroup        string // required
	Topic                string // required
	QueueID              int32  // required
	QueueOffset          int64  // required
	MaxMsgNums           int32  // required
	SysFlag              int32  // required: Pull* bits
	CommitOffset         int64  // required
	SuspendTimeoutMillis int64  // required: how long the broker may hold the request
	Subscription         string // "TagA || TagB", "*", or SQL92 text
	SubVersion           int64  // required
	ExpressionType       string // "TAG" or "SQL92"
	MaxMsgBytes          *int32
	RequestSource        *int32
	ProxyForwardClientID string // upstream spells the key "proxyFrowardClientId"
}

func (h *PullMessageRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendInt(dst, "queueOffset", h.QueueOffset)
	dst = appendInt(dst, "maxMsgNums", int64(h.MaxMsgNums))
	dst = appendInt(dst, "sysFlag", int64(h.SysFlag))
	dst = appendInt(dst, "commitOffset", h.CommitOffset)
	dst = appendInt(dst, "suspendTimeoutMillis", h.SuspendTimeoutMillis)
	dst = appendOptStr(dst, "subscription", h.Subscription)
	dst = appendInt(dst, "subVersion", h.SubVersion)
	dst = appendOptStr(dst, "expressionType", h.ExpressionType)
	dst = appendOptInt32(dst, "maxMsgBytes", h.MaxMsgBytes)
	dst = appendOptInt32(dst, "requestSource", h.RequestSource)
	dst = appendOptStr(dst, "proxyFrowardClientId", h.ProxyForwardClientID)
	return h.RPC.appendFields(dst)
}

func (h *PullMessageRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "pull request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	h.QueueOffset = r.i64("queueOffset", true)
	h.MaxMsgNums = r.i32("maxMsgNums", true)
	h.SysFlag = r.i32("sysFlag", true)
	h.CommitOffset = r.i64("commitOffset", true)
	h.SuspendTimeoutMillis = r.i64("suspendTimeoutMillis", true)
	h.Subscription = r.str("subscription", false)
	h.SubVersion = r.i64("subVersion", true)
	h.ExpressionType = r.str("expressionType", false)
	h.MaxMsgBytes = r.optI32("maxMsgBytes")
	h.RequestSource = r.optI32("requestSource")
	h.ProxyForwardClientID = r.str("proxyFrowardClientId", false)
	h.RPC.decode(&r)
	return r.err
}

// PullMessageResponseHeader answers a pull (codes SUCCESS, PULL_NOT_FOUND,
// PULL_RETRY_IMMEDIATELY, PULL_OFFSET_MOVED all carry it).
type PullMessageResponseHeader struct {
	SuggestWhichBrokerID int64 // required: 0 = master
	NextBeginOffset      int64 // required
	MinOffset            int64 // required
	MaxOffset            int64 // required
	OffsetDelta          *int64
	TopicSysFlag         int32
	GroupSysFlag         int32
	ForbiddenType        int32
}

func (h *PullMessageResponseHeader) AppendFields(dst Fields) Fields {
	dst = appendInt(dst, "suggestWhichBrokerId", h.SuggestWhichBrokerID)
	dst = appendInt(dst, "nextBeginOffset", h.NextBeginOffset)
	dst = appendInt(dst, "minOffset", h.MinOffset)
	dst = appendInt(dst, "maxOffset", h.MaxOffset)
	if h.OffsetDelta != nil {
		dst = appendInt(dst, "offsetDelta", *h.OffsetDelta)
	}
	dst = appendInt(dst, "topicSysFlag", int64(h.TopicSysFlag))
	dst = appendInt(dst, "groupSysFlag", int64(h.GroupSysFlag))
	return appendInt(dst, "forbiddenType", int64(h.ForbiddenType))
}

func (h *PullMessageResponseHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "pull response header"}
	h.SuggestWhichBrokerID = r.i64("suggestWhichBrokerId", true)
	h.NextBeginOffset = r.i64("nextBeginOffset", true)
	h.MinOffset = r.i64("minOffset", true)
	h.MaxOffset = r.i64("maxOffset", true)
	if _, ok := f.Get("offsetDelta"); ok {
		v := r.i64("offsetDelta", false)
		h.OffsetDelta = &v
	}
	h.TopicSysFlag = r.i32("topicSysFlag", false)
	h.GroupSysFlag = r.i32("groupSysFlag", false)
	h.ForbiddenType = r.i32("forbiddenType", false)
	return r.err
}

// Consume init modes of a pop request for a group without an offset.
const (
	InitModeMin int32 = 0 // from the queue's minimum offset
	InitModeMax int32 = 1 // from its maximum offset
)

// PopMessageRequestHeader pops messages of a topic (POP_MESSAGE; JSON
// headers only: the code does not fit the binary header).
type PopMessageRequestHeader struct {
	RPC
	ConsumerGroup string // required
	Topic         string // required
	QueueID       int32  // required; -1 = any queue of the broker
	MaxMsgNums    int32  // required
	InvisibleTime int64  // required; ms
	PollTime      int64  // required; long-poll ms
	BornTime      int64  // required; ms
	InitMode      int32  // required; InitModeMin or InitModeMax
	ExpType       string // "TAG" or "SQL92"
	Exp           string
	Order         bool // orderly pop (FIFO)
	AttemptID     string
}

func (h *PopMessageRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendInt(dst, "maxMsgNums", int64(h.MaxMsgNums))
	dst = appendInt(dst, "invisibleTime", h.InvisibleTime)
	dst = appendInt(dst, "pollTime", h.PollTime)
	dst = appendInt(dst, "bornTime", h.BornTime)
	dst = appendInt(dst, "initMode", int64(h.InitMode))
	dst = appendOptStr(dst, "expType", h.ExpType)
	dst = appendOptStr(dst, "exp", h.Exp)
	dst = appendBool(dst, "order", h.Order)
	dst = appendOptStr(dst, "attemptId", h.AttemptID)
	return h.RPC.appendFields(dst)
}

func (h *PopMessageRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "pop request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	h.MaxMsgNums = r.i32("maxMsgNums", true)
	h.InvisibleTime = r.i64("invisibleTime", true)
	h.PollTime = r.i64("pollTime", true)
	h.BornTime = r.i64("bornTime", true)
	h.InitMode = r.i32("initMode", true)
	h.ExpType = r.str("expType", false)
	h.Exp = r.str("exp", false)
	h.Order = r.boolean("order")
	h.AttemptID = r.str("attemptId", false)
	h.RPC.decode(&r)
	return r.err
}

// PopMessageResponseHeader answers a pop; the *Info strings let the client
// build each message's checkpoint (see [PopCheckpoints]).
type PopMessageResponseHeader struct {
	PopTime         int64 // required
	InvisibleTime   int64 // required
	ReviveQid       int32 // required; 999 = orderly pop
	RestNum         int64 // required
	StartOffsetInfo string
	MsgOffsetInfo   string
	OrderCountInfo  string
}

func (h *PopMessageResponseHeader) AppendFields(dst Fields) Fields {
	dst = appendInt(dst, "popTime", h.PopTime)
	dst = appendInt(dst, "invisibleTime", h.InvisibleTime)
	dst = appendInt(dst, "reviveQid", int64(h.ReviveQid))
	dst = appendInt(dst, "restNum", h.RestNum)
	dst = appendOptStr(dst, "startOffsetInfo", h.StartOffsetInfo)
	dst = appendOptStr(dst, "msgOffsetInfo", h.MsgOffsetInfo)
	return appendOptStr(dst, "orderCountInfo", h.OrderCountInfo)
}

func (h *PopMessageResponseHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "pop response header"}
	h.PopTime = r.i64("popTime", true)
	h.InvisibleTime = r.i64("invisibleTime", true)
	h.ReviveQid = r.i32("reviveQid", true)
	h.RestNum = r.i64("restNum", true)
	h.StartOffsetInfo = r.str("startOffsetInfo", false)
	h.MsgOffsetInfo = r.str("msgOffsetInfo", false)
	h.OrderCountInfo = r.str("orderCountInfo", false)
	return r.err
}

// AckMessageRequestHeader acknowledges one popped message (ACK_MESSAGE).
type AckMessageRequestHeader struct {
	RPC
	ConsumerGroup string // required
	Topic         string // required
	QueueID       int32  // required
	ExtraInfo     string // required: the message's checkpoint (POP_CK)
	Offset        int64  // required: the message's queue offset
}

func (h *AckMessageRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendStr(dst, "extraInfo", h.ExtraInfo)
	dst = appendInt(dst, "offset", h.Offset)
	return h.RPC.appendFields(dst)
}

func (h *AckMessageRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "ack request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	h.ExtraInfo = r.str("extraInfo", true)
	h.Offset = r.i64("offset", true)
	h.RPC.decode(&r)
	return r.err
}

// ChangeInvisibleTimeRequestHeader moves a popped message's next
// visibility (CHANGE_MESSAGE_INVISIBLETIME).
type ChangeInvisibleTimeRequestHeader struct {
	RPC
	ConsumerGroup string // required
	Topic         string // required
	QueueID       int32  // required
	ExtraInfo     string // required
	Offset        int64  // required
	InvisibleTime int64  // required; ms from now
}

func (h *ChangeInvisibleTimeRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendStr(dst, "extraInfo", h.ExtraInfo)
	dst = appendInt(dst, "offset", h.Offset)
	dst = appendInt(dst, "invisibleTime", h.InvisibleTime)
	return h.RPC.appendFields(dst)
}

func (h *ChangeInvisibleTimeRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "change invisible time request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	h.ExtraInfo = r.str("extraInfo", true)
	h.Offset = r.i64("offset", true)
	h.InvisibleTime = r.i64("invisibleTime", true)
	h.RPC.decode(&r)
	return r.err
}

// ChangeInvisibleTimeResponseHeader answers CHANGE_MESSAGE_INVISIBLETIME;
// the old checkpoint is dead, build the new one with [ExtraInfo.Renewed].
type ChangeInvisibleTimeResponseHeader struct {
	PopTime       int64 // required
	InvisibleTime int64 // required
	ReviveQid     int32 // required
}

func (h *ChangeInvisibleTimeResponseHeader) AppendFields(dst Fields) Fields {
	dst = appendInt(dst, "popTime", h.PopTime)
	dst = appendInt(dst, "invisibleTime", h.InvisibleTime)
	return appendInt(dst, "reviveQid", int64(h.ReviveQid))
}

func (h *ChangeInvisibleTimeResponseHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "change invisible time response header"}
	h.PopTime = r.i64("popTime", true)
	h.InvisibleTime = r.i64("invisibleTime", true)
	h.ReviveQid = r.i32("reviveQid", true)
	return r.err
}

// QueryConsumerOffsetRequestHeader reads a group's committed offset of a
// queue (QUERY_CONSUMER_OFFSET; answered with [OffsetResponseHeader], or
// QUERY_NOT_FOUND when there is none).
type QueryConsumerOffsetRequestHeader struct {
	RPC
	ConsumerGroup     string // required
	Topic             string // required
	QueueID           int32  // required
	SetZeroIfNotFound *bool
}

func (h *QueryConsumerOffsetRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	if h.SetZeroIfNotFound != nil {
		dst = appendBool(dst, "setZeroIfNotFound", *h.SetZeroIfNotFound)
	}
	return h.RPC.appendFields(dst)
}

func (h *QueryConsumerOffsetRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "query consumer offset request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	if _, ok := f.Get("setZeroIfNotFound"); ok {
		v := r.boolean("setZeroIfNotFound")
		h.SetZeroIfNotFound = &v
	}
	h.RPC.decode(&r)
	return r.err
}

// OffsetResponseHeader is the "offset" answer of QUERY_CONSUMER_OFFSET,
// GET_MAX_OFFSET, GET_MIN_OFFSET and SEARCH_OFFSET_BY_TIMESTAMP.
type OffsetResponseHeader struct {
	Offset int64 // required
}

func (h *OffsetResponseHeader) AppendFields(dst Fields) Fields {
	return appendInt(dst, "offset", h.Offset)
}

func (h *OffsetResponseHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "offset response header"}
	h.Offset = r.i64("offset", true)
	return r.err
}

// UpdateConsumerOffsetRequestHeader commits a group's offset of a queue.
type UpdateConsumerOffsetRequestHeader struct {
	RPC
	ConsumerGroup string // required
	Topic         string // required
	QueueID       int32  // required
	CommitOffset  int64  // required
}

func (h *UpdateConsumerOffsetRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendInt(dst, "commitOffset", h.CommitOffset)
	return h.RPC.appendFields(dst)
}

func (h *UpdateConsumerOffsetRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "update consumer offset request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	h.CommitOffset = r.i64("commitOffset", true)
	h.RPC.decode(&r)
	return r.err
}

// QueueOffsetRequestHeader asks for a queue's bounds: GET_MAX_OFFSET (with
// Committed; Java's default is true) or GET_MIN_OFFSET (Committed unused).
type QueueOffsetRequestHeader struct {
	RPC
	Topic     string // required
	QueueID   int32  // required
	Committed bool   // GET_MAX_OFFSET only
	max       bool
}

// GetMaxOffsetRequestHeader returns the header of GET_MAX_OFFSET.
func GetMaxOffsetRequestHeader(rpc RPC, topic string, queueID int32, committed bool) *QueueOffsetRequestHeader {
	return &QueueOffsetRequestHeader{RPC: rpc, Topic: topic, QueueID: queueID, Committed: committed, max: true}
}

// GetMinOffsetRequestHeader returns the header of GET_MIN_OFFSET.
func GetMinOffsetRequestHeader(rpc RPC, topic string, queueID int32) *QueueOffsetRequestHeader {
	return &QueueOffsetRequestHeader{RPC: rpc, Topic: topic, QueueID: queueID}
}

func (h *QueueOffsetRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	if h.max {
		dst = appendBool(dst, "committed", h.Committed)
	}
	return h.RPC.appendFields(dst)
}

// DecodeFields reads either form; a missing "committed" is true.
func (h *QueueOffsetRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "queue offset request header"}
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	v, ok := f.Get("committed")
	h.max = ok
	h.Committed = !ok || r.boolean("committed") || v == ""
	h.RPC.decode(&r)
	return r.err
}

// Boundary types of SEARCH_OFFSET_BY_TIMESTAMP.
const (
	BoundaryLower = "LOWER"
	BoundaryUpper = "UPPER"
)

// SearchOffsetRequestHeader finds a queue offset by store time.
type SearchOffsetRequestHeader struct {
	RPC
	Topic        string // required
	QueueID      int32  // required
	Timestamp    int64  // required; ms
	BoundaryType string // BoundaryLower (default) or BoundaryUpper
}

func (h *SearchOffsetRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	dst = appendInt(dst, "timestamp", h.Timestamp)
	dst = appendOptStr(dst, "boundaryType", h.BoundaryType)
	return h.RPC.appendFields(dst)
}

// DecodeFields reads the header; the boundary is matched case-insensitively
// and anything but "upper" is lower, as upstream does.
func (h *SearchOffsetRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "search offset request header"}
	h.Topic = r.str("topic", true)
	h.QueueID = r.i32("queueId", true)
	h.Timestamp = r.i64("timestamp", true)
	h.BoundaryType = BoundaryLower
	if strings.EqualFold(r.str("boundaryType", false), BoundaryUpper) {
		h.BoundaryType = BoundaryUpper
	}
	h.RPC.decode(&r)
	return r.err
}

// ConsumerGroupRequestHeader names a consumer group: GET_CONSUMER_LIST_BY_GROUP
// and NOTIFY_CONSUMER_IDS_CHANGED.
type ConsumerGroupRequestHeader struct {
	RPC
	ConsumerGroup string // required
}

func (h *ConsumerGroupRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	return h.RPC.appendFields(dst)
}

func (h *ConsumerGroupRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "consumer group request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.RPC.decode(&r)
	return r.err
}

// GetConsumerRunningInfoRequestHeader is what a broker (relaying an admin)
// asks a client (GET_CONSUMER_RUNNING_INFO); the answer's body is a
// [ConsumerRunningInfo].
type GetConsumerRunningInfoRequestHeader struct {
	RPC
	ConsumerGroup string // required
	ClientID      string // required
	JstackEnable  bool
}

func (h *GetConsumerRunningInfoRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendStr(dst, "clientId", h.ClientID)
	dst = appendBool(dst, "jstackEnable", h.JstackEnable)
	return h.RPC.appendFields(dst)
}

func (h *GetConsumerRunningInfoRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "get consumer running info request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.ClientID = r.str("clientId", true)
	h.JstackEnable = r.boolean("jstackEnable")
	h.RPC.decode(&r)
	return r.err
}

// ConsumeMessageDirectlyRequestHeader is what an admin tool sends a broker
// (CONSUME_MESSAGE_DIRECTLY: mqadmin queryMsgById with a group and client
// id) and the broker forwards to the consumer client with the message (the
// broker reads it by the offset message id MsgID) as the body, after
// setting BrokerName and, when it knows them, the topic's and the group's
// system flags. The answer's body is a [ConsumeMessageDirectlyResult].
// Upstream names it ConsumeMessageDirectlyResultRequestHeader.
type ConsumeMessageDirectlyRequestHeader struct {
	RPC
	ConsumerGroup string // required
	ClientID      string
	MsgID         string
	BrokerName    string
	Topic         string
	TopicSysFlag  *int32
	GroupSysFlag  *int32
}

func (h *ConsumeMessageDirectlyRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendOptStr(dst, "clientId", h.ClientID)
	dst = appendOptStr(dst, "msgId", h.MsgID)
	dst = appendOptStr(dst, "brokerName", h.BrokerName)
	dst = appendOptStr(dst, "topic", h.Topic)
	dst = appendOptInt32(dst, "topicSysFlag", h.TopicSysFlag)
	dst = appendOptInt32(dst, "groupSysFlag", h.GroupSysFlag)
	return h.RPC.appendFields(dst)
}

func (h *ConsumeMessageDirectlyRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "consume message directly request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.ClientID = r.str("clientId", false)
	h.MsgID = r.str("msgId", false)
	h.BrokerName = r.str("brokerName", false)
	h.Topic = r.str("topic", false)
	h.TopicSysFlag = r.optI32("topicSysFlag")
	h.GroupSysFlag = r.optI32("groupSysFlag")
	h.RPC.decode(&r)
	return r.err
}

// UnregisterClientRequestHeader says a client leaves (UNREGISTER_CLIENT).
type UnregisterClientRequestHeader struct {
	RPC
	ClientID      string // required
	ProducerGroup string
	ConsumerGroup string
}

func (h *UnregisterClientRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "clientID", h.ClientID)
	dst = appendOptStr(dst, "producerGroup", h.ProducerGroup)
	dst = appendOptStr(dst, "consumerGroup", h.ConsumerGroup)
	return h.RPC.appendFields(dst)
}

func (h *UnregisterClientRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "unregister client request header"}
	h.ClientID = r.str("clientID", true)
	h.ProducerGroup = r.str("producerGroup", false)
	h.ConsumerGroup = r.str("consumerGroup", false)
	h.RPC.decode(&r)
	return r.err
}

// RPCHeader is a header with only the inherited keys: HEART_BEAT,
// LOCK_BATCH_MQ, UNLOCK_BATCH_MQ, UPDATE_AND_CREATE_SUBSCRIPTIONGROUP.
type RPCHeader struct{ RPC }

func (h *RPCHeader) AppendFields(dst Fields) Fields { return h.RPC.appendFields(dst) }

func (h *RPCHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "request header"}
	h.RPC.decode(&r)
	return r.err
}

// ViewMessageRequestHeader reads one message by commit-log offset
// (VIEW_MESSAGE_BY_ID).
type ViewMessageRequestHeader struct {
	Topic  string
	Offset int64 // required
}

func (h *ViewMessageRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendOptStr(dst, "topic", h.Topic)
	return appendInt(dst, "offset", h.Offset)
}

func (h *ViewMessageRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "view message request header"}
	h.Topic = r.str("topic", false)
	h.Offset = r.i64("offset", true)
	return r.err
}

// QueryMessageRequestHeader looks messages up in a broker's index
// (QUERY_MESSAGE) by key, or with UniqueKey by message id (UNIQ_KEY): the
// broker then answers up to its defaultQueryMaxNum messages, in a body of
// encoded messages, or QUERY_NOT_FOUND.
type QueryMessageRequestHeader struct {
	Topic          string // required
	Key            string // required
	MaxNum         int32  // required
	BeginTimestamp int64  // required, ms
	EndTimestamp   int64  // required, ms
	// UniqueKey sends the _UNIQUE_KEY_QUERY flag: Key is a message id.
	UniqueKey bool
}

// UniqueKeyQueryFlag is the extension field of a QUERY_MESSAGE by message id.
const UniqueKeyQueryFlag = "_UNIQUE_KEY_QUERY"

func (h *QueryMessageRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendStr(dst, "key", h.Key)
	dst = appendInt(dst, "maxNum", int64(h.MaxNum))
	dst = appendInt(dst, "beginTimestamp", h.BeginTimestamp)
	dst = appendInt(dst, "endTimestamp", h.EndTimestamp)
	if h.UniqueKey {
		dst = appendStr(dst, UniqueKeyQueryFlag, "true")
	}
	return dst
}

func (h *QueryMessageRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "query message request header"}
	h.Topic = r.str("topic", true)
	h.Key = r.str("key", true)
	h.MaxNum = r.i32("maxNum", true)
	h.BeginTimestamp = r.i64("beginTimestamp", true)
	h.EndTimestamp = r.i64("endTimestamp", true)
	h.UniqueKey = r.str(UniqueKeyQueryFlag, false) == "true"
	return r.err
}
