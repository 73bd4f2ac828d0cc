package ackpb

import (
	"strings"
	"unicode/utf8"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Field numbers decoded here (apache/rocketmq/v2/service.proto and
// definition.proto). Every other field number makes Unmarshal fall back to
// proto.Unmarshal.
const (
	fieldRequestGroup   = 1 // AckMessageRequest.group, Resource
	fieldRequestTopic   = 2 // AckMessageRequest.topic, Resource
	fieldRequestEntries = 3 // AckMessageRequest.entries, repeated AckMessageEntry

	fieldEntryMessageID     = 1 // AckMessageEntry.message_id, string
	fieldEntryReceiptHandle = 2 // AckMessageEntry.receipt_handle, string
	fieldEntryLiteTopic     = 3 // AckMessageEntry.lite_topic, optional string

	fieldResourceNamespace = 1 // Resource.resource_namespace, string
	fieldResourceName      = 2 // Resource.name, string
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

// decoder runs both passes over a request: with build false it only checks
// the input and counts, with build true (on input the first pass accepted)
// it fills the arenas.
type decoder struct {
	build bool
	// entry is the index of the next entry.
	entry int
	// strLen totals the string bytes of the request.
	strLen int

	// Second pass only.
	a       *arena
	entries []entryArena
	ptrs    []*v2.AckMessageEntry
	strs    strings.Builder
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
	d.build, d.entry = true, 0
	d.a = new(arena)
	switch {
	case n == 1:
		d.ptrs = d.a.one[:]
	case n > 1:
		d.entries = make([]entryArena, n)
		d.ptrs = make([]*v2.AckMessageEntry, n)
	}
	if d.strLen > 0 {
		d.strs.Grow(d.strLen)
	}
	req.Reset()
	d.request(b, req) // accepted by the first pass: cannot fail
	req.Entries = d.ptrs
	return nil
}

// request decodes an AckMessageRequest into req (nil in the first pass).
func (d *decoder) request(b []byte, req *v2.AckMessageRequest) bool {
	var seen uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		switch num {
		case fieldRequestGroup, fieldRequestTopic:
			if !once(&seen, num) {
				return false
			}
			var r *v2.Resource
			if d.build {
				r = &d.a.topic
				if num == fieldRequestGroup {
					r = &d.a.group
					req.Group = r
				} else {
					req.Topic = r
				}
			}
			if !d.resource(v, r) {
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

// once records field num in seen and reports whether it was new.
func once(seen *uint32, num protowire.Number) bool {
	bit := uint32(1) << uint(num)
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

// str returns the string value v: in the first pass it checks v as
// protobuf does and counts its bytes, in the second it copies v into the
// request's string buffer.
func (d *decoder) str(v []byte) (string, bool) {
	if !d.build {
		if !utf8.Valid(v) {
			return "", false
		}
		d.strLen += len(v)
		return "", true
	}
	if len(v) == 0 {
		return "", true
	}
	off := d.strs.Len()
	d.strs.Write(v) // within the capacity grown for the request: never moves
	return d.strs.String()[off:], true
}

// resource decodes a Resource into r (nil in the first pass).
func (d *decoder) resource(b []byte, r *v2.Resource) bool {
	var seen uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		if (num != fieldResourceNamespace && num != fieldResourceName) || !once(&seen, num) {
			return false
		}
		s, ok := d.str(v)
		if !ok {
			return false
		}
		if d.build {
			if num == fieldResourceNamespace {
				r.ResourceNamespace = s
			} else {
				r.Name = s
			}
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
	var ea *entryArena
	if d.build {
		if len(d.ptrs) == 1 {
			ea = &d.a.first
		} else {
			ea = &d.entries[i]
		}
		d.ptrs[i] = &ea.entry
	}
	var seen uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		switch num {
		case fieldEntryMessageID, fieldEntryReceiptHandle, fieldEntryLiteTopic:
		default:
			return false
		}
		if !once(&seen, num) {
			return false
		}
		s, ok := d.str(v)
		if !ok {
			return false
		}
		if !d.build {
			continue
		}
		switch num {
		case fieldEntryMessageID:
			ea.entry.MessageId = s
		case fieldEntryReceiptHandle:
			ea.entry.ReceiptHandle = s
		default:
			ea.lite = s
			ea.entry.LiteTopic = &ea.lite
		}
	}
	return true
}
