package grpc

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/rmqproxy/rmqproxy/application"
)

// chunkConn serves a byte stream in reads of random sizes.
type chunkConn struct {
	net.Conn
	data []byte
	rnd  *rand.Rand
}

func (c *chunkConn) Read(b []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(b), 1+c.rnd.IntN(20), len(c.data))
	copy(b, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// frames builds a client byte stream: the preface, then for each entry a
// HEADERS frame whose payload is full of RST_STREAM type bytes (which must
// not be mistaken for frames) and, when reset is set, a RST_STREAM frame.
func frames(t testing.TB, resets []bool) []byte {
	var buf bytes.Buffer
	buf.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	for i, reset := range resets {
		id := uint32(2*i + 1)
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: bytes.Repeat([]byte{3}, 40), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		if reset {
			if err := fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				t.Fatal(err)
			}
		}
	}
	return buf.Bytes()
}

func TestResetWatcher(t *testing.T) {
	for _, c := range []struct {
		name      string
		resets    int
		others    int
		perSecond int
		wantAbuse bool
	}{
		// perSecond 1: a burst of 10; beyond it needs 20 more tokens, which
		// only 20 s of reading could refill.
		{"within the burst", 10, 50, 1, false},
		{"beyond the burst", 30, 50, 1, true},
		{"no resets", 0, 5000, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			seq := make([]bool, 0, c.resets+c.others)
			for range c.resets {
				seq = append(seq, true)
			}
			for range c.others {
				seq = append(seq, false)
			}
			rnd := rand.New(rand.NewPCG(1, 2))
			rnd.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
			abused := false
			w := newResetWatcher(&chunkConn{data: frames(t, seq), rnd: rnd}, c.perSecond, func() { abused = true })
			_, err := io.Copy(io.Discard, w)
			if abused != c.wantAbuse || c.wantAbuse != errors.Is(err, errTooManyResets) {
				t.Fatalf("abuse %v, read error %v; want abuse %v", abused, err, c.wantAbuse)
			}
		})
	}
}

func TestConnLimiter(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimiter(lis, 2, 0, slog.New(slog.DiscardHandler))
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	// The third is closed by the limiter: its read ends.
	if _, err := clients[2].Read(make([]byte, 1)); err == nil {
		t.Fatal("the third connection was not closed")
	}
	// Closing one (twice: the slot is given back once) makes room for one.
	first.Close()
	first.Close()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	third := <-accepted
	third.Close()
	second.Close()
	l.mu.Lock()
	n := l.conns[application.ClientAddress(remoteIP(second))]
	l.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d connections counted after all closed", n)
	}
}

// TestConnLimiterTotal: grpc.maxConnections bounds the connections of all
// addresses together, counted from accept (a client that never starts its
// handshake holds one), whatever the per-address limit allows.
func TestConnLimiterTotal(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &recordingHandler{}
	l := newConnLimiter(lis, 100, 2, slog.New(logs))
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	refused := dial()
	if err := refused.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := refused.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection beyond grpc.maxConnections was not closed: %v", err)
	}
	waitFor(t, 10*time.Second, func() error {
		if !logs.contains("grpc.maxConnections") {
			return errors.New("the refusal was not logged with the setting's name")
		}
		return nil
	})
	// A slot given back (once, however often the connection is closed)
	// makes room for one more.
	first.Close()
	first.Close()
	dial()
	third := <-accepted
	third.Close()
	second.Close()
	l.mu.Lock()
	total, addrs := l.total, len(l.conns)
	l.mu.Unlock()
	if total != 0 || addrs != 0 {
		t.Fatalf("%d connections (%d addresses) counted after all closed", total, addrs)
	}
}

// FuzzResetWatcher: any byte stream, read in any chunks, passes through
// unchanged and never panics the watcher.
func FuzzResetWatcher(f *testing.F) {
	f.Add(frames(f, []bool{true, false, true}), uint64(1))
	f.Add([]byte(http2.ClientPreface+"\x00\x00\x04\x03\x00\x00\x00\x00\x01\x00\x00\x00\x08"), uint64(2))
	f.Add([]byte{}, uint64(3))
	f.Add(bytes.Repeat([]byte{0xff}, 64), uint64(4))
	f.Add([]byte(http2.ClientPreface+"\x00\x00\x04\x08\x00\x00\x00\x00\x01\x00\x00\x00\x00"), uint64(5))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		w := newResetWatcher(&chunkConn{data: bytes.Clone(data), rnd: rand.New(rand.NewPCG(seed, seed))}, 1, func() {})
		var out bytes.Buffer
		_, err := io.Copy(&out, w)
		if err != nil && !errors.Is(err, errTooManyResets) {
			t.Fatal(err)
		}
		if err == nil && !bytes.Equal(out.Bytes(), data) {
			t.Fatal("the watcher changed the bytes")
		}
	})
}

// TestFlowControlWindow reads the SETTINGS the server announces: a fixed
// window of grpc.flowControlWindow, or none (HTTP/2's 65,535 bytes, which
// grpc-go's estimation then grows) with 0.
func TestFlowControlWindow(t *testing.T) {
	for _, c := range []struct {
		window int64
		want   uint32
	}{{1 << 20, 1 << 20}, {256 << 10, 256 << 10}, {0, 65535}} {
		ts := startTestServer(t, &fakeBroker{}, func(cfg *Config, _ *application.Config) { cfg.FlowControlWindow = c.window })
		conn, err := ts.lis.DialContext(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		fr := http2.NewFramer(conn, conn)
		if err := fr.WriteSettings(); err != nil {
			t.Fatal(err)
		}
		got := uint32(65535) // HTTP/2's initial window when none is announced
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("window %d: no SETTINGS from the server: %v", c.window, err)
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				if v, ok := sf.Value(http2.SettingInitialWindowSize); ok {
					got = v
				}
				break
			}
		}
		if got != c.want {
			t.Fatalf("flowControlWindow %d: the server announced an initial window of %d, want %d", c.window, got, c.want)
		}
	}
}

// TestResetWatcherCountsProvokedResets: frames the server answers by
// resetting their stream count as resets: a WINDOW_UPDATE of increment 0
// on a stream, DATA on a stream the client has ended. Other window
// updates, the connection's, and requests (HEADERS, then DATA ending the
// stream) do not.
func TestResetWatcherCountsProvokedResets(t *testing.T) {
	// stream writes n streams with each, from a framer that writes
	// anything.
	stream := func(n int, each func(fr *http2.Framer, id uint32) error) []byte {
		var buf bytes.Buffer
		buf.WriteString(http2.ClientPreface)
		fr := http2.NewFramer(&buf, nil)
		fr.AllowIllegalWrites = true
		for i := range n {
			if err := each(fr, uint32(2*i+1)); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Bytes()
	}
	headers := func(fr *http2.Framer, id uint32, end bool) error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: bytes.Repeat([]byte{8}, 40), EndHeaders: true, EndStream: end})
	}
	update := func(inc uint32) func(*http2.Framer, uint32) error {
		return func(fr *http2.Framer, id uint32) error {
			if err := headers(fr, id, false); err != nil {
				return err
			}
			return fr.WriteWindowUpdate(id, inc)
		}
	}
	dataAfterEnd := func(fr *http2.Framer, id uint32) error {
		if err := headers(fr, id, true); err != nil {
			return err
		}
		return fr.WriteData(id, false, []byte{0})
	}
	request := func(fr *http2.Framer, id uint32) error {
		if err := headers(fr, id, false); err != nil {
			return err
		}
		return fr.WriteData(id, true, bytes.Repeat([]byte{0}, 30))
	}
	connUpdate := func(fr *http2.Framer, _ uint32) error { return fr.WriteWindowUpdate(0, 1<<20) }
	for _, c := range []struct {
		name      string
		data      []byte
		wantAbuse bool
	}{
		{"window update of 0 within the burst", stream(10, update(0)), false},
		{"window update of 0 beyond the burst", stream(30, update(0)), true},
		{"window update of 0 with the reserved bit set", stream(30, update(1<<31)), true},
		{"other window updates", stream(3000, update(1<<20)), false},
		{"connection window updates", stream(3000, connUpdate), false},
		{"DATA after the end of the stream within the burst", stream(10, dataAfterEnd), false},
		{"DATA after the end of the stream beyond the burst", stream(30, dataAfterEnd), true},
		{"requests", stream(3000, request), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			abused := false
			w := newResetWatcher(&chunkConn{data: c.data, rnd: rand.New(rand.NewPCG(3, 4))}, 1, func() { abused = true })
			_, err := io.Copy(io.Discard, w)
			if abused != c.wantAbuse || c.wantAbuse != errors.Is(err, errTooManyResets) {
				t.Fatalf("abuse %v, read error %v; want abuse %v", abused, err, c.wantAbuse)
			}
		})
	}
}

// addrListener hands out one end of a pipe per remote address given, then
// ends (net.ErrClosed).
type addrListener struct {
	net.Listener
	remotes []string
	served  []net.Conn // the client ends, to see which were closed
}

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

func (l *addrListener) Accept() (net.Conn, error) {
	if len(l.remotes) == 0 {
		return nil, net.ErrClosed
	}
	server, client := net.Pipe()
	l.served = append(l.served, client)
	addr := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(l.remotes[0]))
	l.remotes = l.remotes[1:]
	return remoteConn{Conn: server, remote: addr}, nil
}

// TestConnLimiterCountsAnIPv6ClientByItsPrefix: an IPv6 host is given a
// whole /64 and can connect from as many of its addresses as it likes, so
// grpc.maxConnectionsPerAddress counts a /64 as one client address (as the
// audit log's coalescing does); IPv4 addresses (and IPv4-mapped ones) count
// one by one.
func TestConnLimiterCountsAnIPv6ClientByItsPrefix(t *testing.T) {
	lis := &addrListener{remotes: []string{
		"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8::3]:1", // one /64: the third is refused
		"[2001:db8:0:1::1]:1",                             // another /64
		"10.0.0.1:1", "10.0.0.2:1", "[::ffff:10.0.0.3]:1", // three IPv4 clients
	}}
	l := newConnLimiter(lis, 2, 0, slog.New(slog.DiscardHandler))
	var accepted []net.Conn
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
		accepted = append(accepted, c)
	}
	var got []string
	for _, c := range accepted {
		got = append(got, c.RemoteAddr().String())
	}
	want := []string{"[2001:db8::1]:1", "[2001:db8::2]:1", "[2001:db8:0:1::1]:1", "10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"}
	if !slices.Equal(got, want) {
		t.Fatalf("accepted %v, want %v", got, want)
	}
	if _, err := lis.served[2].Read(make([]byte, 1)); err == nil {
		t.Fatal("the third connection from one /64 was not closed")
	}
}
