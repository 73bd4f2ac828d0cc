package cluster

import (
	"sync"
	"time"

	"github.com/rmqproxy/rmqproxy/ports"
)

// maxEndedTransactions bounds the transactions an instance remembers as
// ended (about 100 bytes each); the oldest are forgotten first.
const maxEndedTransactions = 1 << 16

// endedTransactions remembers the transactions this instance ended, by
// broker and message id (the same for the half message of the send and
// for the copies a broker makes for its check-backs), because a broker
// ends a half message again whenever it is asked: END_TRANSACTION looks
// the half message up in the commit log, where it stays once resolved, so
// a second commit stores the message again and a commit after a rollback
// delivers a message the application rolled back, both answered SUCCESS.
// The Apache proxy refuses a second end through the same instance (its
// transaction data is gone); so does rmqproxy, for as long as it remembers
// the transaction. An end in progress holds its entry, so that two
// concurrent ends cannot both reach the broker.
type endedTransactions struct {
	mu    sync.Mutex
	ended map[string]endedTransaction
	// ring holds the entries in the order they were taken,
	// maxEndedTransactions slots; next is the slot to reuse and seq
	// numbers the entries, so that evicting a slot removes only the entry
	// it was taken for.
	ring []ringSlot
	next int
	seq  uint64
}

type endedTransaction struct {
	resolution ports.Resolution // ResolutionUnknown while the end is in progress
	at         time.Time
	seq        uint64
}

type ringSlot struct {
	key string
	seq uint64
}

func endedKey(broker, messageID string) string { return broker + " " + messageID }

// begin reserves a transaction for an end; when it was ended, or is being
// ended, already it returns that end and false.
func (e *endedTransactions) begin(key string) (endedTransaction, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev, ok := e.ended[key]; ok {
		return prev, false
	}
	if e.ended == nil {
		e.ended = map[string]endedTransaction{}
	}
	e.seq++
	slot := ringSlot{key: key, seq: e.seq}
	if len(e.ring) < maxEndedTransactions {
		e.ring = append(e.ring, slot)
	} else {
		if old := e.ring[e.next]; e.ended[old.key].seq == old.seq {
			delete(e.ended, old.key)
		}
		e.ring[e.next] = slot
		e.next = (e.next + 1) % maxEndedTransactions
	}
	e.ended[key] = endedTransaction{seq: e.seq}
	return endedTransaction{}, true
}

// done records the outcome of an end that begin reserved: after a success
// the transaction stays ended; after a failure it may be ended again (a
// retry, or the answer to a check-back).
func (e *endedTransactions) done(key string, r ports.Resolution, at time.Time, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur, held := e.ended[key]
	if !held {
		return
	}
	if !ok {
		delete(e.ended, key)
		return
	}
	cur.resolution, cur.at = r, at
	e.ended[key] = cur
}
