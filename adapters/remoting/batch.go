package remoting

import (
	"encoding/binary"
	"math"
	"strconv"
)

// BatchMessage is one record of a SEND_BATCH_MESSAGE body (and of an inner
// batch): flag, body and the message's own properties. The batch's topic
// and queue travel in the V2 header.
type BatchMessage struct {
	Flag       int32
	Body       []byte
	Properties Properties
}

// AppendBatchMessage appends one batch record: TOTALSIZE, MAGICCODE 0,
// BODYCRC 0, FLAG, BODYLEN+BODY, PROPLEN(int16)+PROPERTIES.
func AppendBatchMessage(dst []byte, m *BatchMessage) ([]byte, error) {
	start := len(dst)
	dst, err := appendBatchHead(dst, m.Flag, m.Body)
	if err != nil {
		return dst, err
	}
	if dst, err = AppendProperties(dst, m.Properties); err != nil {
		return dst[:start], err
	}
	return finishBatchRecord(dst, start)
}

// AppendBatchRecord appends one batch record like AppendBatchMessage, with
// properties already formatted (FormatProperties) and not checked again.
func AppendBatchRecord(dst []byte, flag int32, body []byte, properties string) ([]byte, error) {
	start := len(dst)
	dst, err := appendBatchHead(dst, flag, body)
	if err != nil {
		return dst, err
	}
	return finishBatchRecord(append(dst, properties...), start)
}

// appendBatchHead appends a record's fixed fields, its body and room for
// the properties' length; finishBatchRecord fills in the lengths once the
// properties follow.
func appendBatchHead(dst []byte, flag int32, body []byte) ([]byte, error) {
	start := len(dst)
	if len(body) > math.MaxInt32-64 {
		return dst, decodeErr("batch message", "body larger than 2 GiB")
	}
	dst = append(dst, make([]byte, 20)...)
	binary.BigEndian.PutUint32(dst[start+12:], uint32(flag))
	binary.BigEndian.PutUint32(dst[start+16:], uint32(len(body)))
	dst = append(dst, body...)
	return append(dst, 0, 0), nil
}

func finishBatchRecord(dst []byte, start int) ([]byte, error) {
	propAt := start + 20 + int(binary.BigEndian.Uint32(dst[start+16:]))
	plen := len(dst) - propAt - 2
	if plen > MaxPropertiesLen {
		return dst[:start], decodeErr("batch message", "properties of "+strconv.Itoa(plen)+" bytes exceed 32767")
	}
	if len(dst)-start > math.MaxInt32 {
		return dst[:start], decodeErr("batch message", "record larger than 2 GiB")
	}
	binary.BigEndian.PutUint16(dst[propAt:], uint16(plen))
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst, nil
}

// EncodeBatch returns the SEND_BATCH_MESSAGE body of msgs.
func EncodeBatch(msgs []BatchMessage) ([]byte, error) {
	n := 0
	for i := range msgs {
		n += 22 + len(msgs[i].Body) + 64*len(msgs[i].Properties)
	}
	dst := make([]byte, 0, n)
	for i := range msgs {
		var err error
		if dst, err = AppendBatchMessage(dst, &msgs[i]); err != nil {
			return nil, &DecodeError{What: "batch message " + strconv.Itoa(i), Reason: "cannot encode", Err: err}
		}
	}
	return dst, nil
}

// DecodeBatch decodes a batch body. Unlike Java (which trusts the body
// length and ignores TOTALSIZE) it requires each record to be exactly
// TOTALSIZE bytes. Bodies and properties alias/derive from body.
func DecodeBatch(body []byte) ([]BatchMessage, error) {
	msgs := make([]BatchMessage, 0, min(len(body)/22+1, 1024))
	for i := 0; i < len(body); {
		r := msgReader{b: body, i: i}
		size := int(r.i32())
		if r.bad || size < 22 || size > len(body)-i {
			return msgs, decodeErr("batch message "+strconv.Itoa(len(msgs)), "size "+strconv.Itoa(size)+" outside 22.."+strconv.Itoa(len(body)-i))
		}
		r.b = body[:i+size]
		r.i32() // magic
		r.i32() // crc
		var m BatchMessage
		m.Flag = r.i32()
		if b := r.take(int(r.i32())); len(b) > 0 {
			m.Body = b
		}
		props := r.take(int(int16(r.u16())))
		if r.bad || r.i != i+size {
			return msgs, decodeErr("batch message "+strconv.Itoa(len(msgs)), "fields do not fill its size "+strconv.Itoa(size))
		}
		m.Properties = ParseProperties(string(props))
		msgs = append(msgs, m)
		i += size
	}
	return msgs, nil
}
