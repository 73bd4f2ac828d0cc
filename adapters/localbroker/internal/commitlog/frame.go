package commitlog

import (
	"encoding/binary"
	"hash/crc32"
)

// Frame layout (big endian, the byte order of RocketMQ's own files):
//
//	offset  size  field
//	0       4     length L = 1 + len(payload)  (bytes after the CRC field)
//	4       4     CRC-32C (Castagnoli) of: logical offset (8 bytes BE) || type || payload
//	8       1     record type (1..255, 0 is never valid)
//	9       L-1   payload
//
// The logical offset is part of the checksummed bytes but not stored: a frame
// only validates at the position it was written to, so stale bytes left by an
// earlier truncation, or a frame-shaped sequence inside a message body, are
// never mistaken for a record at another position.
const (
	// HeaderSize is the number of bytes before the type byte.
	HeaderSize = 8
	// PayloadStart is the distance from a record's offset to its payload.
	PayloadStart = HeaderSize + 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C of p; the consume queue stores it per message.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// frameCRC is the frame checksum. The 9-byte prefix (offset, type) is
// folded in byte by byte: handing a stack array to crc32.Update would move
// it to the heap (one allocation per record).
func frameCRC(off int64, typ byte, payload []byte) uint32 {
	c := ^uint32(0)
	for shift := 56; shift >= 0; shift -= 8 {
		c = castagnoli[byte(c)^byte(uint64(off)>>shift)] ^ c>>8
	}
	c = castagnoli[byte(c)^typ] ^ c>>8
	return crc32.Update(^c, castagnoli, payload)
}

// appendFrame appends the frame of a record written at logical offset off.
func appendFrame(dst []byte, off int64, typ byte, payload []byte) []byte {
	var h [PayloadStart]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(1+len(payload)))
	binary.BigEndian.PutUint32(h[4:8], frameCRC(off, typ, payload))
	h[8] = typ
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// FrameSize is the size on disk of a record with a payload of n bytes.
func FrameSize(n int) int64 { return int64(PayloadStart + n) }

// frameProblem says why the bytes at a position are not a valid frame.
type frameProblem string

// checkFrame validates the frame at the start of b, which was read at
// logical offset off; avail is how many bytes exist in the segment from off
// (b may be shorter only when the frame is longer than b: then need says how
// many bytes are required). It never panics.
func checkFrame(b []byte, off int64, avail int64, maxRecord int64, known func(byte) bool) (size int64, need int64, problem frameProblem) {
	if avail < PayloadStart {
		return 0, 0, "truncated header"
	}
	if len(b) < PayloadStart {
		return 0, PayloadStart, ""
	}
	l := int64(binary.BigEndian.Uint32(b[0:4]))
	if l < 1 || l > maxRecord+1 {
		return 0, 0, "bad length"
	}
	if !known(b[8]) {
		return 0, 0, "unknown record type"
	}
	size = HeaderSize + l
	if size > avail {
		return 0, 0, "truncated record"
	}
	if int64(len(b)) < size {
		return 0, size, ""
	}
	if binary.BigEndian.Uint32(b[4:8]) != frameCRC(off, b[8], b[PayloadStart:size]) {
		return 0, 0, "checksum mismatch"
	}
	return size, 0, ""
}
