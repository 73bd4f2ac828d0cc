package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// conn is one connection: a reader goroutine that matches answers to
// waiting calls and serves peer requests, a writer goroutine that writes
// queued frames in batches.
type conn struct {
	c      *Client
	addr   string
	nc     net.Conn
	writeq chan *[]byte  // encoded frames, owned by the writer once queued
	sem    chan struct{} // in-flight slots
	done   chan struct{} // closed by fail
	goaway atomic.Bool   // the peer said GO_AWAY: take no new calls

	// lastRead is when the peer last sent a frame (monotonic, see mono),
	// for dropping a connection whose peer went silent (SilenceTimeout).
	lastRead atomic.Int64
	// heard is set by the peer's first frame (see Client.heard).
	heard atomic.Bool

	mu      sync.Mutex
	pending map[int32]answer
	err     *Error // why the connection failed; nil while it lives
}

// monoStart anchors mono: time.Since reads the monotonic clock.
var monoStart = time.Now()

// mono returns monotonic nanoseconds, for stamps kept in atomics.
func mono() int64 { return int64(time.Since(monoStart)) }

// answer is where the answer to a call goes: to its waiting caller, or,
// once the caller gave up, to the call's late handler, if it has one.
type answer struct {
	ch   chan *remoting.Command // buffered (1); nil once the caller gave up
	late LateHandler
	req  *remoting.Command // the request, for late (set with it)
	// poll: a long poll whose caller gave up, counted in the client's
	// abandoned polls until its answer was handled or will not come.
	poll bool
}

// lateWindow is how long an answer to a call whose caller gave up is
// still awaited for its late handler.
const lateWindow = time.Minute

func newConn(c *Client, addr string, nc net.Conn) *conn {
	cn := &conn{c: c, addr: addr, nc: nc, writeq: make(chan *[]byte, 256), sem: make(chan struct{}, c.cfg.MaxInFlight),
		done: make(chan struct{}), pending: make(map[int32]answer)}
	cn.lastRead.Store(mono())
	return cn
}

func (cn *conn) usable() bool {
	select {
	case <-cn.done:
		return false
	default:
		return !cn.goaway.Load()
	}
}

// fail closes the connection once, failing every waiting call.
func (cn *conn) fail(err *Error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	dropped, waiting := 0, 0
	for _, a := range cn.pending {
		if a.poll {
			dropped++
		}
		if a.ch != nil {
			waiting++
		}
	}
	cn.pending = nil
	close(cn.done)
	cn.mu.Unlock()
	cn.c.abandoned.done(dropped)
	cn.nc.Close()
	cn.c.forget(cn)
	if err.Kind != KindClosed && err.Err != errDrained {
		cn.c.logDrop(cn.addr, err, waiting, dropped)
	}
}

// dropWarnEvery is how often, at most, a connection to one address
// dropping is logged at WARN. A peer that accepts connections and closes
// them (a port forwarded to nothing, a TLS port spoken to in clear) was
// warned about on every attempt: about 100 lines while the start waited
// cluster.startTimeout for two such NameServers.
const dropWarnEvery = time.Minute

// dropLog is the dropped connections to one address since one of its
// connections last worked.
type dropLog struct {
	warned time.Time // the last WARN
	since  int       // drops logged at DEBUG since then
}

// logDrop logs a dropped connection to addr: at WARN the first time and
// then at most once per dropWarnEvery, counting the drops logged at DEBUG
// in between; [Client.heard] says once when the address works again.
// waiting is the calls that waited for an answer on it, abandoned the
// long polls whose callers had given up (their answers, and what the
// peer did for them, are lost with the connection: a pop's messages stay
// invisible for their invisible time).
func (c *Client) logDrop(addr string, err *Error, waiting, abandoned int) {
	now := time.Now()
	level, since := slog.LevelDebug, 0
	c.dropMu.Lock()
	d := c.drops[addr]
	if d == nil {
		for a, o := range c.drops { // addresses long gone
			if now.Sub(o.warned) > poolIdleTime {
				delete(c.drops, a)
			}
		}
		d = &dropLog{}
		c.drops[addr] = d
	}
	if d.warned.IsZero() || now.Sub(d.warned) >= dropWarnEvery {
		level, since = slog.LevelWarn, d.since
		d.warned, d.since = now, 0
	} else {
		d.since++
	}
	c.dropMu.Unlock()
	attrs := []slog.Attr{slog.String("addr", addr), slog.String("error", err.Error()),
		slog.Int("calls_waiting", waiting), slog.Int("abandoned_polls", abandoned)}
	if since > 0 {
		attrs = append(attrs, slog.Int("drops_since_last_warning", since))
	}
	if level == slog.LevelWarn {
		attrs = append(attrs, slog.String("note", "repeats are logged at DEBUG, and at WARN once a minute, until a connection to this address works"))
	}
	c.log.LogAttrs(context.Background(), level, "remoting connection dropped", attrs...)
}

// heard notes the first frame of a connection to addr: after drops, the
// address works again, which is logged once.
func (c *Client) heard(addr string) {
	c.dropMu.Lock()
	d, ok := c.drops[addr]
	delete(c.drops, addr)
	c.dropMu.Unlock()
	if ok {
		c.log.LogAttrs(context.Background(), slog.LevelInfo, "remoting connection works again",
			slog.String("addr", addr), slog.Int("drops_since_last_warning", d.since))
	}
}

// errDrained closes a connection the peer said GO_AWAY on once no call
// waits on it.
var errDrained = errors.New("the peer said GO_AWAY and no call waits on the connection")

// closeIfDrained closes the connection when the peer said GO_AWAY on it
// (so that it takes no new calls) and no call waits for an answer on it
// any more. Left open, such connections piled up: while a broker answers
// GO_AWAY (its shutdown grace period) each call dials a new connection.
func (cn *conn) closeIfDrained() {
	if !cn.goaway.Load() {
		return
	}
	cn.mu.Lock()
	drained := cn.err == nil && len(cn.pending) == 0
	cn.mu.Unlock()
	if drained {
		cn.fail(&Error{Kind: KindConnection, Addr: cn.addr, Err: errDrained})
	}
}

// failure returns the connection's error as seen by one call; delivered
// says whether its request was queued for writing.
func (cn *conn) failure(delivered bool) error {
	cn.mu.Lock()
	e := *cn.err
	cn.mu.Unlock()
	e.unsent = !delivered
	return &e
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// answerPool recycles the channels calls wait on. A channel goes back only
// after its answer was taken from it: the reader sends at most one answer
// per call and drops the call's entry before sending, so nothing can still
// send into a recycled channel. A call that ends without its answer leaves
// its channel to the garbage collector.
var answerPool = sync.Pool{New: func() any { return make(chan *remoting.Command, 1) }}

func putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		*b = (*b)[:0]
		bufPool.Put(b)
	}
}

func (cn *conn) encode(req *remoting.Command) (*[]byte, error) {
	if cn.c.cfg.Sign != nil {
		cn.c.cfg.Sign(req)
	}
	buf := bufPool.Get().(*[]byte)
	frame, err := remoting.AppendCommand((*buf)[:0], req)
	if err == nil && len(frame) > cn.c.cfg.MaxFrameSize {
		// The peer reads no longer frame than this client does (RocketMQ's
		// frameMaxLength, 16 MiB by default, on both sides): it would close
		// the connection, failing every other call in flight on it.
		err = fmt.Errorf("a request of %d bytes exceeds the peer's frame limit of %d: %w", len(frame), cn.c.cfg.MaxFrameSize, remoting.ErrFrameTooLarge)
	}
	if err != nil {
		putBuf(buf)
		return nil, &Error{Kind: KindEncode, Addr: cn.addr, Err: err}
	}
	*buf = frame
	return buf, nil
}

// invoke sends req and waits for its answer; with slot, it first takes one
// of the connection's MaxInFlight slots (waiting for one when all are
// taken). It gives up when ctx ends or expire fires (nil: never), which
// is a timeout as ctx's deadline is.
func (cn *conn) invoke(ctx context.Context, req *remoting.Command, late LateHandler, slot bool, expire <-chan time.Time) (*remoting.Command, error) {
	if slot {
		select {
		case cn.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctxError(ctx, cn.addr, false)
		case <-expire:
			return nil, cn.expired(false)
		case <-cn.done:
			return nil, cn.failure(false)
		}
		defer func() { <-cn.sem }()
	}
	// A select among ready cases picks one at random: without this check a
	// call whose context ended before (or while) it took a slot would still
	// be written, after its deadline, one time in four.
	if ctx.Err() != nil {
		return nil, ctxError(ctx, cn.addr, false)
	}
	select {
	case <-expire:
		return nil, cn.expired(false)
	default:
	}
	req.Opaque = cn.c.nextOpaque()
	req.Flag &^= remoting.FlagResponse | remoting.FlagOneway
	buf, err := cn.encode(req)
	if err != nil {
		return nil, err
	}
	ch := answerPool.Get().(chan *remoting.Command)
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		putBuf(buf)
		answerPool.Put(ch)
		return nil, cn.failure(false)
	}
	cn.pending[req.Opaque] = answer{ch: ch}
	cn.mu.Unlock()
	sent := mono()
	select {
	case cn.writeq <- buf:
	case <-ctx.Done():
		cn.forget(req.Opaque)
		putBuf(buf)
		return nil, ctxError(ctx, cn.addr, false)
	case <-expire:
		cn.forget(req.Opaque)
		putBuf(buf)
		return nil, cn.expired(false)
	case <-cn.done:
		putBuf(buf)
		return nil, cn.failure(false)
	}
	select {
	case resp := <-ch:
		answerPool.Put(ch)
		return resp, nil
	case <-ctx.Done():
		if resp, ok := cn.giveUp(req, ch, late, !slot); ok {
			return resp, nil
		}
		if slot && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cn.dropIfSilent(sent)
		}
		return nil, ctxError(ctx, cn.addr, true)
	case <-expire:
		if resp, ok := cn.giveUp(req, ch, late, !slot); ok {
			return resp, nil
		}
		if slot {
			cn.dropIfSilent(sent)
		}
		return nil, cn.expired(true)
	case <-cn.done:
		select { // the answer may have come just before the failure
		case resp := <-ch:
			answerPool.Put(ch)
			return resp, nil
		default:
		}
		return nil, cn.failure(true)
	}
}

// expired is the error of a call whose expire timer fired: a timeout,
// as ctxError says for a context's deadline.
func (cn *conn) expired(delivered bool) error {
	return &Error{Kind: KindTimeout, Addr: cn.addr, Err: context.DeadlineExceeded, unsent: !delivered}
}

// giveUp stops waiting for the answer to opaque: the answer, when it comes,
// goes to late (within lateWindow), or nowhere. An answer that came while
// the caller was giving up is returned instead (ok), so that it is never
// dropped between the two.
func (cn *conn) giveUp(req *remoting.Command, ch chan *remoting.Command, late LateHandler, poll bool) (resp *remoting.Command, ok bool) {
	opaque := req.Opaque
	cn.mu.Lock()
	_, waiting := cn.pending[opaque]
	if waiting {
		if late != nil {
			cn.pending[opaque] = answer{late: late, req: req, poll: poll}
			if poll {
				cn.c.abandoned.add()
			}
			time.AfterFunc(lateWindow, func() { cn.forgetLate(opaque) })
		} else {
			delete(cn.pending, opaque)
		}
	}
	cn.mu.Unlock()
	if waiting {
		cn.closeIfDrained()
		return nil, false
	}
	// The reader took the entry, and sent the answer under the lock; or the
	// connection failed, and no answer comes.
	select {
	case resp := <-ch:
		answerPool.Put(ch)
		return resp, true
	default:
		return nil, false
	}
}

// dropIfSilent fails the connection when its peer sent nothing since a
// call whose deadline just passed was queued (at sent) and nothing at all
// for SilenceTimeout: the peer is gone or stuck, and without this the
// connection would stay in the pool, every call on it timing out, until TCP
// gave up. Only quick calls ask: a broker holds long polls silently.
func (cn *conn) dropIfSilent(sent int64) {
	last, silence := cn.lastRead.Load(), cn.c.cfg.SilenceTimeout
	if last >= sent || time.Duration(mono()-last) < silence {
		return
	}
	cn.fail(&Error{Kind: KindConnection, Addr: cn.addr,
		Err: errors.New("the peer sent nothing for " + silence.String() + " while a call waited past its deadline")})
}

// forgetLate drops a late handler whose answer did not come in time.
func (cn *conn) forgetLate(opaque int32) {
	cn.mu.Lock()
	forgotten := 0
	if a, ok := cn.pending[opaque]; ok && a.ch == nil {
		delete(cn.pending, opaque)
		if a.poll {
			forgotten = 1
		}
	}
	cn.mu.Unlock()
	cn.c.abandoned.done(forgotten)
	cn.closeIfDrained()
}

func (cn *conn) forget(opaque int32) {
	cn.mu.Lock()
	delete(cn.pending, opaque)
	cn.mu.Unlock()
	cn.closeIfDrained()
}

func (cn *conn) oneway(ctx context.Context, req *remoting.Command) error {
	if ctx.Err() != nil { // see invoke
		return ctxError(ctx, cn.addr, false)
	}
	req.Opaque = cn.c.nextOpaque()
	req.Flag = req.Flag&^remoting.FlagResponse | remoting.FlagOneway
	buf, err := cn.encode(req)
	if err != nil {
		return err
	}
	select {
	case cn.writeq <- buf:
		return nil
	case <-ctx.Done():
		putBuf(buf)
		return ctxError(ctx, cn.addr, false)
	case <-cn.done:
		putBuf(buf)
		return cn.failure(false)
	}
}

func (cn *conn) writeLoop() {
	defer cn.c.wg.Done()
	bw := bufio.NewWriterSize(cn.nc, 64<<10)
	for {
		var buf *[]byte
		select {
		case buf = <-cn.writeq:
		case <-cn.done:
			return
		}
		if err := cn.nc.SetWriteDeadline(time.Now().Add(cn.c.cfg.WriteTimeout)); err != nil {
			cn.fail(&Error{Kind: KindConnection, Addr: cn.addr, Err: err})
			return
		}
		_, err := bw.Write(*buf)
		putBuf(buf)
		for err == nil && len(cn.writeq) > 0 && bw.Buffered() < 64<<10 {
			buf = <-cn.writeq
			_, err = bw.Write(*buf)
			putBuf(buf)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			cn.fail(&Error{Kind: KindConnection, Addr: cn.addr, Err: err})
			return
		}
	}
}

func (cn *conn) readLoop() {
	defer cn.c.wg.Done()
	br := bufio.NewReaderSize(cn.nc, 64<<10)
	for {
		cmd, err := remoting.ReadCommand(br, cn.c.cfg.MaxReadFrameSize)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("peer closed the connection")
			} else if errors.Is(err, io.ErrUnexpectedEOF) {
				err = errors.New("peer closed the connection inside a frame")
			}
			cn.fail(&Error{Kind: KindConnection, Addr: cn.addr, Err: err})
			return
		}
		cn.lastRead.Store(mono())
		if !cn.heard.Load() && cn.heard.CompareAndSwap(false, true) {
			cn.c.heard(cn.addr)
		}
		if cmd.IsResponse() {
			if cmd.Code == int32(remoting.ResponseGoAway) {
				cn.goaway.Store(true)
			}
			cn.mu.Lock()
			a, ok := cn.pending[cmd.Opaque]
			delete(cn.pending, cmd.Opaque)
			if ok && a.ch != nil {
				a.ch <- cmd // buffered, one answer per call; under the lock for giveUp
			}
			cn.mu.Unlock()
			if ok && a.ch == nil {
				cn.runLate(a.late, a.req, cmd, a.poll)
			}
			cn.closeIfDrained()
			continue
		}
		cn.serve(cmd)
	}
}

// serve runs the handler of a peer's request on its own goroutine, or
// answers at once when there is none or too many run.
func (cn *conn) serve(req *remoting.Command) {
	c := cn.c
	h := c.cfg.Handlers[remoting.RequestCode(req.Code)]
	if h == nil {
		cn.respond(remoting.NewResponse(req, remoting.ResponseRequestCodeNotSupported,
			" request type "+strconv.Itoa(int(req.Code))+" not supported"), req)
		return
	}
	select {
	case c.handlers <- struct{}{}:
	default:
		c.log.LogAttrs(c.root, slog.LevelWarn, "too many remoting handlers running; refusing a peer request",
			slog.String("addr", cn.addr), slog.Int("code", int(req.Code)))
		cn.respond(remoting.NewResponse(req, remoting.ResponseSystemBusy, "[OVERLOAD]system busy, rmqproxy handlers full"), req)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.handlers }()
		if resp := h(c.root, cn.addr, req); resp != nil {
			cn.respond(resp, req)
		}
	}()
}

// runLate runs a late handler on its own goroutine, within the same bound
// as the peer's requests; when too many run, the answer is dropped. poll:
// the answer is an abandoned poll's, counted until its handler is done.
func (cn *conn) runLate(late LateHandler, req, resp *remoting.Command, poll bool) {
	c := cn.c
	handled := 0
	if poll {
		handled = 1
	}
	select {
	case c.handlers <- struct{}{}:
	default:
		c.log.LogAttrs(c.root, slog.LevelWarn, "too many remoting handlers running; dropping an answer that came after its caller gave up",
			slog.String("addr", cn.addr), slog.Int("code", int(resp.Code)))
		c.abandoned.done(handled)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.abandoned.done(handled)
		defer func() { <-c.handlers }()
		late(c.root, cn.addr, req, resp)
	}()
}

func (cn *conn) respond(resp, req *remoting.Command) {
	if req.IsOneway() {
		return
	}
	resp.Opaque = req.Opaque
	resp.Flag = resp.Flag&^remoting.FlagOneway | remoting.FlagResponse
	buf := bufPool.Get().(*[]byte)
	frame, err := remoting.AppendCommand((*buf)[:0], resp)
	if err != nil {
		putBuf(buf)
		cn.c.log.LogAttrs(cn.c.root, slog.LevelError, "cannot encode an answer to a peer request",
			slog.String("addr", cn.addr), slog.String("error", err.Error()))
		return
	}
	*buf = frame
	select {
	case cn.writeq <- buf:
	case <-cn.done:
		putBuf(buf)
	case <-cn.c.root.Done():
		putBuf(buf)
	}
}
