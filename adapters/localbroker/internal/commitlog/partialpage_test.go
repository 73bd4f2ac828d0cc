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
				all, seg := writeUnsyncedTail(t, opts)
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
