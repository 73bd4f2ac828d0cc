package remoting

import (
	"strconv"
	"strings"
)

// Header is a typed custom header: the ext fields of one request or
// response kind. AppendFields writes the fields Java would write (Java
// field names as keys; absent optional values omitted); DecodeFields reads
// them back, failing on a malformed value or a missing required one (Java
// only logs a missing @CFNotNull field and fails later; rmqproxy refuses
// it up front).
type Header interface {
	AppendFields(dst Fields) Fields
	DecodeFields(f Fields) error
}

// EncodeHeader returns h's ext fields in a new slice.
func EncodeHeader(h Header) Fields { return h.AppendFields(make(Fields, 0, 16)) }

func appendStr(dst Fields, k, v string) Fields { return append(dst, Field{k, v}) }

func appendOptStr(dst Fields, k, v string) Fields {
	if v == "" {
		return dst
	}
	return append(dst, Field{k, v})
}

func appendInt(dst Fields, k string, v int64) Fields {
	return append(dst, Field{k, strconv.FormatInt(v, 10)})
}

func appendOptInt32(dst Fields, k string, v *int32) Fields {
	if v == nil {
		return dst
	}
	return appendInt(dst, k, int64(*v))
}

func appendBool(dst Fields, k string, v bool) Fields {
	return append(dst, Field{k, strconv.FormatBool(v)})
}

// appendOptBool writes a Boolean that Java leaves null by default only when
// it is true.
func appendOptBool(dst Fields, k string, v bool) Fields {
	if !v {
		return dst
	}
	return append(dst, Field{k, "true"})
}

// fieldReader decodes ext fields, keeping the first error.
type fieldReader struct {
	f    Fields
	what string
	err  error
}

func (r *fieldReader) fail(key, reason string) {
	if r.err == nil {
		r.err = &DecodeError{What: r.what, Reason: "field " + strconv.Quote(key) + " " + reason}
	}
}

func (r *fieldReader) get(k string, required bool) (string, bool) {
	v, ok := r.f.Get(k)
	if !ok && required {
		r.fail(k, "is missing")
	}
	return v, ok
}

func (r *fieldReader) str(k string, required bool) string {
	v, _ := r.get(k, required)
	return v
}

func (r *fieldReader) i64(k string, required bool) int64 {
	v, ok := r.get(k, required)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		r.fail(k, "is not an integer: "+strconv.Quote(clip(v)))
	}
	return n
}

func (r *fieldReader) i32(k string, required bool) int32 {
	v, ok := r.get(k, required)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		r.fail(k, "is not a 32-bit integer: "+strconv.Quote(clip(v)))
	}
	return int32(n)
}

func (r *fieldReader) optI32(k string) *int32 {
	if _, ok := r.f.Get(k); !ok {
		return nil
	}
	v := r.i32(k, false)
	return &v
}

// boolean reads a Boolean as Java's Boolean.parseBoolean does: "true" in
// any case is true, anything else false.
func (r *fieldReader) boolean(k string) bool {
	v, _ := r.f.Get(k)
	return strings.EqualFold(v, "true")
}

// RPC holds the keys every request header inherits from upstream's
// RpcRequestHeader (ns, nsd, bname, oway) and TopicRequestHeader (lo).
type RPC struct {
	Namespace  string // ns
	Namespaced bool   // nsd: names already carry the namespace
	// BrokerName (bname) routes a request through a proxy to one broker.
	BrokerName   string
	Oneway       bool // oway
	LogicalQueue bool // lo: static-topic logical queue
}

func (h *RPC) appendFields(dst Fields) Fields {
	dst = appendOptStr(dst, "ns", h.Namespace)
	dst = appendOptBool(dst, "nsd", h.Namespaced)
	dst = appendOptStr(dst, "bname", h.BrokerName)
	dst = appendOptBool(dst, "oway", h.Oneway)
	return appendOptBool(dst, "lo", h.LogicalQueue)
}

func (h *RPC) decode(r *fieldReader) {
	h.Namespace = r.str("ns", false)
	h.Namespaced = r.boolean("nsd")
	h.BrokerName = r.str("bname", false)
	h.Oneway = r.boolean("oway")
	h.LogicalQueue = r.boolean("lo")
}

// Int32 returns a pointer to v, for optional header fields.
func Int32(v int32) *int32 { return &v }

// Int64 returns a pointer to v, for optional header fields.
func Int64(v int64) *int64 { return &v }
