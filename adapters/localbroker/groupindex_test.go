package localbroker

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

// TestReportingEveryGroupLooksAtEachStateOnce: a scrape of the consumer
// gauges asks GroupStats and GroupAges of every group; each looked at the
// consumer states of every group to find its own, so that a scrape of
// 5,000 groups on 8 queues each looked at 400 million states (seconds of
// the engine's lock, sends stalled meanwhile). Reporting on every group
// must look at each state about once.
func TestReportingEveryGroupLooksAtEachStateOnce(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Flush = "async" })
	const groups, topics, queues = 60, 6, 8
	for ti := range topics {
		for q := range int32(queues) {
			h.send(fmt.Sprint("t", ti), q, msg(fmt.Sprint("t", ti), "m", ""))
		}
	}
	states := 0
	for g := range groups {
		name := fmt.Sprint("g", g)
		h.createGroup(name, 16, false)
		topic := fmt.Sprint("t", g%topics)
		for q := range int32(queues) {
			if len(h.pop(name, topic, q, 1, time.Minute)) != 1 {
				t.Fatalf("%s: no message in %s#%d", name, topic, q)
			}
			states++
		}
	}
	h.e.mu.Lock()
	h.e.statesVisited = 0
	h.e.mu.Unlock()
	for g := range groups {
		name := fmt.Sprint("g", g)
		if st, err := h.e.GroupStats(t.Context(), name); err != nil || len(st) != queues {
			t.Fatalf("GroupStats(%s): %d queues, %v", name, len(st), err)
		}
		if ages, err := h.e.GroupAges(t.Context(), name, nil); err != nil || len(ages) != queues {
			t.Fatalf("GroupAges(%s): %d queues, %v", name, len(ages), err)
		}
	}
	h.e.mu.Lock()
	visited := h.e.statesVisited
	h.e.mu.Unlock()
	if visited > int64(2*states) {
		t.Fatalf("the stats and ages of %d groups (%d consumer states) looked at %d states, want at most %d (each state once per call of its group)",
			groups, states, visited, 2*states)
	}
}

// TestGroupReportsMatchAWalkOfEveryState: GroupStats and GroupAges, which
// look at a group's own consumer states, answer what a walk of every
// consumer state of the engine answers, on random states: pops, acks,
// invisible times run out, pull offsets committed, groups and topics
// deleted and created again, restarts (states restored from a snapshot and
// the log); the indexes by group stay complete (checkIndexes).
func TestGroupReportsMatchAWalkOfEveryState(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Flush = "async" })
	rng := rand.New(rand.NewPCG(37, 5))
	groups := []string{"g0", "g1", "g2", "g3", "g4"}
	topics := []string{"t0", "t1", "t2", "t3"}
	created := map[string]bool{}
	var held []struct {
		group string
		m     domain.StoredMessage
	}
	compare := func(step int) {
		t.Helper()
		if err := h.e.checkIndexes(); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		for _, g := range groups {
			want, werr := h.e.groupStatsWalk(g)
			got, err := h.e.GroupStats(t.Context(), g)
			for i := range got {
				got[i].ConsumedUpTo = time.Time{} // read after the lock, from the index: not what the walk compares
			}
			if (err == nil) != (werr == nil) || !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d: GroupStats(%s) = %+v, %v; a walk of every state: %+v, %v", step, g, got, err, want, werr)
			}
			sub := topics[:rng.IntN(len(topics)+1)]
			wantAges, werr := h.e.groupAgesWalk(g, sub)
			ages, err := h.e.GroupAges(t.Context(), g, sub)
			if (err == nil) != (werr == nil) || !reflect.DeepEqual(ages, wantAges) {
				t.Fatalf("step %d: GroupAges(%s, %v) = %+v, %v; a walk of every state: %+v, %v", step, g, sub, ages, err, wantAges, werr)
			}
		}
	}
	for step := range 400 {
		g, topic := groups[rng.IntN(len(groups))], topics[rng.IntN(len(topics))]
		switch r := rng.IntN(100); {
		case r < 25:
			for range 1 + rng.IntN(4) {
				h.send(topic, int32(rng.IntN(8)), msg(topic, fmt.Sprint(step), ""))
			}
		case r < 50:
			if !created[g] {
				h.createGroup(g, int32(1+rng.IntN(3)), false)
				created[g] = true
			}
			for _, m := range h.pop(g, topic, int32(rng.IntN(8)), int32(1+rng.IntN(3)), time.Duration(1+rng.IntN(30))*time.Second) {
				held = append(held, struct {
					group string
					m     domain.StoredMessage
				}{g, m})
			}
		case r < 55 && created[g]:
			q := domain.QueueRef{Topic: topic, BrokerName: h.cfg.BrokerName, QueueID: int32(rng.IntN(8))}
			if err := h.e.UpdateOffset(t.Context(), g, q, 0); err != nil && !domain.HasReason(err, domain.ReasonTopicNotFound) {
				t.Fatal(err)
			}
		case r < 75 && len(held) > 0:
			i := rng.IntN(len(held))
			// An ack of a delivery that ran out (or of a deleted group or
			// topic) may fail: only the states matter here.
			_ = h.e.Ack(t.Context(), ackReq(held[i].group, held[i].m))
			held = slices.Delete(held, i, i+1)
		case r < 85:
			h.fake().Advance(time.Duration(rng.IntN(20)) * time.Second)
			h.revive()
		case r < 90 && created[g]:
			if err := h.e.DeleteGroup(t.Context(), g); err != nil {
				t.Fatal(err)
			}
			created[g] = false
		case r < 94:
			if err := h.e.DeleteTopic(t.Context(), topic); err != nil && !domain.HasReason(err, domain.ReasonTopicNotFound) {
				t.Fatal(err)
			}
		case r < 97:
			if err := h.e.Snapshot(t.Context()); err != nil {
				t.Fatal(err)
			}
			h.restart()
		default:
			h.crashRestart(true)
		}
		compare(step)
	}
}

// groupStatsWalk is GroupStats as it was: a walk of every consumer state
// of the engine, keeping the group's, counting each one's deliveries in
// flight.
func (e *Engine) groupStatsWalk(group string) ([]ports.QueueStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.groups[group]; !ok {
		return nil, groupNotFound(group)
	}
	e.promoteLocked()
	e.reviveDueLocked(e.clock.Now())
	var keys []consKey
	for k := range e.cons {
		if k.group == group {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, cmpKey)
	out := make([]ports.QueueStats, 0, len(keys))
	for _, k := range keys {
		c := e.cons[k]
		var count, visible, minOff int64
		if qi := e.queues[queueKey{k.topic, k.qid}]; qi != nil {
			count, visible, minOff = qi.count, qi.visible, e.keptFromLocked(qi)
		}
		var inFlight int64
		for _, d := range c.inflight {
			if d.inFlight() {
				inFlight++
			}
		}
		ackOff := max(c.floor, minOff)
		out = append(out, ports.QueueStats{Topic: k.topic, QueueID: k.qid, MaxOffset: count, AckOffset: ackOff,
			AckedAbove: c.acked.count(ackOff, count), InFlight: inFlight,
			Consumable: max(visible-max(c.next, minOff), 0) + int64(len(c.visible))})
	}
	return out, nil
}

// groupAgesWalk is GroupAges as it was: a walk of every consumer state of
// the engine, keeping the group's.
func (e *Engine) groupAgesWalk(group string, subscribed []string) ([]QueueAge, error) {
	e.mu.Lock()
	if _, ok := e.groups[group]; !ok {
		e.mu.Unlock()
		return nil, groupNotFound(group)
	}
	e.promoteLocked()
	e.reviveDueLocked(e.clock.Now())
	var out []QueueAge
	var reads []ageRead
	seen := map[queueKey]bool{}
	for k, c := range e.cons {
		if k.group != group {
			continue
		}
		qk := queueKey{k.topic, k.qid}
		seen[qk] = true
		qi := e.queues[qk]
		if qi == nil {
			continue
		}
		minOff := e.keptFromLocked(qi)
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

// BenchmarkGroupStatsManyInFlight: GroupStats, which every scrape of the
// consumer gauges and `rmqproxy group stats` call under the engine's lock,
// of a group holding 100,000 deliveries in flight on each of 2 queues
// (local.maxInflightPerQueue's default allows that many on each).
func BenchmarkGroupStatsManyInFlight(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.Flush = "async"; c.SegmentSize = 64 << 20 })
	h.createGroup("g", 16, false)
	batch := make([]domain.Message, 0, 100)
	for i := range cap(batch) {
		batch = append(batch, msg("t", fmt.Sprint(i), ""))
	}
	for q := range int32(2) {
		for range 1000 {
			h.send("t", q, batch...)
		}
		for len(h.pop("g", "t", q, 32, time.Hour)) > 0 {
		}
	}
	b.ResetTimer()
	for range b.N {
		st, err := h.e.GroupStats(b.Context(), "g")
		if err != nil || len(st) != 2 || st[0].InFlight != 100000 {
			b.Fatalf("GroupStats: %+v, %v", st, err)
		}
	}
}

// BenchmarkDeleteGroupAmongMany: deleting one of 5,000 groups, each with
// consumer state on the 8 queues of one of 50 topics (an operator removing
// groups one by one, under the engine's lock for each).
func BenchmarkDeleteGroupAmongMany(b *testing.B) {
	const groups = 5000
	if b.N > groups {
		b.Skipf("%d deletions asked, %d groups", b.N, groups)
	}
	h := newHarness(b, func(c *Config) { c.Flush = "async"; c.SegmentSize = 64 << 20 })
	for t := range 50 {
		for q := range int32(8) {
			h.send(fmt.Sprint("t", t), q, msg(fmt.Sprint("t", t), "m", ""))
		}
	}
	for g := range groups {
		name := fmt.Sprint("g", g)
		h.createGroup(name, 16, false)
		for q := range int32(8) {
			if len(h.pop(name, fmt.Sprint("t", g%50), q, 1, time.Hour)) != 1 {
				b.Fatal("no message")
			}
		}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := h.e.DeleteGroup(b.Context(), fmt.Sprint("g", i)); err != nil {
			b.Fatal(err)
		}
	}
}
