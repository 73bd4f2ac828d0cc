// Package settledfile reads configuration files that operators rewrite in
// place (the policy file, the traffic rules file): a changed file is taken
// only once two reads, Delay apart, find the same content, so that a look
// in the middle of a rewrite (truncated, partly written: often a file that
// still parses, an empty policy or no limits at all) is not put in force.
package settledfile

import (
	"context"
	"time"
)

// Delay is how long a changed file must keep its content before it is
// taken.
const Delay = 200 * time.Millisecond

// Wait waits Delay, or until ctx ends.
func Wait(ctx context.Context) {
	t := time.NewTimer(Delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Read reads the file with read (what it found, the SHA-256 of the bytes
// and an error). When changed says the content differs from what is in
// force, it waits with wait (Wait, or a test's) and reads again. It returns
// the last read's result; settled is false when that second read found
// other content (the file is being written: look again later) or ctx ended
// during the wait.
func Read[T any](ctx context.Context, read func() (T, [32]byte, error), changed func([32]byte) bool, wait func(context.Context)) (v T, sum [32]byte, settled bool, err error) {
	v, sum, err = read()
	if !changed(sum) {
		return v, sum, true, err
	}
	wait(ctx)
	if ctx.Err() != nil {
		return v, sum, false, err
	}
	var again [32]byte
	v, again, err = read()
	return v, sum, again == sum, err
}
