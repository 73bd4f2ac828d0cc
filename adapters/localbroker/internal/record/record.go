// Package record encodes and decodes the payloads of the records the local
// broker writes into its commit log: message batches, dispatches, pop, ack,
// change-invisible and dead-letter records, topic/group definitions and
// deletions, the resolutions of deferred (delay and half) messages,
// transaction check-backs, pull-consumer offset commits and consumer
// offset resets.
//
// It owns the byte layout only; framing (length, CRC, type byte) is the
// commit log's job and the meaning of the records is the engine's.
//
// Invariants: every Decode function returns an error for malformed input and
// never panics, whatever the bytes; integers are unsigned/zig-zag varints,
// strings and byte slices are length-prefixed with a uvarint; Encode followed
// by Decode yields an equal value; decoded values never alias the payload
// (the engine reuses its encoding buffer once a record is applied).
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/rmqproxy/rmqproxy/domain"
)

// Type is the record type byte of a commit-log frame.
type Type uint8

// Record types. Values are persisted: never renumber.
const (
	TypeMessageBatch    Type = 1
	TypeDispatch        Type = 2
	TypePop             Type = 3
	TypeAck             Type = 4
	TypeChangeInvisible Type = 5
	TypeDeadLetter      Type = 6
	TypeTopicDeleted    Type = 7
	TypeGroupDeleted    Type = 8
	TypeResolve         Type = 9
	TypeTxnCheck        Type = 10
	TypeOffsetCommit    Type = 11
	TypeTopicPut        Type = 12
	TypeGroupPut        Type = 13
	TypeConsumerReset   Type = 14
	maxType             Type = 14
)

// ConsumerState reports whether t is a small record of consumer or
// definition state (no message inside): these may still be appended while
// the disk is full, into the commit log's reserve.
func (t Type) ConsumerState() bool {
	switch t {
	case TypePop, TypeAck, TypeChangeInvisible, TypeTopicDeleted, TypeGroupDeleted, TypeTxnCheck,
		TypeOffsetCommit, TypeTopicPut, TypeGroupPut, TypeConsumerReset:
		return true
	}
	return false
}

// Known reports whether t is a record type this version understands.
func (t Type) Known() bool { return t >= 1 && t <= maxType }

func (t Type) String() string {
	switch t {
	case TypeMessageBatch:
		return "message-batch"
	case TypeDispatch:
		return "dispatch"
	case TypePop:
		return "pop"
	case TypeAck:
		return "ack"
	case TypeChangeInvisible:
		return "change-invisible"
	case TypeDeadLetter:
		return "dead-letter"
	case TypeTopicDeleted:
		return "topic-deleted"
	case TypeGroupDeleted:
		return "group-deleted"
	case TypeResolve:
		return "resolve"
	case TypeTxnCheck:
		return "txn-check"
	case TypeOffsetCommit:
		return "offset-commit"
	case TypeTopicPut:
		return "topic-put"
	case TypeGroupPut:
		return "group-put"
	case TypeConsumerReset:
		return "consumer-reset"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("corrupt record")

func corrupt(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

// maxCount bounds list lengths in decoded records so a corrupt length cannot
// make the decoder allocate unbounded memory.
const maxCount = 1 << 20

// MaxBatchMessages is the most messages one batch record may hold (and the
// most keys or properties one message may have): decoding refuses a longer
// list as corrupt, so a writer must refuse more before it appends.
const MaxBatchMessages = maxCount

// writer appends primitives to a byte slice.
type writer struct{ b []byte }

func (w *writer) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) byte1(v byte)     { w.b = append(w.b, v) }
func (w *writer) str(s string)     { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }
func (w *writer) bytes(p []byte)   { w.uvarint(uint64(len(p))); w.b = append(w.b, p...) }

// reader consumes primitives; the first failure sticks in err.
type reader struct {
	b   []byte
	off int
	err error
	// meta makes decodeMessage check but not copy the message fields that
	// indexing does not read (see DecodeBatchMeta).
	meta bool
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = corrupt("%s at byte %d", what, r.off)
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

// nonneg reads a uvarint that must fit an int64.
func (r *reader) nonneg() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail("integer out of range")
		return 0
	}
	return int64(v)
}

func (r *reader) int32v() int32 {
	v := r.varint()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail("int32 out of range")
		return 0
	}
	return int32(v)
}

func (r *reader) byte1() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("unexpected end")
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) raw() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("length exceeds record")
		return nil
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p
}

func (r *reader) str() string { return string(r.raw()) }

// metaStr is str for a message field that indexing never reads: in meta
// mode it is checked but not copied.
func (r *reader) metaStr() string {
	if r.meta {
		r.raw()
		return ""
	}
	return r.str()
}

func (r *reader) count() int {
	n := r.uvarint()
	if n > maxCount || n > uint64(len(r.b)-r.off) {
		r.fail("list length out of range")
		return 0
	}
	return int(n)
}

func (r *reader) end() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("trailing bytes")
	}
	return r.err
}

// Time encoding: 0 means the zero time.Time; otherwise Unix nanoseconds + 1
// shifted so that the Unix epoch itself is representable.
func encodeTime(w *writer, t time.Time) {
	if t.IsZero() {
		w.varint(0)
		return
	}
	n := t.UnixNano()
	if n >= 0 {
		n++
	}
	w.varint(n)
}

func decodeTime(r *reader) time.Time {
	n := r.varint()
	switch {
	case n == 0:
		return time.Time{}
	case n > 0:
		n--
	}
	return time.Unix(0, n).UTC()
}

// Message flag bits. Bit 4 is newer than the others: a message without a
// prior-attempt count is encoded as before it existed.
const (
	flagCompressed    = 1 << 0
	flagTransactional = 1 << 1
	flagDeadLetter    = 1 << 2
	flagTxnOrigin     = 1 << 3
	flagPriorAttempts = 1 << 4
	knownFlags        = flagCompressed | flagTransactional | flagDeadLetter | flagTxnOrigin | flagPriorAttempts
)

// Message is one stored message as encoded inside a batch: the producer's
// message, when it was stored, where a dead-lettered copy came from and how
// often it had been delivered, and for the copy a transaction commit made
// visible, where its half message is.
type Message struct {
	domain.Message
	StoredAt   time.Time
	DeadLetter *domain.DeadLetterOrigin
	// PriorAttempts counts the deliveries the message had before it was
	// stored here, as a RocketMQ broker's reconsume times do: a dead-letter
	// copy carries its message's, so that the delivery attempts of its own
	// consumers go on from there. 0 for other messages (and for dead-letter
	// copies written before the count was kept).
	PriorAttempts int32
	// TxnOrigin is the commit-log offset of the half message this message
	// was committed from (it names the transaction); 0 for other messages.
	TxnOrigin int64
}

// AppendMessage appends the encoding of m to dst. The topic is not encoded:
// the batch (or the queue) it is read from names it.
func AppendMessage(dst []byte, m *Message) []byte {
	w := writer{b: dst}
	var flags byte
	if m.Compressed {
		flags |= flagCompressed
	}
	if m.Transactional {
		flags |= flagTransactional
	}
	if m.DeadLetter != nil {
		flags |= flagDeadLetter
	}
	if m.TxnOrigin > 0 {
		flags |= flagTxnOrigin
	}
	if m.PriorAttempts > 0 {
		flags |= flagPriorAttempts
	}
	w.byte1(flags)
	encodeTime(&w, m.StoredAt)
	w.str(m.ID)
	w.str(m.Tag)
	w.uvarint(uint64(len(m.Keys)))
	for _, k := range m.Keys {
		w.str(k)
	}
	w.str(m.Group)
	encodeTime(&w, m.DeliverAt)
	w.varint(int64(m.TransactionRecovery))
	w.str(m.TraceContext)
	w.str(m.BornHost)
	encodeTime(&w, m.BornAt)
	w.varint(int64(m.ReconsumeTimes))
	keys := make([]string, 0, len(m.Properties))
	for k := range m.Properties {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.uvarint(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(m.Properties[k])
	}
	if m.DeadLetter != nil {
		w.str(m.DeadLetter.Topic)
		w.str(m.DeadLetter.MessageID)
	}
	if m.PriorAttempts > 0 {
		w.uvarint(uint64(m.PriorAttempts))
	}
	if m.TxnOrigin > 0 {
		w.uvarint(uint64(m.TxnOrigin))
	}
	w.bytes(m.Body)
	return w.b
}

// DecodeMessage decodes a message encoded by AppendMessage. The returned
// message does not alias b. topic is set as the message's topic.
func DecodeMessage(b []byte, topic string) (Message, error) {
	r := reader{b: b}
	m := decodeMessage(&r, topic)
	if err := r.end(); err != nil {
		return Message{}, err
	}
	return m, nil
}

func decodeMessage(r *reader, topic string) Message {
	var m Message
	m.Topic = topic
	flags := r.byte1()
	if flags&^knownFlags != 0 {
		r.fail("unknown message flags")
	}
	m.Compressed = flags&flagCompressed != 0
	m.Transactional = flags&flagTransactional != 0
	m.StoredAt = decodeTime(r)
	if r.meta && !m.Transactional {
		r.raw() // only a half message's state keeps its id
	} else {
		m.ID = r.str()
	}
	m.Tag = r.str()
	if n := r.count(); n > 0 && r.meta {
		for range n {
			r.raw()
		}
	} else if n > 0 {
		m.Keys = make([]string, n)
		for i := range m.Keys {
			m.Keys[i] = r.str()
		}
	}
	m.Group = r.metaStr()
	m.DeliverAt = decodeTime(r)
	m.TransactionRecovery = time.Duration(r.varint())
	m.TraceContext = r.metaStr()
	m.BornHost = r.metaStr()
	m.BornAt = decodeTime(r)
	m.ReconsumeTimes = r.int32v()
	if n := r.count(); n > 0 && r.meta {
		for range 2 * n {
			r.raw()
		}
	} else if n > 0 {
		m.Properties = make(map[string]string, n)
		for range n {
			k := r.str()
			m.Properties[k] = r.str()
		}
	}
	if flags&flagDeadLetter != 0 {
		m.DeadLetter = &domain.DeadLetterOrigin{Topic: r.str(), MessageID: r.str()}
	}
	if flags&flagPriorAttempts != 0 {
		if n := r.uvarint(); n == 0 || n > math.MaxInt32 {
			r.fail("prior attempts out of range")
		} else {
			m.PriorAttempts = int32(n)
		}
	}
	if flags&flagTxnOrigin != 0 {
		if m.TxnOrigin = r.nonneg(); m.TxnOrigin == 0 {
			r.fail("zero transaction origin")
		}
	}
	body := r.raw()
	switch {
	case r.meta: // checked, not copied
	case len(body) > 0:
		m.Body = slices.Clone(body)
	case r.err == nil:
		m.Body = []byte{}
	}
	return m
}

// Batch is a set of messages for one queue, stored atomically in one record.
// QueueOffset is the queue offset of the first message, or -1 when the batch
// is not dispatched at write time (delay and half messages: a later
// [Dispatch] record gives each message its queue offset).
type Batch struct {
	Topic       string
	QueueID     int32
	QueueOffset int64
	Messages    []Message
}

// Location is where one message of a batch lies inside the record payload.
type Location struct {
	Pos  int // byte position of the message encoding in the payload
	Size int
}

// AppendBatch appends the payload of a message-batch record and reports where
// each message's encoding lies in the returned payload.
func AppendBatch(dst []byte, b *Batch) ([]byte, []Location) {
	return AppendBatchLocs(dst, b, make([]Location, 0, len(b.Messages)))
}

// AppendBatchLocs is AppendBatch appending the locations to locs.
func AppendBatchLocs(dst []byte, b *Batch, locs []Location) ([]byte, []Location) {
	w := writer{b: dst}
	start := len(dst)
	n := len(locs)
	locs = slices.Grow(locs, len(b.Messages))[:n+len(b.Messages)]
	appendBatch(&w, start, b, locs[n:])
	return w.b, locs
}

func appendBatch(w *writer, start int, b *Batch, locs []Location) {
	w.str(b.Topic)
	w.varint(int64(b.QueueID))
	w.varint(b.QueueOffset)
	w.uvarint(uint64(len(b.Messages)))
	w.b = slices.Grow(w.b, batchSizeHint(b))
	for i := range b.Messages {
		// Encode the message in place after room for the longest length
		// prefix, then move it next to the prefix its length needs: no
		// scratch buffer and no second copy of the body elsewhere.
		at := len(w.b)
		w.b = append(w.b, make([]byte, binary.MaxVarintLen64)...)
		w.b = AppendMessage(w.b, &b.Messages[i])
		size := len(w.b) - at - binary.MaxVarintLen64
		n := binary.PutUvarint(w.b[at:], uint64(size))
		copy(w.b[at+n:], w.b[at+binary.MaxVarintLen64:])
		w.b = w.b[:at+n+size]
		locs[i] = Location{Pos: at + n - start, Size: size}
	}
}

// batchSizeHint is about the encoded size of b's messages (exact for the
// variable parts, a generous allowance for the varints), so that encoding
// a batch allocates once.
func batchSizeHint(b *Batch) int {
	n := 0
	for i := range b.Messages {
		m := &b.Messages[i]
		n += 2*binary.MaxVarintLen64 + 100 + len(m.Body) + len(m.ID) + len(m.Tag) + len(m.Group) + len(m.TraceContext) + len(m.BornHost)
		for _, k := range m.Keys {
			n += len(k) + binary.MaxVarintLen64
		}
		for k, v := range m.Properties {
			n += len(k) + len(v) + 2*binary.MaxVarintLen64
		}
		if m.DeadLetter != nil {
			n += len(m.DeadLetter.Topic) + len(m.DeadLetter.MessageID) + 2*binary.MaxVarintLen64
		}
	}
	return n
}

// DecodeBatch decodes a message-batch payload.
func DecodeBatch(p []byte) (Batch, []Location, error) {
	r := reader{b: p}
	b, locs := decodeBatch(&r, 0)
	if err := r.end(); err != nil {
		return Batch{}, nil, err
	}
	return b, locs, nil
}

// DecodeBatchMeta decodes a message-batch payload like DecodeBatch, except
// that the messages come with only what indexing them needs: without Body,
// Keys, Properties, Group, TraceContext and BornHost, and with an ID only
// when Transactional (the state of a half message keeps it). Those fields
// are checked as thoroughly but not copied. It is what applying the record
// to the engine's indexes needs, live and in replay.
func DecodeBatchMeta(p []byte) (Batch, []Location, error) {
	var d MetaDecoder
	return d.Decode(p, nil)
}

// MetaDecoder decodes message-batch payloads as DecodeBatchMeta does, into
// room it keeps for the next payload: the messages and locations Decode
// returns are valid until its next call (strings in them stay valid). The
// zero value is ready to use; it is not safe for concurrent use.
type MetaDecoder struct {
	msgs []Message
	locs []Location
}

// maxKeptMessages bounds the messages a MetaDecoder keeps room for, so that
// one large batch does not pin its size.
const maxKeptMessages = 1024

// Decode decodes p like DecodeBatchMeta. topic, when not nil, may return
// a string equal to the topic name it is given (ok set), which the batch
// then holds instead of a copy of the name: it must not keep name.
func (d *MetaDecoder) Decode(p []byte, topic func(name []byte) (string, bool)) (Batch, []Location, error) {
	if cap(d.msgs) > maxKeptMessages {
		d.msgs, d.locs = nil, nil
	}
	r := reader{b: p, meta: true}
	b, locs := decodeBatchInto(&r, 0, d.msgs[:0], d.locs[:0], topic)
	if err := r.end(); err != nil {
		return Batch{}, nil, err
	}
	d.msgs, d.locs = b.Messages, locs
	return b, locs, nil
}

func decodeBatch(r *reader, base int) (Batch, []Location) {
	return decodeBatchInto(r, base, nil, nil, nil)
}

// decodeBatchInto decodes a batch appending its messages to msgs and their
// locations to locs; see MetaDecoder.Decode for topic.
func decodeBatchInto(r *reader, base int, msgs []Message, locs []Location, topic func([]byte) (string, bool)) (Batch, []Location) {
	var b Batch
	if name := r.raw(); topic != nil && r.err == nil {
		var ok bool
		if b.Topic, ok = topic(name); !ok {
			b.Topic = string(name)
		}
	} else {
		b.Topic = string(name)
	}
	b.QueueID = r.int32v()
	b.QueueOffset = r.varint()
	if b.QueueOffset < -1 {
		r.fail("negative queue offset")
	}
	n := r.count()
	if r.err != nil {
		return b, nil
	}
	if msgs == nil {
		msgs, locs = make([]Message, 0, n), make([]Location, 0, n)
	}
	b.Messages, locs = slices.Grow(msgs, n), slices.Grow(locs, n)
	for range n {
		raw := r.raw()
		if r.err != nil {
			return b, nil
		}
		mr := reader{b: raw, meta: r.meta}
		m := decodeMessage(&mr, b.Topic)
		if err := mr.end(); err != nil {
			r.err = err
			return b, nil
		}
		b.Messages = append(b.Messages, m)
		locs = append(locs, Location{Pos: r.off - len(raw) - base, Size: len(raw)})
	}
	return b, locs
}

// Dispatch makes a message stored earlier (at CommitLogOffset, Size bytes,
// checksum CRC) visible in a queue at QueueOffset. Nothing writes it (timers
// and transaction commits write [Resolve] records with a copy of the
// message); replay still applies it like a batch's dispatch.
type Dispatch struct {
	Topic           string
	QueueID         int32
	QueueOffset     int64
	CommitLogOffset int64
	Size            int32
	CRC             uint32
	TagHash         uint64
	StoredAt        time.Time
}

// AppendDispatch appends the payload of a dispatch record.
func AppendDispatch(dst []byte, d *Dispatch) []byte {
	w := writer{b: dst}
	w.str(d.Topic)
	w.varint(int64(d.QueueID))
	w.uvarint(uint64(d.QueueOffset))
	w.uvarint(uint64(d.CommitLogOffset))
	w.uvarint(uint64(d.Size))
	w.uvarint(uint64(d.CRC))
	w.uvarint(d.TagHash)
	encodeTime(&w, d.StoredAt)
	return w.b
}

// DecodeDispatch decodes a dispatch payload.
func DecodeDispatch(p []byte) (Dispatch, error) {
	r := reader{b: p}
	var d Dispatch
	d.Topic = r.str()
	d.QueueID = r.int32v()
	d.QueueOffset = r.nonneg()
	d.CommitLogOffset = r.nonneg()
	size := r.uvarint()
	crc := r.uvarint()
	if size > math.MaxInt32 || crc > math.MaxUint32 {
		r.fail("size or crc out of range")
	}
	d.Size, d.CRC = int32(size), uint32(crc)
	d.TagHash = r.uvarint()
	d.StoredAt = decodeTime(&r)
	return d, r.end()
}

// PopKind says what a pop did to one queue offset.
type PopKind uint8

// Pop entry kinds.
const (
	// PopDelivered: the message was delivered (Attempt is its attempt).
	PopDelivered PopKind = 1
	// PopConsumed: the message was consumed without delivery (filtered
	// out, or its segment was deleted by retention).
	PopConsumed PopKind = 2
	// PopPassed: the cursor moved past a message that stays undelivered
	// (FIFO: an earlier message of its group was not consumed yet).
	PopPassed PopKind = 3
)

// PopEntry is one queue offset a pop touched.
type PopEntry struct {
	Kind     PopKind
	Offset   int64
	Attempt  int32
	MsgGroup string // the message group, for FIFO ordering
}

// Pop records one pop on one queue for one consumer group: the receipt id
// it issued, the invisible deadline, the cursor after it, and every offset
// it delivered, consumed or passed.
type Pop struct {
	Group    string
	Topic    string
	QueueID  int32
	Receipt  int64
	PopTime  time.Time
	Deadline time.Time
	Next     int64
	Entries  []PopEntry
	// Orderly marks a FIFO pop: the messages of one message group it
	// delivered form a run. Encoded as a trailing flags field, written only
	// when set, so records written before it existed decode unchanged.
	Orderly bool
}

// popFlagOrderly is bit 0 of a pop record's trailing flags.
const popFlagOrderly = 1

// AppendPop appends the payload of a pop record.
func AppendPop(dst []byte, p *Pop) []byte {
	w := writer{b: dst}
	w.str(p.Group)
	w.str(p.Topic)
	w.varint(int64(p.QueueID))
	w.varint(p.Receipt)
	encodeTime(&w, p.PopTime)
	encodeTime(&w, p.Deadline)
	w.varint(p.Next)
	w.uvarint(uint64(len(p.Entries)))
	for _, e := range p.Entries {
		w.byte1(byte(e.Kind))
		w.varint(e.Offset)
		w.varint(int64(e.Attempt))
		w.str(e.MsgGroup)
	}
	if p.Orderly {
		w.uvarint(popFlagOrderly)
	}
	return w.b
}

// DecodePop decodes a pop payload.
func DecodePop(b []byte) (Pop, error) {
	r := reader{b: b}
	var p Pop
	p.Group = r.str()
	p.Topic = r.str()
	p.QueueID = r.int32v()
	p.Receipt = r.varint()
	p.PopTime = decodeTime(&r)
	p.Deadline = decodeTime(&r)
	p.Next = r.varint()
	if n := r.count(); n > 0 {
		p.Entries = make([]PopEntry, n)
		for i := range p.Entries {
			e := &p.Entries[i]
			e.Kind = PopKind(r.byte1())
			if e.Kind < PopDelivered || e.Kind > PopPassed {
				r.fail("unknown pop entry kind")
			}
			e.Offset = r.varint()
			e.Attempt = r.int32v()
			e.MsgGroup = r.str()
		}
	}
	if r.err == nil && r.off < len(r.b) {
		if f := r.uvarint(); f != popFlagOrderly {
			r.fail("unknown pop flags")
		}
		p.Orderly = true
	}
	return p, r.end()
}

// Ack records that a group consumed one message.
type Ack struct {
	Group   string
	Topic   string
	QueueID int32
	Offset  int64
	Receipt int64
}

// AppendAck appends the payload of an ack record.
func AppendAck(dst []byte, a *Ack) []byte {
	w := writer{b: dst}
	w.str(a.Group)
	w.str(a.Topic)
	w.varint(int64(a.QueueID))
	w.varint(a.Offset)
	w.varint(a.Receipt)
	return w.b
}

// DecodeAck decodes an ack payload.
func DecodeAck(b []byte) (Ack, error) {
	r := reader{b: b}
	var a Ack
	a.Group = r.str()
	a.Topic = r.str()
	return decodeAckRest(&r, a)
}

// DecodeAckView is DecodeAck without copies of the group and topic names:
// they alias b, so they are valid only as long as b is and must not be kept
// (applying an ack only looks its queue state up with them).
func DecodeAckView(b []byte) (Ack, error) {
	r := reader{b: b}
	var a Ack
	a.Group = view(r.raw())
	a.Topic = view(r.raw())
	return decodeAckRest(&r, a)
}

func decodeAckRest(r *reader, a Ack) (Ack, error) {
	a.QueueID = r.int32v()
	a.Offset = r.varint()
	a.Receipt = r.varint()
	return a, r.end()
}

// view returns the bytes of p as a string without copying them.
func view(p []byte) string { return unsafe.String(unsafe.SliceData(p), len(p)) }

// ChangeInvisible records a new invisible deadline and receipt id for one
// delivery.
type ChangeInvisible struct {
	Group      string
	Topic      string
	QueueID    int32
	Offset     int64
	OldReceipt int64
	NewReceipt int64
	Deadline   time.Time
}

// AppendChangeInvisible appends the payload of a change-invisible record.
func AppendChangeInvisible(dst []byte, c *ChangeInvisible) []byte {
	w := writer{b: dst}
	w.str(c.Group)
	w.str(c.Topic)
	w.varint(int64(c.QueueID))
	w.varint(c.Offset)
	w.varint(c.OldReceipt)
	w.varint(c.NewReceipt)
	encodeTime(&w, c.Deadline)
	return w.b
}

// DecodeChangeInvisible decodes a change-invisible payload.
func DecodeChangeInvisible(b []byte) (ChangeInvisible, error) {
	r := reader{b: b}
	var c ChangeInvisible
	c.Group = r.str()
	c.Topic = r.str()
	c.QueueID = r.int32v()
	c.Offset = r.varint()
	c.OldReceipt = r.varint()
	c.NewReceipt = r.varint()
	c.Deadline = decodeTime(&r)
	return c, r.end()
}

// DeadLetter atomically consumes one message of a group and stores its copy
// (Copy, a one-message batch for %DLQ%group) in the same record.
type DeadLetter struct {
	Group   string
	Topic   string
	QueueID int32
	Offset  int64
	Receipt int64
	Copy    Batch
}

// CopyHeadroom bounds how many bytes larger than the encoding of a stored
// message (with message id id) a record carrying a copy of it can be: a
// dead-letter move (group, origin topic, the %DLQ% batch, the copy's
// dead-letter origin and prior attempts), a timer firing or a transaction commit (the resolve
// header, the batch, the copy's store time and transaction origin). A
// message stored with less room than this under the largest record size
// could never be dead-lettered, fired or committed. Topic and group names
// are ASCII (domain.ValidateTopicName, domain.ValidateGroupName).
func CopyHeadroom(id string) int {
	const v = binary.MaxVarintLen64
	name := v + max(domain.MaxTopicNameLength, domain.MaxGroupNameLength) // a length-prefixed name
	batch := name + 4*v                                                   // topic, queue id, queue offset, count, the copy's length prefix
	grown := 2*v + name + v + len(id) + v                                 // store time, transaction origin, dead-letter origin topic and id, prior attempts
	deadLetter := 2*name + 3*v + batch + grown
	resolve := 3 + 2*v + batch + grown
	return max(deadLetter, resolve)
}

// AppendDeadLetter appends the payload of a dead-letter record and reports
// where the copy's messages lie in the payload.
func AppendDeadLetter(dst []byte, d *DeadLetter) ([]byte, []Location) {
	w := writer{b: dst}
	start := len(dst)
	w.str(d.Group)
	w.str(d.Topic)
	w.varint(int64(d.QueueID))
	w.varint(d.Offset)
	w.varint(d.Receipt)
	locs := make([]Location, len(d.Copy.Messages))
	appendBatch(&w, start, &d.Copy, locs)
	return w.b, locs
}

// DecodeDeadLetter decodes a dead-letter payload.
func DecodeDeadLetter(b []byte) (DeadLetter, []Location, error) {
	r := reader{b: b}
	var d DeadLetter
	d.Group = r.str()
	d.Topic = r.str()
	d.QueueID = r.int32v()
	d.Offset = r.varint()
	d.Receipt = r.varint()
	var locs []Location
	if r.err == nil {
		d.Copy, locs = decodeBatch(&r, 0)
	}
	if err := r.end(); err != nil {
		return DeadLetter{}, nil, err
	}
	return d, locs, nil
}

// Deleted records the deletion of a topic or group incarnation.
type Deleted struct {
	Name        string
	Incarnation uint64
}

// AppendDeleted appends the payload of a topic- or group-deleted record.
func AppendDeleted(dst []byte, d *Deleted) []byte {
	w := writer{b: dst}
	w.str(d.Name)
	w.uvarint(d.Incarnation)
	return w.b
}

// DecodeDeleted decodes a topic- or group-deleted payload.
func DecodeDeleted(b []byte) (Deleted, error) {
	r := reader{b: b}
	var d Deleted
	d.Name = r.str()
	d.Incarnation = r.uvarint()
	return d, r.end()
}

// ResolveKind says how a deferred message (a delay message or a half
// message) left the deferred state.
type ResolveKind uint8

// Resolve kinds. Values are persisted: never renumber.
const (
	// ResolveTimerFire: a delay message became due; Copy (dispatched) is
	// the message made visible in its queue.
	ResolveTimerFire ResolveKind = 1
	// ResolveTimerRecall: the producer recalled a delay message.
	ResolveTimerRecall ResolveKind = 2
	// ResolveTimerDrop: a due delay message could not be delivered (its
	// topic was deleted, its bytes are damaged) and was discarded.
	ResolveTimerDrop ResolveKind = 3
	// ResolveTxnCommit: a half message was committed; Copy is the message
	// made visible (dispatched), or a deferred copy when it is also a delay
	// message that is not due yet.
	ResolveTxnCommit ResolveKind = 4
	// ResolveTxnRollback: a half message was rolled back (by the producer
	// or after the last check-back).
	ResolveTxnRollback ResolveKind = 5
	// ResolveTxnDrop: a half message was discarded because it cannot be
	// committed any more (its topic was deleted, its bytes are damaged).
	ResolveTxnDrop ResolveKind = 6
)

// Timer reports whether k resolves a delay message (a timer).
func (k ResolveKind) Timer() bool { return k >= ResolveTimerFire && k <= ResolveTimerDrop }

func (k ResolveKind) String() string {
	switch k {
	case ResolveTimerFire:
		return "timer-fire"
	case ResolveTimerRecall:
		return "timer-recall"
	case ResolveTimerDrop:
		return "timer-drop"
	case ResolveTxnCommit:
		return "txn-commit"
	case ResolveTxnRollback:
		return "txn-rollback"
	case ResolveTxnDrop:
		return "txn-drop"
	}
	return fmt.Sprintf("resolve(%d)", uint8(k))
}

// Resolve ends the deferred state of the message stored at Origin (the
// commit-log offset of its encoding). For timers, DeliverAt (Unix ms) names
// the timing-wheel bucket the timer is in. Copy, when set, is stored in the
// same record: replay marks the origin resolved and indexes the copy
// atomically, so a timer never fires twice and a commit is never lost.
type Resolve struct {
	Kind      ResolveKind
	Origin    int64
	DeliverAt int64
	Copy      *Batch
}

// AppendResolve appends the payload of a resolve record and reports where
// the copy's messages lie in the payload.
func AppendResolve(dst []byte, r *Resolve) ([]byte, []Location) {
	w := writer{b: dst}
	start := len(dst)
	w.byte1(byte(r.Kind))
	w.uvarint(uint64(r.Origin))
	w.varint(r.DeliverAt)
	if r.Copy == nil {
		w.byte1(0)
		return w.b, nil
	}
	w.byte1(1)
	locs := make([]Location, len(r.Copy.Messages))
	appendBatch(&w, start, r.Copy, locs)
	return w.b, locs
}

// DecodeResolve decodes a resolve payload.
func DecodeResolve(b []byte) (Resolve, []Location, error) {
	r := reader{b: b}
	var v Resolve
	v.Kind = ResolveKind(r.byte1())
	if r.err == nil && (v.Kind < ResolveTimerFire || v.Kind > ResolveTxnDrop) {
		r.fail("unknown resolve kind")
	}
	v.Origin = r.nonneg()
	v.DeliverAt = r.varint()
	var locs []Location
	switch r.byte1() {
	case 0:
	case 1:
		if r.err == nil {
			c, l := decodeBatch(&r, 0)
			v.Copy, locs = &c, l
		}
	default:
		r.fail("bad copy flag")
	}
	if err := r.end(); err != nil {
		return Resolve{}, nil, err
	}
	return v, locs, nil
}

// TxnCheck records that the broker checked back an orphaned half message
// (at Origin) for the Checks-th time, at At.
type TxnCheck struct {
	Origin int64
	Checks int32
	At     time.Time
}

// AppendTxnCheck appends the payload of a txn-check record.
func AppendTxnCheck(dst []byte, c *TxnCheck) []byte {
	w := writer{b: dst}
	w.uvarint(uint64(c.Origin))
	w.varint(int64(c.Checks))
	encodeTime(&w, c.At)
	return w.b
}

// DecodeTxnCheck decodes a txn-check payload.
func DecodeTxnCheck(b []byte) (TxnCheck, error) {
	r := reader{b: b}
	var c TxnCheck
	c.Origin = r.nonneg()
	c.Checks = r.int32v()
	if r.err == nil && c.Checks < 1 {
		r.fail("check count below 1")
	}
	c.At = decodeTime(&r)
	return c, r.end()
}

// OffsetCommit records a pull consumer group's committed position in a
// queue.
type OffsetCommit struct {
	Group   string
	Topic   string
	QueueID int32
	Offset  int64
}

// AppendOffsetCommit appends the payload of an offset-commit record.
func AppendOffsetCommit(dst []byte, o *OffsetCommit) []byte {
	w := writer{b: dst}
	w.str(o.Group)
	w.str(o.Topic)
	w.varint(int64(o.QueueID))
	w.uvarint(uint64(o.Offset))
	return w.b
}

// DecodeOffsetCommit decodes an offset-commit payload.
func DecodeOffsetCommit(b []byte) (OffsetCommit, error) {
	r := reader{b: b}
	var o OffsetCommit
	o.Group = r.str()
	o.Topic = r.str()
	o.QueueID = r.int32v()
	o.Offset = r.nonneg()
	return o, r.end()
}

// ConsumerReset records an operator's reset of a consumer group's position
// on queues of a topic (rmqproxy group reset): on each queue listed the
// group's pop state starts afresh at Offset (ack floor and cursor there,
// nothing acked above it, nothing in flight or to deliver again), and a
// pull offset the group committed there becomes Offset.
type ConsumerReset struct {
	Group  string
	Topic  string
	Queues []QueueReset
}

// QueueReset is the new position of one queue of a ConsumerReset.
type QueueReset struct {
	QueueID int32
	Offset  int64
}

// AppendConsumerReset appends the payload of a consumer-reset record.
func AppendConsumerReset(dst []byte, c *ConsumerReset) []byte {
	w := writer{b: dst}
	w.str(c.Group)
	w.str(c.Topic)
	w.uvarint(uint64(len(c.Queues)))
	for _, q := range c.Queues {
		w.varint(int64(q.QueueID))
		w.uvarint(uint64(q.Offset))
	}
	return w.b
}

// DecodeConsumerReset decodes a consumer-reset payload.
func DecodeConsumerReset(b []byte) (ConsumerReset, error) {
	r := reader{b: b}
	var c ConsumerReset
	c.Group = r.str()
	c.Topic = r.str()
	n := r.count()
	if r.err == nil && n > 0 {
		c.Queues = make([]QueueReset, 0, n)
	}
	for range n {
		q := QueueReset{QueueID: r.int32v(), Offset: r.nonneg()}
		if r.err != nil {
			break
		}
		if q.QueueID < 0 {
			r.fail("negative queue id")
			break
		}
		c.Queues = append(c.Queues, q)
	}
	return c, r.end()
}

// Decode decodes the payload of a record of type t into one of *Batch-like
// values (for tests and tools): Batch, Dispatch, Pop, Ack, ChangeInvisible,
// DeadLetter, Deleted, Resolve, TxnCheck, OffsetCommit, TopicPut, GroupPut or
// ConsumerReset.
func Decode(t Type, p []byte) (any, error) {
	switch t {
	case TypeMessageBatch:
		b, _, err := DecodeBatch(p)
		return b, err
	case TypeDispatch:
		return DecodeDispatch(p)
	case TypePop:
		return DecodePop(p)
	case TypeAck:
		return DecodeAck(p)
	case TypeChangeInvisible:
		return DecodeChangeInvisible(p)
	case TypeDeadLetter:
		d, _, err := DecodeDeadLetter(p)
		return d, err
	case TypeTopicDeleted, TypeGroupDeleted:
		return DecodeDeleted(p)
	case TypeResolve:
		r, _, err := DecodeResolve(p)
		return r, err
	case TypeTxnCheck:
		return DecodeTxnCheck(p)
	case TypeOffsetCommit:
		return DecodeOffsetCommit(p)
	case TypeTopicPut:
		return DecodeTopicPut(p)
	case TypeGroupPut:
		return DecodeGroupPut(p)
	case TypeConsumerReset:
		return DecodeConsumerReset(p)
	}
	return nil, corrupt("unknown record type %d", t)
}

// Encode is the inverse of Decode.
func Encode(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case Batch:
		b, _ := AppendBatch(dst, &v)
		return b, nil
	case Dispatch:
		return AppendDispatch(dst, &v), nil
	case Pop:
		return AppendPop(dst, &v), nil
	case Ack:
		return AppendAck(dst, &v), nil
	case ChangeInvisible:
		return AppendChangeInvisible(dst, &v), nil
	case DeadLetter:
		b, _ := AppendDeadLetter(dst, &v)
		return b, nil
	case Deleted:
		return AppendDeleted(dst, &v), nil
	case Resolve:
		b, _ := AppendResolve(dst, &v)
		return b, nil
	case TxnCheck:
		return AppendTxnCheck(dst, &v), nil
	case OffsetCommit:
		return AppendOffsetCommit(dst, &v), nil
	case TopicPut:
		return AppendTopicPut(dst, &v), nil
	case GroupPut:
		return AppendGroupPut(dst, &v), nil
	case ConsumerReset:
		return AppendConsumerReset(dst, &v), nil
	}
	return nil, fmt.Errorf("record: cannot encode %T", v)
}

// TopicPut records the creation or update of a topic: its whole definition
// and its incarnation (a new incarnation is a creation).
type TopicPut struct {
	Topic       domain.Topic
	Incarnation uint64
}

// AppendTopicPut appends the payload of a topic-put record.
func AppendTopicPut(dst []byte, t *TopicPut) []byte {
	w := writer{b: dst}
	w.str(t.Topic.Name)
	w.byte1(byte(t.Topic.Type))
	w.varint(int64(t.Topic.QueueCount))
	w.byte1(byte(t.Topic.Permission))
	w.str(t.Topic.Description)
	encodeTime(&w, t.Topic.CreatedAt)
	encodeTime(&w, t.Topic.UpdatedAt)
	w.uvarint(t.Incarnation)
	return w.b
}

// DecodeTopicPut decodes a topic-put payload. It checks the layout only;
// the engine validates the definition before appending it.
func DecodeTopicPut(b []byte) (TopicPut, error) {
	r := reader{b: b}
	var t TopicPut
	t.Topic.Name = r.str()
	t.Topic.Type = domain.MessageType(r.byte1())
	t.Topic.QueueCount = r.int32v()
	t.Topic.Permission = domain.Permission(r.byte1())
	t.Topic.Description = r.str()
	t.Topic.CreatedAt = decodeTime(&r)
	t.Topic.UpdatedAt = decodeTime(&r)
	t.Incarnation = r.uvarint()
	return t, r.end()
}

// GroupPut records the creation or update of a consumer group.
type GroupPut struct {
	Group       domain.ConsumerGroup
	Incarnation uint64
}

// AppendGroupPut appends the payload of a group-put record.
func AppendGroupPut(dst []byte, g *GroupPut) []byte {
	w := writer{b: dst}
	c := &g.Group
	w.str(c.Name)
	w.varint(int64(c.MaxDeliveryAttempts))
	w.varint(int64(c.RetryPolicy.Initial))
	w.varint(int64(c.RetryPolicy.Max))
	w.uvarint(math.Float64bits(c.RetryPolicy.Multiplier))
	w.uvarint(uint64(len(c.RetryPolicy.Delays)))
	for _, d := range c.RetryPolicy.Delays {
		w.varint(int64(d))
	}
	var flags byte
	if c.Orderly {
		flags |= 1
	}
	w.byte1(flags)
	w.str(c.Description)
	encodeTime(&w, c.CreatedAt)
	encodeTime(&w, c.UpdatedAt)
	w.uvarint(g.Incarnation)
	return w.b
}

// DecodeGroupPut decodes a group-put payload (layout only, as DecodeTopicPut).
func DecodeGroupPut(b []byte) (GroupPut, error) {
	r := reader{b: b}
	var g GroupPut
	c := &g.Group
	c.Name = r.str()
	c.MaxDeliveryAttempts = r.int32v()
	c.RetryPolicy.Initial = time.Duration(r.varint())
	c.RetryPolicy.Max = time.Duration(r.varint())
	c.RetryPolicy.Multiplier = math.Float64frombits(r.uvarint())
	if math.IsNaN(c.RetryPolicy.Multiplier) || math.IsInf(c.RetryPolicy.Multiplier, 0) {
		r.fail("multiplier not finite")
	}
	if n := r.count(); n > 0 {
		c.RetryPolicy.Delays = make([]time.Duration, n)
		for i := range n {
			c.RetryPolicy.Delays[i] = time.Duration(r.varint())
		}
	}
	flags := r.byte1()
	if flags&^1 != 0 {
		r.fail("unknown group flags")
	}
	c.Orderly = flags&1 != 0
	c.Description = r.str()
	c.CreatedAt = decodeTime(&r)
	c.UpdatedAt = decodeTime(&r)
	g.Incarnation = r.uvarint()
	return g, r.end()
}
