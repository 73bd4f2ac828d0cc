package commitlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

type rec struct {
	off     int64
	typ     byte
	payload []byte
}

func testOptions(dir string) Options {
	return Options{Dir: dir, SegmentSize: 4096, MaxRecordSize: 1024, Flush: FlushSync, FlushInterval: time.Hour}
}

func openLog(t *testing.T, opts Options, from int64) (*Log, []rec) {
	t.Helper()
	var got []rec
	l, err := Open(opts, from, func(off int64, typ byte, p []byte) error {
		got = append(got, rec{off, typ, bytes.Clone(p)})
		return nil
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, got
}

func appendWait(t *testing.T, l *Log, typ byte, p []byte) (int64, int64) {
	t.Helper()
	off, end, err := l.Append(typ, p, true)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := l.Wait(t.Context(), end); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return off, end
}

func payloadN(i, n int) []byte {
	return bytes.Repeat([]byte{byte('a' + i%26)}, n)
}

func TestAppendReadRollReopen(t *testing.T) {
	dir := t.TempDir()
	l, got := openLog(t, testOptions(dir), 0)
	if len(got) != 0 {
		t.Fatalf("fresh log replayed %d records", len(got))
	}
	var want []rec
	for i := range 40 {
		p := payloadN(i, 200+i)
		off, end := appendWait(t, l, 1, p)
		if end-off != FrameSize(len(p)) {
			t.Fatalf("frame size %d, want %d", end-off, FrameSize(len(p)))
		}
		want = append(want, rec{off, 1, p})
		b, err := l.ReadAt(off+PayloadStart, len(p))
		if err != nil || !bytes.Equal(b, p) {
			t.Fatalf("ReadAt(%d) = %q, %v", off, b, err)
		}
	}
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("expected the log to roll, got %d segments", len(segs))
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].Base != segs[i-1].Base+segs[i-1].Size {
			t.Fatalf("segments not contiguous: %+v", segs)
		}
		if segs[i-1].Size > 4096 {
			t.Fatalf("segment larger than segment size: %+v", segs[i-1])
		}
		if filepath.Base(segs[i].Path) != fmt.Sprintf("%020d", segs[i].Base) {
			t.Fatalf("segment name %s", segs[i].Path)
		}
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	l2, got := openLog(t, testOptions(dir), 0)
	defer l2.Close(t.Context())
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].off != want[i].off || !bytes.Equal(got[i].payload, want[i].payload) {
			t.Fatalf("record %d: got off %d, want %d", i, got[i].off, want[i].off)
		}
	}
	// Replay from a record boundary only returns the later records.
	l2.Close(t.Context())
	l3, got := openLog(t, testOptions(dir), want[10].off)
	defer l3.Close(t.Context())
	if len(got) != 30 || got[0].off != want[10].off {
		t.Fatalf("replay from %d gave %d records", want[10].off, len(got))
	}
}

func TestTooLargeAndClosed(t *testing.T) {
	l, _ := openLog(t, testOptions(t.TempDir()), 0)
	if _, _, err := l.Append(1, make([]byte, 1024), true); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Append(1, []byte("x"), true); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.SegmentSize = 64 << 20
	l, _ := openLog(t, opts, 0)
	defer l.Close(t.Context())
	const writers, per = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range per {
				_, end, err := l.Append(1, payloadN(w+i, 100), true)
				if err == nil {
					err = l.Wait(context.Background(), end)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Appends != writers*per {
		t.Fatalf("appends = %d", st.Appends)
	}
	if st.Fsyncs >= st.Appends {
		t.Fatalf("group commit did not share fsyncs: %d fsyncs for %d appends", st.Fsyncs, st.Appends)
	}
	t.Logf("%d appends, %d writes, %d fsyncs", st.Appends, st.Writes, st.Fsyncs)
}

func TestNonDurableAppendsSkipFsync(t *testing.T) {
	l, _ := openLog(t, testOptions(t.TempDir()), 0)
	defer l.Close(t.Context())
	_, end, err := l.Append(1, []byte("pop"), false)
	if err != nil {
		t.Fatal(err)
	}
	// Written soon, but not fsynced: wait on a condition, not a sleep. The
	// channel is taken before the check, or an advance between the two
	// would leave the wait on a channel that nothing closes.
	deadline := time.After(5 * time.Second)
	for {
		advanced := l.advanceChan()
		if l.written.Load() >= end {
			break
		}
		select {
		case <-advanced:
		case <-deadline:
			t.Fatal("record not written within 5s")
		}
	}
	if l.SyncedOffset() >= end || l.Stats().Fsyncs != 0 {
		t.Fatalf("a non-durable record was fsynced alone")
	}
	// A durable record's fsync covers it.
	_, end2 := appendWait(t, l, 1, []byte("ack"))
	if l.SyncedOffset() < end2 {
		t.Fatal("durable record not synced")
	}
	// Sync forces an fsync up to an offset.
	_, end3, _ := l.Append(1, []byte("pop2"), false)
	if err := l.Sync(t.Context(), end3); err != nil || l.SyncedOffset() < end3 {
		t.Fatalf("Sync: %v", err)
	}
}

func TestAsyncFlushVisibleBeforeFsync(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.Flush = FlushAsync
	l, _ := openLog(t, opts, 0)
	_, end, err := l.Append(1, []byte("m"), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(t.Context(), end); err != nil {
		t.Fatal(err)
	}
	if l.VisibleOffset() < end {
		t.Fatal("written record not visible in async mode")
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.SyncedOffset() < end {
		t.Fatal("Close did not fsync")
	}
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "0*"))
	if len(m) == 0 {
		t.Fatal("no segment")
	}
	return m[len(m)-1]
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestTornTailTruncated(t *testing.T) {
	cases := map[string]func(last []byte) []byte{
		"garbage":          func([]byte) []byte { return []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3} },
		"zeros":            func([]byte) []byte { return make([]byte, 100) },
		"partial header":   func(last []byte) []byte { return last[:5] },
		"partial record":   func(last []byte) []byte { return last[:len(last)-3] },
		"bad crc complete": func(last []byte) []byte { c := bytes.Clone(last); c[len(c)-1] ^= 1; return c },
	}
	for name, tail := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := openLog(t, testOptions(dir), 0)
			var ends []int64
			for i := range 5 {
				_, end := appendWait(t, l, 1, payloadN(i, 50))
				ends = append(ends, end)
			}
			l.Close(t.Context())
			// A frame as it would be written next.
			next := appendFrame(nil, ends[4], 1, payloadN(9, 60))
			seg := lastSegment(t, dir)
			appendFile(t, seg, tail(next))
			l2, got := openLog(t, testOptions(dir), 0)
			if len(got) != 5 {
				t.Fatalf("replayed %d records, want 5", len(got))
			}
			if l2.NextOffset() != ends[4] {
				t.Fatalf("log end %d, want %d", l2.NextOffset(), ends[4])
			}
			appendWait(t, l2, 1, []byte("after"))
			l2.Close(t.Context())
			l3, got := openLog(t, testOptions(dir), 0)
			defer l3.Close(t.Context())
			if len(got) != 6 || string(got[5].payload) != "after" {
				t.Fatalf("after repair: %d records", len(got))
			}
		})
	}
}

func TestMidLogCorruption(t *testing.T) {
	build := func(t *testing.T) (string, []int64) {
		dir := t.TempDir()
		l, _ := openLog(t, testOptions(dir), 0)
		var offs []int64
		for i := range 6 {
			off, _ := appendWait(t, l, 1, payloadN(i, 50))
			offs = append(offs, off)
		}
		l.Close(t.Context())
		// Flip a payload byte of the third record.
		seg := lastSegment(t, dir)
		b, _ := os.ReadFile(seg)
		b[offs[2]+PayloadStart+3] ^= 0xff
		os.WriteFile(seg, b, 0o644)
		return dir, offs
	}
	t.Run("strict refuses", func(t *testing.T) {
		dir, offs := build(t)
		_, err := Open(testOptions(dir), 0, func(int64, byte, []byte) error { return nil })
		var cerr *CorruptionError
		if !errors.As(err, &cerr) {
			t.Fatalf("got %v, want *CorruptionError", err)
		}
		if cerr.Offset != offs[2] || cerr.Segment != lastSegment(t, dir) {
			t.Fatalf("error names offset %d segment %s", cerr.Offset, cerr.Segment)
		}
		for _, s := range []string{"recovery: truncate", "offset", SegmentName(0)} {
			if !bytes.Contains([]byte(err.Error()), []byte(s)) {
				t.Fatalf("message %q lacks %q", err, s)
			}
		}
	})
	t.Run("truncate mode truncates", func(t *testing.T) {
		dir, offs := build(t)
		opts := testOptions(dir)
		opts.Recovery = RecoveryTruncate
		l, got := openLog(t, opts, 0)
		defer l.Close(t.Context())
		if len(got) != 2 || l.NextOffset() != offs[2] {
			t.Fatalf("kept %d records, end %d", len(got), l.NextOffset())
		}
	})
	t.Run("corrupt non-last segment refused", func(t *testing.T) {
		dir := t.TempDir()
		l, _ := openLog(t, testOptions(dir), 0)
		for i := range 40 {
			appendWait(t, l, 1, payloadN(i, 300))
		}
		l.Close(t.Context())
		first := filepath.Join(dir, SegmentName(0))
		b, _ := os.ReadFile(first)
		os.WriteFile(first, b[:len(b)-10], 0o644) // torn, but later segments hold data
		_, err := Open(testOptions(dir), 0, func(int64, byte, []byte) error { return nil })
		var cerr *CorruptionError
		if !errors.As(err, &cerr) {
			t.Fatalf("got %v, want *CorruptionError", err)
		}
	})
}

func TestAbandonLosesOnlyUnwritten(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, testOptions(dir), 0)
	_, end := appendWait(t, l, 1, []byte("durable"))
	l.Abandon()
	if err := l.Wait(t.Context(), end+1000); !errors.Is(err, ErrClosed) {
		t.Fatalf("wait after abandon: %v", err)
	}
	l2, got := openLog(t, testOptions(dir), 0)
	defer l2.Close(t.Context())
	if len(got) != 1 || string(got[0].payload) != "durable" {
		t.Fatalf("got %d records", len(got))
	}
}

func TestRemoveBefore(t *testing.T) {
	dir := t.TempDir()
	l, _ := openLog(t, testOptions(dir), 0)
	defer l.Close(t.Context())
	for i := range 40 {
		appendWait(t, l, 1, payloadN(i, 300))
	}
	segs := l.Segments()
	limit := segs[2].Base
	n, err := l.RemoveBefore(limit, time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v", n, err)
	}
	if l.StartOffset() != limit {
		t.Fatalf("start %d, want %d", l.StartOffset(), limit)
	}
	if _, err := l.ReadAt(0, 10); !errors.Is(err, ErrGone) {
		t.Fatalf("read of deleted offset: %v", err)
	}
	if n, _ := l.RemoveBefore(1<<40, time.Now().Add(-time.Hour)); n != 0 {
		t.Fatalf("removed recent segments")
	}
}

func TestWaitHonoursContext(t *testing.T) {
	l, _ := openLog(t, testOptions(t.TempDir()), 0)
	defer l.Close(t.Context())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Wait(ctx, 1<<40); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestIntactRecordBeyondLimitsNotTruncated: a whole, checksummed record that
// only fails this run's limits (a smaller MaxRecordSize, a type only a newer
// version knows) is no torn tail: Open refuses, saying which setting or
// version reads it, changes nothing, and the log opens again with the
// right limits. (Such a last record used to be truncated away as a torn
// tail, and one in the middle reported as corruption.)
func TestIntactRecordBeyondLimitsNotTruncated(t *testing.T) {
	cases := map[string]struct {
		typ    byte
		size   int
		narrow func(*Options)
		want   string
	}{
		"smaller max record size": {typ: 1, size: 900, narrow: func(o *Options) { o.MaxRecordSize = 512 }, want: "local.maxRecordSize to at least 901"},
		"type of a newer version": {typ: 77, size: 10, narrow: func(o *Options) { o.KnownType = func(b byte) bool { return b >= 1 && b <= 13 } }, want: "newer rmqproxy"},
	}
	for name, c := range cases {
		for _, last := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/last=%v", name, last), func(t *testing.T) {
				dir := t.TempDir()
				l, _ := openLog(t, testOptions(dir), 0)
				appendWait(t, l, 1, payloadN(0, 10))
				appendWait(t, l, c.typ, payloadN(1, c.size))
				if !last {
					appendWait(t, l, 1, payloadN(2, 10))
				}
				end, records := l.NextOffset(), 3
				if last {
					records = 2
				}
				l.Close(t.Context())
				for _, mode := range []RecoveryMode{RecoveryStrict, RecoveryTruncate} {
					opts := testOptions(dir)
					opts.Recovery = mode
					c.narrow(&opts)
					_, err := Open(opts, 0, func(int64, byte, []byte) error { return nil })
					if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), SegmentName(0)) {
						t.Fatalf("recovery mode %d: Open: %v, want an error saying %q and naming the segment", mode, err, c.want)
					}
				}
				l2, got := openLog(t, testOptions(dir), 0)
				defer l2.Close(t.Context())
				if l2.NextOffset() != end || len(got) != records {
					t.Fatalf("log changed: end %d (want %d), %d records", l2.NextOffset(), end, len(got))
				}
			})
		}
	}
}

// TestAppendReusesBatches: a lone writer's append after the previous one
// is durable allocates nothing in the log but the channel that announces
// the next write (the written batch, its buffer and the pending list are
// reused).
func TestAppendReusesBatches(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.SegmentSize = 1 << 20
	l, _ := openLog(t, opts, 0)
	defer l.Close(context.Background())
	ctx := context.Background()
	p := payloadN(0, 100)
	var err error
	send := func() {
		var end int64
		if _, end, err = l.Append(1, p, true); err == nil {
			err = l.Wait(ctx, end)
		}
	}
	send()
	if allocs := testing.AllocsPerRun(100, send); err != nil || allocs > 1 {
		t.Fatalf("%v allocations per durable append (%v), want at most 1", allocs, err)
	}
}

// TestReadAtIntoReusesRoom: ReadAtInto reads what ReadAt does, into dst
// when it has room (without allocating), into a new slice when not.
func TestReadAtIntoReusesRoom(t *testing.T) {
	l, _ := openLog(t, testOptions(t.TempDir()), 0)
	defer l.Close(context.Background())
	var offs []int64
	for i, n := range []int{100, 10, 300} {
		off, end, err := l.Append(1, payloadN(i, n), true)
		if err == nil {
			err = l.Wait(context.Background(), end)
		}
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	buf := make([]byte, 0, 200)
	for i, n := range []int{100, 10, 300} {
		got, err := l.ReadAtInto(buf, offs[i]+PayloadStart, n)
		if err != nil || !bytes.Equal(got, payloadN(i, n)) {
			t.Fatalf("record %d: ReadAtInto = %q, %v", i, got, err)
		}
		if reused := unsafe.SliceData(got) == unsafe.SliceData(buf); reused != (n <= cap(buf)) {
			t.Errorf("record %d (%d bytes, room %d): room used %v", i, n, cap(buf), reused)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = l.ReadAtInto(buf, offs[0]+PayloadStart, 100) }); allocs != 0 {
		t.Errorf("%.0f allocations per ReadAtInto with room, want 0", allocs)
	}
}
