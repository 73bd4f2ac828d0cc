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
	latest map[string]transactionID
	order  takenOrder // of the keys, as first recorded (never removed but by it)
}

// record notes the copy a check-back named; an older copy than the one
// known (a check-back that came late) changes nothing.
func (c *checkedCopies) record(key string, t transactionID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.latest[key]; ok {
		if t.QueueOffset > cur.QueueOffset {
			c.latest[key] = t
		}
		return
	}
	if c.latest == nil {
		c.latest = map[string]transactionID{}
	}
	if _, old, evicted := c.order.take(key); evicted {
		delete(c.latest, old.key)
	}
	c.latest[key] = t
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
