package remoting

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"time"
)

// OffsetMsgID returns the offset message id of a stored message: upper-case
// hex of store IP (4 or 16 bytes), port (int32) and commit-log offset
// (int64), 32 or 56 characters.
func OffsetMsgID(store netip.AddrPort, commitLogOffset int64) string {
	var b [28]byte
	n := copy(b[:], hostBytes(store.Addr()))
	binary.BigEndian.PutUint32(b[n:], uint32(store.Port()))
	binary.BigEndian.PutUint64(b[n+4:], uint64(commitLogOffset))
	return strings.ToUpper(hex.EncodeToString(b[:n+12]))
}

func hostBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return make([]byte, 4)
	}
	if a.Is4() {
		ip := a.As4()
		return ip[:]
	}
	ip := a.As16()
	return ip[:]
}

// ParseOffsetMsgID reads an offset message id (either case), as Java's
// MessageDecoder.decodeMessageId does: 32 characters is IPv4, 56 IPv6.
func ParseOffsetMsgID(id string) (store netip.AddrPort, commitLogOffset int64, err error) {
	if len(id) != 32 && len(id) != 56 {
		return store, 0, decodeErr("offset message id", "length "+itoa(len(id))+" is neither 32 nor 56")
	}
	b, herr := hex.DecodeString(id)
	if herr != nil {
		return store, 0, &DecodeError{What: "offset message id", Reason: "not hex", Err: herr}
	}
	n := 4
	if len(b) == 28 {
		n = 16
	}
	addr, _ := netip.AddrFromSlice(b[:n])
	port := int32(binary.BigEndian.Uint32(b[n:]))
	if port < 0 || port > 65535 {
		return store, 0, decodeErr("offset message id", "port "+itoa(int(port))+" out of range")
	}
	return netip.AddrPortFrom(addr, uint16(port)), int64(binary.BigEndian.Uint64(b[n+4:])), nil
}

// UniqID is the decoded form of a client unique message id (the UNIQ_KEY
// property, MessageClientIDSetter): IP ‖ pid ‖ class-loader hash ‖ ms since
// the start of the month the generator started in ‖ counter.
type UniqID struct {
	IP              netip.Addr
	PID             uint16
	ClassLoaderHash int32
	// SinceMonthStart is ms since the start of the generator's month (in
	// the producer's time zone, which the id does not say).
	SinceMonthStart int32
	Counter         uint16
}

// ParseUniqID decodes a unique message id of 32 (IPv4) or 56 (IPv6) hex
// characters, in either case (Go clients mix cases).
func ParseUniqID(id string) (UniqID, error) {
	var u UniqID
	if len(id) != 32 && len(id) != 56 {
		return u, decodeErr("unique message id", "length "+itoa(len(id))+" is neither 32 nor 56")
	}
	b, err := hex.DecodeString(id)
	if err != nil {
		return u, &DecodeError{What: "unique message id", Reason: "not hex", Err: err}
	}
	n := len(b) - 12
	u.IP, _ = netip.AddrFromSlice(b[:n])
	u.PID = binary.BigEndian.Uint16(b[n:])
	u.ClassLoaderHash = int32(binary.BigEndian.Uint32(b[n+2:]))
	u.SinceMonthStart = int32(binary.BigEndian.Uint32(b[n+6:]))
	u.Counter = binary.BigEndian.Uint16(b[n+10:])
	return u, nil
}

// String returns the id as Java writes it (upper-case hex).
func (u UniqID) String() string {
	var b [28]byte
	n := copy(b[:], hostBytes(u.IP))
	binary.BigEndian.PutUint16(b[n:], u.PID)
	binary.BigEndian.PutUint32(b[n+2:], uint32(u.ClassLoaderHash))
	binary.BigEndian.PutUint32(b[n+6:], uint32(u.SinceMonthStart))
	binary.BigEndian.PutUint16(b[n+10:], u.Counter)
	return strings.ToUpper(hex.EncodeToString(b[:n+12]))
}

// MonthStart returns the start of t's month in t's location, the epoch of
// UniqID.SinceMonthStart.
func MonthStart(t time.Time) time.Time {
	y, m, _ := t.Date()
	return time.Date(y, m, 1, 0, 0, 0, 0, t.Location())
}
