package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// Handler serves a request a peer sent on one of the client's connections
// (addr is the peer's address). It returns the answer, or nil for none;
// the client sets the answer's opaque and response flag, and sends nothing
// for a oneway request whatever the handler returns. ctx ends when the
// client closes.
type Handler func(ctx context.Context, addr string, req *remoting.Command) *remoting.Command

// Config tunes a Client; zero values take the defaults named on each field.
type Config struct {
	// ConnsPerAddr is how many connections to open to one address (2).
	ConnsPerAddr int
	// MaxInFlight bounds the requests awaiting an answer on one
	// connection (1024); callers beyond it wait with their context. Long
	// polls (InvokeLongPoll) do not count.
	MaxInFlight int
	// DialTimeout bounds connecting, TLS included (3 s).
	DialTimeout time.Duration
	// WriteTimeout bounds writing buffered frames to a peer that does not
	// read (10 s); past it the connection is dropped.
	WriteTimeout time.Duration
	// DefaultTimeout applies to calls whose context has no deadline (30 s).
	DefaultTimeout time.Duration
	// SilenceTimeout drops a connection when a call's deadline passes while
	// the peer has sent nothing since the call was written and nothing at
	// all for this long (10 s). A peer gone without closing the connection
	// (a network path or a NAT entry lost, a host that vanished) is
	// otherwise noticed only when TCP gives up, many minutes later, and
	// every call on the connection times out meanwhile; upstream's client
	// closes a connection on a call's timeout for the same reason. Long
	// polls (InvokeLongPoll) do not count: a broker holds them silently.
	SilenceTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the back-off after a failed dial
	// (100 ms, doubling up to 5 s).
	ReconnectMin, ReconnectMax time.Duration
	// MaxFrameSize bounds the frames written, as the peer reads no longer
	// ones (remoting.DefaultMaxFrameSize, RocketMQ's frameMaxLength): a
	// longer request fails before it is written.
	MaxFrameSize int
	// MaxReadFrameSize bounds the frames read (MaxFrameSize when 0). A
	// broker's answers are longer than the frames it reads when they carry
	// many messages (a pop answer holds one message of each queue of the
	// topic, each as large as a request the broker read).
	MaxReadFrameSize int
	// TLS, when set, wraps every connection (ServerName defaults to the
	// address's host).
	TLS *tls.Config
	// Sign, when set, is the last thing done to every request and oneway
	// request before encoding (e.g. remoting.Credentials.Sign).
	Sign func(*remoting.Command)
	// Handlers serve peer-initiated requests by code; a request without a
	// handler gets REQUEST_CODE_NOT_SUPPORTED.
	Handlers map[remoting.RequestCode]Handler
	// MaxHandlers bounds handlers running at once (64); beyond it a request
	// gets SYSTEM_BUSY (a oneway request is dropped).
	MaxHandlers int
	// Dial, when set, replaces net.Dialer (tests use it).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger receives connection events (slog.Default when nil).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.ConnsPerAddr <= 0 {
		c.ConnsPerAddr = 2
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 3 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 30 * time.Second
	}
	if c.SilenceTimeout <= 0 {
		c.SilenceTimeout = 10 * time.Second
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(5*time.Second, c.ReconnectMin)
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = remoting.DefaultMaxFrameSize
	}
	if c.MaxReadFrameSize <= 0 {
		c.MaxReadFrameSize = c.MaxFrameSize
	}
	if c.MaxHandlers <= 0 {
		c.MaxHandlers = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Client sends Remoting requests. It is safe for concurrent use; Close
// stops everything it started.
type Client struct {
	cfg      Config
	log      *slog.Logger
	opaque   atomic.Int32
	handlers chan struct{} // semaphore of running handlers
	root     context.Context
	stop     context.CancelFunc
	wg       sync.WaitGroup
	// abandoned counts the long polls whose callers gave up and whose
	// answers may still come (see AwaitAbandonedPolls).
	abandoned abandonedPolls

	mu     sync.Mutex
	closed bool
	pools  map[string]*pool
	conns  map[*conn]struct{}
	// poolIdle is how long a pool without a live connection is kept after
	// it was last asked for (poolIdleTime; tests shorten it).
	poolIdle time.Duration

	// dropMu guards drops, the dropped-connection warnings per address
	// (see logDrop); taken alone, never with mu or a slot's.
	dropMu sync.Mutex
	drops  map[string]*dropLog
}

// poolIdleTime is how long the pool of an address is kept once it holds
// no live connection and nobody asked for it: the addresses of brokers
// restarted elsewhere (a new pod IP) are forgotten rather than kept for
// the life of the process. A pool with a live connection is kept.
const poolIdleTime = 10 * time.Minute

// New returns a client; it dials nothing until the first call.
func New(cfg Config) *Client {
	cfg.defaults()
	root, stop := context.WithCancel(context.Background())
	return &Client{cfg: cfg, log: cfg.Logger.With("component", "remoting"), handlers: make(chan struct{}, cfg.MaxHandlers),
		root: root, stop: stop, pools: make(map[string]*pool), conns: make(map[*conn]struct{}), poolIdle: poolIdleTime,
		drops: make(map[string]*dropLog)}
}

// abandonedPolls counts long polls whose callers gave up with a late
// handler: from then until the answer's handler is done, the answer
// cannot come any more (its connection failed), or lateWindow passed.
type abandonedPolls struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (a *abandonedPolls) add() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == 0 {
		a.idle = make(chan struct{})
	}
	a.n++
}

// done counts k of them as over.
func (a *abandonedPolls) done(k int) {
	if k == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n -= k
	if a.n == 0 {
		close(a.idle)
	}
}

// AbandonedPolls returns how many long polls (InvokeLongPoll,
// InvokeLongPollWithin) whose callers gave up may still be answered, or
// have their answers' late handlers running.
func (c *Client) AbandonedPolls() int {
	c.abandoned.mu.Lock()
	defer c.abandoned.mu.Unlock()
	return c.abandoned.n
}

// AwaitAbandonedPolls waits until no abandoned long poll is left (see
// AbandonedPolls) or ctx ends, and returns how many are left. A peer that
// holds a long poll (a broker's POP_MESSAGE) acts on it until it answers,
// and an answer that comes after Close is lost: a caller that must handle
// every answer (a pop's messages are invisible until released) waits with
// this before Close.
func (c *Client) AwaitAbandonedPolls(ctx context.Context) int {
	for {
		c.abandoned.mu.Lock()
		n, idle := c.abandoned.n, c.abandoned.idle
		c.abandoned.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return c.AbandonedPolls()
		}
	}
}

// Close closes every connection, fails the calls in progress with
// KindClosed, stops the handlers' context and waits for every goroutine
// the client started.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := make([]*conn, 0, len(c.conns))
	for cn := range c.conns {
		conns = append(conns, cn)
	}
	c.mu.Unlock()
	c.stop()
	for _, cn := range conns {
		cn.fail(&Error{Kind: KindClosed, Addr: cn.addr, Err: ErrClosed})
	}
	c.wg.Wait()
	return nil
}

// Invoke sends req to addr and returns the answer, whatever its code (see
// remoting.Expect). Invoke owns req until it returns: it sets its Opaque
// and Flag and signs it. Errors are *Error.
func (c *Client) Invoke(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	return c.InvokeWithLate(ctx, addr, req, nil)
}

// LateHandler receives the answer resp to a call whose caller gave up (its
// context ended, or its timeout) after the request req was sent, when the
// answer still comes within a minute; ctx ends when the client closes. It
// runs on a goroutine of its own, bounded like the handlers of peer
// requests. req is the request as sent (signed), which the client keeps
// for it until then: a handler that reads what it needs from the request
// can be one func for every call, where a closure over the call's own
// values is an allocation per call, late or not.
type LateHandler func(ctx context.Context, addr string, req, resp *remoting.Command)

// InvokeWithin is Invoke ending after timeout at the latest, as
// Invoke(context.WithTimeout(ctx, timeout)) does, without that context
// and its timer per call when a connection is at hand: the wait is then
// bounded by a timer the client reuses.
func (c *Client) InvokeWithin(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration) (*remoting.Command, error) {
	return c.invokeWithin(ctx, addr, req, timeout, nil, callPooled)
}

// InvokeLongPollWithin is InvokeLongPoll ending after timeout at the
// latest, without a derived context per call, as InvokeWithin is Invoke.
func (c *Client) InvokeLongPollWithin(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration, late LateHandler) (*remoting.Command, error) {
	return c.invokeWithin(ctx, addr, req, timeout, late, callLongPoll)
}

// invokeWithin is invoke ending after timeout at the latest (see
// InvokeWithin); kind is callPooled or callLongPoll.
func (c *Client) invokeWithin(ctx context.Context, addr string, req *remoting.Command, timeout time.Duration, late LateHandler, kind callKind) (*remoting.Command, error) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= timeout {
		return c.invoke(ctx, addr, req, late, kind) // ctx ends first anyway
	}
	cn := c.connected(addr)
	if cn == nil || timeout <= 0 { // to be dialled (or failing), or over: as Invoke
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return c.invoke(ctx, addr, req, late, kind)
	}
	// Each call has a timer of its own while it runs; it goes back to the
	// pool only after the call returned (the conn no longer selects on it)
	// and was stopped.
	t := getTimer(timeout)
	defer putTimer(t)
	return cn.invoke(ctx, req, late, kind != callLongPoll, t.C)
}

// timers holds stopped timers for InvokeWithin. A stopped timer sends
// nothing after Stop returns (Go 1.23 timers), so a reused one fires only
// for its new call. Under GODEBUG=asynctimerchan=1 (the earlier timers,
// selectable at run time) a timer that fired can still deliver its value
// after Stop returned, so no timer is reused then.
var timers sync.Pool

// reuseTimers reports whether timers may be reused: not under
// GODEBUG=asynctimerchan=1 (the last setting of the key counts, as for
// the runtime).
var reuseTimers = syncTimerChannels(os.Getenv("GODEBUG"))

func syncTimerChannels(godebug string) bool {
	synchronous := true
	for _, kv := range strings.Split(godebug, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "asynctimerchan" {
			synchronous = v != "1"
		}
	}
	return synchronous
}

func getTimer(d time.Duration) *time.Timer {
	if reuseTimers {
		if t, _ := timers.Get().(*time.Timer); t != nil {
			t.Reset(d)
			return t
		}
	}
	return time.NewTimer(d)
}

func putTimer(t *time.Timer) {
	t.Stop()
	if reuseTimers {
		timers.Put(t)
	}
}

// InvokeWithLate is Invoke, but an answer that comes after ctx ended goes
// to late: for requests whose effect the caller must undo when it cannot
// use the answer (a POP_MESSAGE hides the messages it returns). An answer
// that comes while ctx ends is returned, not handed to late. With a late
// handler, req is handed to it and must not be reused once the call gave
// up.
func (c *Client) InvokeWithLate(ctx context.Context, addr string, req *remoting.Command, late LateHandler) (*remoting.Command, error) {
	return c.invoke(ctx, addr, req, late, callPooled)
}

// InvokeLongPoll is InvokeWithLate for a request that the peer holds until
// it has something to answer or its poll time ends (POP_MESSAGE,
// PULL_MESSAGE with suspend). It takes none of the connection's
// MaxInFlight slots: held polls would otherwise fill them, and the quick
// requests behind them (acks, sends) would wait for a slot until their
// deadline although the peer answers them at once. The caller bounds its
// long polls (rmqproxy admits receives at the gRPC side, and a broker
// answers POLLING_FULL beyond its own limit).
func (c *Client) InvokeLongPoll(ctx context.Context, addr string, req *remoting.Command, late LateHandler) (*remoting.Command, error) {
	return c.invoke(ctx, addr, req, late, callLongPoll)
}

// InvokePinned is Invoke on the first connection of addr's pool (dialled
// when needed) instead of the next one, for requests whose effect the peer
// ties to the connection they arrive on. A broker registers a HEART_BEAT's
// groups on its connection, UNREGISTER_CLIENT removes them from that
// connection only, and a registration not renewed within its expiry (120
// s) makes the broker close the connection, failing every call in flight
// on it: spread over the pool, such requests leave registrations behind on
// the other connections, which then expire.
func (c *Client) InvokePinned(ctx context.Context, addr string, req *remoting.Command) (*remoting.Command, error) {
	return c.invoke(ctx, addr, req, nil, callPinned)
}

// callKind says how a call uses an address's pool.
type callKind uint8

const (
	callPooled   callKind = iota // the next connection, one in-flight slot
	callPinned                   // the first connection, one in-flight slot
	callLongPoll                 // the next connection, no slot
)

func (c *Client) invoke(ctx context.Context, addr string, req *remoting.Command, late LateHandler, kind callKind) (*remoting.Command, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DefaultTimeout)
		defer cancel()
	}
	cn, err := c.conn(ctx, addr, kind == callPinned)
	if err != nil {
		return nil, err
	}
	return cn.invoke(ctx, req, late, kind != callLongPoll, nil)
}

// InvokeOneway sends req with the oneway flag and returns once it is
// queued for writing; no answer is awaited.
func (c *Client) InvokeOneway(ctx context.Context, addr string, req *remoting.Command) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.DefaultTimeout)
		defer cancel()
	}
	cn, err := c.conn(ctx, addr, false)
	if err != nil {
		return err
	}
	return cn.oneway(ctx, req)
}

func (c *Client) nextOpaque() int32 { return c.opaque.Add(1) }

// pool is the connections to one address.
type pool struct {
	next  atomic.Uint32
	slots []slot
	used  time.Time // when it was last asked for (Client.mu)
}

// idle reports whether p has been unused since before cutoff and holds
// no live connection nor a dial in progress. Slots locked meanwhile count
// as busy: the caller holds Client.mu, which fill takes under a slot's.
func (p *pool) idle(cutoff time.Time) bool {
	if !p.used.Before(cutoff) {
		return false
	}
	for i := range p.slots {
		s := &p.slots[i]
		if !s.mu.TryLock() {
			return false
		}
		busy := (s.conn != nil && s.conn.usable()) || s.dialing != nil
		s.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// slot holds one connection of a pool and its reconnect state.
type slot struct {
	mu       sync.Mutex
	conn     *conn
	dialing  chan struct{} // closed when the running dial ends
	nextDial time.Time
	backoff  time.Duration
	lastErr  error
}

func (c *Client) pool(addr string) (*pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &Error{Kind: KindClosed, Addr: addr, Err: ErrClosed, unsent: true}
	}
	now := time.Now()
	p := c.pools[addr]
	if p == nil {
		// A new address: forget the pools of addresses gone idle, so that
		// the pools are bounded by the addresses in use (plus those
		// that went idle within poolIdle).
		cutoff := now.Add(-c.poolIdle)
		for a, q := range c.pools {
			if q.idle(cutoff) {
				delete(c.pools, a)
			}
		}
		p = &pool{slots: make([]slot, c.cfg.ConnsPerAddr)}
		c.pools[addr] = p
	}
	p.used = now
	return p, nil
}

// conn returns a usable connection to addr, dialling one if needed: the
// next connected one of the pool, or the pool's first when pinned.
func (c *Client) conn(ctx context.Context, addr string, pinned bool) (*conn, error) {
	p, err := c.pool(addr)
	if err != nil {
		return nil, err
	}
	var start uint32
	if !pinned {
		var cn *conn
		if cn, start = c.next(addr, p); cn != nil {
			return cn, nil
		}
	}
	s := &p.slots[int(start)%len(p.slots)]
	for {
		s.mu.Lock()
		if s.conn != nil && s.conn.usable() {
			cn := s.conn
			s.mu.Unlock()
			return cn, nil
		}
		if ch := s.dialing; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctxError(ctx, addr, false)
			}
		}
		if wait := time.Until(s.nextDial); wait > 0 {
			last := s.lastErr
			s.mu.Unlock()
			return nil, &Error{Kind: KindDial, Addr: addr, Err: errors.Join(errBackoff, last)}
		}
		ch := make(chan struct{})
		s.dialing = ch
		s.mu.Unlock()

		cn, err := c.dial(ctx, addr)

		s.mu.Lock()
		c.dialed(s, ch, cn, err, ctx.Err() == nil)
		s.mu.Unlock()
		switch {
		case errors.Is(err, ErrClosed): // Close ran during the dial
			return nil, &Error{Kind: KindClosed, Addr: addr, Err: ErrClosed, unsent: true}
		case err != nil && ctx.Err() != nil:
			return nil, ctxError(ctx, addr, false)
		case err != nil:
			return nil, &Error{Kind: KindDial, Addr: addr, Err: err}
		}
		return cn, nil
	}
}

// next returns the next connected connection of addr's pool p, or nil and
// the slot to dial in (start). It prefers a connected slot, and dials the
// chosen one in the background when it is not.
func (c *Client) next(addr string, p *pool) (cn *conn, start uint32) {
	start = p.next.Add(1)
	for i := range p.slots {
		s := &p.slots[(int(start)+i)%len(p.slots)]
		s.mu.Lock()
		cn := s.conn
		s.mu.Unlock()
		if cn != nil && cn.usable() {
			if i > 0 {
				c.fill(addr, &p.slots[int(start)%len(p.slots)])
			}
			return cn, start
		}
	}
	return nil, start
}

// connected returns a connected connection of addr's pool, as conn would
// for a pooled call, or nil when there is none (conn would dial) or the
// client is closed (conn would say so).
func (c *Client) connected(addr string) *conn {
	p, err := c.pool(addr)
	if err != nil {
		return nil
	}
	cn, _ := c.next(addr, p)
	return cn
}

// dialed records in s (s.mu held) how its dial, announced by ch, ended: its
// connection, or, when the peer failed (not the caller's context nor
// Close), the back-off before the next dial.
func (c *Client) dialed(s *slot, ch chan struct{}, cn *conn, err error, peerFailed bool) {
	s.dialing = nil
	close(ch)
	switch {
	case err == nil:
		s.conn, s.backoff, s.lastErr = cn, 0, nil
	case peerFailed && !errors.Is(err, ErrClosed):
		s.backoff = min(max(2*s.backoff, c.cfg.ReconnectMin), c.cfg.ReconnectMax)
		s.nextDial = time.Now().Add(s.backoff)
		s.lastErr = err
	}
}

// fill dials slot s of addr's pool in the background, unless it is
// connected, dialling or backing off; calls meanwhile use the pool's
// other connections. Without it a pool whose first calls did not race
// kept one connection whatever its size.
func (c *Client) fill(addr string, s *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if (s.conn != nil && s.conn.usable()) || s.dialing != nil || time.Now().Before(s.nextDial) {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	ch := make(chan struct{})
	s.dialing = ch
	go func() {
		defer c.wg.Done()
		cn, err := c.dial(c.root, addr)
		s.mu.Lock()
		c.dialed(s, ch, cn, err, c.root.Err() == nil)
		s.mu.Unlock()
		if err != nil && c.root.Err() == nil && !errors.Is(err, ErrClosed) {
			c.log.LogAttrs(c.root, slog.LevelDebug, "dialling another connection of the pool failed",
				slog.String("addr", addr), slog.String("error", err.Error()))
		}
	}()
}

// dialAddress is the host:port net.Dial takes for a RocketMQ address. A
// broker whose brokerIP1 is an IPv6 address registers itself as
// "2001:db8::1:10911", without brackets (RocketMQ splits at the last
// colon): that form gets its brackets. Any other address is kept.
func dialAddress(addr string) string {
	if strings.HasPrefix(addr, "[") {
		return addr
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr
	}
	if ip, err := netip.ParseAddr(addr[:i]); err == nil && ip.Is6() {
		return net.JoinHostPort(addr[:i], addr[i+1:])
	}
	return addr
}

func (c *Client) dial(ctx context.Context, addr string) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	addr = dialAddress(addr)
	var nc net.Conn
	var err error
	if c.cfg.Dial != nil {
		nc, err = c.cfg.Dial(dctx, addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	if c.cfg.TLS != nil {
		tc := c.cfg.TLS.Clone()
		if tc.ServerName == "" {
			if host, _, err := net.SplitHostPort(addr); err == nil {
				tc.ServerName = host
			}
		}
		tconn := tls.Client(nc, tc)
		if err := tconn.HandshakeContext(dctx); err != nil {
			nc.Close()
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				// What a peer without TLS does with a ClientHello.
				return nil, fmt.Errorf("TLS handshake failed: %w (the peer closed the connection: does it serve TLS?)", err)
			}
			if msg := err.Error(); strings.Contains(msg, "protocol version not supported") || strings.Contains(msg, "unsupported protocol version") {
				// The peer's protocol_version alert, or its choice of
				// a version below tc.MinVersion: crypto/tls types neither.
				return nil, fmt.Errorf("TLS handshake failed: %w (the peer speaks no TLS version from %s up)", err, tlspolicy.VersionName(minVersion(tc)))
			}
			return nil, fmt.Errorf("TLS handshake failed: %w", err)
		}
		nc = tconn
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		nc.Close()
		return nil, ErrClosed
	}
	cn := newConn(c, addr, nc)
	c.conns[cn] = struct{}{}
	c.wg.Add(2)
	c.mu.Unlock()
	go cn.readLoop()
	go cn.writeLoop()
	c.log.LogAttrs(ctx, slog.LevelDebug, "connected", slog.String("addr", addr))
	return cn, nil
}

func (c *Client) forget(cn *conn) {
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
}

// ctxError is the error of a call whose context ended; delivered says
// whether its request was queued for writing (see Error.MaybeDelivered).
func ctxError(ctx context.Context, addr string, delivered bool) error {
	kind := KindCanceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		kind = KindTimeout
	}
	return &Error{Kind: kind, Addr: addr, Err: ctx.Err(), unsent: !delivered}
}

// minVersion is the lowest TLS version tc accepts as a client.
func minVersion(tc *tls.Config) uint16 {
	if tc.MinVersion == 0 {
		return tls.VersionTLS12 // crypto/tls's default for clients
	}
	return tc.MinVersion
}
