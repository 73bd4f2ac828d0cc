package remoting

// GetRouteInfoRequestHeader asks a NameServer for a topic's route
// (GET_ROUTEINFO_BY_TOPIC).
type GetRouteInfoRequestHeader struct {
	RPC
	Topic string // required
	// AcceptStandardJSONOnly asks for quoted map keys in the route body;
	// rmqproxy always sets it (and sends a version that implies it).
	AcceptStandardJSONOnly bool
}

func (h *GetRouteInfoRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendOptBool(dst, "acceptStandardJsonOnly", h.AcceptStandardJSONOnly)
	return h.RPC.appendFields(dst)
}

func (h *GetRouteInfoRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "route request header"}
	h.Topic = r.str("topic", true)
	h.AcceptStandardJSONOnly = r.boolean("acceptStandardJsonOnly")
	h.RPC.decode(&r)
	return r.err
}

// Topic permission bits (PermName).
const (
	PermPriority int32 = 1 << 3
	PermRead     int32 = 1 << 2
	PermWrite    int32 = 1 << 1
	PermInherit  int32 = 1 << 0
)

// Topic attribute "message.type" values, as upstream's TopicMessageType
// names them; CreateTopicRequestHeader.Attributes carries them as
// "+message.type=FIFO".
const (
	MessageTypeNormal      = "NORMAL"
	MessageTypeFIFO        = "FIFO"
	MessageTypeDelay       = "DELAY"
	MessageTypeTransaction = "TRANSACTION"
	MessageTypeMixed       = "MIXED"
)

// CreateTopicRequestHeader creates or updates a topic on one broker
// (UPDATE_AND_CREATE_TOPIC).
type CreateTopicRequestHeader struct {
	RPC
	Topic           string // required
	DefaultTopic    string // required; Java tools send "TBW102"
	ReadQueueNums   int32  // required
	WriteQueueNums  int32  // required
	Perm            int32  // required; Perm* bits, usually PermRead|PermWrite
	TopicFilterType string // required; "SINGLE_TAG"
	TopicSysFlag    int32
	Order           bool
	// Attributes is upstream's attribute string: comma-separated
	// "+key=value" (set) and "-key" (delete) entries, e.g.
	// "+message.type=FIFO" (see [FormatAttributes]).
	Attributes string
	Force      bool
}

func (h *CreateTopicRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendStr(dst, "defaultTopic", h.DefaultTopic)
	dst = appendInt(dst, "readQueueNums", int64(h.ReadQueueNums))
	dst = appendInt(dst, "writeQueueNums", int64(h.WriteQueueNums))
	dst = appendInt(dst, "perm", int64(h.Perm))
	dst = appendStr(dst, "topicFilterType", h.TopicFilterType)
	dst = appendInt(dst, "topicSysFlag", int64(h.TopicSysFlag))
	dst = appendBool(dst, "order", h.Order)
	dst = appendOptStr(dst, "attributes", h.Attributes)
	dst = appendBool(dst, "force", h.Force)
	return h.RPC.appendFields(dst)
}

func (h *CreateTopicRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "create topic request header"}
	h.Topic = r.str("topic", true)
	h.DefaultTopic = r.str("defaultTopic", true)
	h.ReadQueueNums = r.i32("readQueueNums", true)
	h.WriteQueueNums = r.i32("writeQueueNums", true)
	h.Perm = r.i32("perm", true)
	h.TopicFilterType = r.str("topicFilterType", true)
	h.TopicSysFlag = r.i32("topicSysFlag", false)
	h.Order = r.boolean("order")
	h.Attributes = r.str("attributes", false)
	h.Force = r.boolean("force")
	h.RPC.decode(&r)
	return r.err
}

// TopicRequestHeader names a topic: DELETE_TOPIC_IN_BROKER, GET_TOPIC_CONFIG,
// GET_TOPIC_STATS_INFO and (with ClusterName) DELETE_TOPIC_IN_NAMESRV.
type TopicRequestHeader struct {
	RPC
	Topic       string // required
	ClusterName string // DELETE_TOPIC_IN_NAMESRV only; empty = every cluster
}

func (h *TopicRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendOptStr(dst, "clusterName", h.ClusterName)
	return h.RPC.appendFields(dst)
}

func (h *TopicRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "topic request header"}
	h.Topic = r.str("topic", true)
	h.ClusterName = r.str("clusterName", false)
	h.RPC.decode(&r)
	return r.err
}

// DeleteSubscriptionGroupRequestHeader deletes a group on one broker
// (DELETE_SUBSCRIPTIONGROUP).
type DeleteSubscriptionGroupRequestHeader struct {
	RPC
	GroupName   string // required
	CleanOffset bool
}

func (h *DeleteSubscriptionGroupRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "groupName", h.GroupName)
	dst = appendBool(dst, "cleanOffset", h.CleanOffset)
	return h.RPC.appendFields(dst)
}

func (h *DeleteSubscriptionGroupRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "delete subscription group request header"}
	h.GroupName = r.str("groupName", true)
	h.CleanOffset = r.boolean("cleanOffset")
	h.RPC.decode(&r)
	return r.err
}

// GetSubscriptionGroupConfigRequestHeader reads one group's config
// (GET_SUBSCRIPTIONGROUP_CONFIG); the answer's body is a
// [SubscriptionGroupConfig].
type GetSubscriptionGroupConfigRequestHeader struct {
	RPC
	Group string // required
}

func (h *GetSubscriptionGroupConfigRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "group", h.Group)
	return h.RPC.appendFields(dst)
}

func (h *GetSubscriptionGroupConfigRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "get subscription group config request header"}
	h.Group = r.str("group", true)
	h.RPC.decode(&r)
	return r.err
}

// GetConsumeStatsRequestHeader asks a broker for a consumer group's
// offsets (GET_CONSUME_STATS); an empty topic means every topic the group
// has offsets for.
type GetConsumeStatsRequestHeader struct {
	RPC
	ConsumerGroup string // required
	Topic         string
}

func (h *GetConsumeStatsRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "consumerGroup", h.ConsumerGroup)
	dst = appendOptStr(dst, "topic", h.Topic)
	return h.RPC.appendFields(dst)
}

func (h *GetConsumeStatsRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "get consume stats request header"}
	h.ConsumerGroup = r.str("consumerGroup", true)
	h.Topic = r.str("topic", false)
	h.RPC.decode(&r)
	return r.err
}

// ResetOffsetRequestHeader asks a broker to reset a consumer group's
// offsets on a topic's queues (INVOKE_BROKER_TO_RESET_OFFSET, as mqadmin
// resetOffsetByTime): a 5.x broker (useServerSideResetOffset, the default)
// moves every queue (QueueID -1) or one to the first offset stored at or
// after Timestamp (ms; negative: the queue's end), or to Offset when set
// for one queue, and answers the new offsets (ResetOffsetBody).
type ResetOffsetRequestHeader struct {
	RPC
	Topic     string // required
	Group     string // required
	QueueID   int32  // -1: every queue
	Offset    *int64
	Timestamp int64 // required
	Force     bool  // isForce (required)
}

func (h *ResetOffsetRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "topic", h.Topic)
	dst = appendStr(dst, "group", h.Group)
	dst = appendInt(dst, "queueId", int64(h.QueueID))
	if h.Offset != nil {
		dst = appendInt(dst, "offset", *h.Offset)
	}
	dst = appendInt(dst, "timestamp", h.Timestamp)
	dst = appendBool(dst, "isForce", h.Force)
	return h.RPC.appendFields(dst)
}

func (h *ResetOffsetRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "reset offset request header"}
	h.Topic = r.str("topic", true)
	h.Group = r.str("group", true)
	h.QueueID = -1
	if q := r.optI32("queueId"); q != nil {
		h.QueueID = *q
	}
	if _, ok := r.get("offset", false); ok {
		o := r.i64("offset", true)
		h.Offset = &o
	}
	h.Timestamp = r.i64("timestamp", true)
	h.Force = r.boolean("isForce")
	h.RPC.decode(&r)
	return r.err
}

// KVConfigRequestHeader names one entry of a NameServer's KV config: the
// header of PUT_KV_CONFIG (with Value), GET_KV_CONFIG and DELETE_KV_CONFIG
// (without). A NameServer keeps its KV config in memory and in its
// kvConfig.json; it is not shared between NameServers, so writers send it
// to each of them (as upstream's admin tools do).
type KVConfigRequestHeader struct {
	Namespace string // required
	Key       string // required
	Value     string // PUT_KV_CONFIG only (required there)
}

func (h *KVConfigRequestHeader) AppendFields(dst Fields) Fields {
	dst = appendStr(dst, "namespace", h.Namespace)
	dst = appendStr(dst, "key", h.Key)
	return appendOptStr(dst, "value", h.Value)
}

func (h *KVConfigRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "KV config request header"}
	h.Namespace = r.str("namespace", true)
	h.Key = r.str("key", true)
	h.Value = r.str("value", false)
	return r.err
}

// KVConfigResponseHeader is the header of a GET_KV_CONFIG answer; a
// NameServer without the entry answers QUERY_NOT_FOUND instead.
type KVConfigResponseHeader struct {
	Value string
}

func (h *KVConfigResponseHeader) AppendFields(dst Fields) Fields {
	return appendOptStr(dst, "value", h.Value)
}

func (h *KVConfigResponseHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "KV config response header"}
	h.Value = r.str("value", false)
	return r.err
}

// KVNamespaceRequestHeader asks a NameServer for every entry of one KV
// config namespace (GET_KVLIST_BY_NAMESPACE); the answer's body is a
// [KVTable], or the code is QUERY_NOT_FOUND when the NameServer never had
// the namespace.
type KVNamespaceRequestHeader struct {
	Namespace string // required
}

func (h *KVNamespaceRequestHeader) AppendFields(dst Fields) Fields {
	return appendStr(dst, "namespace", h.Namespace)
}

func (h *KVNamespaceRequestHeader) DecodeFields(f Fields) error {
	r := fieldReader{f: f, what: "KV namespace request header"}
	h.Namespace = r.str("namespace", true)
	return r.err
}
