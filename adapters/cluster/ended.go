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
//
// An end that was written and not answered (no answer in time, the
// connection closed after it) is in doubt: the broker may have ended the
// transaction, so a retry is refused as after a success. Only the answer
// to a check-back goes through then: a broker asks about a half message
// that nothing ended in its log, which means that the end in doubt did not
// arrive (or was not processed), and it discards the message after its
// last check. The broker's answer to the end in doubt, when it comes late
// after all, settles it (see settle).
type endedTransactions struct {
	mu    sync.Mutex
	ended map[string]endedTransaction
	order takenOrder // of the entries, which carry the seq they were taken with
}

type endedTransaction struct {
	resolution ports.Resolution // ResolutionUnknown while the end is in progress
	at         time.Time
	seq        uint64
	// inDoubt: the END_TRANSACTION of resolution was written at at and
	// not answered.
	inDoubt bool
}

// endOutcome is how an end that begin reserved went.
type endOutcome uint8

const (
	// endFailed: the broker refused it, or the request was never sent.
	endFailed endOutcome = iota
	// endEnded: the broker answered SUCCESS.
	endEnded
	// endInDoubt: written (or queued for writing), not answered.
	endInDoubt
)

// takenOrder bounds a map to maxEndedTransactions keys, forgetting the
// one taken first: take numbers each key it is given (seq) and returns the
// key whose slot it reused, with the number that key was taken with, so
// that a key removed and taken again since is not forgotten for its older
// slot.
type takenOrder struct {
	ring []ringSlot
	next int // the slot to reuse once ring is full
	seq  uint64
}

type ringSlot struct {
	key string
	seq uint64
}

// take records key and returns its number, and the slot it took over when
// the ring was full (evicted false before).
func (o *takenOrder) take(key string) (seq uint64, old ringSlot, evicted bool) {
	o.seq++
	slot := ringSlot{key: key, seq: o.seq}
	if len(o.ring) < maxEndedTransactions {
		o.ring = append(o.ring, slot)
		return o.seq, ringSlot{}, false
	}
	old = o.ring[o.next]
	o.ring[o.next] = slot
	o.next = (o.next + 1) % maxEndedTransactions
	return o.seq, old, true
}

func endedKey(broker, messageID string) string { return broker + " " + messageID }

// begin reserves a transaction for an end; when it was ended, or is being
// ended, already it returns that end and false. An end from a check-back
// takes over a transaction whose end is in doubt; begin then returns that
// end, which done restores should this one fail too.
func (e *endedTransactions) begin(key string, fromCheck bool) (endedTransaction, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if prev, ok := e.ended[key]; ok {
		if !fromCheck || !prev.inDoubt {
			return prev, false
		}
		e.ended[key] = endedTransaction{seq: prev.seq}
		return prev, true
	}
	if e.ended == nil {
		e.ended = map[string]endedTransaction{}
	}
	seq, old, evicted := e.order.take(key)
	if evicted && e.ended[old.key].seq == old.seq {
		delete(e.ended, old.key)
	}
	e.ended[key] = endedTransaction{seq: seq}
	return endedTransaction{}, true
}

// done records the outcome of an end that begin reserved (prev is what
// begin returned): after a success the transaction stays ended, and after
// an end in doubt it stays in doubt; after a failure it may be ended again
// (a retry, or the answer to a check-back), or, when it took over an end
// in doubt, that end is in doubt again.
func (e *endedTransactions) done(key string, prev endedTransaction, r ports.Resolution, at time.Time, o endOutcome) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur, held := e.ended[key]
	if !held {
		return
	}
	switch {
	case o == endFailed && prev.inDoubt:
		prev.seq = cur.seq
		e.ended[key] = prev
	case o == endFailed:
		delete(e.ended, key)
	default:
		cur.resolution, cur.at, cur.inDoubt = r, at, o == endInDoubt
		e.ended[key] = cur
	}
}

// settle records the broker's SUCCESS to an end of resolution r that came
// after the end was left in doubt: the transaction is ended, and the
// answer to a check-back of it (which the broker may have sent before it
// logged the end) is refused from now on. An end in progress (a
// check-back's, which took over) records its own outcome.
func (e *endedTransactions) settle(key string, r ports.Resolution) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur, held := e.ended[key]; held && cur.inDoubt {
		cur.resolution, cur.inDoubt = r, false
		e.ended[key] = cur
	}
}
