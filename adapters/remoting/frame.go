package remoting

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"
	"slices"
	"strconv"
)

// DefaultMaxFrameSize is the Java default (com.rocketmq.remoting.frameMaxLength):
// 16 MiB, counted with the 4-byte length prefix.
const DefaultMaxFrameSize = 16 << 20

// maxHeaderLen is what the 24-bit header length can say.
const maxHeaderLen = 1<<24 - 1

// AppendCommand appends c as one frame (length prefix, header, body) to dst
// in c.Serialize's header encoding and returns the extended slice. It fails
// only for a command the wire cannot carry (a binary header with a code or
// version outside 16 bits, a key longer than 32767 bytes, a header over
// 16 MiB, a frame over 2 GiB); dst is then returned unchanged.
func AppendCommand(dst []byte, c *Command) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	hstart := len(dst)
	var err error
	switch c.Serialize {
	case JSON:
		dst = appendJSONHeader(dst, c)
	case RocketMQ:
		dst, err = appendBinaryHeader(dst, c)
	default:
		err = frameErr(-1, "cannot encode serialize type "+c.Serialize.String())
	}
	if err != nil {
		return dst[:start], err
	}
	hlen := len(dst) - hstart
	if hlen > maxHeaderLen {
		return dst[:start], frameErr(-1, "header of "+strconv.Itoa(hlen)+" bytes exceeds 16 MiB")
	}
	dst = append(dst, c.Body...)
	total := len(dst) - start - 4
	if total > math.MaxInt32 {
		return dst[:start], frameErr(-1, "frame of "+strconv.Itoa(total)+" bytes exceeds 2 GiB")
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(total))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(c.Serialize)<<24|uint32(hlen))
	return dst, nil
}

// Decode decodes the frame at the start of b (length prefix included) and
// returns it with the number of bytes it used. When b holds only part of a
// frame it returns io.ErrUnexpectedEOF and n = 0: read more and call again.
// A length prefix over maxFrame (DefaultMaxFrameSize when maxFrame <= 0)
// is a *FrameError matching ErrFrameTooLarge. The command's Body aliases b.
func Decode(b []byte, maxFrame int) (cmd *Command, n int, err error) {
	if len(b) < 4 {
		return nil, 0, io.ErrUnexpectedEOF
	}
	length, err := frameLength(b, maxFrame)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-4 < length {
		return nil, 0, io.ErrUnexpectedEOF
	}
	cmd, err = decodeFrame(b[4 : 4+length])
	if err != nil {
		return nil, 0, err
	}
	return cmd, 4 + length, nil
}

// ReadCommand reads one frame from r. It returns io.EOF when r ends
// cleanly before a frame, io.ErrUnexpectedEOF when it ends inside one, and
// a *FrameError for a malformed or over-long frame (maxFrame as in
// Decode). It checks the frame's size before allocating, and allocates no
// more than 16 MiB (growFrom) before the bytes arrive; a JSON header
// that fits r's buffer is decoded from one string copied out of the buffer
// and the body gets a buffer of its own (two allocations, the command with
// its fields and the header's string, for an answer without body), anything else is read into one buffer of the frame's size
// that the command's Body aliases.
func ReadCommand(r *bufio.Reader, maxFrame int) (*Command, error) {
	word, err := readWord(r)
	if err != nil {
		return nil, err
	}
	var prefix [4]byte
	binary.BigEndian.PutUint32(prefix[:], word)
	length, err := frameLength(prefix[:], maxFrame)
	if err != nil {
		return nil, err
	}
	if word, err = readWord(r); err != nil {
		return nil, unexpected(err)
	}
	st, hlen := SerializeType(word>>24), int(word&0xFFFFFF)
	if st != JSON || hlen > length-4 || hlen > r.Size() {
		frame, err := readFrame(r, word, length)
		if err != nil {
			return nil, err
		}
		return decodeFrame(frame)
	}
	h, err := r.Peek(hlen)
	if err != nil {
		return nil, unexpected(err)
	}
	hdr := string(h)
	_, _ = r.Discard(hlen) // what Peek returned is buffered
	var body []byte
	if n := length - 4 - hlen; n > 0 {
		if body, err = readBytes(r, nil, n); err != nil {
			return nil, err
		}
	}
	rc := &readCommand{Command: Command{Serialize: JSON, Body: body}}
	rc.Fields = rc.fields[:0]
	if err := decodeJSONHeaderString(&rc.Command, hdr); err != nil {
		return nil, err
	}
	if len(rc.Fields) == 0 {
		rc.Fields = nil // none, as decodeFrame gives
	}
	return &rc.Command, nil
}

// growFrom is the size up to which a frame's buffer is allocated at once;
// a longer frame's (a broker's answer may be larger than the frames it
// reads: a pop answer holds up to 32 messages) grows as its bytes arrive,
// so that a garbled length prefix costs no more than what was sent.
const growFrom = DefaultMaxFrameSize

// readFrame reads the rest of a frame of length bytes whose first word
// (after the length prefix) has been read, into one buffer that starts
// with that word.
func readFrame(r *bufio.Reader, word uint32, length int) ([]byte, error) {
	frame := make([]byte, 4, min(length, growFrom))
	binary.BigEndian.PutUint32(frame, word)
	return readBytes(r, frame, length-4)
}

// readBytes appends n bytes read from r to dst, growing dst as they
// arrive beyond growFrom.
func readBytes(r *bufio.Reader, dst []byte, n int) ([]byte, error) {
	want := len(dst) + n
	if dst == nil {
		dst = make([]byte, 0, min(n, growFrom))
	}
	for len(dst) < want {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(want-len(dst), len(dst)))
		}
		k, err := io.ReadFull(r, dst[len(dst):min(cap(dst), want)])
		dst = dst[:len(dst)+k]
		if err != nil {
			return nil, unexpected(err)
		}
	}
	return dst, nil
}

// readCommand is a command read by ReadCommand with room for the ext
// fields of most answers (a send's has 6 to 8), so that both are one
// allocation.
type readCommand struct {
	Command
	fields [8]Field
}

// readWord reads a big-endian uint32 from r with io.ReadFull's errors
// (io.EOF when r ends before it, io.ErrUnexpectedEOF inside it), in r's
// buffer: a buffer of its own would escape to the heap through io.Reader.
func readWord(r *bufio.Reader) (uint32, error) {
	b, err := r.Peek(4)
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	_, _ = r.Discard(4)
	return binary.BigEndian.Uint32(b), nil
}

// unexpected turns a clean end of r inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func frameLength(prefix []byte, maxFrame int) (int, error) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrameSize
	}
	length := int64(int32(binary.BigEndian.Uint32(prefix)))
	if length < 4 {
		return 0, frameErr(-1, "length prefix "+strconv.FormatInt(length, 10)+" is below 4")
	}
	if length+4 > int64(maxFrame) {
		reason := "frame of " + strconv.FormatInt(length+4, 10) + " bytes exceeds the maximum of " + strconv.Itoa(maxFrame)
		if string(prefix[:4]) == "HTTP" {
			// An HTTP server's answer ("HTTP/1.1 400 ..."), read as a length:
			// the address is not a Remoting peer's.
			reason = `the peer answered in HTTP ("HTTP/..."), not in RocketMQ's Remoting protocol: ` +
				"this address is an HTTP server's (a web console, an HTTP port, an HTTP proxy in between), not a NameServer's or broker's"
		}
		return 0, &FrameError{Offset: -1, tooLarge: true, Reason: reason}
	}
	return int(length), nil
}

// decodeFrame decodes a frame without its length prefix.
func decodeFrame(f []byte) (*Command, error) {
	word := binary.BigEndian.Uint32(f)
	st := SerializeType(word >> 24)
	hlen := int(word & 0xFFFFFF)
	if hlen > len(f)-4 {
		return nil, frameErr(1, "header length "+strconv.Itoa(hlen)+" exceeds the frame's "+strconv.Itoa(len(f)-4)+" bytes")
	}
	cmd := &Command{Serialize: st}
	var err error
	switch st {
	case JSON:
		err = decodeJSONHeader(cmd, f[4:4+hlen])
	case RocketMQ:
		err = decodeBinaryHeader(cmd, f[4:4+hlen])
	default:
		err = frameErr(0, "unknown serialize type "+strconv.Itoa(int(st)))
	}
	if err != nil {
		return nil, err
	}
	if body := f[4+hlen:]; len(body) > 0 {
		cmd.Body = body
	}
	return cmd, nil
}
