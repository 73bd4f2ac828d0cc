package cluster

import (
	"strconv"
	"testing"
)

// TestCheckedCopiesNameTheLatestCopy: an end names the latest copy of the
// half message that a check-back named, never an older one, and only on
// the same broker; the oldest records are forgotten past the bound.
func TestCheckedCopiesNameTheLatestCopy(t *testing.T) {
	var c checkedCopies
	sent := transactionID{Broker: "b", CommitLogOffset: 100, QueueOffset: 1, MessageID: "m"}
	key := endedKey("b", "m")
	if got := c.newest(key, sent); got != sent {
		t.Fatalf("no check-back: %v, want the id's own %v", got, sent)
	}
	c.record(key, transactionID{Broker: "b", CommitLogOffset: 300, QueueOffset: 5, MessageID: "m"})
	c.record(key, transactionID{Broker: "b", CommitLogOffset: 200, QueueOffset: 3, MessageID: "m"}) // came late
	if got := c.newest(key, sent); got.CommitLogOffset != 300 || got.QueueOffset != 5 || got.MessageID != "m" || got.Broker != "b" {
		t.Fatalf("after check-backs: %v, want the copy at 300/5", got)
	}
	later := transactionID{Broker: "b", CommitLogOffset: 400, QueueOffset: 7, MessageID: "m"}
	if got := c.newest(key, later); got != later {
		t.Fatalf("an id of a later copy: %v, want it unchanged", got)
	}
	for i := range maxEndedTransactions {
		c.record(endedKey("b", "other-"+strconv.Itoa(i)), transactionID{Broker: "b", QueueOffset: 9})
	}
	if got := c.newest(key, sent); got != sent {
		t.Fatalf("forgotten record still used: %v", got)
	}
	if len(c.latest) != maxEndedTransactions {
		t.Fatalf("%d records kept, want %d", len(c.latest), maxEndedTransactions)
	}
}
