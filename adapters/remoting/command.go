package remoting

import "strconv"

// SerializeType is how a frame's header is encoded; each frame carries its
// own, and a decoder accepts both on every frame.
type SerializeType uint8

const (
	// JSON headers are what every Java and Go peer emits by default, and
	// the only form that carries request codes above 32767 (pop, ack,
	// change invisible time).
	JSON SerializeType = 0
	// RocketMQ is the compact binary header (code and version are 16 bits).
	RocketMQ SerializeType = 1
)

func (t SerializeType) String() string {
	switch t {
	case JSON:
		return "JSON"
	case RocketMQ:
		return "ROCKETMQ"
	}
	return "SerializeType(" + strconv.Itoa(int(t)) + ")"
}

// LanguageCode is the sender's language; informational only.
type LanguageCode uint8

// Language codes (LanguageCode.java).
const (
	LanguageJava   LanguageCode = 0
	LanguageCPP    LanguageCode = 1
	LanguageDotNet LanguageCode = 2
	LanguagePython LanguageCode = 3
	LanguageDelphi LanguageCode = 4
	LanguageErlang LanguageCode = 5
	LanguageRuby   LanguageCode = 6
	LanguageOther  LanguageCode = 7
	LanguageHTTP   LanguageCode = 8
	LanguageGo     LanguageCode = 9
	LanguagePHP    LanguageCode = 10
	LanguageOMS    LanguageCode = 11
	LanguageRust   LanguageCode = 12
	LanguageNodeJS LanguageCode = 13
)

var languageNames = [...]string{"JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY",
	"OTHER", "HTTP", "GO", "PHP", "OMS", "RUST", "NODE_JS"}

// String returns the enum name the JSON header uses ("JAVA", "GO", ...).
func (l LanguageCode) String() string {
	if int(l) < len(languageNames) {
		return languageNames[l]
	}
	return "LanguageCode(" + strconv.Itoa(int(l)) + ")"
}

// languageByName maps a JSON language name to its code; unknown names are
// OTHER (Java would leave the field null).
func languageByName(s string) LanguageCode {
	for i, n := range languageNames {
		if n == s {
			return LanguageCode(i)
		}
	}
	return LanguageOther
}

// Flag bits of a command.
const (
	FlagResponse int32 = 1 << 0
	FlagOneway   int32 = 1 << 1
)

// Versions (ordinals of MQVersion.Version) that change what a peer does.
const (
	// VersionV4_9_4 and later get standard JSON (quoted map keys) in route
	// and cluster bodies.
	VersionV4_9_4 int32 = 401
	// VersionV5_3_1: servers send GO_AWAY while shutting down only to
	// callers above it.
	VersionV5_3_1 int32 = 475
	// VersionV5_3_3 is what rmqproxy sends by default.
	VersionV5_3_3 int32 = 479
	// VersionV5_5_0 is the release the tests run against.
	VersionV5_5_0 int32 = 513
)

// DefaultVersion is the version rmqproxy puts on the commands it creates.
const DefaultVersion = VersionV5_3_3

// Command is one Remoting frame: a request, a response or a oneway request.
type Command struct {
	// Code is a request code in requests and a response code in responses.
	Code     int32
	Language LanguageCode
	Version  int32
	// Opaque matches a response to its request; the requester picks it.
	Opaque int32
	Flag   int32
	Remark string
	// Fields are the "ext fields": the typed custom header, as strings.
	Fields Fields
	Body   []byte
	// Serialize is the header encoding: as received when decoded, as wanted
	// when encoded.
	Serialize SerializeType
}

// IsResponse reports whether the command is a response.
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether the sender waits for no response.
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// NewRequest returns a request with rmqproxy's defaults (Go language code,
// DefaultVersion, JSON header); the caller sets Opaque, or the client does.
func NewRequest(code RequestCode, fields Fields, body []byte) *Command {
	return &Command{Code: int32(code), Language: LanguageGo, Version: DefaultVersion, Fields: fields, Body: body}
}

// NewHeaderRequest is NewRequest with h's ext fields, which it keeps in
// the command's own allocation (room for 16, what EncodeHeader gives).
func NewHeaderRequest(code RequestCode, h Header, body []byte) *Command {
	r := NewRequestWithRoom(code, body)
	r.Fields = h.AppendFields(r.Fields)
	return r
}

// NewRequestWithRoom is NewRequest without ext fields yet but with room
// for 16 in the command's own allocation: append them to its Fields with
// a header's AppendFields. Unlike NewHeaderRequest, whose header escapes
// to the heap through its interface, a header called so can stay on the
// caller's stack.
func NewRequestWithRoom(code RequestCode, body []byte) *Command {
	r := &headerRequest{Command: Command{Code: int32(code), Language: LanguageGo, Version: DefaultVersion, Body: body}}
	r.Fields = r.fields[:0]
	return &r.Command
}

// NewSendRequestV2 is NewHeaderRequest of a SEND_MESSAGE_V2 or
// SEND_BATCH_MESSAGE (h's V2 keys), without h escaping to the heap.
func NewSendRequestV2(code RequestCode, h *SendMessageRequestHeader, body []byte) *Command {
	r := &sendRequest{Command: Command{Code: int32(code), Language: LanguageGo, Version: DefaultVersion, Body: body}}
	r.Fields = h.AppendFieldsV2(r.fields[:0])
	return &r.Command
}

// sendRequest is a send request with room for its ext fields.
type sendRequest struct {
	Command
	fields [sendHeaderFields]Field
}

// headerRequest is a request with room for its ext fields.
type headerRequest struct {
	Command
	fields [16]Field
}

// NewResponse returns a response to req with the given code and remark.
func NewResponse(req *Command, code ResponseCode, remark string) *Command {
	return &Command{Code: int32(code), Language: LanguageGo, Version: DefaultVersion,
		Opaque: req.Opaque, Flag: FlagResponse, Remark: remark, Serialize: req.Serialize}
}

// Field is one ext field.
type Field struct {
	Key, Value string
}

// Fields are a command's ext fields in wire order. A decoded command keeps
// duplicate keys as received; Get returns the last one, as Java's HashMap
// would keep it.
type Fields []Field

// Get returns the value of key and whether it is present.
func (f Fields) Get(key string) (string, bool) {
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].Key == key {
			return f[i].Value, true
		}
	}
	return "", false
}

// Value returns the value of key, or "" when absent.
func (f Fields) Value(key string) string {
	v, _ := f.Get(key)
	return v
}

// Set replaces the value of key (its last occurrence) or appends it.
func (f *Fields) Set(key, value string) {
	s := *f
	for i := len(s) - 1; i >= 0; i-- {
		if s[i].Key == key {
			s[i].Value = value
			return
		}
	}
	*f = append(s, Field{key, value})
}

// Delete removes every occurrence of key.
func (f *Fields) Delete(key string) {
	s := (*f)[:0]
	for _, kv := range *f {
		if kv.Key != key {
			s = append(s, kv)
		}
	}
	clear((*f)[len(s):])
	*f = s
}
