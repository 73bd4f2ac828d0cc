package localbroker

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"
)

// Snapshot file layout: magic "RMQSNAP1", a body, and the CRC-32C of the
// body (4 bytes, big endian). The body holds, as varints and
// length-prefixed strings:
//
//	logOffset
//	queues: count, then per queue: topic, queueId, entry count
//	states: count, then per (group, topic, queueId): floor, next,
//	        deliveries (offset, attempt, receipt, deadline ms, visible, message group),
//	        acked offsets above the floor
//
// logOffset is the commit-log offset the snapshot covers: every record
// before it is reflected in the snapshot, none after it.
var snapMagic = []byte("RMQSNAP1")

type snapQueue struct {
	topic string
	qid   int32
	count int64
}

type snapDelivery struct {
	offset int64
	d      delivery
}

type snapState struct {
	key        consKey
	floor      int64
	next       int64
	deliveries []snapDelivery
	acked      []int64
}

type snapshot struct {
	logOffset int64
	queues    []snapQueue
	states    []snapState
}

var errSnapshot = errors.New("bad snapshot")

type snapWriter struct{ b []byte }

func (w *snapWriter) u(v uint64)  { w.b = binary.AppendUvarint(w.b, v) }
func (w *snapWriter) i(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *snapWriter) s(v string)  { w.u(uint64(len(v))); w.b = append(w.b, v...) }
func (w *snapWriter) bool(v bool) { w.b = append(w.b, map[bool]byte{false: 0, true: 1}[v]) }

func encodeSnapshot(s *snapshot) []byte {
	w := snapWriter{b: bytes.Clone(snapMagic)}
	w.i(s.logOffset)
	w.u(uint64(len(s.queues)))
	for _, q := range s.queues {
		w.s(q.topic)
		w.i(int64(q.qid))
		w.i(q.count)
	}
	w.u(uint64(len(s.states)))
	for _, st := range s.states {
		w.s(st.key.group)
		w.s(st.key.topic)
		w.i(int64(st.key.qid))
		w.i(st.floor)
		w.i(st.next)
		w.u(uint64(len(st.deliveries)))
		for _, d := range st.deliveries {
			w.i(d.offset)
			w.i(int64(d.d.attempt))
			w.i(d.d.receipt)
			w.i(d.d.deadline)
			w.bool(d.d.visible)
			w.s(d.d.msgGroup)
		}
		w.u(uint64(len(st.acked)))
		for _, a := range st.acked {
			w.i(a)
		}
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
	if len(b) < len(snapMagic)+4 || !bytes.Equal(b[:len(snapMagic)], snapMagic) {
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
			d.d = delivery{attempt: int32(att), receipt: r.i(), deadline: r.i(), visible: r.bool(), msgGroup: r.s()}
			if r.err == nil && (d.offset < st.floor || d.offset >= st.next) {
				r.fail("delivery outside [floor, next)")
			}
			st.deliveries = append(st.deliveries, d)
		}
		for range r.count() {
			a := r.nonneg()
			if r.err == nil && (a < st.floor || a >= st.next) {
				r.fail("acked offset outside [floor, next)")
			}
			st.acked = append(st.acked, a)
		}
		s.states = append(s.states, st)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// captureLocked builds a snapshot of the current state, covering the log up
// to logOffset. Output is canonical (sorted) so equal states encode equally.
func (e *Engine) captureLocked(logOffset int64) *snapshot {
	s := &snapshot{logOffset: logOffset}
	for k, q := range e.queues {
		s.queues = append(s.queues, snapQueue{topic: k.topic, qid: k.qid, count: q.count})
	}
	slices.SortFunc(s.queues, func(a, b snapQueue) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.qid - b.qid)
	})
	for k, c := range e.cons {
		st := snapState{key: k, floor: c.floor, next: c.next}
		for off, d := range c.inflight {
			st.deliveries = append(st.deliveries, snapDelivery{offset: off, d: *d})
		}
		slices.SortFunc(st.deliveries, func(a, b snapDelivery) int { return cmpInt(a.offset, b.offset) })
		for off := range c.acked {
			st.acked = append(st.acked, off)
		}
		slices.Sort(st.acked)
		s.states = append(s.states, st)
	}
	slices.SortFunc(s.states, func(a, b snapState) int { return cmpKey(a.key, b.key) })
	return s
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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
		c := newConsState()
		c.floor, c.next = st.floor, st.next
		for _, d := range st.deliveries {
			dd := d.d
			c.inflight[d.offset] = &dd
			if dd.visible {
				c.addVisible(d.offset)
			} else {
				e.heap.push(deadlineItem{deadline: dd.deadline, key: st.key, offset: d.offset, receipt: dd.receipt})
			}
		}
		for _, a := range st.acked {
			if _, ok := c.inflight[a]; !ok {
				c.acked[a] = struct{}{}
			}
		}
		e.cons[st.key] = c
	}
}
