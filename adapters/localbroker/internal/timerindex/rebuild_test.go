package timerindex

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeBucket writes a bucket of entries through the index and returns its
// state (as a snapshot records it).
func writeBucket(t *testing.T, x *Index, es []Entry) State {
	t.Helper()
	var b *Bucket
	for _, e := range es {
		if e.Kind == KindDone {
			x.Done(e.DeliverAt, e.Origin)
			continue
		}
		b, _ = x.Add(e)
	}
	if err := b.Flush(-1); err != nil {
		t.Fatal(err)
	}
	return b.State()
}

// TestOpenFindsDamage: every kind of damage to the part of a bucket the
// snapshot covers is reported, and only that bucket.
func TestOpenFindsDamage(t *testing.T) {
	var es []Entry
	for i := range 50 {
		es = append(es, Entry{Kind: KindAdd, DeliverAt: 120_000 + int64(i), Origin: int64(100 + i), Size: 10, CRC: 7, Topic: "t"})
	}
	es = append(es, Entry{Kind: KindDone, DeliverAt: 120_003, Origin: 103})
	cases := []struct {
		name   string
		damage func(p string, st *State)
		want   string
	}{
		{"intact", func(string, *State) {}, ""},
		{"flipped byte", func(p string, _ *State) { flip(t, p, 200) }, "checksum mismatch"},
		{"flipped length", func(p string, _ *State) { flip(t, p, int(HeaderSize)) }, "bad entry length"},
		{"header", func(p string, _ *State) { flip(t, p, 2) }, "bad header"},
		{"truncated", func(p string, st *State) {
			if err := os.Truncate(p, st.Length-3); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"deleted", func(p string, _ *State) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
		{"counters", func(_ string, st *State) { st.Dones = 0 }, "the snapshot says"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			x, _, err := Open(dir, 60_000, nil)
			if err != nil {
				t.Fatal(err)
			}
			st := writeBucket(t, x, es)
			other := writeBucket(t, x, []Entry{{Kind: KindAdd, DeliverAt: 600_000, Origin: 5, Topic: "u"}})
			c.damage(filepath.Join(dir, Name(st.Start)), &st)
			y, damaged, err := Open(dir, 60_000, []State{st, other})
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if len(damaged) != 0 || y.Len() != 2 {
					t.Fatalf("intact buckets reported %+v", damaged)
				}
				return
			}
			if len(damaged) != 1 || damaged[0].Start != st.Start || !strings.Contains(damaged[0].Reason, c.want) {
				t.Fatalf("damage %+v, want %q", damaged, c.want)
			}
			if y.Len() != 1 || y.Bucket(other.Start) == nil {
				t.Fatal("the intact bucket was not opened")
			}
		})
	}
}

func flip(t *testing.T, p string, at int) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x20
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRebuilderWritesWholeBuckets: a rebuild larger than the rebuilder's
// buffer reproduces the buckets the live index wrote, byte for byte, and
// a leftover temporary file of an interrupted rebuild is deleted by Open.
func TestRebuilderWritesWholeBuckets(t *testing.T) {
	live := t.TempDir()
	x, _, err := Open(live, 60_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	for i := range 60_000 { // about 2 MiB of entries over 3 buckets
		e := Entry{Kind: KindAdd, DeliverAt: 60_000 + int64(i%180_000)*3, Origin: int64(1000 + i), Size: 100, CRC: uint32(i), QueueID: int32(i % 4), Topic: fmt.Sprint("topic-", i%3)}
		es = append(es, e)
		if i%3 == 0 {
			es = append(es, Entry{Kind: KindDone, DeliverAt: e.DeliverAt, Origin: e.Origin})
		}
	}
	var want []State
	for _, e := range es {
		if e.Kind == KindDone {
			x.Done(e.DeliverAt, e.Origin)
		} else {
			x.Add(e)
		}
	}
	for _, b := range x.Buckets() {
		if err := b.Flush(-1); err != nil {
			t.Fatal(err)
		}
		want = append(want, b.State())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, Name(120_000)+rebuildSuffix), []byte("leftover"), 0o644); err != nil {
		t.Fatal(err)
	}
	y, damaged, err := Open(dir, 60_000, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(damaged) != len(want) {
		t.Fatalf("damaged %+v", damaged)
	}
	if _, err := os.Stat(filepath.Join(dir, Name(120_000)+rebuildSuffix)); !os.IsNotExist(err) {
		t.Fatal("leftover temporary file kept")
	}
	var starts []int64
	for _, d := range damaged {
		starts = append(starts, d.Start)
	}
	r := y.Rebuild(starts)
	for _, e := range es {
		if e.Kind == KindDone {
			r.Done(e.DeliverAt, e.Origin)
		} else {
			r.Add(e)
		}
		if r.buffered > rebuildBuffer+2*maxPayload {
			t.Fatalf("rebuilder holds %d bytes", r.buffered)
		}
	}
	r.Add(Entry{DeliverAt: 10 * 60_000, Origin: 1}) // not a bucket being rebuilt
	got, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	var pending int64
	for _, g := range got {
		pending += g.Pending
	}
	if pending != 40_000 || len(got) != len(want) || y.Len() != len(want) {
		t.Fatalf("rebuilt %+v", got)
	}
	for _, st := range want {
		a, _ := os.ReadFile(filepath.Join(live, Name(st.Start)))
		b, _ := os.ReadFile(filepath.Join(dir, Name(st.Start)))
		if string(a) != string(b) || y.Bucket(st.Start).State() != st {
			t.Fatalf("bucket %d: %d bytes rebuilt, %d live; state %+v, want %+v", st.Start, len(b), len(a), y.Bucket(st.Start).State(), st)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(want) {
		t.Fatalf("%d files in the index directory", len(ents))
	}
	// The rebuilt buckets pass the checks of the next Open.
	if _, damaged, err := Open(dir, 60_000, want); err != nil || len(damaged) != 0 {
		t.Fatalf("after the rebuild: %+v %v", damaged, err)
	}
}
