package sendpb

import (
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/rmqproxy/rmqproxy/adapters/grpc/internal/wire"
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

	// A map entry's fields are both strings (wire.Pass.Strings).
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

// decoder runs both passes over a request: with Build false it only checks
// the input and counts, with Build true (on input the first pass accepted)
// it fills the arenas.
type decoder struct {
	wire.Pass
	// msg is the index of the next message.
	msg int
	// keyLen totals the keys of the request.
	keyLen int

	// Second pass only.
	arenas []arena
	msgs   []*v2.Message
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
	d.msg = 0
	d.Second()
	if n > 0 {
		d.arenas = make([]arena, n)
		if n == 1 {
			d.msgs = d.arenas[0].one[:]
		} else {
			d.msgs = make([]*v2.Message, n)
		}
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
		num, v, n := wire.Bytes(b)
		if n < 0 || num != fieldRequestMessages {
			return false
		}
		b = b[n:]
		if !d.message(v) {
			return false
		}
	}
	return true
}

// message decodes one Message of the request.
func (d *decoder) message(b []byte) bool {
	i := d.msg
	if i == maxMessages {
		return false
	}
	d.msg++
	var a *arena
	if d.Build {
		a = &d.arenas[i]
		d.msgs[i] = &a.msg
	}
	var seen wire.Seen
	for len(b) > 0 {
		num, v, n := wire.Bytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case fieldMessageTopic:
			var r *v2.Resource
			if d.Build {
				r = &a.topic
				a.msg.Topic = r
			}
			if !seen.Once(num) || !d.Resource(v, r) {
				return false
			}
		case fieldMessageUserProps:
			var kv [fieldEntryValue]string
			if _, ok := d.Strings(v, kv[:]); !ok {
				return false
			}
			if !d.Build {
				continue
			}
			if a.msg.UserProperties == nil {
				a.msg.UserProperties = make(map[string]string, 1+entries(b))
			}
			a.msg.UserProperties[kv[fieldEntryKey-1]] = kv[fieldEntryValue-1]
		case fieldMessageSystemProp:
			if !seen.Once(num) || !d.system(v, a) {
				return false
			}
			if d.Build {
				a.msg.SystemProperties = &a.sys
			}
		case fieldMessageBody:
			if !seen.Once(num) {
				return false
			}
			if d.Build {
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
		num, _, m := wire.Bytes(b)
		b = b[m:]
		if num == fieldMessageUserProps {
			n++
		}
	}
	return n
}

// system decodes SystemProperties into a.sys (and a's optional fields).
func (d *decoder) system(b []byte, a *arena) bool {
	var seen wire.Seen
	keyStart := d.keyOff
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case fieldSysBodyEncoding, fieldSysMessageType, fieldSysQueueID, fieldSysPriority:
			if typ != protowire.VarintType || !seen.Once(num) {
				return false
			}
			x, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false
			}
			b = b[m:]
			if !d.Build {
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
			if typ != protowire.BytesType || !seen.Once(num) {
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
			if !d.Build {
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
		s, ok := d.Str(v)
		if !ok {
			return false
		}
		if !d.Build {
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
	if d.Build && d.keyOff > keyStart {
		a.sys.Keys = d.keys[keyStart:d.keyOff:d.keyOff]
	}
	return true
}

// timestamp decodes a google.protobuf.Timestamp.
func timestamp(b []byte) (seconds int64, nanos int32, ok bool) {
	var seen wire.Seen
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType {
			return 0, 0, false
		}
		if (num != fieldTimestampSeconds && num != fieldTimestampNanos) || !seen.Once(num) {
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
