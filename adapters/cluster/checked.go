package cluster

import "sync"

// checkedCopies remembers, by broker and message id (endedKey), the half
// message copy of each transaction that a broker's latest check-back to
// this instance named. A broker answers each check-back by writing a new
// copy of the half message (TransactionalMessageServiceImpl.putBackHalfMsgQueue)
// and from then on asks about that copy only: an END_TRANSACTION naming
// an older copy (the send receipt's, when the producer commits after a
// check-back it did not answer) stores the message but leaves the copy
// unresolved, so the broker goes on checking it, and a commit of one of
// those check-backs (through another instance, which does not know the
// transaction ended) stores the message again. EndTransaction therefore
// names the latest copy known here, as the Apache proxy ends a
// transaction with the data of its latest check-back (TransactionDataManager).
// Copies of another instance's check-backs are unknown here (the Apache
// proxy's limit too).
type checkedCopies struct {
	mu     sync.Mutex
	latest map[string]checkedCopy
	order  takenOrder // of the keys, as first recorded (never removed but by it)
}

// checkedCopy is what the check-backs of one transaction named: its latest
// copy, and the half-queue offset of its earliest (every copy a broker
// writes follows the ones before in its half queue, the send's first).
type checkedCopy struct {
	transactionID
	first int64
}

// record notes the copy a check-back named; an older copy than the one
// known (a check-back that came late) changes nothing but the earliest.
func (c *checkedCopies) record(key string, t transactionID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.latest[key]; ok {
		if t.QueueOffset > cur.QueueOffset {
			cur.transactionID = t
		}
		cur.first = min(cur.first, t.QueueOffset)
		c.latest[key] = cur
		return
	}
	if c.latest == nil {
		c.latest = map[string]checkedCopy{}
	}
	if _, old, evicted := c.order.take(key); evicted {
		delete(c.latest, old.key)
	}
	c.latest[key] = checkedCopy{transactionID: t, first: t.QueueOffset}
}

// newest returns t, or the later copy of its half message that a
// check-back named.
func (c *checkedCopies) newest(key string, t transactionID) transactionID {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.latest[key]; ok && cur.QueueOffset > t.QueueOffset && cur.Broker == t.Broker {
		t.CommitLogOffset, t.QueueOffset = cur.CommitLogOffset, cur.QueueOffset
	}
	return t
}

// fromCheck reports whether t names a copy of its half message that a
// check-back relayed by this instance named (or a later one): an end
// naming it answers a check-back, whatever source the client gave. The
// send receipt names the first copy, which precedes every checked one.
// (The official Go client, v5.1.4, gives no source at all.)
func (c *checkedCopies) fromCheck(key string, t transactionID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.latest[key]
	return ok && cur.Broker == t.Broker && t.QueueOffset >= cur.first
}
