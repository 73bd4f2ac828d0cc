package commitlog

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestPowerLossOfThePageHoldingTheSyncPoint: the first record written after
// the last fdatasync usually starts inside a page that holds synced records
// before it. When a power loss keeps the later pages but not that page's new
// version, the page reads back as it was synced: the records before the
// sync point, then zeros (no whole zero page anywhere). That is a power
// loss's hole as much as a whole zero page is: recovery: strict cuts the
// log there (it used to refuse to start, as for damage to synced records,
// unless the next page was lost too and began within 9 bytes of the record).
func TestPowerLossOfThePageHoldingTheSyncPoint(t *testing.T) {
	for _, lostNext := range []bool{false, true} {
		for _, prealloc := range []int64{0, 64 << 10} {
			t.Run(fmt.Sprintf("nextPageLost=%v/preallocate=%d", lostNext, prealloc), func(t *testing.T) {
				var logged bytes.Buffer
				opts := preallocOptions(t.TempDir(), &logged)
				opts.Preallocate = prealloc
				all, seg := writeRecords(t, opts, 60)
				end := all[len(all)-1].off + FrameSize(len(all[len(all)-1].payload))
				// The sync point: a record starting well inside a page,
				// ~20 KB before the end.
				keep := firstOverlapping(all, end-20_000)
				for all[keep].off%pageSize < 64 || all[keep].off%pageSize > pageSize-64 {
					keep++
				}
				from := all[keep].off
				to := (from/pageSize + 1) * pageSize
				if lostNext {
					to += pageSize
				}
				f, err := os.OpenFile(seg, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt(make([]byte, to-from), from); err != nil {
					t.Fatal(err)
				}
				f.Close()

				l, got := openLog(t, opts, 0)
				defer l.Close(t.Context())
				sameRecords(t, got, all[:keep])
				if !strings.Contains(logged.String(), "power loss") {
					t.Fatalf("the cut was not logged as a power loss's:\n%s", logged.String())
				}
			})
		}
	}
}

// TestPowerLossOfThePageHoldingAStraddlingHeader: when the first unsynced
// record's header straddles a page boundary and the first page's new
// version is lost, its length field reads as zeros (no record has length
// 0) and the rest of the header comes from the next page, which the disk
// stored: a power loss's hole too.
func TestPowerLossOfThePageHoldingAStraddlingHeader(t *testing.T) {
	for _, before := range []int64{4, 8} {
		t.Run(fmt.Sprintf("bytesBeforeTheBoundary=%d", before), func(t *testing.T) {
			var logged bytes.Buffer
			opts := preallocOptions(t.TempDir(), &logged)
			l, _ := openLog(t, opts, 0)
			var all []rec
			add := func(p []byte) {
				off, _ := appendWait(t, l, 1, p)
				all = append(all, rec{off, 1, p})
			}
			for i := range 30 {
				add(payloadN(i, 1000))
			}
			end := all[29].off + FrameSize(1000)
			boundary := (end/pageSize + 2) * pageSize
			add(payloadN(30, int(boundary-before-end-PayloadStart)))
			keep := len(all)
			for i := range 10 {
				add(payloadN(31+i, 1000))
			}
			seg := lastSegment(t, opts.Dir)
			l.Close(t.Context())
			if all[keep].off != boundary-before {
				t.Fatalf("test set-up: record at %d, want %d", all[keep].off, boundary-before)
			}
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(make([]byte, before), boundary-before); err != nil {
				t.Fatal(err)
			}
			f.Close()

			l2, got := openLog(t, opts, 0)
			defer l2.Close(t.Context())
			sameRecords(t, got, all[:keep])
			if !strings.Contains(logged.String(), "power loss") {
				t.Fatalf("the cut was not logged as a power loss's:\n%s", logged.String())
			}
		})
	}
}
