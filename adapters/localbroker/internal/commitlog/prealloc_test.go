package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/tmpfs"
)

// preallocOptions are options of a log that writes zeros ahead of its
// records; warnings go to logged.
func preallocOptions(dir string, logged *bytes.Buffer) Options {
	opts := testOptions(dir)
	opts.SegmentSize, opts.MaxRecordSize = 1<<20, 16<<10
	opts.Preallocate = 64 << 10
	opts.MaxPending = 16 << 10 // hole window: 48 KiB
	opts.Logger = slog.New(slog.NewTextHandler(logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return opts
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func sameRecords(t *testing.T, got, want []rec) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].off != want[i].off || got[i].typ != want[i].typ || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Fatalf("record %d: got offset %d (%d bytes), want offset %d (%d bytes)", i, got[i].off, len(got[i].payload), want[i].off, len(want[i].payload))
		}
	}
}

// TestPreallocatedSegmentsEndAtTheirRecords: with Preallocate, the active
// segment holds zeros ahead of its records (never past SegmentSize), every
// other segment ends at its last record, and a reopened log ends at its
// last record without calling the zeros a torn tail, with or without
// Preallocate.
func TestPreallocatedSegmentsEndAtTheirRecords(t *testing.T) {
	dir := t.TempDir()
	var logged bytes.Buffer
	opts := testOptions(dir)
	opts.Preallocate = 1024
	opts.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, _ := openLog(t, opts, 0)
	var want []rec
	for i := range 40 {
		p := payloadN(i, 200+i)
		off, _ := appendWait(t, l, 1, p)
		want = append(want, rec{off, 1, p})
	}
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("expected the log to roll, got %d segments", len(segs))
	}
	for _, s := range segs[:len(segs)-1] {
		if got := fileSize(t, s.Path); got != s.Size {
			t.Fatalf("segment %s: file holds %d bytes, its records %d: only the active segment may hold zeros", s.Path, got, s.Size)
		}
	}
	last := segs[len(segs)-1]
	if got := fileSize(t, last.Path); got <= last.Size || got > opts.SegmentSize {
		t.Fatalf("active segment: file holds %d bytes for %d bytes of records; want zeros ahead, up to the segment size %d", got, last.Size, opts.SegmentSize)
	}
	end := l.NextOffset()
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	l2, got := openLog(t, opts, 0)
	sameRecords(t, got, want)
	if l2.NextOffset() != end {
		t.Fatalf("reopened log ends at %d, want %d", l2.NextOffset(), end)
	}
	p := []byte("after reopening")
	off, _ := appendWait(t, l2, 1, p)
	want = append(want, rec{off, 1, p})
	l2.Close(t.Context())

	// Without Preallocate (an older configuration): the zeros left are
	// overwritten by the next records.
	opts.Preallocate = 0
	l3, got := openLog(t, opts, 0)
	sameRecords(t, got, want)
	p = []byte("without preallocation")
	off, _ = appendWait(t, l3, 1, p)
	want = append(want, rec{off, 1, p})
	l3.Close(t.Context())
	l4, got := openLog(t, opts, 0)
	defer l4.Close(t.Context())
	sameRecords(t, got, want)
	if logged.Len() > 0 {
		t.Fatalf("reopening a log that ends in zeros logged:\n%s", logged.String())
	}
}

// writeRecords makes a log of n records of 1,000 bytes with opts and
// closes it; it returns the records and the log's segment.
func writeRecords(t *testing.T, opts Options, n int) ([]rec, string) {
	t.Helper()
	l, _ := openLog(t, opts, 0)
	var all []rec
	for i := range n {
		p := payloadN(i, 1000)
		off, _ := appendWait(t, l, 1, p)
		all = append(all, rec{off, 1, p})
	}
	seg := lastSegment(t, opts.Dir)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	return all, seg
}

// openRefused opens the log of opts, whose recovery: strict must refuse
// with a *CorruptionError at bad and leave seg as it was; it returns the
// error.
func openRefused(t *testing.T, opts Options, seg string, bad int64) *CorruptionError {
	t.Helper()
	size := fileSize(t, seg)
	_, err := Open(opts, 0, func(int64, byte, []byte) error { return nil })
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Offset != bad {
		t.Fatalf("strict recovery with intact records after the damage: %v, want a *CorruptionError at %d", err, bad)
	}
	if fileSize(t, seg) != size {
		t.Fatal("strict recovery changed the segment")
	}
	return cerr
}

// zeroPageAt zeroes the 4 KiB page of the file holding position pos, as a
// power loss does to a written page that had not reached the disk yet,
// and returns the page's start.
func zeroPageAt(t *testing.T, path string, pos int64) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := pos / pageSize * pageSize
	if _, err := f.WriteAt(make([]byte, pageSize), start); err != nil {
		t.Fatal(err)
	}
	return start
}

// firstOverlapping returns the index of the first record whose frame
// reaches into [from, ...).
func firstOverlapping(all []rec, from int64) int {
	for i, r := range all {
		if r.off+FrameSize(len(r.payload)) > from {
			return i
		}
	}
	return len(all)
}

// TestPowerLossHoleCutsTheUnsyncedTail: the pages of writes not yet synced
// reach the disk in any order; one that did not reads back as zeros (over
// Preallocate's zeros, or filled in by the file system), with intact
// records after it. Near the end of
// the records (within three times MaxPending, the most the writer leaves
// unsynced) that is a power loss, not damage: recovery: strict cuts the log
// at the first record the hole touches, says so, and the log goes on.
func TestPowerLossHoleCutsTheUnsyncedTail(t *testing.T) {
	for _, prealloc := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) { testPowerLossHoleCutsTheUnsyncedTail(t, prealloc) })
	}
}

func testPowerLossHoleCutsTheUnsyncedTail(t *testing.T, prealloc int64) {
	dir := t.TempDir()
	var logged bytes.Buffer
	opts := preallocOptions(dir, &logged)
	opts.Preallocate = prealloc
	all, seg := writeRecords(t, opts, 60)
	end := all[len(all)-1].off + FrameSize(len(all[len(all)-1].payload))
	hole := zeroPageAt(t, seg, end-30_000) // ~30 KB of records after it
	keep := firstOverlapping(all, hole)
	if keep == 0 || end-all[keep].off > 3*opts.MaxPending {
		t.Fatalf("test set-up: the hole must lie within the window (record %d of %d)", keep, len(all))
	}

	l, got := openLog(t, opts, 0)
	sameRecords(t, got, all[:keep])
	if l.NextOffset() != all[keep].off {
		t.Fatalf("log ends at %d, want %d (the first record the hole touches)", l.NextOffset(), all[keep].off)
	}
	if !strings.Contains(logged.String(), "power loss") {
		t.Fatalf("the cut was not logged as a power loss's:\n%s", logged.String())
	}
	p := []byte("after the power loss")
	off, _ := appendWait(t, l, 1, p)
	l.Close(t.Context())
	l2, got := openLog(t, opts, 0)
	defer l2.Close(t.Context())
	sameRecords(t, got, append(all[:keep:keep], rec{off, 1, p}))
}

// TestZeroPageBeforeTheWindowRefused: a zero page farther from the end of
// the records than the writer ever leaves unsynced is damage to synced
// records (a lost write): recovery: strict refuses to open and changes
// nothing, as for any damage with intact records after it.
func TestZeroPageBeforeTheWindowRefused(t *testing.T) {
	dir := t.TempDir()
	var logged bytes.Buffer
	opts := preallocOptions(dir, &logged)
	opts.MaxPending = 4 << 10 // window: 4 KiB + a largest record (16 KiB)
	all, seg := writeRecords(t, opts, 60)
	end := all[len(all)-1].off + FrameSize(len(all[len(all)-1].payload))
	hole := zeroPageAt(t, seg, end-30_000)
	bad := all[firstOverlapping(all, hole)].off
	size := fileSize(t, seg)

	_, err := Open(opts, 0, func(int64, byte, []byte) error { return nil })
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Offset != bad {
		t.Fatalf("strict recovery of a zero page %d bytes before the end: %v, want a *CorruptionError at %d", end-hole, err, bad)
	}
	if fileSize(t, seg) != size {
		t.Fatal("strict recovery changed the segment")
	}
}

// TestAsyncLogSyncsAfterMaxPending: the bound the hole window relies on
// holds with FlushAsync too, with or without Preallocate: once more than
// MaxPending bytes were written since the last fdatasync, the writer syncs
// without waiting for FlushInterval (here an hour).
func TestAsyncLogSyncsAfterMaxPending(t *testing.T) {
	for _, prealloc := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) {
			var logged bytes.Buffer
			opts := preallocOptions(t.TempDir(), &logged)
			opts.Flush, opts.FlushInterval = FlushAsync, time.Hour
			opts.MaxPending, opts.Preallocate = 4<<10, prealloc
			l, _ := openLog(t, opts, 0)
			defer l.Close(t.Context())
			var end int64
			for i := range 10 {
				_, end = appendWait(t, l, 1, payloadN(i, 1000))
			}
			if synced := l.SyncedOffset(); synced < end-3*opts.MaxPending || l.Stats().Fsyncs == 0 {
				t.Fatalf("%d bytes written, %d synced (%d fdatasyncs): the unsynced bytes exceed three times MaxPending", end, synced, l.Stats().Fsyncs)
			}
		})
	}
}

// TestNoZerosAheadOnANearlyFullDisk: zeros are written ahead only while the
// file system has four times Preallocate free; on a smaller one segments
// grow by appending, as without Preallocate.
func TestNoZerosAheadOnANearlyFullDisk(t *testing.T) {
	for _, c := range []struct {
		fs    string
		zeros bool
	}{{"2m", false}, {"16m", true}} {
		t.Run(c.fs, func(t *testing.T) {
			dir := filepath.Join(tmpfs.Mount(t, c.fs), "log")
			opts := testOptions(dir)
			opts.SegmentSize, opts.MaxRecordSize = 8<<20, 16<<10
			opts.Preallocate = 1 << 20
			l, _ := openLog(t, opts, 0)
			defer l.Close(t.Context())
			appendWait(t, l, 1, payloadN(1, 1000))
			s := l.Segments()[0]
			if got := fileSize(t, s.Path) > s.Size; got != c.zeros {
				t.Fatalf("on a %s file system: zeros ahead of the records: %v, want %v", c.fs, got, c.zeros)
			}
		})
	}
}

// TestZeroBodyAfterDamageIsNoHole: a record damaged in place (a flipped
// bit) near the end, followed by an intact record whose body holds whole
// pages of zeros, is damage, not a power loss's hole: the zero pages lie
// in the later record, beyond the damaged one, and recovery: strict
// refuses as for any damage with intact records after it.
func TestZeroBodyAfterDamageIsNoHole(t *testing.T) {
	dir := t.TempDir()
	var logged bytes.Buffer
	opts := preallocOptions(dir, &logged)
	opts.MaxRecordSize = 32 << 10
	l, _ := openLog(t, opts, 0)
	for i := range 5 {
		appendWait(t, l, 1, payloadN(i, 1000))
	}
	damaged, _ := appendWait(t, l, 1, payloadN(5, 1000))
	body := append(bytes.Repeat([]byte{'x'}, 4200), make([]byte, 12<<10)...)
	appendWait(t, l, 1, body)
	appendWait(t, l, 1, payloadN(7, 100))
	seg := lastSegment(t, dir)
	l.Close(t.Context())

	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[damaged+PayloadStart+500] ^= 0x01
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(opts, 0, func(int64, byte, []byte) error { return nil })
	var cerr *CorruptionError
	if !errors.As(err, &cerr) || cerr.Offset != damaged {
		t.Fatalf("strict recovery of a damaged record followed by a record with a body of zeros: %v, want a *CorruptionError at %d", err, damaged)
	}
}

// TestDamagedLengthBeforeTheZerosRefused: damage to the length of a synced
// record of the last segment that makes it claim an extent reaching into
// the zeros written ahead of the records is no torn tail: the intact
// records after it are found and recovery: strict refuses, as it does
// without Preallocate (there the claimed extent passes the file's end, and
// the search for valid records looks at every later position). It used to
// skip the claimed extent, zeros included, find nothing, and cut the
// intact records away as a torn tail.
func TestDamagedLengthBeforeTheZerosRefused(t *testing.T) {
	for _, prealloc := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) {
			var logged bytes.Buffer
			opts := preallocOptions(t.TempDir(), &logged)
			opts.Preallocate = prealloc
			all, seg := writeRecords(t, opts, 30)
			// Record 20's length now claims 16,000 bytes: past the last
			// record, within the file when zeros follow the records.
			bad := all[20].off
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{0, 0, 0x3e, 0x80}, bad); err != nil {
				t.Fatal(err)
			}
			f.Close()
			cerr := openRefused(t, opts, seg, bad)
			// The bytes it says follow are the records', not the zeros'.
			if end := all[29].off + FrameSize(len(all[29].payload)); cerr.Dropped != end-bad {
				t.Fatalf("the error counts %d bytes after the bad record, want %d (the records' end minus its offset)", cerr.Dropped, end-bad)
			}
		})
	}
}

// TestIntactRecordWithZerosBeyondLimitsNotCut: a whole, checksummed record
// near the end that only fails this run's limits (a smaller
// MaxRecordSize, a type only a newer version knows) is refused with the
// setting or version that reads it, also when its body holds a page of
// zeros within the hole window: the hole check used to come first and cut
// it, and the records after it, as a power loss's unsynced writes.
func TestIntactRecordWithZerosBeyondLimitsNotCut(t *testing.T) {
	cases := map[string]struct {
		typ    byte
		narrow func(*Options)
		want   string
	}{
		"smaller max record size": {typ: 1, narrow: func(o *Options) { o.MaxRecordSize = 8 << 10 }, want: "local.maxRecordSize to at least 12001"},
		"type of a newer version": {typ: 77, narrow: func(o *Options) { o.KnownType = func(b byte) bool { return b >= 1 && b <= 13 } }, want: "newer rmqproxy"},
	}
	for name, c := range cases {
		for _, prealloc := range []int64{0, 64 << 10} {
			t.Run(fmt.Sprintf("%s/preallocate=%d", name, prealloc), func(t *testing.T) {
				dir := t.TempDir()
				var logged bytes.Buffer
				opts := preallocOptions(dir, &logged)
				opts.Preallocate = prealloc
				l, _ := openLog(t, opts, 0)
				appendWait(t, l, 1, payloadN(0, 10))
				appendWait(t, l, c.typ, make([]byte, 12000)) // a body of zeros
				appendWait(t, l, 1, payloadN(2, 10))
				end := l.NextOffset()
				l.Close(t.Context())
				narrowed := opts
				c.narrow(&narrowed)
				_, err := Open(narrowed, 0, func(int64, byte, []byte) error { return nil })
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Open: %v, want an error saying %q", err, c.want)
				}
				l2, got := openLog(t, opts, 0)
				defer l2.Close(t.Context())
				if l2.NextOffset() != end || len(got) != 3 {
					t.Fatalf("log changed: end %d (want %d), %d records", l2.NextOffset(), end, len(got))
				}
			})
		}
	}
}

// TestHoleWindowCoversARecordLargerThanMaxPending: a record may be larger
// than MaxPending (one always fits when nothing is pending), so one round
// can write up to a whole maximum record after MaxPending unsynced bytes: a
// power loss's zero page in the unsynced bytes before such a record, with
// the record intact after it, is cut as a hole, not refused by recovery:
// strict as damage to synced records (the window was three times
// MaxPending, less than MaxPending plus the record).
func TestHoleWindowCoversARecordLargerThanMaxPending(t *testing.T) {
	for _, prealloc := range []int64{0, 64 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) {
			dir := t.TempDir()
			var logged bytes.Buffer
			opts := preallocOptions(dir, &logged)
			opts.Flush, opts.FlushInterval = FlushAsync, time.Hour
			opts.Preallocate, opts.MaxPending, opts.MaxRecordSize = prealloc, 8<<10, 32<<10
			l, _ := openLog(t, opts, 0)
			var all []rec
			add := func(p []byte) {
				off, _ := appendWait(t, l, 1, p)
				all = append(all, rec{off, 1, p})
			}
			for i := range 5 {
				add(payloadN(i, 1000))
			}
			if err := l.Sync(t.Context(), l.NextOffset()); err != nil {
				t.Fatal(err)
			}
			synced := l.SyncedOffset()
			add(payloadN(10, 8000))  // written, not synced: under MaxPending
			add(payloadN(11, 30000)) // one round of its own, then synced
			seg := lastSegment(t, opts.Dir)
			if err := l.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			// A power loss before that sync stored the large record but not
			// a page of the one before it.
			hole := zeroPageAt(t, seg, synced+pageSize+100)
			if hole < synced || hole+pageSize > all[6].off {
				t.Fatalf("test set-up: the hole [%d, %d) must lie within the unsynced record [%d, %d)", hole, hole+pageSize, synced, all[6].off)
			}
			l2, got := openLog(t, opts, 0)
			defer l2.Close(t.Context())
			sameRecords(t, got, all[:5])
			if !strings.Contains(logged.String(), "power loss") {
				t.Fatalf("the cut was not logged as a power loss's:\n%s", logged.String())
			}
		})
	}
}
