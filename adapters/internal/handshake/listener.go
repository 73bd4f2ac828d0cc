package handshake

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// MaxPending is how many TLS handshakes a [Listener] runs at once. A
// further connection waits in the kernel's accept queue until one ends:
// each ends within the handshake timeout, so a flood of stalled clients
// delays the others by that timeout at most and cannot hold memory or
// goroutines without bound.
const MaxPending = 256

// plaintextHTTPReply is what a plaintext HTTP request on the TLS port is
// answered with before its connection is closed (net/http answers the
// same on its own TLS listeners).
const plaintextHTTPReply = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

// errPlaintextHTTP is the error recorded for a plaintext HTTP request on
// the TLS port.
var errPlaintextHTTP = errors.New("client sent an HTTP request to an HTTPS server")

// Listener is a TLS listener for an HTTP/1.1 server ([net/http.Server]):
// it runs the TLS handshake of every connection it accepts itself, counts
// and logs those that fail (see [Failures]) and hands the server only
// connections whose handshake completed, as *tls.Conn (so a request's TLS
// field is set as with [tls.NewListener]).
//
// The handshakes run in goroutines of their own, at most [MaxPending] at
// once, each within the handshake timeout: a client that stalls its
// handshake does not hold back Accept for the others. A plaintext HTTP
// request gets a 400 answer. A connection closed before it sent anything
// (a load balancer's TCP probe) is no failure.
type Listener struct {
	inner    net.Listener
	cfg      *tls.Config
	timeout  time.Duration
	failures *Failures

	ctx    context.Context // cancelled by Close: ends the handshakes under way
	cancel context.CancelFunc
	slots  chan struct{}  // one per handshake under way
	ready  chan net.Conn  // connections whose handshake completed
	failed chan struct{}  // closed when the inner listener failed; err says how
	err    error          // written before failed is closed
	wg     sync.WaitGroup // the accept loop and the handshakes
	once   sync.Once
}

// NewListener returns a listener that accepts from inner and runs the TLS
// handshake of each connection with cfg within timeout (0: none), counting
// the failures in failures (nil: not counted). Close closes inner.
func NewListener(inner net.Listener, cfg *tls.Config, timeout time.Duration, failures *Failures) *Listener {
	ctx, cancel := context.WithCancel(context.Background()) // cancelled in Close
	l := &Listener{inner: inner, cfg: cfg, timeout: timeout, failures: failures, ctx: ctx, cancel: cancel,
		slots: make(chan struct{}, MaxPending), ready: make(chan net.Conn), failed: make(chan struct{})}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next connection whose TLS handshake completed, a
// *tls.Conn.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.failed:
		return nil, l.err
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting, ends the handshakes under way (their connections
// are closed, not counted) and returns once their goroutines have exited.
// Connections already returned by Accept are not closed.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.inner.Close()
		l.wg.Wait()
	})
	return err
}

// Addr returns the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// acceptLoop accepts connections and starts their handshakes until the
// inner listener fails or Close.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		select { // a slot first: at most MaxPending handshakes at once
		case l.slots <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		raw, err := l.inner.Accept()
		if err != nil {
			<-l.slots
			if l.ctx.Err() != nil {
				return
			}
			if temporary(err) {
				// Out of file descriptors and the like: retry later, as
				// net/http's Serve does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-l.ctx.Done():
					return
				}
			}
			l.err = err
			close(l.failed)
			return
		}
		backoff = 0
		l.wg.Add(1)
		go l.handshake(raw)
	}
}

// temporary reports whether an accept error says it is temporary (as
// EMFILE does), which net/http's Serve retries too.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// handshake runs the TLS handshake of raw and hands the connection to
// Accept, or records why it failed and closes it.
func (l *Listener) handshake(raw net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.slots }()
	if l.timeout > 0 {
		// Ends a handshake stalled in a read or a write (an i/o timeout);
		// the context ends one on Close.
		_ = raw.SetDeadline(time.Now().Add(l.timeout))
	}
	tc := tls.Server(raw, l.cfg)
	if err := tc.HandshakeContext(l.ctx); err != nil {
		if l.ctx.Err() == nil {
			l.record(raw, err) // before the close: it may answer on raw
		}
		_ = tc.Close()
		return
	}
	_ = raw.SetDeadline(time.Time{})
	select {
	case l.ready <- tc:
	case <-l.ctx.Done():
		_ = tc.Close()
	}
}

// record counts and logs a failed handshake of raw.
func (l *Listener) record(raw net.Conn, err error) {
	var re tls.RecordHeaderError
	var r Reason
	switch {
	case errors.Is(err, io.EOF):
		return // closed before it sent a byte: a TCP probe, no failure
	case errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader):
		_, _ = io.WriteString(re.Conn, plaintextHTTPReply)
		_ = re.Conn.Close()
		r, err = PlaintextOnTLSPort, errPlaintextHTTP
	default:
		r = ClassifyTLSError(err)
		if r == NoALPN {
			// no_alpn_h2 is the gRPC port's, which needs h2; an HTTP/1.1
			// server's refused ALPN is a TLS error like any other.
			r = TLS
		}
	}
	if l.failures != nil {
		l.failures.Record(raw.RemoteAddr().String(), r, err)
	}
}

// looksLikeHTTP reports whether the 5 bytes read as a TLS record header
// start a plaintext HTTP request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO": // net/http's list, so the answers and reasons stay as they were
		return true
	}
	return false
}
