package remoting

import (
	"slices"
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
		for o := range strings.SplitSeq(v, ",") {
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
// queues (LMQ) are not supported. See PopExtraInfos for the checkpoints
// without the properties.
func PopCheckpoints(topic string, resp *PopMessageResponseHeader, brokerName string, order bool, msgs []Message) error {
	cks, err := PopExtraInfos(topic, resp, brokerName, order, msgs, nil)
	if err != nil {
		return err
	}
	popTime := strconv.FormatInt(resp.PopTime, 10)
	for i := range msgs {
		m := &msgs[i]
		if _, has := m.Properties.Get(PropertyPopCK); resp.StartOffsetInfo == "" || !has {
			m.Properties.Set(PropertyPopCK, cks[i].String())
		}
		if _, ok := m.Properties.Get(PropertyFirstPopTime); !ok {
			m.Properties = append(m.Properties, Field{PropertyFirstPopTime, popTime})
		}
	}
	return nil
}

// popKey is a retryFlag@queueId key of a pop answer's offset infos.
type popKey struct {
	flag    string
	queueID int32
}

// appendText appends k as the offset infos write it ("0@3").
func (k popKey) appendText(b []byte) []byte {
	b = append(b, k.flag...)
	b = append(b, '@')
	return strconv.AppendInt(b, int64(k.queueID), 10)
}

// PopExtraInfos returns the checkpoint of each popped message, in order,
// appended to dst: what PopCheckpoints sets as its POP_CK, without
// formatting it (a message's own POP_CK is parsed). A message whose own
// POP_CK does not parse gets the zero ExtraInfo, whose empty broker name
// no parsed checkpoint has (ParseExtraInfo of its POP_CK says why). For an
// orderly pop the order count becomes the message's ReconsumeTimes; the
// messages' properties are left as they are.
func PopExtraInfos(topic string, resp *PopMessageResponseHeader, brokerName string, order bool, msgs []Message, dst []ExtraInfo) ([]ExtraInfo, error) {
	var start map[string]int64
	var offs map[string][]int64
	var counts map[string]int32
	var err error
	if resp.StartOffsetInfo != "" {
		if start, err = ParseStartOffsetInfo(resp.StartOffsetInfo); err != nil {
			return dst, err
		}
		if offs, err = ParseMsgOffsetInfo(resp.MsgOffsetInfo); err != nil {
			return dst, err
		}
		if resp.OrderCountInfo != "" { // (empty: no counts, as parsed)
			if counts, err = ParseOrderCountInfo(resp.OrderCountInfo); err != nil {
				return dst, err
			}
		}
	}
	dst = slices.Grow(dst, len(msgs))
	if start == nil {
		// No offset infos (an older broker): each message's own offset,
		// the start offset the first of its topic and queue's.
		for i := range msgs {
			m := &msgs[i]
			e := ExtraInfo{CkQueueOffset: m.QueueOffset, PopTime: resp.PopTime, InvisibleTime: resp.InvisibleTime,
				ReviveQid: resp.ReviveQid, RetryFlag: RetryFlagOf(m.Topic), BrokerName: brokerName, QueueID: m.QueueID, CommitLogOffset: -1}
			for j := range i {
				if msgs[j].Topic == m.Topic && msgs[j].QueueID == m.QueueID {
					e.CkQueueOffset = msgs[j].QueueOffset
					break
				}
			}
			e.QueueOffset = m.QueueOffset
			dst = append(dst, e)
		}
		return dst, nil
	}
	// Each message's retryFlag@queueId, on the stack for up to 32.
	var room [32]popKey
	keys := room[:0]
	if len(msgs) > len(room) {
		keys = make([]popKey, 0, len(msgs))
	}
	for i := range msgs {
		m := &msgs[i]
		k := popKey{flag: RetryFlagOf(m.Topic), queueID: m.QueueID}
		if ck, ok := m.Properties.Get(PropertyPopCK); ok {
			if e, err := ParseExtraInfo(ck); err == nil {
				k.flag = e.RetryFlag
			}
		}
		keys = append(keys, k)
	}
	var kb [48]byte // a key's text, for the lookups (no allocation)
	for i := range msgs {
		m := &msgs[i]
		if ck, has := m.Properties.Get(PropertyPopCK); has {
			e, err := ParseExtraInfo(ck)
			if err != nil {
				e = ExtraInfo{}
			}
			dst = append(dst, e)
			continue
		}
		k := keys[i]
		kt := k.appendText(kb[:0])
		st, ok1 := start[string(kt)]
		list, ok2 := offs[string(kt)]
		// Its place among the messages of its key, in the order received
		// (the first of an offset that comes twice).
		idx := 0
		for j := range msgs {
			if keys[j] != k {
				continue
			}
			if msgs[j].QueueOffset == m.QueueOffset {
				break
			}
			idx++
		}
		if !ok1 || !ok2 || idx >= len(list) {
			return dst, decodeErr("pop response", "no offset info for message at "+string(kt)+" offset "+strconv.FormatInt(m.QueueOffset, 10))
		}
		dst = append(dst, ExtraInfo{CkQueueOffset: st, PopTime: resp.PopTime, InvisibleTime: resp.InvisibleTime,
			ReviveQid: resp.ReviveQid, RetryFlag: RetryFlagOf(m.Topic), BrokerName: brokerName, QueueID: m.QueueID,
			QueueOffset: list[idx], CommitLogOffset: -1})
		if order && counts != nil {
			ct := strconv.AppendInt(append(append(kb[:0], k.flag...), "@qo"...), int64(m.QueueID), 10)
			ct = strconv.AppendInt(append(ct, '%'), m.QueueOffset, 10)
			c, ok := counts[string(ct)]
			if !ok {
				c, ok = counts[string(k.appendText(kb[:0]))]
			}
			if ok && c > 0 {
				m.ReconsumeTimes = c
			}
		}
	}
	return dst, nil
}
