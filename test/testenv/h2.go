package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2Conn is a raw HTTP/2 connection to rmqproxy's gRPC port (plaintext,
// prior knowledge), for tests of hostile clients: it writes whatever frames
// a test asks for, and a reader goroutine records what the server answers.
// It is not a gRPC client: it never sends request bodies.
type H2Conn struct {
	conn net.Conn
	wmu  sync.Mutex // serialises frame writes
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
	next uint32 // next stream id

	mu       sync.Mutex
	settings map[http2.SettingID]uint32
	streams  map[uint32]*H2Stream
	closed   error // why the connection ended, nil while open
	done     chan struct{}
}

// H2Stream is what the server answered on one stream.
type H2Stream struct {
	Reset      bool          // the server reset it
	ResetCode  http2.ErrCode // its RST_STREAM code
	Ended      bool          // the server ended it (trailers with END_STREAM)
	GRPCStatus string        // grpc-status of the trailers
	GRPCMsg    string        // grpc-message of the trailers
	DataBytes  int           // response body bytes received
}

// DialH2 opens a connection, sends the client preface and a SETTINGS frame,
// and starts reading. Only a failed dial is an error.
func DialH2(addr string) (*H2Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	h := &H2Conn{conn: c, next: 1, settings: map[http2.SettingID]uint32{}, streams: map[uint32]*H2Stream{}, done: make(chan struct{})}
	h.henc = hpack.NewEncoder(&h.hbuf)
	h.fr = http2.NewFramer(c, c)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.fr.MaxHeaderListSize = 1 << 20
	// A write fails when the server has already closed the connection (a
	// refused connection); the reader then reports the closure.
	go h.read()
	_ = h.write(func() error {
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			return err
		}
		// A large connection window, so that response bodies never block.
		if err := h.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil {
			return err
		}
		return h.fr.WriteWindowUpdate(0, 1<<30)
	})
	return h, nil
}

func (h *H2Conn) read() {
	defer close(h.done)
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.mu.Lock()
			h.closed = err
			h.mu.Unlock()
			return
		}
		h.mu.Lock()
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = f.ForeachSetting(func(s http2.Setting) error { h.settings[s.ID] = s.Val; return nil })
				h.mu.Unlock()
				h.write(func() error { return h.fr.WriteSettingsAck() })
				continue
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				h.mu.Unlock()
				h.write(func() error { return h.fr.WritePing(true, data) })
				continue
			}
		case *http2.RSTStreamFrame:
			s := h.stream(f.StreamID)
			s.Reset, s.ResetCode = true, f.ErrCode
		case *http2.MetaHeadersFrame:
			s := h.stream(f.StreamID)
			for _, hf := range f.Fields {
				switch hf.Name {
				case "grpc-status":
					s.GRPCStatus = hf.Value
				case "grpc-message":
					s.GRPCMsg = hf.Value
				}
			}
			s.Ended = s.Ended || f.StreamEnded()
		case *http2.DataFrame:
			s := h.stream(f.StreamID)
			s.DataBytes += len(f.Data())
			s.Ended = s.Ended || f.StreamEnded()
		case *http2.GoAwayFrame:
			// The connection ends when the server closes it.
		}
		h.mu.Unlock()
	}
}

func (h *H2Conn) stream(id uint32) *H2Stream {
	s := h.streams[id]
	if s == nil {
		s = &H2Stream{}
		h.streams[id] = s
	}
	return s
}

func (h *H2Conn) write(f func() error) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	h.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return f()
}

// headerBlock encodes a gRPC request's headers for path, plus extra fields.
func (h *H2Conn) headerBlock(path, clientID string, extra ...hpack.HeaderField) []byte {
	h.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: ":authority", Value: "rmqproxy"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
		{Name: "x-mq-client-id", Value: clientID},
	}, extra...) {
		_ = h.henc.WriteField(f)
	}
	return bytes.Clone(h.hbuf.Bytes())
}

// OpenStream starts a call of path (HEADERS without END_STREAM) and sends
// nothing more on it; it returns the stream id.
func (h *H2Conn) OpenStream(path, clientID string) (uint32, error) {
	var id uint32
	err := h.write(func() error {
		id = h.next
		h.next += 2
		return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.headerBlock(path, clientID), EndHeaders: true})
	})
	return id, err
}

// OpenStreamWithHeaders starts a call of path with extra header fields,
// written as they are (no validation: a test may send what a client
// library refuses to), and sends nothing more on it.
func (h *H2Conn) OpenStreamWithHeaders(path, clientID string, extra ...hpack.HeaderField) (uint32, error) {
	var id uint32
	err := h.write(func() error {
		id = h.next
		h.next += 2
		return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.headerBlock(path, clientID, extra...), EndHeaders: true})
	})
	return id, err
}

// OpenAndReset starts a call of path and resets it at once (the HTTP/2
// rapid-reset pattern).
func (h *H2Conn) OpenAndReset(path, clientID string) error {
	return h.write(func() error {
		id := h.next
		h.next += 2
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.headerBlock(path, clientID), EndHeaders: true}); err != nil {
			return err
		}
		return h.fr.WriteRSTStream(id, http2.ErrCodeCancel)
	})
}

// OpenStreamWithHeader starts a call of path whose header block carries a
// field of valueSize bytes, sent as HEADERS and CONTINUATION frames of 16
// KiB.
func (h *H2Conn) OpenStreamWithHeader(path, clientID string, valueSize int) error {
	return h.write(func() error {
		id := h.next
		h.next += 2
		block := h.headerBlock(path, clientID, hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("p", valueSize)})
		const chunk = 16 << 10
		first := block[:min(chunk, len(block))]
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(block) <= chunk}); err != nil {
			return err
		}
		for rest := block[len(first):]; len(rest) > 0; {
			n := min(chunk, len(rest))
			if err := h.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
}

// Setting returns a SETTINGS value the server sent, and whether it did.
func (h *H2Conn) Setting(id http2.SettingID) (uint32, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.settings[id]
	return v, ok
}

// Stream returns a copy of what the server answered on stream id.
func (h *H2Conn) Stream(id uint32) H2Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.streams[id]; s != nil {
		return *s
	}
	return H2Stream{}
}

// Streams returns copies of every stream the server answered on.
func (h *H2Conn) Streams() map[uint32]H2Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[uint32]H2Stream, len(h.streams))
	for id, s := range h.streams {
		out[id] = *s
	}
	return out
}

// Closed returns why the connection ended, or nil while it is open.
func (h *H2Conn) Closed() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Done is closed when the server closed the connection (or Close was called).
func (h *H2Conn) Done() <-chan struct{} { return h.done }

// Close closes the connection and waits for the reader.
func (h *H2Conn) Close() {
	h.conn.Close()
	<-h.done
}

// ProcessMemory is a process's resident memory from /proc/PID/status.
type ProcessMemory struct {
	RSS  int64 // VmRSS, bytes
	Peak int64 // VmHWM, the peak RSS, bytes
}

func (m ProcessMemory) String() string {
	return fmt.Sprintf("RSS %.1f MiB (peak %.1f MiB)", float64(m.RSS)/(1<<20), float64(m.Peak)/(1<<20))
}

// MemoryOf reads the resident memory of process pid (Linux only).
func MemoryOf(pid int) (ProcessMemory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcessMemory{}, err
	}
	var m ProcessMemory
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "VmHWM":
			m.Peak = n << 10
		}
	}
	if m.RSS == 0 {
		return m, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	return m, nil
}
