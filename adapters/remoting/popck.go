package remoting

import (
	"strconv"
	"strings"

	"github.com/rmqproxy/rmqproxy/domain"
)

// Retry flags of a checkpoint: which topic a popped message came from.
const (
	RetryFlagNormal  = "0" // the topic itself
	RetryFlagRetryV1 = "1" // %RETRY%{group}_{topic}
	RetryFlagRetryV2 = "2" // %RETRY%{group}+{topic}
)

// OrderlyReviveQid is the revive queue id of an orderly (FIFO) pop.
const OrderlyReviveQid = 999

// Topic name prefixes (MixAll).
const (
	RetryGroupTopicPrefix = "%RETRY%"
	DLQGroupTopicPrefix   = "%DLQ%"
	// ReplyTopicSuffix ends the topic a broker creates for its cluster's
	// request-reply messages: <cluster>_REPLY_TOPIC.
	ReplyTopicSuffix = "REPLY_TOPIC"
)

// RetryFlagOf returns the retry flag of a topic name, as upstream's
// ExtraInfoUtil does: "2" for a %RETRY% topic holding '+', "1" for any
// other %RETRY% topic, "0" otherwise.
func RetryFlagOf(topic string) string {
	switch {
	case !strings.HasPrefix(topic, RetryGroupTopicPrefix):
		return RetryFlagNormal
	case strings.IndexByte(topic, '+') >= 0:
		return RetryFlagRetryV2
	}
	return RetryFlagRetryV1
}

// PopRetryTopic returns the pop retry topic of group and topic:
// "%RETRY%group+topic" (v2) or "%RETRY%group_topic" (v1).
func PopRetryTopic(topic, group string, v2 bool) string {
	if v2 {
		return RetryGroupTopicPrefix + group + "+" + topic
	}
	return RetryGroupTopicPrefix + group + "_" + topic
}

// PopRetryTopicOf returns the topic whose messages retry holds when it is
// group's pop retry topic, "%RETRY%group+topic" (v2) or
// "%RETRY%group_topic" (v1), as upstream's KeyBuilder.parseNormalTopic
// reads it; ok is false for any other name (another group's, the group's
// own %RETRY%group, a topic that is not a retry topic). Knowing the group
// makes both forms unambiguous, which they are not without it ('_' is
// allowed in group and topic names).
func PopRetryTopicOf(retry, group string) (topic string, ok bool) {
	rest, ok := strings.CutPrefix(retry, RetryGroupTopicPrefix+group)
	if !ok || len(rest) < 2 || (rest[0] != '+' && rest[0] != '_') {
		return "", false
	}
	topic = rest[1:]
	if strings.HasPrefix(topic, RetryGroupTopicPrefix) || strings.HasPrefix(topic, DLQGroupTopicPrefix) {
		return "", false
	}
	return topic, true
}

// ExtraInfo is a popped message's checkpoint string (the POP_CK property,
// the extraInfo of ACK_MESSAGE and CHANGE_MESSAGE_INVISIBLETIME):
//
//	ckQueueOffset popTime invisibleTime reviveQid retryFlag brokerName queueId [msgQueueOffset [commitLogOffset]]
//
// The Apache proxy's gRPC receipt handle is the same string with the
// commit-log offset appended as a ninth field.
type ExtraInfo struct {
	CkQueueOffset int64
	PopTime       int64
	InvisibleTime int64
	ReviveQid     int32
	RetryFlag     string // RetryFlagNormal, RetryFlagRetryV1 or RetryFlagRetryV2
	BrokerName    string
	QueueID       int32
	// QueueOffset is the message's own queue offset; -1 when the string has
	// only seven fields.
	QueueOffset int64
	// CommitLogOffset is the ninth (receipt handle) field; -1 when absent.
	CommitLogOffset int64
}

// NextVisibleTime is PopTime + InvisibleTime, in ms.
func (e ExtraInfo) NextVisibleTime() int64 { return e.PopTime + e.InvisibleTime }

// Orderly reports whether the checkpoint is of an orderly pop.
func (e ExtraInfo) Orderly() bool { return e.ReviveQid == OrderlyReviveQid }

// RealTopic returns the topic to name in ack/change-invisible requests for
// a message popped from topic by group: the retry topic its flag names.
func (e ExtraInfo) RealTopic(topic, group string) string {
	switch e.RetryFlag {
	case RetryFlagRetryV1:
		return PopRetryTopic(topic, group, false)
	case RetryFlagRetryV2:
		return PopRetryTopic(topic, group, true)
	}
	return topic
}

// String formats the checkpoint (7, 8 or 9 fields as set).
func (e ExtraInfo) String() string {
	b := make([]byte, 0, 96)
	b = strconv.AppendInt(b, e.CkQueueOffset, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.PopTime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.InvisibleTime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.ReviveQid), 10)
	b = append(b, ' ')
	b = append(b, e.RetryFlag...)
	b = append(b, ' ')
	b = append(b, e.BrokerName...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.QueueID), 10)
	if e.QueueOffset >= 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.QueueOffset, 10)
		if e.CommitLogOffset >= 0 {
			b = append(b, ' ')
			b = strconv.AppendInt(b, e.CommitLogOffset, 10)
		}
	}
	return string(b)
}

// ParseExtraInfo reads a checkpoint or receipt-handle string of 7 to 9
// space-separated fields. It is stricter than upstream (which reads fields
// lazily): every field must parse, the retry flag must be 0, 1 or 2 and
// the broker name non-empty.
func ParseExtraInfo(s string) (ExtraInfo, error) {
	e := ExtraInfo{QueueOffset: -1, CommitLogOffset: -1}
	// The fields, without allocating: n is 10 for ten or more.
	var f [9]string
	n := domain.SpaceFields(s, f[:])
	if n < 7 || n > 9 {
		return e, decodeErr("pop checkpoint", "has "+strconv.Itoa(n)+" fields, want 7 to 9")
	}
	bad := func(name string) (ExtraInfo, error) {
		return e, decodeErr("pop checkpoint", "bad "+name)
	}
	var err error
	if e.CkQueueOffset, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		return bad("start offset")
	}
	if e.PopTime, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return bad("pop time")
	}
	if e.InvisibleTime, err = strconv.ParseInt(f[2], 10, 64); err != nil {
		return bad("invisible time")
	}
	q, err := strconv.ParseInt(f[3], 10, 32)
	if err != nil {
		return bad("revive queue id")
	}
	e.ReviveQid = int32(q)
	if e.RetryFlag = f[4]; e.RetryFlag != RetryFlagNormal && e.RetryFlag != RetryFlagRetryV1 && e.RetryFlag != RetryFlagRetryV2 {
		return bad("retry flag")
	}
	if e.BrokerName = f[5]; e.BrokerName == "" {
		return bad("broker name")
	}
	if q, err = strconv.ParseInt(f[6], 10, 32); err != nil {
		return bad("queue id")
	}
	e.QueueID = int32(q)
	if n > 7 {
		if e.QueueOffset, err = strconv.ParseInt(f[7], 10, 64); err != nil || e.QueueOffset < 0 {
			return bad("queue offset")
		}
	}
	if n > 8 {
		if e.CommitLogOffset, err = strconv.ParseInt(f[8], 10, 64); err != nil || e.CommitLogOffset < 0 {
			return bad("commit-log offset")
		}
	}
	return e, nil
}

// ChangedExtraInfo returns the checkpoint that replaces a message's old one
// after a successful CHANGE_MESSAGE_INVISIBLETIME, built as upstream's
// client does: start offset and queue offset = the message's offset,
// times and revive queue from the response, retry flag from the request's
// (real) topic.
func ChangedExtraInfo(req *ChangeInvisibleTimeRequestHeader, resp *ChangeInvisibleTimeResponseHeader, brokerName string) ExtraInfo {
	return ExtraInfo{CkQueueOffset: req.Offset, PopTime: resp.PopTime, InvisibleTime: resp.InvisibleTime,
		ReviveQid: resp.ReviveQid, RetryFlag: RetryFlagOf(req.Topic), BrokerName: brokerName,
		QueueID: req.QueueID, QueueOffset: req.Offset, CommitLogOffset: -1}
}

// parseInfoEntries splits "a b c;a b c" into its entries of three fields.
func parseInfoEntries(what, s string, each func(key, value string) error) error {
	for s != "" {
		entry := s
		if i := strings.IndexByte(s, ';'); i >= 0 {
			entry, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		a, rest, ok1 := strings.Cut(entry, " ")
		b, c, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || a == "" || b == "" || c == "" || strings.IndexByte(c, ' ') >= 0 {
			return decodeErr(what, "entry "+strconv.Quote(clip(entry))+" does not have three fields")
		}
		if err := each(a+"@"+b, c); err != nil {
			return err
		}
	}
	return nil
}

// ParseStartOffsetInfo reads a pop response's startOffsetInfo
// ("retryFlag queueId startOffset;...") into "retryFlag@queueId" → offset.
func ParseStartOffsetInfo(s string) (map[string]int64, error) {
	m := make(map[string]int64, 4)
	err := parseInfoEntries("startOffsetInfo", s, func(k, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return decodeErr("startOffsetInfo", "bad offset "+strconv.Quote(clip(v)))
		}
		if _, dup := m[k]; dup {
			return decodeErr("startOffsetInfo", "duplicate key "+strconv.Quote(clip(k)))
		}
		m[k] = n
		return nil
	})
	return m, err
}

// ParseMsgOffsetInfo reads a pop response's msgOffsetInfo
// ("retryFlag queueId off1,off2;...") into "retryFlag@queueId" → offsets.
func ParseMsgOffsetInfo(s string) (map[string][]int64, error) {
	m := make(map[string][]int64, 4)
	err := parseInfoEntries("msgOffsetInfo", s, func(k, v string) error {
		if _, dup := m[k]; dup {
			return decodeErr("msgOffsetInfo", "duplicate key "+strconv.Quote(clip(k)))
		}
		offs := make([]int64, 0, strings.Count(v, ",")+1)
		for _, o := range strings.Split(v, ",") {
			n, err := strconv.ParseInt(o, 10, 64)
			if err != nil {
				return decodeErr("msgOffsetInfo", "bad offset "+strconv.Quote(clip(o)))
			}
			offs = append(offs, n)
		}
		m[k] = offs
		return nil
	})
	return m, err
}

// ParseOrderCountInfo reads a pop response's orderCountInfo
// ("retryFlag queueId count" or "retryFlag qo<queueId>%<offset> count",
// ';'-separated) into "retryFlag@queueId" / "retryFlag@qo<q>%<off>" → count.
func ParseOrderCountInfo(s string) (map[string]int32, error) {
	m := make(map[string]int32, 4)
	err := parseInfoEntries("orderCountInfo", s, func(k, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return decodeErr("orderCountInfo", "bad count "+strconv.Quote(clip(v)))
		}
		if _, dup := m[k]; dup {
			return decodeErr("orderCountInfo", "duplicate key "+strconv.Quote(clip(k)))
		}
		m[k] = int32(n)
		return nil
	})
	return m, err
}

// PopCheckpoints gives each popped message its checkpoint, as upstream's
// client does after POP_MESSAGE: a message that already carries POP_CK
// (retry-topic messages) keeps it; otherwise POP_CK is built from the
// response's start and message offset infos (or, when the broker sent
// none, from the message's own offset), 1ST_POP_TIME is set when absent,
// and for an orderly pop the order count becomes ReconsumeTimes. topic is
// the popped topic; brokerName the broker that answered. Light message
// queues (LMQ) are not supported.
func PopCheckpoints(topic string, resp *PopMessageResponseHeader, brokerName string, order bool, msgs []Message) error {
	var start map[string]int64
	var offs map[string][]int64
	var counts map[string]int32
	var err error
	if resp.StartOffsetInfo != "" {
		if start, err = ParseStartOffsetInfo(resp.StartOffsetInfo); err != nil {
			return err
		}
		if offs, err = ParseMsgOffsetInfo(resp.MsgOffsetInfo); err != nil {
			return err
		}
		if counts, err = ParseOrderCountInfo(resp.OrderCountInfo); err != nil {
			return err
		}
	}
	// Sorted (as received) queue offsets per retryFlag@queueId.
	sorted := make(map[string][]int64, 4)
	keyOf := func(m *Message) string {
		flag := RetryFlagOf(m.Topic)
		if ck, ok := m.Properties.Get(PropertyPopCK); ok {
			if e, err := ParseExtraInfo(ck); err == nil {
				flag = e.RetryFlag
			}
		}
		return flag + "@" + strconv.Itoa(int(m.QueueID))
	}
	for i := range msgs {
		k := keyOf(&msgs[i])
		sorted[k] = append(sorted[k], msgs[i].QueueOffset)
	}
	firstCK := make(map[string]ExtraInfo, 4)
	popTime := strconv.FormatInt(resp.PopTime, 10)
	for i := range msgs {
		m := &msgs[i]
		if start == nil {
			k := m.Topic + "\x00" + strconv.Itoa(int(m.QueueID))
			e, ok := firstCK[k]
			if !ok {
				e = ExtraInfo{CkQueueOffset: m.QueueOffset, PopTime: resp.PopTime, InvisibleTime: resp.InvisibleTime,
					ReviveQid: resp.ReviveQid, RetryFlag: RetryFlagOf(m.Topic), BrokerName: brokerName, QueueID: m.QueueID, CommitLogOffset: -1}
				firstCK[k] = e
			}
			e.QueueOffset = m.QueueOffset
			m.Properties.Set(PropertyPopCK, e.String())
		} else if _, has := m.Properties.Get(PropertyPopCK); !has {
			k := keyOf(m)
			st, ok1 := start[k]
			list, ok2 := offs[k]
			idx := indexOf(sorted[k], m.QueueOffset)
			if !ok1 || !ok2 || idx < 0 || idx >= len(list) {
				return decodeErr("pop response", "no offset info for message at "+k+" offset "+strconv.FormatInt(m.QueueOffset, 10))
			}
			e := ExtraInfo{CkQueueOffset: st, PopTime: resp.PopTime, InvisibleTime: resp.InvisibleTime,
				ReviveQid: resp.ReviveQid, RetryFlag: RetryFlagOf(m.Topic), BrokerName: brokerName, QueueID: m.QueueID,
				QueueOffset: list[idx], CommitLogOffset: -1}
			m.Properties.Set(PropertyPopCK, e.String())
			if order && counts != nil {
				flag, _, _ := strings.Cut(k, "@")
				c, ok := counts[flag+"@qo"+strconv.Itoa(int(m.QueueID))+"%"+strconv.FormatInt(m.QueueOffset, 10)]
				if !ok {
					c, ok = counts[k]
				}
				if ok && c > 0 {
					m.ReconsumeTimes = c
				}
			}
		}
		if _, ok := m.Properties.Get(PropertyFirstPopTime); !ok {
			m.Properties = append(m.Properties, Field{PropertyFirstPopTime, popTime})
		}
	}
	return nil
}

func indexOf(s []int64, v int64) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
