package remoting

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Magic codes of stored messages.
const (
	// MagicV1 records have a 1-byte topic length.
	MagicV1 int32 = -626843481 // 0xDAA320A7
	// MagicV2 records have a 2-byte topic length (topics over 127 bytes).
	MagicV2 int32 = -626843477 // 0xDAA320AB
)

// Message is one message in the stored/transfer format, as PULL_MESSAGE,
// POP_MESSAGE, VIEW_MESSAGE_BY_ID, QUERY_MESSAGE and CHECK_TRANSACTION_STATE
// bodies carry it. Body is as stored: compressed when the system flag says
// so (see [Decompress]); a decoded Body aliases the bytes it came from.
type Message struct {
	MagicCode                 int32 // MagicV1 or MagicV2
	BodyCRC                   int32
	QueueID                   int32
	Flag                      int32
	QueueOffset               int64
	CommitLogOffset           int64
	SysFlag                   int32
	BornTimestamp             int64
	BornHost                  netip.AddrPort
	StoreTimestamp            int64
	StoreHost                 netip.AddrPort
	ReconsumeTimes            int32
	PreparedTransactionOffset int64
	Body                      []byte
	Topic                     string
	Properties                Properties
}

// OffsetMsgID returns the message's offset message id (store host and
// commit-log offset), as Java clients compute it on decode.
func (m *Message) OffsetMsgID() string { return OffsetMsgID(m.StoreHost, m.CommitLogOffset) }

// MsgID returns the id clients show: UNIQ_KEY when present, else the
// offset message id.
func (m *Message) MsgID() string {
	if v, ok := m.Properties.Get(PropertyUniqKey); ok {
		return v
	}
	return m.OffsetMsgID()
}

// CRCValid reports whether BodyCRC matches Body: brokers store the CRC-32
// of the body as stored with its top bit cleared (UtilAll.crc32).
func (m *Message) CRCValid() bool { return BodyCRC(m.Body) == m.BodyCRC }

// BodyCRC returns the body checksum brokers store: CRC-32 (IEEE) & 0x7FFFFFFF.
func BodyCRC(body []byte) int32 { return int32(crc32.ChecksumIEEE(body) & 0x7FFFFFFF) }

func hostLen(a netip.AddrPort) int {
	if a.Addr().Is4() || !a.Addr().IsValid() {
		return 4
	}
	return 16
}

// AppendMessage appends m in the stored format. The host flags in the
// written system flag follow the addresses (IPv4 or IPv6); the magic is
// MagicV2 when m asks for it or the topic is longer than 127 bytes.
func AppendMessage(dst []byte, m *Message) ([]byte, error) {
	propsLen := 0
	for _, kv := range m.Properties {
		if err := CheckProperty(kv.Key, kv.Value); err != nil {
			return dst, err
		}
		propsLen += len(kv.Key) + len(kv.Value) + 2
	}
	if propsLen > MaxPropertiesLen {
		return dst, decodeErr("message", "properties of "+strconv.Itoa(propsLen)+" bytes exceed 32767")
	}
	magic := m.MagicCode
	if magic != MagicV2 && len(m.Topic) > 127 {
		magic = MagicV2
	}
	if magic != MagicV2 {
		magic = MagicV1
	}
	if len(m.Topic) > math.MaxInt16 {
		return dst, decodeErr("message", "topic longer than 32767 bytes")
	}
	sysFlag := m.SysFlag &^ (SysFlagBornHostV6 | SysFlagStoreHostV6)
	if hostLen(m.BornHost) == 16 {
		sysFlag |= SysFlagBornHostV6
	}
	if hostLen(m.StoreHost) == 16 {
		sysFlag |= SysFlagStoreHostV6
	}
	topicLenSize := 1
	if magic == MagicV2 {
		topicLenSize = 2
	}
	size := 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + hostLen(m.BornHost) + 4 + 8 + hostLen(m.StoreHost) + 4 + 4 + 8 +
		4 + len(m.Body) + topicLenSize + len(m.Topic) + 2 + propsLen
	if size > math.MaxInt32 {
		return dst, decodeErr("message", "record larger than 2 GiB")
	}
	be := binary.BigEndian
	dst = be.AppendUint32(dst, uint32(size))
	dst = be.AppendUint32(dst, uint32(magic))
	dst = be.AppendUint32(dst, uint32(m.BodyCRC))
	dst = be.AppendUint32(dst, uint32(m.QueueID))
	dst = be.AppendUint32(dst, uint32(m.Flag))
	dst = be.AppendUint64(dst, uint64(m.QueueOffset))
	dst = be.AppendUint64(dst, uint64(m.CommitLogOffset))
	dst = be.AppendUint32(dst, uint32(sysFlag))
	dst = be.AppendUint64(dst, uint64(m.BornTimestamp))
	dst = appendHost(dst, m.BornHost)
	dst = be.AppendUint64(dst, uint64(m.StoreTimestamp))
	dst = appendHost(dst, m.StoreHost)
	dst = be.AppendUint32(dst, uint32(m.ReconsumeTimes))
	dst = be.AppendUint64(dst, uint64(m.PreparedTransactionOffset))
	dst = be.AppendUint32(dst, uint32(len(m.Body)))
	dst = append(dst, m.Body...)
	if magic == MagicV2 {
		dst = be.AppendUint16(dst, uint16(len(m.Topic)))
	} else {
		dst = append(dst, byte(len(m.Topic)))
	}
	dst = append(dst, m.Topic...)
	dst = be.AppendUint16(dst, uint16(propsLen))
	for _, kv := range m.Properties {
		dst = append(dst, kv.Key...)
		dst = append(dst, NameValueSeparator)
		dst = append(dst, kv.Value...)
		dst = append(dst, PropertySeparator)
	}
	return dst, nil
}

func appendHost(dst []byte, a netip.AddrPort) []byte {
	if !a.Addr().IsValid() {
		return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	if a.Addr().Is4() {
		ip := a.Addr().As4()
		dst = append(dst, ip[:]...)
	} else {
		ip := a.Addr().As16()
		dst = append(dst, ip[:]...)
	}
	return binary.BigEndian.AppendUint32(dst, uint32(a.Port()))
}

// msgReader reads big-endian fields, remembering the first shortfall.
type msgReader struct {
	b   []byte
	i   int
	bad bool
}

func (r *msgReader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b)-r.i {
		r.bad = true
		return nil
	}
	v := r.b[r.i : r.i+n]
	r.i += n
	return v
}

func (r *msgReader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *msgReader) i32() int32 {
	if v := r.take(4); v != nil {
		return int32(binary.BigEndian.Uint32(v))
	}
	return 0
}

func (r *msgReader) i64() int64 {
	if v := r.take(8); v != nil {
		return int64(binary.BigEndian.Uint64(v))
	}
	return 0
}

func (r *msgReader) host(v6 bool) (netip.AddrPort, bool) {
	var a netip.Addr
	if v6 {
		ip := r.take(16)
		if ip == nil {
			return netip.AddrPort{}, false
		}
		a = netip.AddrFrom16([16]byte(ip))
	} else {
		ip := r.take(4)
		if ip == nil {
			return netip.AddrPort{}, false
		}
		a = netip.AddrFrom4([4]byte(ip))
	}
	port := r.i32()
	if port < 0 || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, uint16(port)), !r.bad
}

// minStoredLen is the smallest possible stored record (IPv4 hosts, empty
// body, topic and properties).
const minStoredLen = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 8 + 4 + 1 + 2

// DecodeMessages decodes the concatenated stored-format records of a
// pull/pop/query body. Each record must be exactly as long as its TOTALSIZE
// says. On a malformed record it returns the records before it and a
// *DecodeError naming the record. Bodies and topics alias body; the
// properties of all records share one copy of their text and one slice of
// fields (each message's capped to its own, so that appending to one
// copies it).
func DecodeMessages(body []byte) ([]Message, error) {
	n := 0
	for i := 0; i+4 <= len(body) && n < len(body)/minStoredLen; n++ {
		size := int(int32(binary.BigEndian.Uint32(body[i:])))
		if size < minStoredLen || size > len(body)-i {
			break
		}
		i += size
	}
	msgs := make([]Message, 0, n) // n bounds them: decodeMessage refuses what the count stopped at
	// Where each message's properties text lies in body: on the stack for
	// an answer of up to 64 messages (a pop or pull asks for at most 32).
	var room [64][2]int
	spans := room[:0]
	if n+1 > len(room) {
		spans = make([][2]int, 0, n+1)
	}
	topic := "" // the previous message's: the messages of one answer mostly share it
	textLen, fieldsCap := 0, 0
	var err error
	for i := 0; i < len(body); {
		m, size, props, derr := decodeMessage(body[i:], topic)
		if derr != nil {
			err = &DecodeError{What: "message " + strconv.Itoa(len(msgs)) + " at byte " + strconv.Itoa(i), Reason: derr.Error()}
			break
		}
		msgs = append(msgs, m)
		start := i + size - len(props) // the properties end the record
		spans = append(spans, [2]int{start, start + len(props)})
		textLen += len(props)
		fieldsCap += propertySegments(props, bytes.Count(props, []byte{PropertySeparator}))
		topic = m.Topic
		i += size
	}
	if textLen == 0 {
		return msgs, err
	}
	// What the text and the fields take is rounded up to a size class
	// once, for all messages, where it was per message before (75 bytes of
	// text in 80, 4 fields in 128): BenchmarkDecodePull's 2,400 bytes of
	// text take 2,688, and its fields, which hold pointers and so carry an
	// 8-byte malloc header beyond 512 bytes, 3,200 for 3,080. With the
	// fields counted exactly (one per segment, not one more per message:
	// RocketMQ ends every property with \x02) that is less than the 64
	// allocations of before took; counted one over, it was 896 bytes more.
	var sb strings.Builder
	sb.Grow(textLen)
	for _, sp := range spans {
		sb.Write(body[sp[0]:sp[1]])
	}
	text := sb.String()
	fields := make(Properties, 0, fieldsCap)
	off := 0
	for k := range msgs {
		l := spans[k][1] - spans[k][0]
		from := len(fields)
		fields = appendProperties(fields, text[off:off+l])
		off += l
		if len(fields) > from {
			msgs[k].Properties = fields[from:len(fields):len(fields)]
		}
	}
	return msgs, err
}

// DecodeMessage decodes one stored-format record that fills b.
func DecodeMessage(b []byte) (Message, error) {
	m, size, props, err := decodeMessage(b, "")
	if err == nil && size != len(b) {
		err = decodeErr("message", strconv.Itoa(len(b)-size)+" bytes after the record")
	}
	if err != nil {
		if _, ok := err.(*DecodeError); !ok {
			err = decodeErr("message", err.Error())
		}
		return Message{}, err
	}
	m.Properties = ParseProperties(string(props))
	return m, nil
}

type reasonErr string

func (e reasonErr) Error() string { return string(e) }

// decodeMessage decodes the record at the start of b but its properties,
// and returns its size and its properties' text (which ends the record).
// A topic equal to prevTopic is given prevTopic's string (no copy).
func decodeMessage(b []byte, prevTopic string) (m Message, size int, props []byte, err error) {
	if len(b) < 4 {
		return m, 0, nil, reasonErr("truncated size")
	}
	size = int(int32(binary.BigEndian.Uint32(b)))
	if size < minStoredLen || size > len(b) {
		return m, 0, nil, reasonErr("size " + strconv.Itoa(size) + " outside 65.." + strconv.Itoa(len(b)))
	}
	r := msgReader{b: b[:size], i: 4}
	m.MagicCode = r.i32()
	if m.MagicCode != MagicV1 && m.MagicCode != MagicV2 {
		return m, 0, nil, reasonErr("bad magic code " + strconv.Itoa(int(m.MagicCode)))
	}
	m.BodyCRC = r.i32()
	m.QueueID = r.i32()
	m.Flag = r.i32()
	m.QueueOffset = r.i64()
	m.CommitLogOffset = r.i64()
	m.SysFlag = r.i32()
	m.BornTimestamp = r.i64()
	var ok bool
	if m.BornHost, ok = r.host(m.SysFlag&SysFlagBornHostV6 != 0); !ok {
		return m, 0, nil, reasonErr("bad born host")
	}
	m.StoreTimestamp = r.i64()
	if m.StoreHost, ok = r.host(m.SysFlag&SysFlagStoreHostV6 != 0); !ok {
		return m, 0, nil, reasonErr("bad store host")
	}
	m.ReconsumeTimes = r.i32()
	m.PreparedTransactionOffset = r.i64()
	bodyLen := r.i32()
	if body := r.take(int(bodyLen)); len(body) > 0 {
		m.Body = body
	}
	var topicLen int
	if m.MagicCode == MagicV2 {
		topicLen = int(int16(r.u16()))
	} else if t := r.take(1); t != nil {
		topicLen = int(int8(t[0]))
	}
	topic := r.take(topicLen)
	props = r.take(int(int16(r.u16())))
	if r.bad {
		return m, 0, nil, reasonErr("fields overrun the record's size " + strconv.Itoa(size))
	}
	if r.i != size {
		return m, 0, nil, reasonErr(strconv.Itoa(size-r.i) + " unread bytes inside the record")
	}
	if m.Topic = prevTopic; string(topic) != prevTopic {
		m.Topic = string(topic)
	}
	return m, size, props, nil
}
