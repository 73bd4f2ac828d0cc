package consumequeue

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
)

// A process may hold only so many files open (RLIMIT_NOFILE), and the
// commit log and every client connection need some too. Index files are
// therefore not held open for good: openFiles counts those that are and,
// past its limit, closes the least recently used ones that have nothing to
// fsync ("parks" them); a parked queue opens its file again when it next
// reads or writes it. Files written since their last Sync are left open
// then (the snapshot that syncs them makes them parkable), so that an open
// does not pay for fsyncs; only when an open fails for lack of descriptors
// are they parked too, synced first (a write-back error is reported to the
// descriptors open when it happens, so the data must be durable before its
// descriptor goes; one that cannot be synced stays open).

// openFiles is the set of index files held open, of every queue of the
// process.
var openFiles = &filePool{open: map[*Queue]struct{}{}}

type filePool struct {
	mu   sync.Mutex
	open map[*Queue]struct{}
	// limit overrides the bound taken from the process's file limit (tests).
	limit int
	tick  atomic.Int64 // use counter: Queue.used holds the tick of its last use
	scans int          // searches for the least recently used files (tests)
	// retryAt is the number of open files at which to search again after
	// a search that found too few files to park (written since their last
	// sync): an eighth more than then, so that opening many written files
	// does not sort every open file again at each open.
	retryAt int
}

// maxOpen is how many index files may be open at once: a quarter of the
// process's open-file limit (at least 64, at most 32768), or limit.
func (p *filePool) maxOpen() int {
	if p.limit > 0 {
		return p.limit
	}
	return min(max(processFileLimit()/4, 64), 32768)
}

// use records a use of q's open file.
func (p *filePool) use(q *Queue) { q.used.Store(p.tick.Add(1)) }

// opened registers q, whose file the caller (holding q.mu) just opened,
// and parks the least recently used files beyond the limit.
func (p *filePool) opened(q *Queue) {
	p.use(q)
	p.mu.Lock()
	p.open[q] = struct{}{}
	var victims []*Queue
	n, most := len(p.open), p.maxOpen()
	if n > most && n >= p.retryAt {
		// An eighth more than needed, so that the next opens do not
		// each sort the set again.
		victims = p.oldestLocked(q, n-most+most/8)
	}
	p.mu.Unlock()
	if victims == nil {
		return
	}
	for _, v := range victims {
		v.park(false)
	}
	p.mu.Lock()
	if n := len(p.open); n > most {
		p.retryAt = n + n/8 + 1
	} else {
		p.retryAt = 0
	}
	p.mu.Unlock()
}

// synced notes that a file written since its last sync was synced, which
// makes it one to park: the next open past the limit searches again rather
// than waiting for retryAt (the files a snapshot syncs were left open, and
// other files of the process need the descriptors they hold).
func (p *filePool) synced() {
	p.mu.Lock()
	p.retryAt = 0
	p.mu.Unlock()
}

// oldestLocked returns up to k of the open queues other than q, least
// recently used first.
func (p *filePool) oldestLocked(q *Queue, k int) []*Queue {
	type use struct {
		q    *Queue
		tick int64 // read once: uses go on meanwhile
	}
	p.scans++
	all := make([]use, 0, len(p.open))
	for o := range p.open {
		if o != q {
			all = append(all, use{o, o.used.Load()})
		}
	}
	slices.SortFunc(all, func(a, b use) int { return cmp.Compare(a.tick, b.tick) })
	out := make([]*Queue, min(k, len(all)))
	for i := range out {
		out[i] = all[i].q
	}
	return out
}

// forget removes q, whose file is being closed (q.mu held), from the set.
func (p *filePool) forget(q *Queue) {
	p.mu.Lock()
	delete(p.open, q)
	if len(p.open) < p.retryAt*8/9 {
		p.retryAt = 0 // fewer than at the search that found too few to park
	}
	p.mu.Unlock()
}

// openFile opens q's file with flags; when the process has no descriptor
// left, it parks the least recently used half of the open index files and
// tries once more.
func (p *filePool) openFile(q *Queue, flags int) (*os.File, error) {
	f, err := os.OpenFile(q.path, flags, 0o644)
	if err != nil && (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
		p.mu.Lock()
		victims := p.oldestLocked(q, len(p.open)/2)
		p.mu.Unlock()
		for _, v := range victims {
			v.park(true)
		}
		f, err = os.OpenFile(q.path, flags, 0o644)
	}
	return f, err
}

// park closes q's file unless another goroutine holds q now or the file
// was written since its last Sync; with syncDirty such a file is synced
// and closed. q opens it again when it next needs it.
func (q *Queue) park(syncDirty bool) {
	if !q.mu.TryLock() {
		return // in use: it stays open
	}
	defer q.mu.Unlock()
	if q.f == nil || q.closed || (q.dirty && !syncDirty) || q.syncLocked() != nil {
		return
	}
	openFiles.forget(q)
	_ = q.f.Close() // reads in flight finish first (os.File counts them)
	q.f = nil
}

// reopenLocked makes sure q's existing file is open (q.mu held).
func (q *Queue) reopenLocked() error {
	if q.f != nil {
		openFiles.use(q)
		return nil
	}
	if !q.onDisk {
		return fmt.Errorf("consumequeue: %s has no file yet", q.path)
	}
	f, err := openFiles.openFile(q, os.O_RDWR)
	if err != nil {
		return fmt.Errorf("consumequeue: open %s again: %w", q.path, err)
	}
	q.f = f
	openFiles.opened(q)
	return nil
}

// readAt reads len(b) bytes of the file at off, opening it again when it
// was parked (also while the read was under way); ErrClosed once the queue
// is closed.
func (q *Queue) readAt(b []byte, off int64) error {
	for try := 0; ; try++ {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if err := q.reopenLocked(); err != nil {
			q.mu.Unlock()
			return err
		}
		f := q.f
		q.mu.Unlock()
		_, err := f.ReadAt(b, off)
		if err == nil || !errors.Is(err, os.ErrClosed) || try >= 8 {
			return err
		}
	}
}
