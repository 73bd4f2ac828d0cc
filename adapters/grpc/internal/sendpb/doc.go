// Package sendpb decodes apache.rocketmq.v2.SendMessageRequest, the request
// of every send, with fewer heap allocations than proto.Unmarshal, and with
// the same result.
//
// Why it exists: proto.Unmarshal allocates each submessage of a message
// (Message, Resource, SystemProperties, each Timestamp), each string, the
// []*Message slice, each optional field's pointer and the body: about ten
// allocations per single-message send, a tenth of what the proxy allocates
// for a durable send. Unmarshal here allocates, for a request of N messages,
// one slice of N arenas holding every message's submessages, optional
// fields and (for one message) the []*Message backing array; one buffer
// holding the bytes of every string of the request (the strings are
// substrings of it, so a retained topic name keeps only that buffer alive,
// never a body); each non-empty body as a []byte of its own; each message's
// user-properties map; and one []string backing the keys of all messages.
// Nothing aliases the input, which gRPC reuses once decoding returns.
//
// How it is kept equal to protobuf: Unmarshal decodes only the wire forms
// whose protobuf meaning is a plain assignment: the fields an official
// client sends (see fields in decode.go), each singular field at most once,
// with its declared wire type, strings valid UTF-8, map entries without
// unknown fields. Anything else (an unknown field, a field protobuf would
// merge or override, packed or otherwise mismatched wire types, broker-set
// fields such as store_timestamp, truncated or malformed input) makes it
// call proto.Unmarshal on the same bytes, so the result and every error are
// protobuf's own. A first pass checks and sizes the input without
// allocating; only a request it accepts completely is built. The package's
// differential test and fuzz target (FuzzUnmarshal) compare every input
// with proto.Unmarshal under proto.Equal.
package sendpb
