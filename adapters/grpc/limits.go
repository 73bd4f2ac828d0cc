package grpc

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
)

// The gRPC port listens on every interface and has no authentication yet,
// so what one client can make the server hold is bounded here and by the
// server options in NewServer:
//
//   - header blocks: grpc.maxHeaderListSize (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE;
//     larger blocks reset their stream);
//   - streams per connection: grpc.maxConcurrentStreams (SETTINGS_MAX_CONCURRENT_STREAMS;
//     more are refused with REFUSED_STREAM);
//   - connections per client address (an IPv6 address's /64):
//     grpc.maxConnectionsPerAddress, and
//     connections from all addresses: grpc.maxConnections (connLimiter);
//   - stream resets: grpc.maxStreamResetsPerSecond (resetWatcher closes a
//     connection that resets streams faster, the HTTP/2 "rapid reset" attack);
//   - Telemetry streams: grpc.settingsTimeout and the telemetry admission kind.

// connLimiter is a listener that refuses a connection when its client
// address already holds maxPerAddr connections, or the listener holds
// maxTotal from all addresses together (0: no such limit). A connection
// counts from its accept, so connections still in their TLS or HTTP/2
// handshake count too. A refused connection is closed at once; the listener
// keeps accepting.
type connLimiter struct {
	net.Listener
	maxPerAddr, maxTotal int
	log                  *slog.Logger

	mu    sync.Mutex
	conns map[netip.Addr]int
	total int

	refusedAddr, refusedTotal refusals
}

// refusals counts refused connections between warnings.
type refusals struct {
	n          atomic.Int64
	lastWarned atomic.Int64 // unix nanoseconds of the last warning
}

func newConnLimiter(l net.Listener, maxPerAddr, maxTotal int, log *slog.Logger) *connLimiter {
	return &connLimiter{Listener: l, maxPerAddr: maxPerAddr, maxTotal: maxTotal, log: log, conns: map[netip.Addr]int{}}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		addr := application.ClientAddress(ip) // as traffic.maxInflightPerAddress counts one client
		l.mu.Lock()
		n := l.conns[addr]
		if l.maxPerAddr > 0 && n >= l.maxPerAddr {
			l.mu.Unlock()
			_ = c.Close()
			if k, ok := l.refusedAddr.warn(); ok {
				l.log.Warn("refused connections from a client address (an IPv6 address's /64) that holds grpc.maxConnectionsPerAddress connections",
					slog.String("remote_ip", ip.String()), slog.Int("max", l.maxPerAddr), slog.Int64("refused_since_last_warning", k))
			}
			continue
		}
		if l.maxTotal > 0 && l.total >= l.maxTotal {
			l.mu.Unlock()
			_ = c.Close()
			if k, ok := l.refusedTotal.warn(); ok {
				l.log.Warn("refused connections: the gRPC port holds grpc.maxConnections connections",
					slog.String("remote_ip", ip.String()), slog.Int("max", l.maxTotal), slog.Int64("refused_since_last_warning", k))
			}
			continue
		}
		l.conns[addr] = n + 1
		l.total++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(addr) }}, nil
	}
}

func (l *connLimiter) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.conns[addr] <= 1 {
		delete(l.conns, addr)
		return
	}
	l.conns[addr]--
}

// warn counts a refusal and reports whether to log now, with how many
// refusals there were since the last warning: at most one warning every ten
// seconds, so that a flood cannot flood the log too.
func (r *refusals) warn() (int64, bool) {
	n := r.n.Add(1)
	now := time.Now().UnixNano()
	last := r.lastWarned.Load()
	if now-last < int64(10*time.Second) || !r.lastWarned.CompareAndSwap(last, now) {
		return 0, false
	}
	r.n.Add(-n)
	return n, true
}

func remoteIP(c net.Conn) netip.Addr {
	return addrPort(c.RemoteAddr()).Addr().Unmap()
}

// limitedConn gives its slot back once, when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// errTooManyResets ends a connection whose client resets streams faster
// than grpc.maxStreamResetsPerSecond allows.
var errTooManyResets = errors.New("the client reset streams (or had them reset) faster than grpc.maxStreamResetsPerSecond allows")

// HTTP/2 framing, as far as resetWatcher needs it (RFC 9113 §3.4, §4.1).
const (
	http2Preface      = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	http2FrameHeader  = 9
	http2Data         = 0x0
	http2Headers      = 0x1
	http2RSTStream    = 0x3
	http2WindowUpdate = 0x8
	http2EndStream    = 0x1 // flag of DATA and HEADERS
)

// endedStreams is how many of the streams a client ended last (END_STREAM)
// resetWatcher remembers, to count DATA it sends on them.
const endedStreams = 16

// resetWatcher reads the client-to-server byte stream of an HTTP/2
// connection (after TLS) and counts, in a token bucket refilled at rate per
// second up to burst, the streams the client ends early: its RST_STREAM
// frames, and the frames the server answers by resetting the stream, which
// cost it what a client's reset does ("MadeYouReset"): a WINDOW_UPDATE of
// increment 0 on a stream (RFC 9113 §6.9), and DATA on a stream the client
// has ended (§5.1; among the last endedStreams it ended). When
// the bucket is empty the connection's Read fails, which makes the gRPC
// transport close it. It follows frame headers, and reads the payload of
// stream WINDOW_UPDATE frames only, so its cost is a few operations per
// frame.
type resetWatcher struct {
	net.Conn
	rate, burst float64
	onAbuse     func()

	skip   int // bytes of the preface or of a frame payload still to pass
	hdr    [http2FrameHeader]byte
	hdrLen int
	// inc collects the payload (the increment) of a stream WINDOW_UPDATE
	// frame while incWant is set; incLen bytes of it are read.
	inc     [4]byte
	incLen  int
	incWant bool
	// ended holds the last streams the client ended, next the place of
	// the next one.
	endedIDs [endedStreams]uint32
	next     int

	tokens float64
	last   time.Time
	failed bool
}

func newResetWatcher(c net.Conn, perSecond int, onAbuse func()) *resetWatcher {
	burst := float64(perSecond) * 10
	return &resetWatcher{Conn: c, rate: float64(perSecond), burst: burst, onAbuse: onAbuse,
		skip: len(http2Preface), tokens: burst, last: time.Now()}
}

// Read is called by the transport's single reader goroutine only.
func (w *resetWatcher) Read(b []byte) (int, error) {
	if w.failed {
		return 0, errTooManyResets
	}
	n, err := w.Conn.Read(b)
	for p := b[:n]; len(p) > 0; {
		if w.skip > 0 {
			k := min(w.skip, len(p))
			w.skip -= k
			p = p[k:]
			continue
		}
		if w.incWant {
			k := copy(w.inc[w.incLen:], p)
			w.incLen += k
			p = p[k:]
			if w.incLen < len(w.inc) {
				break
			}
			w.incWant = false
			if w.inc[0]&0x7f|w.inc[1]|w.inc[2]|w.inc[3] == 0 { // the reserved bit aside
				w.ended()
			}
			continue
		}
		k := copy(w.hdr[w.hdrLen:], p)
		w.hdrLen += k
		p = p[k:]
		if w.hdrLen < http2FrameHeader {
			break
		}
		w.hdrLen = 0
		length := int(w.hdr[0])<<16 | int(w.hdr[1])<<8 | int(w.hdr[2])
		stream := (uint32(w.hdr[5])<<24 | uint32(w.hdr[6])<<16 | uint32(w.hdr[7])<<8 | uint32(w.hdr[8])) & 0x7fffffff
		switch typ, flags := w.hdr[3], w.hdr[4]; {
		case typ == http2RSTStream:
			w.ended()
		case typ == http2WindowUpdate && length == len(w.inc) && stream != 0:
			w.incWant, w.incLen = true, 0
			continue
		case typ == http2Data && stream != 0 && slices.Contains(w.endedIDs[:], stream):
			w.ended()
		case (typ == http2Data || typ == http2Headers) && flags&http2EndStream != 0 && stream != 0:
			w.endedIDs[w.next] = stream
			w.next = (w.next + 1) % endedStreams
		}
		w.skip = length
	}
	return n, err
}

// ended counts a stream the client ended early.
func (w *resetWatcher) ended() {
	if !w.failed && !w.take() {
		// Frames already read may be handed to the transport; the next
		// Read fails and the connection closes.
		w.failed = true
		w.onAbuse()
	}
}

func (w *resetWatcher) take() bool {
	now := time.Now()
	w.tokens = min(w.burst, w.tokens+now.Sub(w.last).Seconds()*w.rate)
	w.last = now
	if w.tokens < 1 {
		return false
	}
	w.tokens--
	return true
}
