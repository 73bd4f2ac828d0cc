package sendpb

import (
	"strings"
	"unicode/utf8"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Field numbers decoded here (apache/rocketmq/v2/service.proto and
// definition.proto). Every other field number makes Unmarshal fall back to
// proto.Unmarshal.
const (
	fieldRequestMessages = 1 // SendMessageRequest.messages, repeated Message

	fieldMessageTopic      = 1 // Message.topic, Resource
	fieldMessageUserProps  = 2 // Message.user_properties, map<string, string>
	fieldMessageSystemProp = 3 // Message.system_properties, SystemProperties
	fieldMessageBody       = 4 // Message.body, bytes

	fieldResourceNamespace = 1 // Resource.resource_namespace, string
	fieldResourceName      = 2 // Resource.name, string

	fieldEntryKey   = 1 // map entry key, string
	fieldEntryValue = 2 // map entry value, string

	fieldSysTag          = 1  // optional string
	fieldSysKeys         = 2  // repeated string
	fieldSysMessageID    = 3  // string
	fieldSysBodyEncoding = 5  // Encoding (enum)
	fieldSysMessageType  = 6  // MessageType (enum)
	fieldSysBornTime     = 7  // google.protobuf.Timestamp
	fieldSysBornHost     = 8  // string
	fieldSysDeliveryTime = 11 // optional google.protobuf.Timestamp
	fieldSysQueueID      = 13 // int32 (the Java client sets it)
	fieldSysMessageGroup = 17 // optional string
	fieldSysTraceContext = 18 // optional string
	fieldSysLiteTopic    = 21 // optional string
	fieldSysPriority     = 22 // optional int32

	fieldTimestampSeconds = 1 // int64
	fieldTimestampNanos   = 2 // int32
)

// maxMessages bounds the messages of a request decoded here. An arena
// takes 640 bytes where an empty message takes 2 on the wire: a request of
// 2-byte messages (grpc.maxRecvMessageSize allows 130 MiB of them) would
// allocate six times what proto.Unmarshal does. Larger batches than
// clients send go to proto.Unmarshal.
const maxMessages = 1024

// arena holds everything of one message that proto.Unmarshal would
// allocate on its own, except strings, the body, the map and the keys.
type arena struct {
	msg      v2.Message
	topic    v2.Resource
	sys      v2.SystemProperties
	born     timestamppb.Timestamp
	delivery timestamppb.Timestamp
	tag      string
	group    string
	trace    string
	lite     string
	priority int32
	// one backs the request's Messages when it has a single message.
	one [1]*v2.Message
}

// decoder runs both passes over a request: with build false it only checks
// the input and counts, with build true (on input the first pass accepted)
// it fills the arenas.
type decoder struct {
	build bool
	// msg is the index of the next message.
	msg int
	// strLen and keyLen total the string bytes and keys of the request.
	strLen int
	keyLen int

	// Second pass only.
	arenas []arena
	msgs   []*v2.Message
	strs   strings.Builder
	keys   []string
	keyOff int
}

// Unmarshal decodes b into req with the result of proto.Unmarshal(b, req),
// which it calls for any input it does not decode itself (see the package
// comment). The result does not alias b.
func Unmarshal(b []byte, req *v2.SendMessageRequest) error {
	var d decoder
	if !d.request(b) {
		return proto.Unmarshal(b, req)
	}
	n := d.msg
	d.build, d.msg = true, 0
	if n > 0 {
		d.arenas = make([]arena, n)
		if n == 1 {
			d.msgs = d.arenas[0].one[:]
		} else {
			d.msgs = make([]*v2.Message, n)
		}
	}
	if d.strLen > 0 {
		d.strs.Grow(d.strLen)
	}
	if d.keyLen > 0 {
		d.keys = make([]string, d.keyLen)
	}
	d.request(b) // accepted by the first pass: cannot fail
	req.Reset()
	req.Messages = d.msgs
	return nil
}

// request decodes a SendMessageRequest.
func (d *decoder) request(b []byte) bool {
	for len(b) > 0 {
		v, n := field(b, fieldRequestMessages)
		if n < 0 {
			return false
		}
		b = b[n:]
		if !d.message(v) {
			return false
		}
	}
	return true
}

// field consumes a length-delimited field numbered num at the start of b
// and returns its value and the bytes consumed, or n < 0 when b starts with
// anything else.
func field(b []byte, num protowire.Number) (v []byte, n int) {
	got, typ, n := protowire.ConsumeTag(b)
	if n < 0 || got != num || typ != protowire.BytesType {
		return nil, -1
	}
	v, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return nil, -1
	}
	return v, n + m
}

// once records field num in seen and reports whether it was new.
func once(seen *uint32, num protowire.Number) bool {
	bit := uint32(1) << uint(num)
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// str returns the string value v: in the first pass it checks v as
// protobuf does and counts its bytes, in the second it copies v into the
// request's string buffer.
func (d *decoder) str(v []byte) (string, bool) {
	if !d.build {
		if !utf8.Valid(v) {
			return "", false
		}
		d.strLen += len(v)
		return "", true
	}
	if len(v) == 0 {
		return "", true
	}
	off := d.strs.Len()
	d.strs.Write(v) // within the capacity grown for the request: never moves
	return d.strs.String()[off:], true
}

// message decodes one Message of the request.
func (d *decoder) message(b []byte) bool {
	i := d.msg
	if i == maxMessages {
		return false
	}
	d.msg++
	var a *arena
	if d.build {
		a = &d.arenas[i]
		d.msgs[i] = &a.msg
	}
	var seen uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		switch num {
		case fieldMessageTopic:
			if !once(&seen, num) || !d.resource(v, a) {
				return false
			}
			if d.build {
				a.msg.Topic = &a.topic
			}
		case fieldMessageUserProps:
			k, val, ok := d.entry(v)
			if !ok {
				return false
			}
			if !d.build {
				continue
			}
			if a.msg.UserProperties == nil {
				a.msg.UserProperties = make(map[string]string, 1+entries(b))
			}
			a.msg.UserProperties[k] = val
		case fieldMessageSystemProp:
			if !once(&seen, num) || !d.system(v, a) {
				return false
			}
			if d.build {
				a.msg.SystemProperties = &a.sys
			}
		case fieldMessageBody:
			if !once(&seen, num) {
				return false
			}
			if d.build {
				a.msg.Body = append([]byte(nil), v...) // nil when empty, as protobuf
			}
		default:
			return false
		}
	}
	return true
}

// entries counts the user-property entries in b, the rest of a message
// the first pass accepted.
func entries(b []byte) int {
	n := 0
	for len(b) > 0 {
		num, _, m := protowire.ConsumeTag(b)
		_, l := protowire.ConsumeBytes(b[m:])
		b = b[m+l:]
		if num == fieldMessageUserProps {
			n++
		}
	}
	return n
}

// resource decodes a Resource into a.topic.
func (d *decoder) resource(b []byte, a *arena) bool {
	var seen uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		if (num != fieldResourceNamespace && num != fieldResourceName) || !once(&seen, num) {
			return false
		}
		s, ok := d.str(v)
		if !ok {
			return false
		}
		if d.build {
			if num == fieldResourceNamespace {
				a.topic.ResourceNamespace = s
			} else {
				a.topic.Name = s
			}
		}
	}
	return true
}

// entry decodes a map<string, string> entry: each of key and value at most
// once (protobuf defaults a missing one to "").
func (d *decoder) entry(b []byte) (key, value string, ok bool) {
	var seen uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return "", "", false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return "", "", false
		}
		b = b[n+m:]
		if (num != fieldEntryKey && num != fieldEntryValue) || !once(&seen, num) {
			return "", "", false
		}
		s, ok := d.str(v)
		if !ok {
			return "", "", false
		}
		if num == fieldEntryKey {
			key = s
		} else {
			value = s
		}
	}
	return key, value, true
}

// system decodes SystemProperties into a.sys (and a's optional fields).
func (d *decoder) system(b []byte, a *arena) bool {
	var seen uint32
	keyStart := d.keyOff
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case fieldSysBodyEncoding, fieldSysMessageType, fieldSysQueueID, fieldSysPriority:
			if typ != protowire.VarintType || !once(&seen, num) {
				return false
			}
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false
			}
			b = b[m:]
			if !d.build {
				continue
			}
			switch num {
			case fieldSysBodyEncoding:
				a.sys.BodyEncoding = v2.Encoding(int32(x))
			case fieldSysMessageType:
				a.sys.MessageType = v2.MessageType(int32(x))
			case fieldSysQueueID:
				a.sys.QueueId = int32(x)
			default:
				a.priority = int32(x)
				a.sys.Priority = &a.priority
			}
			continue
		case fieldSysKeys:
			if typ != protowire.BytesType {
				return false
			}
		case fieldSysTag, fieldSysMessageID, fieldSysBornTime, fieldSysBornHost, fieldSysDeliveryTime,
			fieldSysMessageGroup, fieldSysTraceContext, fieldSysLiteTopic:
			if typ != protowire.BytesType || !once(&seen, num) {
				return false
			}
		default:
			return false
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return false
		}
		b = b[m:]
		switch num {
		case fieldSysBornTime, fieldSysDeliveryTime:
			sec, nanos, ok := timestamp(v)
			if !ok {
				return false
			}
			if !d.build {
				continue
			}
			ts := &a.born
			if num == fieldSysDeliveryTime {
				ts = &a.delivery
			}
			ts.Seconds, ts.Nanos = sec, nanos
			if num == fieldSysBornTime {
				a.sys.BornTimestamp = ts
			} else {
				a.sys.DeliveryTimestamp = ts
			}
			continue
		}
		s, ok := d.str(v)
		if !ok {
			return false
		}
		if !d.build {
			if num == fieldSysKeys {
				d.keyLen++
			}
			continue
		}
		switch num {
		case fieldSysKeys:
			d.keys[d.keyOff] = s
			d.keyOff++
		case fieldSysTag:
			a.tag = s
			a.sys.Tag = &a.tag
		case fieldSysMessageID:
			a.sys.MessageId = s
		case fieldSysBornHost:
			a.sys.BornHost = s
		case fieldSysMessageGroup:
			a.group = s
			a.sys.MessageGroup = &a.group
		case fieldSysTraceContext:
			a.trace = s
			a.sys.TraceContext = &a.trace
		case fieldSysLiteTopic:
			a.lite = s
			a.sys.LiteTopic = &a.lite
		}
	}
	if d.build && d.keyOff > keyStart {
		a.sys.Keys = d.keys[keyStart:d.keyOff:d.keyOff]
	}
	return true
}

// timestamp decodes a google.protobuf.Timestamp.
func timestamp(b []byte) (seconds int64, nanos int32, ok bool) {
	var seen uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType {
			return 0, 0, false
		}
		if (num != fieldTimestampSeconds && num != fieldTimestampNanos) || !once(&seen, num) {
			return 0, 0, false
		}
		x, m := protowire.ConsumeVarint(b[n:])
		if m < 0 {
			return 0, 0, false
		}
		b = b[n+m:]
		if num == fieldTimestampSeconds {
			seconds = int64(x)
		} else {
			nanos = int32(x)
		}
	}
	return seconds, nanos, true
}
