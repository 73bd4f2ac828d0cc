package timerindex

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func sampleEntries() []Entry {
	return []Entry{
		{Kind: KindAdd, DeliverAt: 1_700_000_000_123, Origin: 4096, Size: 300, CRC: 0xdeadbeef, QueueID: 3, Topic: "orders"},
		{Kind: KindAdd, DeliverAt: 1_700_000_000_500, Origin: 9000, Size: 1, CRC: 1, QueueID: 0, Topic: "t"},
		{Kind: KindDone, Origin: 4096},
	}
}

func TestEntriesRoundTrip(t *testing.T) {
	var b []byte
	for _, e := range sampleEntries() {
		b = AppendEntry(b, &e)
	}
	got, n, err := DecodeEntries(b)
	if err != nil || n != len(b) || !reflect.DeepEqual(got, sampleEntries()) {
		t.Fatalf("round trip: %+v %d %v", got, n, err)
	}
	if p := Pending(got); len(p) != 1 || p[0].Origin != 9000 {
		t.Fatalf("pending %+v", p)
	}
	b[len(b)-1] ^= 1
	got, n, err = DecodeEntries(b)
	if !errors.Is(err, ErrCorrupt) || len(got) != 2 || n == len(b) {
		t.Fatalf("damaged last entry: %d entries, %d bytes, %v", len(got), n, err)
	}
}

func TestIndexFlushTruncateReopen(t *testing.T) {
	dir := t.TempDir()
	x, damaged, err := Open(dir, 60_000, nil)
	if err != nil || len(damaged) != 0 {
		t.Fatal(err)
	}
	b, created := x.Add(Entry{DeliverAt: 120_500, Origin: 10, Size: 5, Topic: "t"})
	if !created || b.Start() != 120_000 {
		t.Fatalf("bucket start %d created %v", b.Start(), created)
	}
	x.Add(Entry{DeliverAt: 179_999, Origin: 20, Size: 5, Topic: "t"})
	x.Add(Entry{DeliverAt: 180_000, Origin: 30, Size: 5, Topic: "u"})
	x.Done(120_500, 10)
	st := b.State()
	if st.Adds != 2 || st.Dones != 1 || st.MinOrigin != 10 || b.Pending() != 1 {
		t.Fatalf("state %+v", st)
	}
	if err := b.Flush(-1); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	// Entries after the recorded state are dropped at reopen; unlisted
	// buckets are deleted.
	x.Add(Entry{DeliverAt: 121_000, Origin: 40, Size: 5, Topic: "t"})
	if err := b.Flush(-1); err != nil {
		t.Fatal(err)
	}
	if err := x.Bucket(180_000).Flush(-1); err != nil {
		t.Fatal(err)
	}
	if nb, ok := x.Next(120_001); !ok || nb.Start() != 180_000 {
		t.Fatal("Next")
	}
	y, damaged, err := Open(dir, 60_000, []State{st})
	if err != nil || len(damaged) != 0 {
		t.Fatal(err, damaged)
	}
	if y.Len() != 1 {
		t.Fatalf("%d buckets after reopen", y.Len())
	}
	es, err := y.Bucket(120_000).Entries()
	if err != nil || len(es) != 3 || len(Pending(es)) != 1 || Pending(es)[0].Origin != 20 {
		t.Fatalf("entries after reopen %+v %v", es, err)
	}
	if _, err := os.Stat(filepath.Join(dir, Name(180_000))); !os.IsNotExist(err) {
		t.Fatal("unlisted bucket kept")
	}
	// A bucket shorter than recorded is damage.
	short := st
	short.Length += 100
	if _, damaged, err := Open(dir, 60_000, []State{short}); err != nil || len(damaged) != 1 || !strings.HasPrefix(damaged[0].Reason, "truncated") {
		t.Fatalf("short bucket: %+v %v", damaged, err)
	}
	if err := y.Remove(120_000); err != nil {
		t.Fatal(err)
	}
	if y.Len() != 0 {
		t.Fatal("Remove")
	}
	if _, damaged, err := Open(dir, 60_000, []State{{Start: 120_000, Length: 50}}); err != nil || len(damaged) != 1 || damaged[0].Reason != "missing" {
		t.Fatalf("missing bucket: %+v %v", damaged, err)
	}
}

func FuzzDecodeEntries(f *testing.F) {
	var b []byte
	for _, e := range sampleEntries() {
		b = AppendEntry(b, &e)
	}
	f.Add(b)
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, n, err := DecodeEntries(b)
		if n < 0 || n > len(b) || (err == nil && n != len(b)) {
			t.Fatalf("consumed %d of %d bytes (err %v)", n, len(b), err)
		}
		var re []byte
		for i := range es {
			re = AppendEntry(re, &es[i])
		}
		es2, _, err := DecodeEntries(re)
		if err != nil || !reflect.DeepEqual(es, es2) {
			t.Fatalf("re-encoding changed the entries: %v", err)
		}
	})
}

// TestEntriesFromALength: reading again from the length an earlier read
// returned gives exactly what was appended since, whether it is still in
// memory, flushed, or both.
func TestEntriesFromALength(t *testing.T) {
	x, damaged, err := Open(t.TempDir(), 60_000, nil)
	if err != nil || len(damaged) != 0 {
		t.Fatal(err)
	}
	add := func(origins ...int64) {
		for _, o := range origins {
			x.Add(Entry{DeliverAt: 60_000 + o, Origin: o, Size: 5, Topic: "t"})
		}
	}
	origins := func(es []Entry) (out []int64) {
		for _, e := range es {
			out = append(out, e.Origin)
		}
		return out
	}
	add(1, 2)
	b := x.Bucket(60_000)
	if err := b.Flush(-1); err != nil {
		t.Fatal(err)
	}
	add(3)
	es, n, err := b.EntriesFrom(0)
	if err != nil || !slices.Equal(origins(es), []int64{1, 2, 3}) || n != b.State().Length {
		t.Fatalf("EntriesFrom(0): %v %d %v", origins(es), n, err)
	}
	if es, m, err := b.EntriesFrom(n); err != nil || len(es) != 0 || m != n {
		t.Fatalf("nothing appended: %v %d %v", origins(es), m, err)
	}
	add(4)
	if err := b.Flush(-1); err != nil { // 3 and 4 go to the file
		t.Fatal(err)
	}
	add(5)
	x.Done(60_001, 1)
	more, m, err := b.EntriesFrom(n)
	if err != nil || !slices.Equal(origins(more), []int64{4, 5, 1}) || more[2].Kind != KindDone || m != b.State().Length {
		t.Fatalf("EntriesFrom(%d): %v %d %v", n, origins(more), m, err)
	}
	all, _ := b.Entries()
	if got := origins(Pending(append(es, more...))); !slices.Equal(got, origins(Pending(all))) {
		t.Fatalf("pending from the two reads %v, from one %v", got, origins(Pending(all)))
	}
	if _, _, err := b.EntriesFrom(m + 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("EntriesFrom beyond the end: %v", err)
	}
}
