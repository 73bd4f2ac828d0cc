package remoting

import (
	"encoding/binary"
	"math"
	"strconv"
)

// binaryFixedLen is the fixed part of a ROCKETMQ header: code(2)
// language(1) version(2) opaque(4) flag(4) remarkLen(4) extLen(4).
const binaryFixedLen = 21

func appendBinaryHeader(dst []byte, c *Command) ([]byte, error) {
	if c.Code < math.MinInt16 || c.Code > math.MaxInt16 {
		return dst, frameErr(-1, "code "+strconv.Itoa(int(c.Code))+" does not fit a ROCKETMQ header; use JSON")
	}
	if c.Version < math.MinInt16 || c.Version > math.MaxInt16 {
		return dst, frameErr(-1, "version "+strconv.Itoa(int(c.Version))+" does not fit a ROCKETMQ header; use JSON")
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(c.Code)))
	dst = append(dst, byte(c.Language))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(c.Version)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Opaque))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.Flag))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.Remark)))
	dst = append(dst, c.Remark...)
	extAt := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	for _, kv := range c.Fields {
		if len(kv.Key) > math.MaxInt16 {
			return dst, frameErr(-1, "ext field key of "+strconv.Itoa(len(kv.Key))+" bytes exceeds 32767")
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(kv.Key)))
		dst = append(dst, kv.Key...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(kv.Value)))
		dst = append(dst, kv.Value...)
	}
	binary.BigEndian.PutUint32(dst[extAt:], uint32(len(dst)-extAt-4))
	return dst, nil
}

// decodeBinaryHeader decodes a ROCKETMQ header as Java's
// RocketMQSerializable does: 16-bit signed code and version, zero-length
// strings are empty, a non-positive ext length means no ext fields. It is
// stricter than Java in one way: strings and entries must lie inside the
// header. All strings share one allocation (a copy of the header).
func decodeBinaryHeader(c *Command, h []byte) error {
	const base = 4 // offsets in errors are relative to the frame
	if len(h) < binaryFixedLen {
		return frameErr(base, "ROCKETMQ header of "+strconv.Itoa(len(h))+" bytes is shorter than 21")
	}
	c.Code = int32(int16(binary.BigEndian.Uint16(h)))
	c.Language = LanguageCode(h[2])
	c.Version = int32(int16(binary.BigEndian.Uint16(h[3:])))
	c.Opaque = int32(binary.BigEndian.Uint32(h[5:]))
	c.Flag = int32(binary.BigEndian.Uint32(h[9:]))
	s := string(h) // one copy; every string below is a substring of it
	i := 13
	remarkLen := int(int32(binary.BigEndian.Uint32(h[i:])))
	i += 4
	if remarkLen < 0 || remarkLen > len(h)-i-4 {
		return frameErr(base+13, "remark length "+strconv.Itoa(remarkLen)+" is outside the header")
	}
	c.Remark = s[i : i+remarkLen]
	i += remarkLen
	extLen := int(int32(binary.BigEndian.Uint32(h[i:])))
	i += 4
	if extLen <= 0 {
		return nil
	}
	if extLen > len(h)-i {
		return frameErr(base+i-4, "ext fields length "+strconv.Itoa(extLen)+" is outside the header")
	}
	end := i + extLen
	// Each entry takes at least 6 bytes; size the slice once.
	c.Fields = make(Fields, 0, min(extLen/6, 64))
	for i < end {
		if end-i < 2 {
			return frameErr(base+i, "truncated ext field key length")
		}
		klen := int(int16(binary.BigEndian.Uint16(h[i:])))
		i += 2
		if klen < 0 || klen > end-i-4 {
			return frameErr(base+i-2, "ext field key length "+strconv.Itoa(klen)+" is outside the ext fields")
		}
		key := s[i : i+klen]
		i += klen
		vlen := int(int32(binary.BigEndian.Uint32(h[i:])))
		i += 4
		if vlen < 0 || vlen > end-i {
			return frameErr(base+i-4, "ext field value length "+strconv.Itoa(vlen)+" is outside the ext fields")
		}
		c.Fields = append(c.Fields, Field{Key: key, Value: s[i : i+vlen]})
		i += vlen
	}
	return nil
}
