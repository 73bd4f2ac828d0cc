// Package sendpb decodes apache.rocketmq.v2.SendMessageRequest, the request
// of every send, with fewer heap allocations than proto.Unmarshal, and with
// the same result.
//
// Why it exists: proto.Unmarshal allocates each submessage of a message
// (Message, Resource, SystemProperties, each Timestamp), each string, the
// []*Message slice, each optional field's pointer and the body: about ten
// allocations per single-message send, a tenth of what the proxy allocates
// for a durable send. Unmarshal allocates, for a request of N messages: one
// slice of N arenas holding the messages' submessages and optional fields
// (and, for N = 1, the []*Message backing array; for more, that array is a
// second allocation); one buffer holding the bytes of every string of the
// request (the strings are substrings of it, so a retained topic name keeps
// that small buffer alive, never a body); each non-empty body as a []byte
// of its own; each message's user-properties map; one []string backing the
// keys of all messages. A typical send takes three. Nothing aliases the
// input, which gRPC reuses once decoding returns. A message kept after its
// request keeps the request's arenas alive (a few hundred bytes each).
//
// How it is kept equal to protobuf: Unmarshal decodes only the wire forms
// whose protobuf meaning is a plain assignment: the fields an official
// client sends (the field constants in decode.go), each singular field at
// most once and with its declared wire type, strings valid UTF-8, map
// entries without unknown fields. Anything else (an unknown field, a field
// protobuf would merge or override, packed or otherwise mismatched wire
// types, broker-set fields such as store_timestamp, truncated or malformed
// input, more than maxMessages messages, whose arenas would outgrow
// protobuf's allocations) makes it call proto.Unmarshal on the same bytes,
// so the result and every error are protobuf's own. A first pass checks and
// sizes the input without allocating; only a request it accepts completely
// is built. The differential tests and the fuzz target (FuzzUnmarshal,
// which test/scripts/test.sh runs with every other) compare each input with
// proto.Unmarshal under proto.Equal; a new field in the protocol is unknown
// here until it is added, so it falls back rather than being dropped.
package sendpb
