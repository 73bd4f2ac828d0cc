// Package limitlog keeps a failure that repeats (at the request rate, or
// at every turn of a background loop) to one log line per key per
// interval, and counts the lines left out, for the next line to say.
package limitlog

import (
	"sync"
	"time"
)

// DefaultEvery is the interval of a Limiter whose Every is zero.
const DefaultEvery = time.Minute

// MaxKeys bounds the keys a Limiter remembers: keys may come from what
// clients send (a topic name), so a Limiter must not grow with them. Keys
// beyond it, while none has been quiet for an interval, share one line.
const MaxKeys = 4096

// overflow is the key of the lines beyond MaxKeys.
const overflow = "\x00overflow"

// Limiter says which lines to log. Its zero value is ready to use, with
// DefaultEvery; it is safe for concurrent use.
type Limiter struct {
	// Every is the least time between two lines of a key (zero:
	// DefaultEvery); set it before the first Allow.
	Every time.Duration

	mu   sync.Mutex
	last map[string]entry
}

type entry struct {
	at         time.Time // when a line of the key was last logged
	suppressed int       // lines of the key left out since
}

// Allow reports whether to log a line of key now, and, when it does, how
// many lines of key were left out since the last one logged.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, suppressed int) {
	every := l.Every
	if every <= 0 {
		every = DefaultEvery
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]entry{}
	}
	ent, seen := l.last[key]
	if !seen && len(l.last) >= MaxKeys {
		for k, e := range l.last { // forget the keys quiet for an interval
			if now.Sub(e.at) >= every && e.suppressed == 0 {
				delete(l.last, k)
			}
		}
		if len(l.last) >= MaxKeys {
			key = overflow
			ent, seen = l.last[key]
		}
	}
	if seen && now.Sub(ent.at) < every {
		ent.suppressed++
		l.last[key] = ent
		return false, 0
	}
	l.last[key] = entry{at: now}
	return true, ent.suppressed
}
