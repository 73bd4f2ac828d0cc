package commitlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// fuzzRec is one record the fuzz target writes: its offset and payload.
type fuzzRec struct {
	off     int64
	payload []byte
}

// fuzzRecords derives records from spec, 3 bytes each: a payload size
// (0..6000) and a kind (patterned bytes, all zeros, or a body holding frames
// forged for their positions, see forgedBody).
func fuzzRecords(spec []byte) ([]fuzzRec, []byte) {
	var recs []fuzzRec
	var data []byte
	for i := 0; i+3 <= len(spec) && len(recs) < 24; i += 3 {
		n := (int(spec[i])<<8 | int(spec[i+1])) % 6001
		off := int64(len(data))
		var p []byte
		switch kind := spec[i+2] % 8; kind {
		case 6:
			p = make([]byte, n)
		case 7:
			p = forgedBody(off+PayloadStart, max(n, 200))
		default:
			p = make([]byte, n)
			for j := range p {
				p[j] = byte(j*int(kind+1) + i)
			}
		}
		recs = append(recs, fuzzRec{off, p})
		data = appendFrame(data, off, 1, p)
	}
	return recs, data
}

// fuzzSpec builds a spec from (size, kind) pairs for the seed corpus.
func fuzzSpec(pairs ...int) []byte {
	var b []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		b = append(b, byte(pairs[i]>>8), byte(pairs[i]), byte(pairs[i+1]))
	}
	return b
}

// FuzzRecoveryKeepsSyncedRecords builds the segment a power loss can leave
// (docs/storage.md, "Group commit and flush policy" and "Preallocation"):
// records, of which a prefix was fdatasynced; after it, at most the hole
// window of unsynced records (the writer syncs once more than MaxPending
// bytes were written, a round writes at most twice that or one record);
// with preallocation, zeros (synced) after the records up to a page-rounded
// length; each page wholly or partly after the synced end either reached
// the disk or reads back as it was synced (the synced bytes, then zeros);
// without preallocation the file may also end anywhere after the synced
// end (a torn tail). Both recovery modes must open it and replay every
// synced record, byte-identical, in order, and never a record that was not
// written; the one exception is documented: strict recovery refuses, at a
// record after the synced ones, when an unsynced record's body holds
// frames forged for their positions. With one bit of a synced byte flipped instead (damage), Open may
// refuse, but must not panic, and if it opens it replays a prefix of the
// records as written; strict may open only if no synced record follows the
// damaged one intact (it must not cut intact synced records away).
//
// Parameters: spec (see fuzzRecords), synced (how many records were
// synced, mod the count), prealloc, tail (with prealloc: extra zero pages;
// without: odd values cut the file short), lost (bit i: the i-th page from
// the one holding the synced end did not reach the disk), damage (non-zero:
// flip bit damage&7 of synced byte (damage>>3) mod the synced length, and
// lose no page).
func FuzzRecoveryKeepsSyncedRecords(f *testing.F) {
	// Clean, all synced.
	f.Add(fuzzSpec(100, 0, 3000, 1, 50, 2, 5000, 3), uint8(4), false, uint16(0), uint64(0), uint32(0))
	// Preallocated, clean, two records unsynced but stored.
	f.Add(fuzzSpec(100, 0, 3000, 1, 50, 2, 5000, 3), uint8(2), true, uint16(2), uint64(0), uint32(0))
	// The first unsynced page lost (it holds the synced end).
	f.Add(fuzzSpec(1000, 0, 1000, 1, 3000, 2, 4000, 3, 4000, 4, 2000, 5), uint8(2), true, uint16(1), uint64(1), uint32(0))
	// A middle page lost, the ones around it stored.
	f.Add(fuzzSpec(1000, 0, 1000, 1, 3000, 2, 4000, 3, 4000, 4, 2000, 5, 6000, 0), uint8(2), true, uint16(0), uint64(4), uint32(0))
	f.Add(fuzzSpec(1000, 0, 1000, 1, 3000, 2, 4000, 3, 4000, 4, 2000, 5, 6000, 0), uint8(2), false, uint16(0), uint64(2), uint32(0))
	// Bodies of zeros, synced and not, with a lost page and a torn tail.
	f.Add(fuzzSpec(5000, 6, 6000, 6, 100, 0, 6000, 6, 4096, 6), uint8(2), false, uint16(201), uint64(2), uint32(0))
	f.Add(fuzzSpec(5000, 6, 6000, 6, 100, 0, 6000, 6, 4096, 6), uint8(1), true, uint16(0), uint64(6), uint32(0))
	// Bodies forging frames, synced and not.
	f.Add(fuzzSpec(300, 7, 5000, 7, 300, 7, 6000, 7), uint8(1), true, uint16(0), uint64(2), uint32(0))
	f.Add(fuzzSpec(300, 7, 5000, 7, 300, 7, 6000, 7), uint8(2), false, uint16(1001), uint64(0), uint32(0))
	// Damage: a synced length, a synced body byte.
	f.Add(fuzzSpec(100, 0, 3000, 1, 50, 2, 5000, 3), uint8(2), true, uint16(0), uint64(0), uint32((109+2)<<3|1))
	f.Add(fuzzSpec(100, 0, 3000, 1, 50, 2, 5000, 3), uint8(3), false, uint16(0), uint64(0), uint32(2000<<3|4))

	f.Fuzz(func(t *testing.T, spec []byte, synced uint8, prealloc bool, tail uint16, lost uint64, damage uint32) {
		recs, written := fuzzRecords(spec)
		end := func(i int) int64 { // the end of the first i records
			if i == len(recs) {
				return int64(len(written))
			}
			return recs[i].off
		}
		nSynced := int(synced) % (len(recs) + 1)
		dir := t.TempDir()
		opts := preallocOptions(dir, new(bytes.Buffer))
		if !prealloc {
			opts.Preallocate = 0
		}
		l := &Log{opts: opts}
		// The writer never leaves more than the hole window unsynced.
		for end(len(recs))-end(nSynced) > l.holeWindow() {
			nSynced++
		}
		syncedEnd := end(nSynced)
		// Frames forged in the body of an unsynced record a power loss
		// kept in part look like records after a damaged length: strict
		// recovery refuses (at an unsynced record, dropping nothing) rather
		// than risk cutting synced ones away (scan.go, validAfter and
		// powerLossHole).
		forgedUnsynced := false
		for _, r := range recs[nSynced:] {
			forgedUnsynced = forgedUnsynced || bytes.Contains(r.payload, []byte("forged-"))
		}

		// The file as written, then as the power loss left it.
		size := int64(len(written))
		if prealloc {
			size = (size+pageSize-1)/pageSize*pageSize + int64(tail%4)*pageSize
		} else if tail&1 == 1 {
			size -= int64(tail>>1) % (size - syncedEnd + 1)
		}
		file := make([]byte, size)
		copy(file, written)
		damaged := damage != 0 && syncedEnd > 0
		hit := -1 // the record holding the damaged byte
		if damaged {
			at := int64(damage>>3) % syncedEnd
			file[at] ^= 1 << (damage & 7)
			for hit+1 < len(recs) && recs[hit+1].off <= at {
				hit++
			}
		} else {
			for i, p := 0, syncedEnd/pageSize*pageSize; p < size && i < 64; i, p = i+1, p+pageSize {
				if lost&(1<<i) != 0 {
					clear(file[max(p, syncedEnd):min(p+pageSize, size)])
				}
			}
		}

		for _, mode := range []RecoveryMode{RecoveryStrict, RecoveryTruncate} {
			if err := os.WriteFile(filepath.Join(dir, SegmentName(0)), file, 0o600); err != nil {
				t.Fatal(err)
			}
			o := opts
			o.Recovery = mode
			n, bad := 0, false
			lg, err := Open(o, 0, func(off int64, typ byte, p []byte) error {
				if n >= len(recs) || off != recs[n].off || typ != 1 || !bytes.Equal(p, recs[n].payload) {
					bad = true
					return errors.New("replayed a record that was not written")
				}
				n++
				return nil
			})
			if bad {
				t.Fatalf("mode %d: record %d replayed differs from the one written (damaged %v)", mode, n, damaged)
			}
			if err != nil {
				var cerr *CorruptionError
				// The first unsynced record's length field can straddle a
				// page boundary with fewer than 4 bytes in the page holding
				// the sync point: that page read back as its synced version
				// zeroes a byte of the length, which nothing tells from a
				// damaged length, so strict may refuse (dropping nothing).
				straddle := syncedEnd%pageSize > pageSize-4
				if damaged || mode == RecoveryStrict && (forgedUnsynced || straddle) && errors.As(err, &cerr) && cerr.Offset >= syncedEnd {
					continue
				}
				t.Fatalf("mode %d: Open after a power loss (%d of %d records synced, ending at %d; file %d bytes, records end at %d): %v",
					mode, nSynced, len(recs), syncedEnd, size, len(written), err)
			}
			next := lg.NextOffset()
			lg.Close(t.Context())
			if next != end(n) {
				t.Fatalf("mode %d: replayed %d records ending at %d, but the log continues at %d", mode, n, end(n), next)
			}
			if mode == RecoveryStrict && damaged && hit < nSynced-1 && n < nSynced {
				// Synced records after the damaged one are intact: strict
				// must refuse rather than drop them.
				t.Fatalf("strict recovery opened, dropping synced records %d..%d after damage to record %d (replayed %d)",
					n, nSynced-1, hit, n)
			}
			if !damaged && n < nSynced {
				t.Fatalf("mode %d: replayed %d records, %d were synced (ending at %d; file %d bytes, records end at %d, lost pages %b)",
					mode, n, nSynced, syncedEnd, size, len(written), lost)
			}
		}
	})
}
