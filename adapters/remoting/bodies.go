package remoting

import (
	"encoding/json"

	"github.com/rmqproxy/rmqproxy/domain"
)

// DecodeJSONBody decodes a JSON body as fastjson writes it into v
// (encoding/json rules and struct tags): unquoted map keys such as
// {0:"127.0.0.1:10911"} and object keys are turned into strings first
// (an object key keeps its compact JSON text). A malformed body is a
// *DecodeError.
func DecodeJSONBody(body []byte, v any) error {
	norm, err := NormalizeJSON(body)
	if err != nil {
		return &DecodeError{What: "JSON body", Reason: "malformed", Err: err}
	}
	if err := json.Unmarshal(norm, v); err != nil {
		return &DecodeError{What: "JSON body", Reason: "does not fit the expected shape", Err: err}
	}
	return nil
}

// EncodeJSONBody encodes v as standard JSON (what Java's fastjson reads).
func EncodeJSONBody(v any) ([]byte, error) { return json.Marshal(v) }

// NormalizeJSON rewrites fastjson output as standard JSON: every object key
// that is not a string (a number, an identifier, an object or an array)
// becomes a string holding its text. Strings and other values are copied
// as they are. It fails on anything that is not one JSON value, and on
// nesting deeper than 64.
func NormalizeJSON(b []byte) ([]byte, error) {
	p := jsonScanner{s: string(b)}
	out := make([]byte, 0, len(b)+16)
	out, err := normalizeValue(&p, out, 0)
	if err != nil {
		return nil, err
	}
	if p.peek() != 0 {
		return nil, p.err("data after the JSON value")
	}
	return out, nil
}

func normalizeValue(p *jsonScanner, out []byte, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return nil, p.err("JSON nested deeper than 64")
	}
	switch open := p.peek(); open {
	case '"':
		return copyJSONString(p, out)
	case '{', '[':
		end, expected := byte('}'), "expected ',' or '}'"
		if open == '[' {
			end, expected = ']', "expected ',' or ']'"
		}
		p.i++
		out = append(out, open)
		if p.peek() == end {
			p.i++
			return append(out, end), nil
		}
		for {
			var err error
			if open == '{' {
				if out, err = normalizeKey(p, out, depth); err != nil {
					return nil, err
				}
			}
			if out, err = normalizeValue(p, out, depth+1); err != nil {
				return nil, err
			}
			switch p.peek() {
			case ',':
				p.i++
				out = append(out, ',')
			case end:
				p.i++
				return append(out, end), nil
			default:
				return nil, p.err(expected)
			}
		}
	}
	lit, err := p.literal()
	if err != nil {
		return nil, err
	}
	return append(out, lit...), nil
}

// normalizeKey copies an object key as a JSON string, and the ':' after it.
func normalizeKey(p *jsonScanner, out []byte, depth int) ([]byte, error) {
	var err error
	if p.peek() == '"' {
		if out, err = copyJSONString(p, out); err != nil {
			return nil, err
		}
	} else {
		k, err := p.key(depth)
		if err != nil {
			return nil, err
		}
		if k[0] == '{' || k[0] == '[' {
			// Compact an object key so that equal keys compare equal.
			var c []byte
			if c, err = NormalizeJSON([]byte(k)); err != nil {
				return nil, err
			}
			k = string(c)
		}
		out = appendJSONString(out, k)
	}
	if err := p.expect(':'); err != nil {
		return nil, err
	}
	return append(out, ':'), nil
}

// copyJSONString copies the string at p as it is written.
func copyJSONString(p *jsonScanner, out []byte) ([]byte, error) {
	start := p.i
	if _, err := p.str(); err != nil {
		return nil, err
	}
	return append(out, p.s[start:p.i]...), nil
}

// QueueData is one broker's queues of a topic in a route.
type QueueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int32  `json:"readQueueNums"`
	WriteQueueNums int32  `json:"writeQueueNums"`
	Perm           int32  `json:"perm"` // Perm* bits
	TopicSysFlag   int32  `json:"topicSysFlag"`
}

// MasterID is the broker id of a master in BrokerAddrs.
const MasterID = 0

// BrokerData is one broker group (master and slaves) in a route.
type BrokerData struct {
	Cluster            string           `json:"cluster"`
	BrokerName         string           `json:"brokerName"`
	BrokerAddrs        map[int64]string `json:"brokerAddrs"` // broker id → "host:port"; MasterID is the master
	EnableActingMaster bool             `json:"enableActingMaster"`
	ZoneName           string           `json:"zoneName,omitempty"`
}

// TopicRouteData is the body of a GET_ROUTEINFO_BY_TOPIC answer.
type TopicRouteData struct {
	OrderTopicConf            string                     `json:"orderTopicConf,omitempty"`
	QueueDatas                []QueueData                `json:"queueDatas"`
	BrokerDatas               []BrokerData               `json:"brokerDatas"`
	FilterServerTable         map[string][]string        `json:"filterServerTable,omitempty"`
	TopicQueueMappingByBroker map[string]json.RawMessage `json:"topicQueueMappingByBroker,omitempty"`
}

// ClusterInfo is the body of a GET_BROKER_CLUSTER_INFO answer.
type ClusterInfo struct {
	BrokerAddrTable  map[string]BrokerData `json:"brokerAddrTable"`
	ClusterAddrTable map[string][]string   `json:"clusterAddrTable"`
}

// Consume types, message models and consume-from values of HeartbeatData.
const (
	ConsumeActively  = "CONSUME_ACTIVELY" // pull
	ConsumePassively = "CONSUME_PASSIVELY"
	ConsumePop       = "CONSUME_POP"

	MessageModelClustering   = "CLUSTERING"
	MessageModelBroadcasting = "BROADCASTING"

	ConsumeFromLastOffset  = "CONSUME_FROM_LAST_OFFSET"
	ConsumeFromFirstOffset = "CONSUME_FROM_FIRST_OFFSET"
	ConsumeFromTimestamp   = "CONSUME_FROM_TIMESTAMP"

	ExpressionTag   = "TAG"
	ExpressionSQL92 = "SQL92"
)

// SubscriptionData is one topic subscription of a consumer group.
type SubscriptionData struct {
	ClassFilterMode   bool     `json:"classFilterMode"`
	Topic             string   `json:"topic"`
	SubString         string   `json:"subString"` // "*", "TagA || TagB" or SQL92
	TagsSet           []string `json:"tagsSet"`
	CodeSet           []int32  `json:"codeSet"` // Java String.hashCode of each tag (see [TagHashCode])
	SubVersion        int64    `json:"subVersion"`
	ExpressionType    string   `json:"expressionType"`
	FilterClassSource string   `json:"filterClassSource,omitempty"`
}

// ProducerData names a producer group in a heartbeat.
type ProducerData struct {
	GroupName string `json:"groupName"`
}

// ConsumerData describes a consumer group in a heartbeat.
type ConsumerData struct {
	GroupName           string             `json:"groupName"`
	ConsumeType         string             `json:"consumeType"`
	MessageModel        string             `json:"messageModel"`
	ConsumeFromWhere    string             `json:"consumeFromWhere"`
	SubscriptionDataSet []SubscriptionData `json:"subscriptionDataSet"`
	UnitMode            bool               `json:"unitMode"`
}

// HeartbeatData is the body of HEART_BEAT.
type HeartbeatData struct {
	ClientID             string         `json:"clientID"`
	ProducerDataSet      []ProducerData `json:"producerDataSet"`
	ConsumerDataSet      []ConsumerData `json:"consumerDataSet"`
	HeartbeatFingerprint int32          `json:"heartbeatFingerprint"`
	WithoutSub           bool           `json:"withoutSub"`
}

// ConsumerListBody is the body of a GET_CONSUMER_LIST_BY_GROUP answer.
type ConsumerListBody struct {
	ConsumerIDList []string `json:"consumerIdList"`
}

// MessageQueue names one queue of a topic on a broker.
type MessageQueue struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int32  `json:"queueId"`
}

// LockBatchRequestBody is the body of LOCK_BATCH_MQ and UNLOCK_BATCH_MQ.
type LockBatchRequestBody struct {
	ConsumerGroup  string         `json:"consumerGroup"`
	ClientID       string         `json:"clientId"`
	OnlyThisBroker bool           `json:"onlyThisBroker"`
	MQSet          []MessageQueue `json:"mqSet"`
}

// LockBatchResponseBody is the body of a LOCK_BATCH_MQ answer.
type LockBatchResponseBody struct {
	LockOKMQSet []MessageQueue `json:"lockOKMQSet"`
}

// TopicConfig is a topic's config on a broker (the GET_TOPIC_CONFIG answer
// body; upstream adds a "mappingDetail" for static topics, ignored here).
type TopicConfig struct {
	TopicName       string            `json:"topicName"`
	ReadQueueNums   int32             `json:"readQueueNums"`
	WriteQueueNums  int32             `json:"writeQueueNums"`
	Perm            int32             `json:"perm"`
	TopicFilterType string            `json:"topicFilterType"`
	TopicSysFlag    int32             `json:"topicSysFlag"`
	Order           bool              `json:"order"`
	Attributes      map[string]string `json:"attributes"` // e.g. "message.type": "FIFO"
}

// TopicAttributeMessageType is the topic attribute naming its message type.
const TopicAttributeMessageType = "message.type"

// SimpleSubscriptionData is a subscription stored in a group config.
type SimpleSubscriptionData struct {
	Topic          string `json:"topic"`
	ExpressionType string `json:"expressionType"`
	Expression     string `json:"expression"`
	Version        int64  `json:"version"`
}

// SubscriptionGroupConfig is a consumer group's config on a broker (body of
// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP and of the GET_SUBSCRIPTIONGROUP_CONFIG
// answer). Use [NewSubscriptionGroupConfig] for upstream's defaults.
type SubscriptionGroupConfig struct {
	GroupName                      string                   `json:"groupName"`
	ConsumeEnable                  bool                     `json:"consumeEnable"`
	ConsumeFromMinEnable           bool                     `json:"consumeFromMinEnable"`
	ConsumeBroadcastEnable         bool                     `json:"consumeBroadcastEnable"`
	ConsumeMessageOrderly          bool                     `json:"consumeMessageOrderly"`
	RetryQueueNums                 int32                    `json:"retryQueueNums"`
	RetryMaxTimes                  int32                    `json:"retryMaxTimes"`
	BrokerID                       int64                    `json:"brokerId"`
	WhichBrokerWhenConsumeSlowly   int64                    `json:"whichBrokerWhenConsumeSlowly"`
	NotifyConsumerIdsChangedEnable bool                     `json:"notifyConsumerIdsChangedEnable"`
	GroupSysFlag                   int32                    `json:"groupSysFlag"`
	ConsumeTimeoutMinute           int32                    `json:"consumeTimeoutMinute"`
	SubscriptionDataSet            []SimpleSubscriptionData `json:"subscriptionDataSet,omitempty"`
	Attributes                     map[string]string        `json:"attributes,omitempty"`
	// GroupRetryPolicy is what the Apache proxy pushes to gRPC consumers
	// as their backoff policy; nil means upstream's default (customized,
	// 1s 5s 10s 30s 1m ... 2h).
	GroupRetryPolicy *GroupRetryPolicy `json:"groupRetryPolicy,omitempty"`
}

// Group retry policy types.
const (
	RetryPolicyCustomized  = "CUSTOMIZED"
	RetryPolicyExponential = "EXPONENTIAL"
)

// GroupRetryPolicy is a consumer group's retry policy: Type selects which
// of the two policies applies (CUSTOMIZED when empty).
type GroupRetryPolicy struct {
	Type                   string                  `json:"type"`
	ExponentialRetryPolicy *ExponentialRetryPolicy `json:"exponentialRetryPolicy,omitempty"`
	CustomizedRetryPolicy  *CustomizedRetryPolicy  `json:"customizedRetryPolicy,omitempty"`
}

// ExponentialRetryPolicy waits Initial*Multiplier^n ms, at most Max ms.
// Upstream's defaults are 5 s, 2 h and 2 (the multiplier is an integer).
type ExponentialRetryPolicy struct {
	Initial    int64 `json:"initial"`
	Max        int64 `json:"max"`
	Multiplier int64 `json:"multiplier"`
}

// CustomizedRetryPolicy lists the waits in ms.
type CustomizedRetryPolicy struct {
	Next []int64 `json:"next"`
}

// TopicConfigWrapper is the body of a GET_ALL_TOPIC_CONFIG answer (upstream
// TopicConfigAndMappingSerializeWrapper; only the topic table is modelled).
type TopicConfigWrapper struct {
	TopicConfigTable map[string]TopicConfig `json:"topicConfigTable"`
}

// SubscriptionGroupWrapper is the body of a GET_ALL_SUBSCRIPTIONGROUP_CONFIG
// answer (only the group table is modelled).
type SubscriptionGroupWrapper struct {
	SubscriptionGroupTable map[string]SubscriptionGroupConfig `json:"subscriptionGroupTable"`
}

// TopicList is the body of a GET_ALL_TOPIC_LIST_FROM_NAMESERVER answer.
type TopicList struct {
	TopicList  []string `json:"topicList"`
	BrokerAddr string   `json:"brokerAddr,omitempty"`
}

// KVTable is the body of a GET_KVLIST_BY_NAMESPACE answer: one namespace
// of a NameServer's KV config.
type KVTable struct {
	Table map[string]string `json:"table"`
}

// OffsetWrapper is one queue of a consume-stats answer.
type OffsetWrapper struct {
	BrokerOffset   int64 `json:"brokerOffset"`
	ConsumerOffset int64 `json:"consumerOffset"`
	PullOffset     int64 `json:"pullOffset"`
	LastTimestamp  int64 `json:"lastTimestamp"`
}

// ConsumeStats is the body of a GET_CONSUME_STATS answer. Its offset table
// is keyed by MessageQueue objects, which fastjson writes as object keys;
// [DecodeJSONBody] turns each into its compact JSON text, which
// [ParseMessageQueueKey] reads back.
type ConsumeStats struct {
	OffsetTable map[string]OffsetWrapper `json:"offsetTable"`
	ConsumeTps  float64                  `json:"consumeTps"`
}

// ResetOffsetBody is a broker's answer to INVOKE_BROKER_TO_RESET_OFFSET:
// the new offset of each queue it reset, keyed by MessageQueue objects
// (see [ConsumeStats]).
type ResetOffsetBody struct {
	OffsetTable map[string]int64 `json:"offsetTable"`
}

// ParseMessageQueueKey decodes an offset-table key of [ConsumeStats] or
// [ResetOffsetBody].
func ParseMessageQueueKey(key string) (MessageQueue, error) {
	var mq MessageQueue
	if err := json.Unmarshal([]byte(key), &mq); err != nil {
		return mq, &DecodeError{What: "message queue key", Reason: "malformed", Err: err}
	}
	return mq, nil
}

// NewSubscriptionGroupConfig returns a group config with upstream's
// defaults (consume enabled, 1 retry queue, 16 retries, 15 minutes).
func NewSubscriptionGroupConfig(group string) SubscriptionGroupConfig {
	return SubscriptionGroupConfig{GroupName: group, ConsumeEnable: true, ConsumeFromMinEnable: true,
		ConsumeBroadcastEnable: true, RetryQueueNums: 1, RetryMaxTimes: 16, BrokerID: MasterID,
		WhichBrokerWhenConsumeSlowly: 1, NotifyConsumerIdsChangedEnable: true, ConsumeTimeoutMinute: 15}
}

// Keys of ConsumerRunningInfo.Properties that upstream's tools read.
const (
	RunningInfoConsumeType    = "PROP_CONSUME_TYPE"
	RunningInfoConsumeOrderly = "PROP_CONSUMEORDERLY"
	RunningInfoClientVersion  = "PROP_CLIENT_VERSION"
	RunningInfoStartTimestamp = "PROP_CONSUMER_START_TIMESTAMP"
	RunningInfoNameServerAddr = "PROP_NAMESERVER_ADDR"
	RunningInfoThreadPoolCore = "PROP_THREADPOOL_CORE_SIZE"
)

// ConsumerRunningInfo is the body of a GET_CONSUMER_RUNNING_INFO answer.
// Only the parts a proxy can know are modelled; upstream's per-queue tables
// (keyed by MessageQueue objects) are left out.
type ConsumerRunningInfo struct {
	Properties       map[string]string  `json:"properties"`
	SubscriptionSet  []SubscriptionData `json:"subscriptionSet"`
	StatusTable      map[string]any     `json:"statusTable,omitempty"`
	UserConsumerInfo map[string]string  `json:"userConsumerInfo,omitempty"`
	JStack           string             `json:"jstack,omitempty"`
}

// TagHashCode returns Java's String.hashCode of tag (UTF-16 code units, see
// [domain.JavaStringHash]), the codeSet entry of a subscribed tag.
func TagHashCode(tag string) int32 {
	return domain.JavaStringHash(tag)
}

// Consume results of a [ConsumeMessageDirectlyResult] (upstream's CMResult;
// Java tools read the name).
const (
	CMResultSuccess        = "CR_SUCCESS"
	CMResultLater          = "CR_LATER"
	CMResultRollback       = "CR_ROLLBACK"
	CMResultCommit         = "CR_COMMIT"
	CMResultThrowException = "CR_THROW_EXCEPTION"
	CMResultReturnNull     = "CR_RETURN_NULL"
)

// ConsumeMessageDirectlyResult is the body of a CONSUME_MESSAGE_DIRECTLY
// answer: how the consumer's listener took the message. ConsumeResult is a
// CMResult* name; SpentTimeMills (upstream's spelling) the time it took.
type ConsumeMessageDirectlyResult struct {
	Order          bool   `json:"order"`
	AutoCommit     bool   `json:"autoCommit"`
	ConsumeResult  string `json:"consumeResult,omitempty"`
	Remark         string `json:"remark,omitempty"`
	SpentTimeMills int64  `json:"spentTimeMills"`
}

// BatchAckMessageRequestBody is the body of BATCH_ACK_MESSAGE: acks of
// several pop checkpoints on one broker in one request. Brokers answer one
// code for the whole body.
type BatchAckMessageRequestBody struct {
	BrokerName string     `json:"brokerName"`
	Acks       []BatchAck `json:"acks"`
}

// BatchAck acks offsets of one pop checkpoint (one queue, one pop). The
// field names are upstream's short JSON names; Offsets is the Java BitSet
// of the acked offsets relative to StartOffset, in BitSet.toByteArray form
// (bit i of byte j is offset StartOffset+8j+i), which fastjson writes as
// base64 just as encoding/json writes a []byte.
type BatchAck struct {
	ConsumerGroup string `json:"c"`
	// Topic is the topic the consumer popped; Retry says whether the
	// checkpoint is of its pop retry topic (a RetryFlag* value).
	Topic         string `json:"t"`
	Retry         string `json:"r"`
	StartOffset   int64  `json:"so"`
	QueueID       int32  `json:"q"`
	ReviveQueueID int32  `json:"rq"`
	PopTime       int64  `json:"pt"`
	InvisibleTime int64  `json:"it"`
	Offsets       []byte `json:"b"`
}

// maxBatchAckSpan bounds how far past StartOffset an offset in a BatchAck
// may lie: brokers read the set as a Java BitSet indexed by int, and 1 MiB
// of bits is far beyond any pop batch (at most 32 messages upstream).
const maxBatchAckSpan = 8 << 20

// InBatchAckSpan reports whether a BatchAck of a checkpoint starting at
// startOffset can hold queueOffset: not before it, and not too far past it
// to be one of its offsets.
func InBatchAckSpan(startOffset, queueOffset int64) bool {
	d := queueOffset - startOffset
	return d >= 0 && d < maxBatchAckSpan
}

// Ack adds queueOffset to the set; it reports false when the offset is not
// in the checkpoint's span (InBatchAckSpan).
func (a *BatchAck) Ack(queueOffset int64) bool {
	if !InBatchAckSpan(a.StartOffset, queueOffset) {
		return false
	}
	i := int(queueOffset - a.StartOffset)
	for len(a.Offsets) <= i/8 {
		a.Offsets = append(a.Offsets, 0)
	}
	a.Offsets[i/8] |= 1 << (i % 8)
	return true
}

// AckedOffsets returns the queue offsets in the set, in ascending order.
func (a *BatchAck) AckedOffsets() []int64 {
	var out []int64
	for j, by := range a.Offsets {
		for i := range 8 {
			if by&(1<<i) != 0 {
				out = append(out, a.StartOffset+int64(j*8+i))
			}
		}
	}
	return out
}
