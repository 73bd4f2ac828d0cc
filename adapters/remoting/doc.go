// Package remoting is the codec of RocketMQ's classic TCP "Remoting"
// protocol, spoken by NameServers, Brokers and the classic clients: frames,
// JSON and ROCKETMQ binary headers, typed request/response headers, message
// encodings (stored/transfer format, single and batch send bodies,
// properties, system flags, compression, message ids), pop checkpoint
// strings, the JSON bodies (with fastjson's non-standard output), and the
// classic ACL request signature.
//
// It is pure: no I/O beyond reading one frame from a caller's
// *bufio.Reader, no goroutines, no globals that change. The connection
// pool, request matching and server-initiated requests live in the client
// sub-package; mapping to domain errors lives in the cluster adapter.
//
// Wire facts are those of Apache RocketMQ 5.x (see
// shared/docs/remoting-protocol.md and the notes in the project's
// docs); field names follow the Java header classes so that the mapping
// can be checked against upstream.
//
// Invariants callers rely on:
//   - no decoder panics on any input: [Decode], [ReadCommand], the header
//     decoders ([Fields] getters, Decode* functions), [DecodeMessages],
//     [DecodeBatch], [ParseProperties], [ParseExtraInfo], the offset-info
//     parsers, [ParseMessageID] and the JSON body decoders return an error
//     instead (*FrameError for frames and headers, *DecodeError elsewhere);
//   - decoders enforce the caller's size limits before allocating, so a
//     hostile length prefix cannot make them allocate more than the frame;
//   - a decoded [Command] aliases the bytes it was decoded from: its Body
//     is a sub-slice of the input (Decode) or of a buffer allocated for
//     that frame alone (ReadCommand); decoded messages alias the body too;
//   - encoders append to a caller's slice and never retain it; encoding a
//     decoded value and decoding it again yields the same value (the fuzz
//     tests check this for every decoder).
package remoting
