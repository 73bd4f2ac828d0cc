package commitlog

import (
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// TestFrameCRCIsTheChecksumOfPrefixAndPayload pins the frame checksum to its
// definition (CRC-32C of offset || type || payload), so that the
// allocation-free form reads every file written before it.
func TestFrameCRCIsTheChecksumOfPrefixAndPayload(t *testing.T) {
	for _, off := range []int64{0, 1, 4096, 1<<40 + 12345, -1} {
		for _, payload := range [][]byte{nil, {0}, []byte("a record payload")} {
			whole := binary.BigEndian.AppendUint64(nil, uint64(off))
			whole = append(whole, 7)
			whole = append(whole, payload...)
			if got, want := frameCRC(off, 7, payload), crc32.Checksum(whole, castagnoli); got != want {
				t.Errorf("frameCRC(%d, 7, %q) = %#x, want %#x", off, payload, got, want)
			}
		}
	}
}

func TestFrameCRCDoesNotAllocate(t *testing.T) {
	payload := make([]byte, 1024)
	if n := testing.AllocsPerRun(100, func() { frameCRC(4096, 1, payload) }); n != 0 {
		t.Errorf("frameCRC allocates %v times per call, want 0", n)
	}
}
