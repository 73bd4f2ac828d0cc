package ackpb

import (
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/proto"

	"github.com/rmqproxy/rmqproxy/adapters/grpc/internal/wire"
)

// Field numbers decoded here (apache/rocketmq/v2/service.proto and
// definition.proto). Every other field number makes Unmarshal fall back to
// proto.Unmarshal.
const (
	fieldRequestGroup   = 1 // AckMessageRequest.group, Resource
	fieldRequestTopic   = 2 // AckMessageRequest.topic, Resource
	fieldRequestEntries = 3 // AckMessageRequest.entries, repeated AckMessageEntry

	// An entry's fields are all strings, numbered 1 to 3 (wire.Pass.Strings).
	fieldEntryMessageID     = 1 // AckMessageEntry.message_id, string
	fieldEntryReceiptHandle = 2 // AckMessageEntry.receipt_handle, string
	fieldEntryLiteTopic     = 3 // AckMessageEntry.lite_topic, optional string
)

// maxEntries bounds the entries of a request decoded here: an entry arena
// takes about a hundred bytes where an empty entry takes 2 on the wire.
// Larger batches than clients send go to proto.Unmarshal.
const maxEntries = 1024

// entryArena holds one entry and its optional field.
type entryArena struct {
	entry v2.AckMessageEntry
	lite  string
}

// arena holds the request's submessages and, for a request of one entry,
// that entry and the backing array of its Entries.
type arena struct {
	group v2.Resource
	topic v2.Resource
	first entryArena
	one   [1]*v2.AckMessageEntry
}

// decoder runs both passes over a request: with Build false it only checks
// the input and counts, with Build true (on input the first pass accepted)
// it fills the arenas.
type decoder struct {
	wire.Pass
	// entry is the index of the next entry.
	entry int

	// Second pass only.
	a       *arena
	entries []entryArena
	ptrs    []*v2.AckMessageEntry
}

// Unmarshal decodes b into req with the result of proto.Unmarshal(b, req),
// which it calls for any input it does not decode itself (see the package
// comment). The result does not alias b.
func Unmarshal(b []byte, req *v2.AckMessageRequest) error {
	var d decoder
	if !d.request(b, nil) {
		return proto.Unmarshal(b, req)
	}
	n := d.entry
	d.entry = 0
	d.Second()
	d.a = new(arena)
	switch {
	case n == 1:
		d.ptrs = d.a.one[:]
	case n > 1:
		d.entries = make([]entryArena, n)
		d.ptrs = make([]*v2.AckMessageEntry, n)
	}
	req.Reset()
	d.request(b, req) // accepted by the first pass: cannot fail
	req.Entries = d.ptrs
	return nil
}

// request decodes an AckMessageRequest into req (nil in the first pass).
func (d *decoder) request(b []byte, req *v2.AckMessageRequest) bool {
	var seen wire.Seen
	for len(b) > 0 {
		num, v, n := wire.Bytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch num {
		case fieldRequestGroup, fieldRequestTopic:
			if !seen.Once(num) {
				return false
			}
			var r *v2.Resource
			if d.Build {
				r = &d.a.topic
				if num == fieldRequestGroup {
					r = &d.a.group
					req.Group = r
				} else {
					req.Topic = r
				}
			}
			if !d.Resource(v, r) {
				return false
			}
		case fieldRequestEntries:
			if !d.ackEntry(v) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// ackEntry decodes one AckMessageEntry of the request.
func (d *decoder) ackEntry(b []byte) bool {
	i := d.entry
	if i == maxEntries {
		return false
	}
	d.entry++
	var f [fieldEntryLiteTopic]string
	seen, ok := d.Strings(b, f[:])
	if !ok {
		return false
	}
	if !d.Build {
		return true
	}
	ea := &d.a.first
	if len(d.ptrs) > 1 {
		ea = &d.entries[i]
	}
	ea.entry.MessageId = f[fieldEntryMessageID-1]
	ea.entry.ReceiptHandle = f[fieldEntryReceiptHandle-1]
	if seen.Has(fieldEntryLiteTopic) {
		ea.lite = f[fieldEntryLiteTopic-1]
		ea.entry.LiteTopic = &ea.lite
	}
	d.ptrs[i] = &ea.entry
	return true
}
