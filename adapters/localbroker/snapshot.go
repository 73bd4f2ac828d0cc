package localbroker

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/record"
	"github.com/rmqproxy/rmqproxy/adapters/localbroker/internal/timerindex"
)

// Snapshot file layout: magic "RMQSNAP4", a body, and the CRC-32C of the
// body (4 bytes, big endian). The body holds, as varints and
// length-prefixed strings:
//
//	logOffset
//	queues: count, then per queue: topic, queueId, entry count
//	states: count, then per (group, topic, queueId): floor, next,
//	        deliveries (offset, attempt, receipt, deadline ms, visible, message group,
//	        FIFO run id, held),
//	        acked offsets above the floor as ranges (first offset, length)
//	timer buckets: count, then per bucket: start ms, length, adds, dones, min origin
//	transactions: count, then per half message: origin, topic, queueId, size, crc,
//	        message id, stored ms, recovery ms, checks, last check ms
//	pull offsets: count, then per (group, topic, queueId): offset
//	topic deletions: count, then per topic: log offset of its latest deletion
//	topics: count, then per topic: a topic-put record payload (length-prefixed)
//	groups: count, then per group: a group-put record payload (length-prefixed)
//
// logOffset is the commit-log offset the snapshot covers: every record
// before it is reflected in the snapshot, none after it. Older versions are
// still read: "RMQSNAP1" (before delay and transactional messages) ends
// after the states, "RMQSNAP2" (before topics and groups were log records)
// after the topic deletions; recovery from them imports the definitions
// from the JSON files of that version (see importLegacyMeta). Versions 1 to
// 3 list acked offsets one by one and have deliveries without run id and
// held flag ("RMQSNAP3", before FIFO runs).
var (
	snapMagic   = []byte("RMQSNAP4")
	snapMagicV3 = []byte("RMQSNAP3")
	snapMagicV2 = []byte("RMQSNAP2")
	snapMagicV1 = []byte("RMQSNAP1")
)

type snapQueue struct {
	topic string
	qid   int32
	count int64
}

type snapDelivery struct {
	offset int64
	d      deliveryState
}

type snapState struct {
	key        consKey
	floor      int64
	next       int64
	deliveries []snapDelivery
	acked      []offRange
}

// snapTxn is a pending half message.
type snapTxn struct {
	origin int64
	st     txnState
}

type snapOffset struct {
	key    consKey
	offset int64
}

type snapDeleted struct {
	topic  string
	offset int64
}

type snapshot struct {
	logOffset int64
	queues    []snapQueue
	states    []snapState
	timers    []timerindex.State
	txns      []snapTxn
	offsets   []snapOffset
	deleted   []snapDeleted
	// defs is set when the snapshot holds the topic and group definitions
	// (version 3), even if there are none.
	defs   bool
	topics []record.TopicPut
	groups []record.GroupPut
}

var errSnapshot = errors.New("bad snapshot")

type snapWriter struct{ b []byte }

func (w *snapWriter) u(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *snapWriter) i(v int64)  { w.b = binary.AppendVarint(w.b, v) }
func (w *snapWriter) s(v string) { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *snapWriter) bool(v bool) {
	var b byte
	if v {
		b = 1
	}
	w.b = append(w.b, b)
}

// queues writes the queue section, the same in every version.
func (w *snapWriter) queues(qs []snapQueue) {
	w.u(uint64(len(qs)))
	for _, q := range qs {
		w.s(q.topic)
		w.i(int64(q.qid))
		w.i(q.count)
	}
}

// stateHead writes what every version has before a state's deliveries: its
// key, ack floor and cursor, and the number of deliveries.
func (w *snapWriter) stateHead(st *snapState) {
	w.s(st.key.group)
	w.s(st.key.topic)
	w.i(int64(st.key.qid))
	w.i(st.floor)
	w.i(st.next)
	w.u(uint64(len(st.deliveries)))
}

// deliveryV1 writes the fields a delivery has had since version 1; version
// 4 follows them with the run id and held flag.
func (w *snapWriter) deliveryV1(d *snapDelivery) {
	w.i(d.offset)
	w.i(int64(d.d.attempt))
	w.i(d.d.receipt)
	w.i(d.d.deadline)
	w.bool(d.d.visible)
	w.s(d.d.msgGroup)
}

func encodeSnapshot(s *snapshot) []byte {
	w := snapWriter{b: bytes.Clone(snapMagic)}
	w.i(s.logOffset)
	w.queues(s.queues)
	w.u(uint64(len(s.states)))
	for _, st := range s.states {
		w.stateHead(&st)
		for _, d := range st.deliveries {
			w.deliveryV1(&d)
			w.i(d.d.run)
			w.bool(d.d.held)
		}
		w.u(uint64(len(st.acked)))
		for _, a := range st.acked {
			w.i(a.from)
			w.i(a.to - a.from)
		}
	}
	w.u(uint64(len(s.timers)))
	for _, b := range s.timers {
		w.i(b.Start)
		w.i(b.Length)
		w.i(b.Adds)
		w.i(b.Dones)
		w.i(b.MinOrigin)
	}
	w.u(uint64(len(s.txns)))
	for _, t := range s.txns {
		w.i(t.origin)
		w.s(t.st.topic)
		w.i(int64(t.st.qid))
		w.i(int64(t.st.size))
		w.u(uint64(t.st.crc))
		w.s(t.st.msgID)
		w.i(t.st.storedAt)
		w.i(t.st.recovery)
		w.i(int64(t.st.checks))
		w.i(t.st.lastCheck)
	}
	w.u(uint64(len(s.offsets)))
	for _, o := range s.offsets {
		w.s(o.key.group)
		w.s(o.key.topic)
		w.i(int64(o.key.qid))
		w.i(o.offset)
	}
	w.u(uint64(len(s.deleted)))
	for _, d := range s.deleted {
		w.s(d.topic)
		w.i(d.offset)
	}
	w.u(uint64(len(s.topics)))
	for i := range s.topics {
		w.s(string(record.AppendTopicPut(nil, &s.topics[i])))
	}
	w.u(uint64(len(s.groups)))
	for i := range s.groups {
		w.s(string(record.AppendGroupPut(nil, &s.groups[i])))
	}
	return encodeSnapshotRaw(w.b)
}

var snapCRC = crc32.MakeTable(crc32.Castagnoli)

// encodeSnapshotRaw appends the checksum to magic+body.
func encodeSnapshotRaw(b []byte) []byte {
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[len(snapMagic):], snapCRC))
}

type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errSnapshot, why)
	}
}

func (r *snapReader) u() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) i() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) nonneg() int64 {
	v := r.i()
	if v < 0 {
		r.fail("negative value")
		return 0
	}
	return v
}

func (r *snapReader) i32() int32 {
	v := r.i()
	if v < 0 || v > math.MaxInt32 {
		r.fail("queue id out of range")
		return 0
	}
	return int32(v)
}

func (r *snapReader) count() int {
	v := r.u()
	if v > uint64(len(r.b)) {
		r.fail("count exceeds data")
		return 0
	}
	return int(v)
}

func (r *snapReader) s() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	v := string(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *snapReader) bool() bool {
	if r.err != nil {
		return false
	}
	if len(r.b) == 0 || r.b[0] > 1 {
		r.fail("bad bool")
		return false
	}
	v := r.b[0] == 1
	r.b = r.b[1:]
	return v
}

// decodeSnapshot parses and checks a snapshot file; it never panics.
func decodeSnapshot(b []byte) (*snapshot, error) {
	if len(b) < len(snapMagic)+4 {
		return nil, fmt.Errorf("%w: missing magic", errSnapshot)
	}
	version := 0
	for v, m := range [][]byte{snapMagicV1, snapMagicV2, snapMagicV3, snapMagic} {
		if bytes.Equal(b[:len(m)], m) {
			version = v + 1
		}
	}
	if version == 0 {
		return nil, fmt.Errorf("%w: missing magic", errSnapshot)
	}
	body := b[len(snapMagic) : len(b)-4]
	if binary.BigEndian.Uint32(b[len(b)-4:]) != crc32.Checksum(body, snapCRC) {
		return nil, fmt.Errorf("%w: checksum mismatch", errSnapshot)
	}
	r := snapReader{b: body}
	s := &snapshot{logOffset: r.nonneg()}
	for range r.count() {
		q := snapQueue{topic: r.s(), qid: r.i32(), count: r.nonneg()}
		s.queues = append(s.queues, q)
	}
	for range r.count() {
		st := snapState{key: consKey{group: r.s(), topic: r.s(), qid: r.i32()}, floor: r.nonneg(), next: r.nonneg()}
		if st.next < st.floor {
			r.fail("cursor below the ack floor")
		}
		for range r.count() {
			d := snapDelivery{offset: r.nonneg()}
			att := r.i()
			if att < 0 || att > math.MaxInt32 {
				r.fail("attempt out of range")
			}
			d.d = deliveryState{attempt: int32(att), receipt: r.i(), deadline: r.i(), visible: r.bool(), msgGroup: r.s()}
			if version >= 4 {
				d.d.run, d.d.held = r.i(), r.bool()
				if r.err == nil && d.d.held && d.d.visible {
					r.fail("delivery both held and visible")
				}
			}
			if r.err == nil && (d.offset < st.floor || d.offset >= st.next) {
				r.fail("delivery outside [floor, next)")
			}
			st.deliveries = append(st.deliveries, d)
		}
		if version >= 4 {
			for range r.count() {
				a := offRange{from: r.nonneg()}
				a.to = a.from + r.nonneg()
				if r.err == nil && (a.from < st.floor || a.to > st.next || a.to <= a.from ||
					len(st.acked) > 0 && a.from <= st.acked[len(st.acked)-1].to) {
					r.fail("bad acked range")
				}
				st.acked = append(st.acked, a)
			}
		} else {
			var offs []int64
			for range r.count() {
				a := r.nonneg()
				if r.err == nil && (a < st.floor || a >= st.next) {
					r.fail("acked offset outside [floor, next)")
				}
				offs = append(offs, a)
			}
			st.acked = rangesOf(offs)
		}
		s.states = append(s.states, st)
	}
	if version >= 2 {
		r.decodeV2(s)
	}
	if version >= 3 {
		r.decodeV3(s)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// rangesOf turns a list of offsets into sorted, merged ranges.
func rangesOf(offs []int64) []offRange {
	slices.Sort(offs)
	var out []offRange
	for _, o := range offs {
		if n := len(out); n > 0 && out[n-1].to >= o {
			out[n-1].to = max(out[n-1].to, o+1)
			continue
		}
		out = append(out, offRange{o, o + 1})
	}
	return out
}

// decodeV2 reads the sections version 2 added.
func (r *snapReader) decodeV2(s *snapshot) {
	for range r.count() {
		b := timerindex.State{Start: r.nonneg(), Length: r.nonneg(), Adds: r.nonneg(), Dones: r.nonneg(), MinOrigin: r.nonneg()}
		if r.err == nil && (b.Length < timerindex.HeaderSize || b.Dones > b.Adds) {
			r.fail("bad timer bucket")
		}
		s.timers = append(s.timers, b)
	}
	for range r.count() {
		t := snapTxn{origin: r.nonneg()}
		t.st.topic = r.s()
		t.st.qid = r.i32()
		t.st.size = r.i32()
		crc := r.u()
		if crc > math.MaxUint32 {
			r.fail("crc out of range")
		}
		t.st.crc = uint32(crc)
		t.st.msgID = r.s()
		t.st.storedAt = r.i()
		t.st.recovery = r.nonneg()
		t.st.checks = r.i32()
		t.st.lastCheck = r.i()
		s.txns = append(s.txns, t)
	}
	for range r.count() {
		o := snapOffset{key: consKey{group: r.s(), topic: r.s(), qid: r.i32()}, offset: r.nonneg()}
		s.offsets = append(s.offsets, o)
	}
	for range r.count() {
		s.deleted = append(s.deleted, snapDeleted{topic: r.s(), offset: r.nonneg()})
	}
}

// decodeV3 reads the definitions version 3 added.
func (r *snapReader) decodeV3(s *snapshot) {
	s.defs = true
	for range r.count() {
		t, err := record.DecodeTopicPut([]byte(r.s()))
		if err != nil && r.err == nil {
			r.fail("bad topic: " + err.Error())
		}
		s.topics = append(s.topics, t)
	}
	for range r.count() {
		g, err := record.DecodeGroupPut([]byte(r.s()))
		if err != nil && r.err == nil {
			r.fail("bad group: " + err.Error())
		}
		s.groups = append(s.groups, g)
	}
}

// A snapshot's capture copies what is small under the engine lock (queue
// counts, timer buckets, offsets, definitions) and starts a copy-on-write
// capture of the consumer states, which hold the deliveries in flight, and
// of the half messages, both of which can number hundreds of thousands:
// beginCaptureLocked marks the capture active, and until it ends, the first
// change to a consumer state or half message copies it as it was at the
// snapshot's log offset (consState.touch, called by every method of
// consState that changes what a snapshot holds and before a state is
// dropped; snapCOW.touchTxn, before a half message's check count changes or
// it is dropped). Those nothing changed are copied afterwards, a batch at a
// time, each batch under the lock (stateCapture.finish), so that sends,
// receives and acks wait for one batch, not for the whole copy. States and
// half messages added during the capture did not exist at the log offset
// and are left out.

// snapCOW is the engine's copy-on-write capture of consumer states and half
// messages.
type snapCOW struct {
	gen    uint64 // of the capture in progress or of the latest one
	active bool
	out    []snapState // the states copied by touch
	txns   []snapTxn   // the half messages copied by touchTxn
}

// touchTxn copies the half message at origin into the capture in progress
// unless it is copied already; it is called before the state changes or
// is dropped.
func (w *snapCOW) touchTxn(origin int64, st *txnState) {
	if w.active && st.snapGen != w.gen {
		st.snapGen = w.gen
		w.txns = append(w.txns, snapTxn{origin: origin, st: *st})
	}
}

// touch copies c into the capture in progress unless it is copied already.
func (c *consState) touch() {
	if w := c.cow; w != nil && w.active && c.snapGen != w.gen {
		c.snapGen = w.gen
		w.out = append(w.out, c.snapState())
	}
}

// snapState copies c's state as a snapshot holds it.
func (c *consState) snapState() snapState {
	st := snapState{key: c.key, floor: c.floor, next: c.next, acked: c.acked.ranges(c.floor, c.next),
		deliveries: make([]snapDelivery, 0, len(c.inflight))}
	for off, d := range c.inflight {
		st.deliveries = append(st.deliveries, snapDelivery{offset: off, d: d.deliveryState})
	}
	return st
}

// stateCapture is a capture of consumer states in progress.
type stateCapture struct {
	s       *snapshot
	gen     uint64
	todo    []*consState // the states that existed at the log offset
	txnTodo []txnRef     // the half messages pending at the log offset
}

type txnRef struct {
	origin int64
	st     *txnState
}

// captureLocked copies the whole state into a snapshot covering the log up
// to logOffset, all under the lock, without the copy-on-write capture
// (tests; snapshots use beginCaptureLocked and finish).
func (e *Engine) captureLocked(logOffset int64) *snapshot {
	s := e.captureSmallLocked(logOffset)
	for _, c := range e.cons {
		s.states = append(s.states, c.snapState())
	}
	for o, t := range e.txns {
		s.txns = append(s.txns, snapTxn{origin: o, st: *t})
	}
	return s
}

// beginCaptureLocked copies the current state, but for the consumer states
// and half messages, into a snapshot covering the log up to logOffset and
// starts the capture of those (only one at a time: snapshots hold snapMu).
// It only copies (the engine lock is held); sortCanonical, called without
// the lock, orders the snapshot so that equal states encode equally.
func (e *Engine) beginCaptureLocked(logOffset int64) *stateCapture {
	s := e.captureSmallLocked(logOffset)
	e.cow.gen++
	e.cow.active = true
	// The copies' slices grow in the batches, not here.
	e.cow.out, e.cow.txns = nil, nil
	sc := &stateCapture{s: s, gen: e.cow.gen, todo: make([]*consState, 0, len(e.cons)),
		txnTodo: make([]txnRef, 0, len(e.txns))}
	for _, c := range e.cons {
		sc.todo = append(sc.todo, c)
	}
	for o, t := range e.txns {
		sc.txnTodo = append(sc.txnTodo, txnRef{o, t})
	}
	return sc
}

// captureSmallLocked copies the state but for the consumer states and half
// messages into a snapshot covering the log up to logOffset.
func (e *Engine) captureSmallLocked(logOffset int64) *snapshot {
	s := &snapshot{logOffset: logOffset, queues: make([]snapQueue, 0, len(e.queues)),
		offsets: make([]snapOffset, 0, len(e.offsets)),
		deleted: make([]snapDeleted, 0, len(e.topicDeletedAt)), topics: make([]record.TopicPut, 0, len(e.topics)),
		groups: make([]record.GroupPut, 0, len(e.groups))}
	for k, q := range e.queues {
		s.queues = append(s.queues, snapQueue{topic: k.topic, qid: k.qid, count: q.count})
	}
	// Drained buckets are left out: every entry they hold before logOffset
	// is resolved, so recovery from this snapshot deletes them.
	for _, b := range e.timers.Buckets() {
		if st := b.State(); st.Adds > st.Dones {
			s.timers = append(s.timers, st)
		}
	}
	for k, o := range e.offsets {
		s.offsets = append(s.offsets, snapOffset{key: k, offset: o})
	}
	for t, o := range e.topicDeletedAt {
		s.deleted = append(s.deleted, snapDeleted{topic: t, offset: o})
	}
	s.defs = true
	for _, t := range e.topics {
		s.topics = append(s.topics, record.TopicPut{Topic: t.Topic, Incarnation: t.incarnation})
	}
	for _, g := range e.groups {
		s.groups = append(s.groups, record.GroupPut{Group: g.ConsumerGroup, Incarnation: g.incarnation})
	}
	return s
}

// copyLocked copies up to n of the states and half messages still to copy
// (or, when the states hold many deliveries, until about budget deliveries
// are copied).
func (sc *stateCapture) copyLocked(e *Engine, n, budget int) {
	copied := 0
	for len(sc.txnTodo) > 0 && n > 0 {
		t := sc.txnTodo[0]
		sc.txnTodo[0] = txnRef{}
		sc.txnTodo = sc.txnTodo[1:]
		n--
		e.cow.touchTxn(t.origin, t.st) // unless copied by a change or drop since
	}
	for len(sc.todo) > 0 && n > 0 && copied < budget {
		c := sc.todo[0]
		sc.todo[0] = nil
		sc.todo = sc.todo[1:]
		n--
		if c.snapGen == sc.gen {
			continue // copied by touch (changed or dropped since)
		}
		copied += len(c.inflight) + 1
		c.touch()
	}
}

// captureBatch bounds the deliveries one batch of a capture copies under
// the lock (about a millisecond's work; a larger state is copied whole).
const captureBatch = 8192

// endLocked ends the capture (every state is copied) and returns the
// snapshot.
func (sc *stateCapture) endLocked(e *Engine) *snapshot {
	sc.s.states, sc.s.txns = e.cow.out, e.cow.txns
	e.cow.out, e.cow.txns, e.cow.active = nil, nil, false
	return sc.s
}

// finish copies the states nothing changed in batches, each under the
// engine lock, and returns the snapshot and the longest time a batch held
// the lock.
func (sc *stateCapture) finish(e *Engine) (*snapshot, time.Duration) {
	var longest time.Duration
	// Room for every copy, allocated without the lock (growing the slices
	// in a batch would copy them under it).
	states := make([]snapState, 0, len(sc.todo)+64)
	txns := make([]snapTxn, 0, len(sc.txnTodo)+64)
	for first := true; ; first = false {
		e.mu.Lock()
		t0 := time.Now()
		if first {
			e.cow.out = append(states, e.cow.out...)
			e.cow.txns = append(txns, e.cow.txns...)
		}
		sc.copyLocked(e, captureStates, captureBatch)
		if len(sc.todo) == 0 && len(sc.txnTodo) == 0 {
			s := sc.endLocked(e)
			longest = max(longest, time.Since(t0))
			e.mu.Unlock()
			return s, longest
		}
		longest = max(longest, time.Since(t0))
		e.mu.Unlock()
		if captureBatchHook != nil {
			captureBatchHook()
		}
		runtime.Gosched()
	}
}

// captureStates bounds the states and half messages one batch of a
// capture copies (a variable for tests).
var captureStates = 1024

// captureBatchHook, when set (tests), runs between two batches of a
// capture, without the lock.
var captureBatchHook func()

// sortCanonical orders a captured snapshot canonically.
func (s *snapshot) sortCanonical() {
	slices.SortFunc(s.queues, func(a, b snapQueue) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.qid - b.qid)
	})
	for i := range s.states {
		slices.SortFunc(s.states[i].deliveries, func(a, b snapDelivery) int { return cmp.Compare(a.offset, b.offset) })
	}
	slices.SortFunc(s.states, func(a, b snapState) int { return cmpKey(a.key, b.key) })
	slices.SortFunc(s.txns, func(a, b snapTxn) int { return cmp.Compare(a.origin, b.origin) })
	slices.SortFunc(s.offsets, func(a, b snapOffset) int { return cmpKey(a.key, b.key) })
	slices.SortFunc(s.deleted, func(a, b snapDeleted) int { return strings.Compare(a.topic, b.topic) })
	slices.SortFunc(s.topics, func(a, b record.TopicPut) int { return strings.Compare(a.Topic.Name, b.Topic.Name) })
	slices.SortFunc(s.groups, func(a, b record.GroupPut) int { return strings.Compare(a.Group.Name, b.Group.Name) })
}

func cmpKey(a, b consKey) int {
	if c := strings.Compare(a.group, b.group); c != 0 {
		return c
	}
	if c := strings.Compare(a.topic, b.topic); c != 0 {
		return c
	}
	return int(a.qid - b.qid)
}

// restoreLocked loads consumer state from a snapshot (queues are restored by
// the caller, which owns the consume-queue files).
func (e *Engine) restoreLocked(s *snapshot) {
	for _, st := range s.states {
		c := newConsState(st.key, &e.heap)
		c.floor, c.next = st.floor, st.next
		for _, d := range st.deliveries {
			c.set(d.offset, d.d)
			if d.d.run != 0 {
				rk := runKey{d.d.run, d.d.msgGroup}
				c.runs[rk] = append(c.runs[rk], d.offset)
			}
		}
		for _, offs := range c.runs {
			slices.Sort(offs)
		}
		for _, a := range st.acked {
			for off := a.from; off < a.to; {
				// Deliveries win over acked offsets (a damaged file could
				// list both).
				if _, ok := c.inflight[off]; ok {
					off++
					continue
				}
				end := off + 1
				for end < a.to && c.inflight[end] == nil {
					end++
				}
				c.acked.addRange(off, end)
				off = end
			}
		}
		c.advanceFloor()
		e.addConsLocked(c)
	}
	for _, t := range s.txns {
		st := t.st
		e.txns[t.origin] = &st
		e.scheduleTxnLocked(t.origin, &st)
	}
	for _, o := range s.offsets {
		e.setOffsetLocked(o.key, o.offset)
	}
	for _, d := range s.deleted {
		e.topicDeletedAt[d.topic] = d.offset
	}
	for i := range s.topics {
		e.applyTopicPutLocked(&s.topics[i])
	}
	for i := range s.groups {
		e.applyGroupPutLocked(&s.groups[i])
	}
}
