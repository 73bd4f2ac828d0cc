package commitlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
)

// TestDamagedLengthWithinTheDataRefused: damage to the length of a synced
// record near the end of the last segment that makes it claim an extent
// the segment's data holds, covering the intact records after it (ending
// inside the last one, or covering a later record's body of zeros), is no
// torn tail and no power loss's hole: recovery: strict refuses. The search
// for valid records used to skip the claimed extent (it found nothing after
// it and cut three synced records as a torn tail), and the hole check took
// the later record's zero page for a hole in the damaged record (it cut
// them as a power loss's unsynced writes).
func TestDamagedLengthWithinTheDataRefused(t *testing.T) {
	cases := map[string]struct {
		bodies [][]byte // the records from the damaged one on
		claim  uint32   // the damaged length field
	}{
		// 3 records of 1009 bytes; 2500 bytes claimed: into the third.
		"into the last record": {[][]byte{payloadN(0, 1000), payloadN(1, 1000), payloadN(2, 1000)}, 2492},
		// The second record's body holds whole zero pages.
		"over a body of zeros": {[][]byte{payloadN(0, 1000), append(bytes.Repeat([]byte{'x'}, 200), make([]byte, 12<<10)...), payloadN(2, 100)}, 1001 + 1<<13},
	}
	for name, tc := range cases {
		for _, prealloc := range []int64{0, 64 << 10} {
			t.Run(fmt.Sprintf("%s/preallocate=%d", name, prealloc), func(t *testing.T) {
				var logged bytes.Buffer
				opts := preallocOptions(t.TempDir(), &logged)
				opts.Preallocate = prealloc
				l, _ := openLog(t, opts, 0)
				for i := range 20 {
					appendWait(t, l, 1, payloadN(i, 1000))
				}
				bad, _ := appendWait(t, l, 1, tc.bodies[0])
				for _, b := range tc.bodies[1:] {
					appendWait(t, l, 1, b)
				}
				seg := lastSegment(t, opts.Dir)
				if err := l.Close(t.Context()); err != nil {
					t.Fatal(err)
				}
				f, err := os.OpenFile(seg, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				var n [4]byte
				binary.BigEndian.PutUint32(n[:], tc.claim)
				if _, err := f.WriteAt(n[:], bad); err != nil {
					t.Fatal(err)
				}
				f.Close()
				openRefused(t, opts, seg, bad)
			})
		}
	}
}
