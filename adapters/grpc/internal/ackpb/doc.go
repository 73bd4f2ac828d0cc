// Package ackpb decodes apache.rocketmq.v2.AckMessageRequest, the request
// of every acknowledgement, with fewer heap allocations than
// proto.Unmarshal, and with the same result.
//
// Why it exists: consumers ack each message with a request of its own, and
// proto.Unmarshal allocates each of its submessages (two Resources, the
// entry), the []*AckMessageEntry slice and each string (group, topic,
// message id, receipt handle): about eight allocations per consumed
// message. Unmarshal allocates, for a request of one entry, one arena
// holding the Resources, the entry and the slice's backing array, and one
// buffer holding the bytes of every string of the request (the strings are
// substrings of it); for N entries, the request's arena, one slice of N
// entry arenas and the []*AckMessageEntry backing array, and the string
// buffer. Nothing aliases the input, which gRPC reuses once decoding
// returns.
//
// How it is kept equal to protobuf, as package sendpb for sends: Unmarshal
// decodes only the wire forms whose protobuf meaning is a plain assignment:
// the fields of the request (the field constants in decode.go), each
// singular field at most once and with its declared wire type, strings
// valid UTF-8. Anything else (an unknown field, a field protobuf would
// merge or override, mismatched wire types, truncated or malformed input,
// more than maxEntries entries) makes it call proto.Unmarshal on the same
// bytes, so the result and every error are protobuf's own. A first pass
// checks and sizes the input without allocating; only a request it accepts
// completely is built. The differential tests and the fuzz target
// (FuzzUnmarshal) compare each input with proto.Unmarshal under
// proto.Equal; a new field in the protocol is unknown here until it is
// added, so it falls back rather than being dropped.
package ackpb
