package commitlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/tmpfs"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// The writer reuses what it wrote: each written batch (struct and buffer)
// goes to the spares the next appends take, and the pending list's room
// goes back to the appenders once all of it is written. The tests here
// check that no record is ever damaged by that reuse, under concurrent
// appenders, segment rolls, batches too large to keep, non-durable
// appends, a full disk (held batches written again later) and reopening.

// stressPayload is a payload of n bytes (n >= 16) that names its writer and
// sequence number and is otherwise random, so that any mix-up shows.
func stressPayload(r *rand.Rand, writer, seq, n int) []byte {
	p := make([]byte, n)
	binary.BigEndian.PutUint64(p, uint64(writer))
	binary.BigEndian.PutUint64(p[8:], uint64(seq))
	for i := 16; i < n; i++ {
		p[i] = byte(r.Uint32())
	}
	return p
}

// appended is a record as its appender saw it.
type appended struct {
	off     int64
	typ     byte
	payload []byte
}

// readBack checks that the log holds every record of want at its offset,
// with its bytes.
func readBack(t *testing.T, l *Log, want []appended) {
	t.Helper()
	for _, a := range want {
		got, err := l.ReadAt(a.off, int(FrameSize(len(a.payload))))
		if err != nil {
			t.Fatalf("ReadAt(%d): %v", a.off, err)
		}
		typ, p, err := frameAt(got, a.off)
		if err != nil || typ != a.typ || !bytes.Equal(p, a.payload) {
			t.Fatalf("record at %d (type %d, %d bytes) reads back as type %d, %d bytes (%v); equal payload: %v",
				a.off, a.typ, len(a.payload), typ, len(p), err, bytes.Equal(p, a.payload))
		}
	}
}

// frameAt checks one whole frame read at off and returns its type and
// payload.
func frameAt(b []byte, off int64) (byte, []byte, error) {
	size, _, problem := checkFrame(b, off, int64(len(b)), 1<<30, func(byte) bool { return true })
	if problem != "" || size != int64(len(b)) {
		return 0, nil, fmt.Errorf("not one valid frame of %d bytes at %d: %q (size %d)", len(b), off, problem, size)
	}
	return b[HeaderSize], b[PayloadStart:], nil
}

// checkReplay reopens the log and checks that its records are exactly want.
func checkReplay(t *testing.T, opts Options, want []appended) {
	t.Helper()
	l, got := openLog(t, opts, 0)
	defer l.Close(context.Background())
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b appended) int { return int(a.off - b.off) })
	if len(got) != len(want) {
		t.Fatalf("reopened log holds %d records, %d were appended", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.off != w.off || r.typ != w.typ || !bytes.Equal(r.payload, w.payload) {
			t.Fatalf("record %d after reopening: offset %d type %d %d bytes; appended offset %d type %d %d bytes (equal payload: %v)",
				i, r.off, r.typ, len(r.payload), w.off, w.typ, len(w.payload), bytes.Equal(r.payload, w.payload))
		}
	}
}

// TestConcurrentAppendsReadBackIntact: writers append records of random
// sizes, durable or not, concurrently; each durable one reads back intact
// as soon as Wait returns, every record reads back intact once all are
// synced, and reopening replays exactly them. Small segments make the log
// roll often; in "large batches" some records exceed the size of the
// buffers the writer keeps (8 MiB), so batches holding them are dropped
// rather than reused.
func TestConcurrentAppendsReadBackIntact(t *testing.T) {
	for _, c := range []struct {
		name              string
		flush             FlushPolicy
		segment, maxRec   int64
		writers, appends  int
		large, largeEvery int
		gather            time.Duration
		prealloc          int64
	}{
		{name: "sync", flush: FlushSync, segment: 64 << 10, maxRec: 16 << 10, writers: 8, appends: 150},
		{name: "sync gathering", flush: FlushSync, segment: 64 << 10, maxRec: 16 << 10, writers: 8, appends: 100, gather: 100 * time.Microsecond},
		{name: "async", flush: FlushAsync, segment: 64 << 10, maxRec: 16 << 10, writers: 8, appends: 150},
		{name: "sync preallocated", flush: FlushSync, segment: 64 << 10, maxRec: 16 << 10, writers: 8, appends: 150, prealloc: 8 << 10},
		{name: "async preallocated", flush: FlushAsync, segment: 64 << 10, maxRec: 16 << 10, writers: 8, appends: 150, prealloc: 20 << 10},
		{name: "large batches", flush: FlushSync, segment: 24 << 20, maxRec: 9 << 20, writers: 4, appends: 30, large: 8<<20 + 4096, largeEvery: 11},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions(dir)
			opts.Flush, opts.SegmentSize, opts.MaxRecordSize = c.flush, c.segment, c.maxRec
			opts.GroupCommitWait = c.gather
			opts.Preallocate = c.prealloc
			l, _ := openLog(t, opts, 0)
			defer l.Close(context.Background())
			ctx := t.Context()
			var (
				mu  sync.Mutex
				all []appended
				wg  sync.WaitGroup
			)
			errs := make(chan error, c.writers)
			for w := range c.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(w), 7))
					var mine []appended
					defer func() {
						mu.Lock()
						all = append(all, mine...)
						mu.Unlock()
					}()
					for i := range c.appends {
						n := 16 + r.IntN(int(c.maxRec)-17)
						if c.large > 0 && (w*c.appends+i)%c.largeEvery == 0 {
							n = c.large
						} else if c.large > 0 {
							n = 16 + r.IntN(4096)
						}
						p := stressPayload(r, w, i, n)
						typ := byte(1 + r.IntN(2))
						durable := r.IntN(2) == 0
						off, end, err := l.Append(typ, p, durable)
						if err != nil {
							errs <- err
							return
						}
						a := appended{off, typ, p}
						mine = append(mine, a)
						if !durable {
							continue
						}
						if err := l.Wait(ctx, end); err != nil {
							errs <- err
							return
						}
						b, err := l.ReadAt(off, int(end-off))
						if err != nil {
							errs <- err
							return
						}
						if gt, gp, err := frameAt(b, off); err != nil || gt != typ || !bytes.Equal(gp, p) {
							errs <- errors.New("a durable record read back as soon as it was durable differs from what was appended")
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := l.Sync(ctx, l.NextOffset()); err != nil {
				t.Fatal(err)
			}
			if want := c.writers * c.appends; len(all) != want {
				t.Fatalf("%d records appended, want %d", len(all), want)
			}
			readBack(t, l, all)
			if n := len(l.Segments()); n < 3 {
				t.Fatalf("the log did not roll: %d segments", n)
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
			checkReplay(t, opts, all)
		})
	}
}

// TestDiskFullKeepsRecordsIntact: writers append until the disk is full,
// then consumer-state records go on from several goroutines into the
// reserve and past it (held for space, written again with what was
// appended meanwhile); once the file system grows, everything is written.
// Every record appended, answered durable or held, is in the log with its
// bytes, and nothing else is.
func TestDiskFullKeepsRecordsIntact(t *testing.T) {
	for _, prealloc := range []int64{0, 32 << 10} {
		t.Run(fmt.Sprintf("preallocate=%d", prealloc), func(t *testing.T) { testDiskFullKeepsRecordsIntact(t, prealloc) })
	}
}

func testDiskFullKeepsRecordsIntact(t *testing.T, prealloc int64) {
	dir := filepath.Join(tmpfs.Mount(t, "1m"), "log")
	opts := testOptions(dir)
	opts.Preallocate = prealloc
	opts.SegmentSize, opts.MaxRecordSize = 256<<10, 16<<10
	opts.Reserve = 128 << 10
	opts.DiskRetry = 5 * time.Millisecond
	opts.ReserveType = func(typ byte) bool { return typ == 2 }
	l, _ := openLog(t, opts, 0)
	defer func() { _ = l.Close(context.Background()) }()
	ctx := t.Context()
	var (
		mu      sync.Mutex
		all     []appended
		stop    atomic.Bool
		wg      sync.WaitGroup
		failure atomic.Pointer[error]
	)
	fail := func(err error) { failure.CompareAndSwap(nil, &err) }
	keep := func(a appended) {
		mu.Lock()
		all = append(all, a)
		mu.Unlock()
	}
	// Writers of ordinary records: until the disk is full, and after it
	// grew back until told to stop.
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for i := 0; i < 2000 && !stop.Load(); i++ {
				p := stressPayload(r, w, i, 16+r.IntN(8<<10))
				off, end, err := l.Append(1, p, true)
				if errors.Is(err, ErrDiskFull) {
					return
				}
				if err != nil {
					fail(err)
					return
				}
				keep(appended{off, 1, p})
				if err := l.Wait(ctx, end); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	waitfor.True(t, 10*time.Second, time.Millisecond, "the disk to be full", func() bool { full, _ := l.DiskFull(); return full })
	// Consumer-state records from several goroutines: more than the reserve
	// holds, so that some are held until the file system grows.
	var stateAppended sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		stateAppended.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 13))
			ends := make([]int64, 0, 80)
			for i := range 80 {
				p := stressPayload(r, 100+w, i, 16+r.IntN(2<<10))
				durable := r.IntN(4) != 0
				off, end, err := l.Append(2, p, durable)
				if err != nil {
					fail(err)
					break
				}
				keep(appended{off, 2, p})
				if durable { // the others are synced by the Sync at the end
					ends = append(ends, end)
				}
			}
			stateAppended.Done()
			for _, end := range ends {
				if err := l.Wait(ctx, end); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	stateAppended.Wait()
	if p := failure.Load(); p != nil {
		t.Fatal(*p)
	}
	t.Logf("%d bytes held for space before the file system grows", l.waitDisk.Load())
	tmpfs.Resize(t, filepath.Dir(dir), "8m")
	waitfor.True(t, 10*time.Second, time.Millisecond, "the disk-full state to end", func() bool { full, _ := l.DiskFull(); return !full })
	stop.Store(true)
	wg.Wait()
	if p := failure.Load(); p != nil {
		t.Fatal(*p)
	}
	if err := l.Sync(ctx, l.NextOffset()); err != nil {
		t.Fatal(err)
	}
	readBack(t, l, all)
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkReplay(t, opts, all)
	t.Logf("%d records appended and read back", len(all))
}
