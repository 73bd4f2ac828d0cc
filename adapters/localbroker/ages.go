package localbroker

import (
	"context"
	"slices"
)

// QueueAge tells how long the oldest messages of one queue have waited
// for a consumer group: the store times (Unix milliseconds, 0 for none)
// of the oldest message the group has not consumed and of the oldest one
// it was never delivered. A message delivered and visible again after its
// invisible time keeps its queue offset (the engine has no retry topics):
// it is among the unconsumed ones, not among the never delivered ones.
type QueueAge struct {
	Topic             string
	QueueID           int32
	OldestUnconsumed  int64
	OldestUndelivered int64
}

// ageRead is a queue entry whose store time an age needs.
type ageRead struct {
	qi         *queueIndex
	unconsumed int64 // queue offset, -1: none
	undeliv    int64 // queue offset, -1: none
}

// GroupAges reports the ages of every queue group has state on, and of
// every queue of the topics in subscribed it has none on yet (its first
// receive starts at the queue's first message). The offsets are taken
// under the engine's lock, the store times read from the queues' index
// entries after it (the index keeps a message's store time): one or two
// entries a queue, nothing of the messages themselves.
func (e *Engine) GroupAges(ctx context.Context, group string, subscribed []string) ([]QueueAge, error) {
	e.mu.Lock()
	if err := e.checkOpenLocked(); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if _, ok := e.groups[group]; !ok {
		e.mu.Unlock()
		return nil, groupNotFound(group)
	}
	e.promoteLocked()
	e.reviveDueLocked(e.clock.Now())
	var out []QueueAge
	var reads []ageRead
	seen := map[queueKey]bool{}
	for _, c := range e.groupConsLocked(group) {
		k := c.key
		qk := queueKey{k.topic, k.qid}
		seen[qk] = true
		qi := e.queues[qk]
		if qi == nil {
			continue
		}
		minOff := e.keptFromLocked(qi)
		// The first offset the group has not consumed: below the floor
		// every message is; retention's removals count as consumed.
		first := max(c.floor, minOff)
		if first < c.next {
			first = c.acked.next(first, c.next, false)
		}
		r := ageRead{qi: qi, unconsumed: -1, undeliv: -1}
		if first < qi.visible {
			r.unconsumed = first
		}
		if next := max(c.next, minOff); next < qi.visible {
			r.undeliv = next
		}
		out = append(out, QueueAge{Topic: k.topic, QueueID: k.qid})
		reads = append(reads, r)
	}
	for _, topic := range subscribed {
		t := e.topics[topic]
		if t == nil {
			continue
		}
		for qid := range t.QueueCount {
			qk := queueKey{topic, qid}
			if seen[qk] {
				continue
			}
			seen[qk] = true
			r := ageRead{unconsumed: -1, undeliv: -1}
			if qi := e.queues[qk]; qi != nil {
				if minOff := e.keptFromLocked(qi); minOff < qi.visible {
					r = ageRead{qi: qi, unconsumed: minOff, undeliv: minOff}
				}
			}
			out = append(out, QueueAge{Topic: topic, QueueID: qid})
			reads = append(reads, r)
		}
	}
	e.mu.Unlock()
	for i, r := range reads {
		out[i].OldestUnconsumed = storedAt(r.qi, r.unconsumed)
		if r.undeliv == r.unconsumed {
			out[i].OldestUndelivered = out[i].OldestUnconsumed
		} else {
			out[i].OldestUndelivered = storedAt(r.qi, r.undeliv)
		}
	}
	slices.SortFunc(out, func(a, b QueueAge) int {
		return cmpKey(consKey{topic: a.Topic, qid: a.QueueID}, consKey{topic: b.Topic, qid: b.QueueID})
	})
	return out, nil
}

// storedAt is the store time of the message at queue offset off, 0 when
// there is none or its entry cannot be read (a queue closed since, a
// message retention removed).
func storedAt(qi *queueIndex, off int64) int64 {
	if qi == nil || off < 0 {
		return 0
	}
	ent, err := qi.cq.Get(off)
	if err != nil || ent.Size == 0 {
		return 0
	}
	return ent.StoredAtMs
}

// EarliestStoreTime returns the store time (Unix milliseconds) of the
// oldest message still in a queue, 0 when no queue holds one. Each
// queue's answer is kept until retention removes its first message, so
// that a call reads the index of only the queues whose first message
// changed, after the engine's lock.
func (e *Engine) EarliestStoreTime() int64 {
	type read struct {
		qi  *queueIndex
		off int64
	}
	var reads []read
	var earliest int64
	keep := func(at int64) {
		if at > 0 && (earliest == 0 || at < earliest) {
			earliest = at
		}
	}
	e.mu.Lock()
	if e.checkOpenLocked() != nil {
		e.mu.Unlock()
		return 0
	}
	for _, qi := range e.queues {
		off := e.keptFromLocked(qi)
		if off >= qi.visible {
			continue
		}
		if qi.firstAtOff == off+1 {
			keep(qi.firstAt)
			continue
		}
		reads = append(reads, read{qi, off})
	}
	e.mu.Unlock()
	if len(reads) == 0 {
		return earliest
	}
	ats := make([]int64, len(reads))
	for i, r := range reads {
		ats[i] = storedAt(r.qi, r.off)
		keep(ats[i])
	}
	e.mu.Lock()
	for i, r := range reads {
		if ats[i] > 0 {
			r.qi.firstAt, r.qi.firstAtOff = ats[i], r.off+1
		}
	}
	e.mu.Unlock()
	return earliest
}
