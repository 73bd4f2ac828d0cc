package commitlog

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzCheckFrame(f *testing.F) {
	f.Add(appendFrame(nil, 0, 1, []byte("hello")), int64(0))
	f.Add(appendFrame(nil, 4096, 3, nil), int64(4096))
	f.Add([]byte{0, 0, 0, 0}, int64(0))
	f.Add(bytes.Repeat([]byte{0xff}, 20), int64(7))
	known := func(b byte) bool { return b >= 1 && b <= 8 }
	f.Fuzz(func(t *testing.T, b []byte, off int64) {
		size, need, problem := checkFrame(b, off, int64(len(b)), 1<<16, known)
		if need > 0 {
			t.Fatalf("need %d with the whole input available", need)
		}
		if problem == "" {
			re := appendFrame(nil, off, b[8], b[PayloadStart:size])
			if !bytes.Equal(re, b[:size]) {
				t.Fatalf("re-encoding differs")
			}
		}
	})
}

// FuzzOpen writes arbitrary bytes as a segment and opens it: Open must not
// panic, and whatever it replays must re-encode to the bytes on disk.
func FuzzOpen(f *testing.F) {
	good := appendFrame(nil, 0, 1, []byte("one"))
	good = appendFrame(good, int64(len(good)), 2, []byte("two"))
	f.Add(good)
	f.Add(append(bytes.Clone(good), 1, 2, 3))
	bad := bytes.Clone(good)
	bad[10] ^= 1
	f.Add(bad)
	// A torn record whose body holds frames forged for their positions,
	// and a hole followed by plausible headers (see forged_test.go).
	torn := appendFrame(bytes.Clone(good), int64(len(good)), 1, forgedBody(int64(len(good))+PayloadStart, 300))
	f.Add(torn[:len(torn)-30])
	f.Add(append(append(bytes.Clone(good), make([]byte, PayloadStart)...), bytes.Repeat([]byte{0, 0, 0, 0x20, 1}, 40)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SegmentName(0)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []RecoveryMode{RecoveryStrict, RecoveryTruncate} {
			opts := testOptions(dir)
			opts.Recovery = mode
			var re []byte
			l, err := Open(opts, 0, func(off int64, typ byte, p []byte) error {
				if off != int64(len(re)) {
					t.Fatalf("record at %d after %d bytes", off, len(re))
				}
				re = appendFrame(re, off, typ, p)
				return nil
			})
			if err != nil {
				continue
			}
			if !bytes.HasPrefix(data, re) || l.NextOffset() != int64(len(re)) {
				t.Fatalf("replayed bytes are not a prefix of the segment")
			}
			if limit := 32*int64(len(data)) + 8*(opts.MaxRecordSize+PayloadStart); l.searchWork > limit {
				t.Fatalf("recovery examined %d bytes of a %d-byte segment", l.searchWork, len(data))
			}
			l.Close(t.Context())
		}
	})
}
