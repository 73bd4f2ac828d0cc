package domain

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"time"
)

// MessageIDVersion tells which of RocketMQ's id layouts a message id uses.
type MessageIDVersion uint8

// Message id layouts (see ParseMessageID).
const (
	MessageIDV0     MessageIDVersion = 0 // 4.x Remoting clients: IPv4, pid, class-loader hash, time, counter
	MessageIDV1     MessageIDVersion = 1 // 5.x gRPC clients: 0x01, MAC, pid, seconds since 2021, sequence
	MessageIDOffset MessageIDVersion = 2 // broker offset id: store host and commit-log offset
)

// MessageID is a decoded message id. Only the fields of its layout are set.
type MessageID struct {
	Version MessageIDVersion
	// V1 fields.
	MAC      [6]byte
	PID      uint16
	Time     time.Time // v1: second precision
	Sequence uint32
	// V0 fields (PID above is shared).
	IP             netip.Addr
	ClassLoaderKey uint32
	Counter        uint16
	// Offset-id fields (IP above is shared).
	Port            uint32
	CommitLogOffset int64
}

// messageIDEpoch is the time origin of v1 ids: 2021-01-01T00:00:00Z.
var messageIDEpoch = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseMessageID decodes id as a v1 id (34 hex digits starting with 01), a
// v0 id (32 hex digits from an IPv4 client) or, when asOffsetID is true, a
// broker offset id (32 hex digits: IPv4, port, commit-log offset). The proxy
// itself treats ids as opaque; this decoder serves lookups by id. Malformed
// input yields a ReasonIllegalMessageID error, never a panic.
func ParseMessageID(id string, asOffsetID bool) (MessageID, error) {
	bad := func(why string) (MessageID, error) {
		return MessageID{}, Errorf(ReasonIllegalMessageID, "message id %q is malformed: %s", truncate(id), why)
	}
	raw, err := hex.DecodeString(id)
	if err != nil {
		return bad("it is not hexadecimal")
	}
	switch {
	case len(raw) == 17 && raw[0] == 0x01 && !asOffsetID:
		var m MessageID
		m.Version = MessageIDV1
		copy(m.MAC[:], raw[1:7])
		m.PID = binary.BigEndian.Uint16(raw[7:9])
		m.Time = messageIDEpoch.Add(time.Duration(binary.BigEndian.Uint32(raw[9:13])) * time.Second)
		m.Sequence = binary.BigEndian.Uint32(raw[13:17])
		return m, nil
	case len(raw) == 16 && asOffsetID:
		var m MessageID
		m.Version = MessageIDOffset
		m.IP = netip.AddrFrom4([4]byte(raw[0:4]))
		m.Port = binary.BigEndian.Uint32(raw[4:8])
		m.CommitLogOffset = int64(binary.BigEndian.Uint64(raw[8:16]))
		return m, nil
	case len(raw) == 16:
		var m MessageID
		m.Version = MessageIDV0
		m.IP = netip.AddrFrom4([4]byte(raw[0:4]))
		m.PID = binary.BigEndian.Uint16(raw[4:6])
		m.ClassLoaderKey = binary.BigEndian.Uint32(raw[6:10])
		m.Time = time.UnixMilli(int64(binary.BigEndian.Uint32(raw[10:14]))) // ms since start of month; month unknown
		m.Counter = binary.BigEndian.Uint16(raw[14:16])
		return m, nil
	default:
		return bad("expected 32 or 34 hexadecimal digits")
	}
}

// String encodes the id back into its upper-case hex form.
func (m MessageID) String() string {
	var raw []byte
	switch m.Version {
	case MessageIDV1:
		raw = make([]byte, 17)
		raw[0] = 0x01
		copy(raw[1:7], m.MAC[:])
		binary.BigEndian.PutUint16(raw[7:9], m.PID)
		binary.BigEndian.PutUint32(raw[9:13], uint32(m.Time.Sub(messageIDEpoch)/time.Second))
		binary.BigEndian.PutUint32(raw[13:17], m.Sequence)
	case MessageIDOffset:
		raw = make([]byte, 16)
		ip4 := m.IP.As4()
		copy(raw[0:4], ip4[:])
		binary.BigEndian.PutUint32(raw[4:8], m.Port)
		binary.BigEndian.PutUint64(raw[8:16], uint64(m.CommitLogOffset))
	default:
		raw = make([]byte, 16)
		ip4 := m.IP.As4()
		copy(raw[0:4], ip4[:])
		binary.BigEndian.PutUint16(raw[4:6], m.PID)
		binary.BigEndian.PutUint32(raw[6:10], m.ClassLoaderKey)
		binary.BigEndian.PutUint32(raw[10:14], uint32(m.Time.UnixMilli()))
		binary.BigEndian.PutUint16(raw[14:16], m.Counter)
	}
	return strings.ToUpper(hex.EncodeToString(raw))
}

// OffsetMessageID builds the broker offset id of a stored message, used as
// its id when the producer gave none.
func OffsetMessageID(storeIP netip.Addr, port uint32, commitLogOffset int64) string {
	if !storeIP.Is4() {
		storeIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return MessageID{Version: MessageIDOffset, IP: storeIP, Port: port, CommitLogOffset: commitLogOffset}.String()
}
