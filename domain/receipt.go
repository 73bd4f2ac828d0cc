package domain

import (
	"strconv"
	"strings"
	"time"
)

// ReceiptTopicType tells whether a popped message came from the original
// topic or from a retry topic (field 4 of a receipt handle).
type ReceiptTopicType int32

// Receipt topic types as RocketMQ brokers write them.
const (
	ReceiptTopicNormal  ReceiptTopicType = 0
	ReceiptTopicRetryV1 ReceiptTopicType = 1
	ReceiptTopicRetryV2 ReceiptTopicType = 2
)

// ReceiptHandle identifies one delivery of a popped message. Its text form is
// RocketMQ's: nine fields separated by single spaces
//
//	startOffset retrieveTime invisibleTime reviveQueueId topicType brokerName queueId offset commitLogOffset
//
// where times are milliseconds and the last field is appended by the proxy.
// Clients treat it as opaque; the broker name inside is authoritative for
// routing Ack and ChangeInvisibleDuration.
type ReceiptHandle struct {
	// StartOffset is the pop checkpoint id; a new one is issued by every pop
	// and every invisible-time change, so a superseded handle can be told.
	StartOffset     int64
	RetrieveTime    int64 // ms since the Unix epoch
	InvisibleTime   int64 // ms
	ReviveQueueID   int32
	TopicType       ReceiptTopicType
	BrokerName      string
	QueueID         int32
	QueueOffset     int64
	CommitLogOffset int64 // -1 when the handle has only eight fields
}

// NextVisibleTime is when the message becomes visible again unless acked or
// changed: retrieve time plus invisible time.
func (h ReceiptHandle) NextVisibleTime() time.Time {
	return time.UnixMilli(h.RetrieveTime + h.InvisibleTime)
}

// Expired reports whether the handle can no longer be used at now, as the
// Apache proxy decides it (next visible time ≤ now).
func (h ReceiptHandle) Expired(now time.Time) bool {
	return h.RetrieveTime+h.InvisibleTime <= now.UnixMilli()
}

// String encodes the handle in RocketMQ's text form.
func (h ReceiptHandle) String() string {
	return string(h.Append(make([]byte, 0, 96)))
}

// Append appends the handle's text form (see String) to b.
func (h ReceiptHandle) Append(b []byte) []byte {
	b = strconv.AppendInt(b, h.StartOffset, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, h.RetrieveTime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, h.InvisibleTime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(h.ReviveQueueID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(h.TopicType), 10)
	b = append(b, ' ')
	b = append(b, h.BrokerName...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(h.QueueID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, h.QueueOffset, 10)
	if h.CommitLogOffset >= 0 {
		b = append(b, ' ')
		b = strconv.AppendInt(b, h.CommitLogOffset, 10)
	}
	return b
}

// maxReceiptHandleLength bounds the input ParseReceiptHandle looks at; real
// handles are well under 200 bytes.
const maxReceiptHandleLength = 1024

// ParseReceiptHandle decodes a handle in RocketMQ's text form (eight or nine
// fields). Any malformed input yields a ReasonInvalidReceiptHandle error,
// never a panic.
func ParseReceiptHandle(s string) (ReceiptHandle, error) {
	bad := func(why string) (ReceiptHandle, error) {
		return ReceiptHandle{}, Errorf(ReasonInvalidReceiptHandle, "receipt handle is malformed: %s; pass the handle of a received message unchanged", why)
	}
	if s == "" {
		return bad("it is empty")
	}
	if len(s) > maxReceiptHandleLength {
		return bad("it is too long")
	}
	// The fields, in place (a receipt handle is parsed once per ack).
	var f [9]string
	n := SpaceFields(s, f[:])
	if n != 8 && n != 9 {
		return bad("it must have 8 or 9 space-separated fields")
	}
	var h ReceiptHandle
	var err error
	num := func(i int, bits int) int64 {
		if err != nil {
			return 0
		}
		var v int64
		v, err = strconv.ParseInt(f[i], 10, bits)
		return v
	}
	h.StartOffset = num(0, 64)
	h.RetrieveTime = num(1, 64)
	h.InvisibleTime = num(2, 64)
	h.ReviveQueueID = int32(num(3, 32))
	h.TopicType = ReceiptTopicType(num(4, 32))
	h.QueueID = int32(num(6, 32))
	h.QueueOffset = num(7, 64)
	h.CommitLogOffset = -1
	if n == 9 {
		h.CommitLogOffset = num(8, 64)
	}
	if err != nil {
		return bad("a numeric field is not a number")
	}
	h.BrokerName = f[5]
	switch {
	case h.BrokerName == "":
		return bad("the broker name is empty")
	case h.RetrieveTime < 0 || h.InvisibleTime < 0 || h.QueueOffset < 0 || h.QueueID < 0:
		return bad("a field is negative")
	case h.TopicType < ReceiptTopicNormal || h.TopicType > ReceiptTopicRetryV2:
		return bad("unknown topic type")
	case n == 9 && h.CommitLogOffset < 0:
		return bad("the commit log offset is negative")
	}
	return h, nil
}

// SpaceFields puts the space-separated fields of s into f, without
// allocating, and returns how many s has, counting len(f)+1 for more than
// len(f) (f then holds the first len(f)); the count is that of
// strings.Split for up to len(f) fields.
func SpaceFields(s string, f []string) int {
	for n := 0; ; n++ {
		if n == len(f) {
			return n + 1
		}
		var found bool
		if f[n], s, found = strings.Cut(s, " "); !found {
			return n + 1
		}
	}
}
