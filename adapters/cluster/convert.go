package cluster

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// Property keys the Apache proxy or broker writes that package remoting
// does not name (upstream MessageConst).
const (
	propTraceContext = "TRACE_CONTEXT"
	propCRC32        = "__CRC32#"
	// propOriginGroup is the consumer group a 5.5.0 broker's revive writes
	// into every message it redelivers (and so into the dead-letter copies
	// made of redeliveries); its STRING_HASH_SET, by which the Apache proxy
	// hides system properties, has it.
	propOriginGroup = "ORIGIN_GROUP"
	transientPrefix = "__RMQ.TRANSIENT."
)

// maxBodySize bounds a decompressed message body (Remoting producers
// compress bodies; gRPC clients receive them inflated).
const maxBodySize = 64 << 20

// gzipMagic starts a body a gRPC producer gzip-compressed; it is passed
// through compressed, as the client asked (body_encoding GZIP).
var gzipMagic = []byte{0x1f, 0x8b}

// messageProperties builds the broker properties of a message: the
// domain's [domain.Message.StoredProperties], which local mode bounds
// alike, so that both modes refuse the same messages.
func messageProperties(m *domain.Message) remoting.Properties {
	p := make(remoting.Properties, 0, 12+len(m.Properties))
	for k, v := range m.StoredProperties() {
		p = append(p, remoting.Field{Key: k, Value: v})
	}
	return p
}

// formatProperties returns the properties string of m's broker
// properties, remoting.FormatProperties(messageProperties(m)) without the
// slice in between: the string is its one allocation (beside the text of
// numbers such as the born timestamp).
func formatProperties(m *domain.Message) (string, error) {
	var sb strings.Builder
	sb.Grow(m.StoredPropertiesLen())
	for k, v := range m.StoredProperties() {
		if err := remoting.CheckProperty(k, v); err != nil {
			return "", err
		}
		sb.WriteString(k)
		sb.WriteByte(remoting.NameValueSeparator)
		sb.WriteString(v)
		sb.WriteByte(remoting.PropertySeparator)
	}
	return sb.String(), nil
}

// sysFlagOf is the message system flag the Apache proxy sends.
func sysFlagOf(m *domain.Message) int32 {
	var f int32
	if m.Compressed {
		f |= remoting.SysFlagCompressed
	}
	if m.Transactional {
		f |= remoting.TransactionPrepared
	}
	return f
}

// systemProperty reports whether a broker property is RocketMQ's own and
// not shown to clients as a user property. It is upstream's
// MessageConst.STRING_HASH_SET plus the keys the Apache proxy itself writes
// (and leaks to consumers as user properties: sharding key, trace context,
// transaction bookkeeping).
func systemProperty(k string) bool {
	if domain.IsReservedPropertyKey(k) || strings.HasPrefix(k, transientPrefix) {
		return true
	}
	switch k {
	case remoting.PropertyShardingKey, propTraceContext, remoting.PropertyTransactionID,
		remoting.PropertyTransactionCheckTimes, remoting.PropertyCheckImmunityTimeInSeconds,
		remoting.PropertyInnerNum, remoting.PropertyInnerBase, remoting.PropertyDLQOriginTopic,
		remoting.PropertyDLQOriginMessageID, remoting.PropertyTimerDelayMS, remoting.PropertyStartDeliverTime,
		remoting.PropertyFirstPopTime, propCRC32, propOriginGroup, "TIMER_ENQUEUE_MS", "TIMER_DEQUEUE_MS", "TIMER_ROLL_TIMES",
		"TIMER_OUT_MS", "TIMER_DEL_UNIQKEY", "TIMER_DELAY_LEVEL", "POP_CK_OFFSET", "DUP_INFO":
		return true
	}
	return false
}

// bornTime is when the producer made m: its BORN_TIMESTAMP property, which
// proxies (the Apache proxy and rmqproxy) set to the client's born time,
// else the stored born time. The two differ only for a message rmqproxy
// sent in a batch with others (see sendline.go): the broker stores the
// batch's born time for all of them.
func bornTime(m *remoting.Message) time.Time {
	if v := m.Properties.Value(remoting.PropertyBornTimestamp); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms > 0 {
			return time.UnixMilli(ms)
		}
	}
	return time.UnixMilli(m.BornTimestamp)
}

// storedMessage turns a message a broker delivered into the domain's, as
// the Apache proxy's GrpcConverter reads it. topic is the topic the
// client asked for (a retried message is stored in a retry topic);
// brokerName the broker it came from.
func storedMessage(m *remoting.Message, topic, brokerName string) domain.StoredMessage {
	return storedMessageOf(m, topic, brokerName, nil)
}

// hostName keeps the text of the store host the previous message of an
// answer had: the messages of one answer mostly share it, and each would
// otherwise format its own copy.
type hostName struct {
	addr netip.AddrPort
	text string
}

// of returns a's text (a's own copy when h is nil).
func (h *hostName) of(a netip.AddrPort) string {
	if h == nil {
		return a.String()
	}
	if h.text == "" || h.addr != a {
		h.addr, h.text = a, a.String()
	}
	return h.text
}

// storedMessageOf is storedMessage, taking the store host's text from
// hosts (nil: none).
func storedMessageOf(m *remoting.Message, topic, brokerName string, hosts *hostName) domain.StoredMessage {
	p := m.Properties
	s := domain.StoredMessage{
		Message: domain.Message{
			Topic:          topic,
			Body:           m.Body,
			Tag:            p.Value(remoting.PropertyTags),
			ID:             m.MsgID(),
			Group:          p.Value(remoting.PropertyShardingKey),
			Transactional:  p.Value(remoting.PropertyTransactionPrepared) == "true",
			TraceContext:   p.Value(propTraceContext),
			BornHost:       p.Value(remoting.PropertyBornHost),
			BornAt:         bornTime(m),
			ReconsumeTimes: m.ReconsumeTimes,
		},
		BrokerName:      brokerName,
		QueueID:         m.QueueID,
		QueueOffset:     m.QueueOffset,
		CommitLogOffset: m.CommitLogOffset,
		StoredAt:        time.UnixMilli(m.StoreTimestamp),
		DeliveryAttempt: m.ReconsumeTimes + 1,
	}
	if m.SysFlag&remoting.SysFlagCompressed != 0 {
		// A body that is no gzip stream and does not inflate either (a
		// producer flagged a plain body compressed) is delivered as stored
		// and labelled GZIP, as the Apache proxy delivers every compressed
		// body: the client then reports it corrupted. Refusing it kept it
		// from every consumer for good (popped again and again, and a pull
		// of its queue failing).
		s.Compressed = true
		if !bytes.HasPrefix(m.Body, gzipMagic) {
			if body, err := remoting.Decompress(m.Body, m.SysFlag, maxBodySize); err == nil {
				s.Body, s.Compressed = body, false
			}
		}
	}
	if k := p.Value(remoting.PropertyKeys); k != "" {
		// Split at the key separator only (a space), as upstream does:
		// strings.Fields also split a key at U+00A0 and other white space.
		s.Keys = domain.SplitKeys([]string{k})
	}
	if domain.IsBlank(s.BornHost) && m.BornHost.IsValid() {
		// A Remoting producer's message: the address without its port,
		// as the Apache proxy reads it (MessageExt.getBornHostString).
		s.BornHost = m.BornHost.Addr().String()
	}
	if m.StoreHost.IsValid() {
		s.StoreHost = hosts.of(m.StoreHost)
	}
	if v, ok := p.Get(remoting.PropertyTimerDelaySec); ok {
		if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.DeliverAt = time.Now().Add(time.Duration(sec) * time.Second)
		}
	} else if v, ok := p.Get(remoting.PropertyTimerDeliverMS); ok {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
			s.DeliverAt = time.UnixMilli(ms)
		}
	}
	if ot, oid := p.Value(remoting.PropertyDLQOriginTopic), p.Value(remoting.PropertyDLQOriginMessageID); ot != "" && oid != "" {
		s.DeadLetter = &domain.DeadLetterOrigin{Topic: ot, MessageID: oid}
	}
	for _, f := range p {
		if systemProperty(f.Key) {
			continue
		}
		if s.Properties == nil {
			s.Properties = map[string]string{}
		}
		s.Properties[f.Key] = f.Value
	}
	return s
}

// handleOf builds the receipt handle of a popped message: the broker's
// checkpoint with the commit-log offset appended (the Apache proxy's form).
func handleOf(ck remoting.ExtraInfo, commitLogOffset int64) (domain.ReceiptHandle, error) {
	h := domain.ReceiptHandle{
		StartOffset: ck.CkQueueOffset, RetrieveTime: ck.PopTime, InvisibleTime: ck.InvisibleTime,
		ReviveQueueID: ck.ReviveQid, BrokerName: ck.BrokerName, QueueID: ck.QueueID,
		QueueOffset: ck.QueueOffset, CommitLogOffset: commitLogOffset,
	}
	switch ck.RetryFlag {
	case remoting.RetryFlagRetryV1:
		h.TopicType = domain.ReceiptTopicRetryV1
	case remoting.RetryFlagRetryV2:
		h.TopicType = domain.ReceiptTopicRetryV2
	}
	if h.QueueOffset < 0 {
		h.QueueOffset = ck.CkQueueOffset
	}
	return h, nil
}

// realTopic is the topic a delivery's ack or change must name: the retry
// topic when the handle says the message came from one.
func realTopic(topic, group string, h domain.ReceiptHandle) string {
	switch h.TopicType {
	case domain.ReceiptTopicRetryV1:
		return remoting.PopRetryTopic(topic, group, false)
	case domain.ReceiptTopicRetryV2:
		return remoting.PopRetryTopic(topic, group, true)
	}
	return topic
}
