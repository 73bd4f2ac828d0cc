package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c := client.New(cfg)
	t.Cleanup(func() { c.Close() })
	return c
}

func request(n string) *remoting.Command {
	return remoting.NewRequest(remoting.RequestHeartBeat, remoting.Fields{{Key: "n", Value: n}}, nil)
}

// invoke makes a call that must not fail.
func invoke(t *testing.T, c *client.Client, addr, n string) {
	t.Helper()
	if _, err := c.Invoke(t.Context(), addr, request(n)); err != nil {
		t.Fatal(err)
	}
}

func asError(t *testing.T, err error) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *client.Error", err, err)
	}
	return ce
}

func TestInvokeMatchesAnswersByOpaque(t *testing.T) {
	fb := newFakeBroker(t, echo)
	c := newClient(t, client.Config{ConnsPerAddr: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := strconv.Itoa(i)
			resp, err := c.Invoke(t.Context(), fb.addr(), request(n))
			if err == nil && resp.Remark != n {
				err = fmt.Errorf("call %s got answer %q", n, resp.Remark)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := fb.acceptedConns(); got > 2 {
		t.Fatalf("%d connections for a pool of 2", got)
	}
}

func TestPeerRequests(t *testing.T) {
	got := make(chan *remoting.Command, 2)
	handler := func(ctx context.Context, addr string, req *remoting.Command) *remoting.Command {
		got <- req
		return remoting.NewResponse(req, remoting.ResponseSuccess, "handled "+strconv.Itoa(int(req.Code)))
	}
	results := make(chan error, 1)
	fb := newFakeBroker(t, func(p *peer) {
		results <- func() error {
			req, err := p.read() // the client's first call opens the connection
			if err != nil {
				return err
			}
			// A oneway CHECK_TRANSACTION_STATE: handled, never answered.
			check := remoting.NewRequest(remoting.RequestCheckTransactionState, remoting.Fields{{Key: "msgId", Value: "m1"}}, []byte("half"))
			check.Flag, check.Opaque = remoting.FlagOneway, 100
			// GET_CONSUMER_RUNNING_INFO expects an answer with its opaque.
			info := remoting.NewRequest(remoting.RequestGetConsumerRunningInfo, nil, nil)
			info.Opaque = 101
			unknown := remoting.NewRequest(999, nil, nil)
			unknown.Opaque = 102
			for _, r := range []*remoting.Command{check, info, unknown} {
				if err := p.write(r); err != nil {
					return err
				}
			}
			answers := map[int32]*remoting.Command{}
			for len(answers) < 2 {
				a, err := p.read()
				if err != nil {
					return err
				}
				if !a.IsResponse() {
					return fmt.Errorf("expected answers, got request %d", a.Code)
				}
				answers[a.Opaque] = a
			}
			if a := answers[101]; a == nil || a.Remark != "handled 307" {
				return fmt.Errorf("running info answer %+v", a)
			}
			if a := answers[102]; a == nil || a.Code != int32(remoting.ResponseRequestCodeNotSupported) || a.Remark != " request type 999 not supported" {
				return fmt.Errorf("unknown code answer %+v", a)
			}
			if _, ok := answers[100]; ok {
				return errors.New("a oneway request was answered")
			}
			return p.write(answer(req, "done"))
		}()
	})
	c := newClient(t, client.Config{Handlers: map[remoting.RequestCode]client.Handler{
		remoting.RequestCheckTransactionState:  handler,
		remoting.RequestGetConsumerRunningInfo: handler,
	}})
	resp, err := c.Invoke(t.Context(), fb.addr(), request("x"))
	if err != nil || resp.Remark != "done" {
		t.Fatalf("%+v %v", resp, err)
	}
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	codes := map[int32]bool{}
	for i := 0; i < 2; i++ {
		r := <-got
		codes[r.Code] = true
		if r.Code == int32(remoting.RequestCheckTransactionState) && (r.Fields.Value("msgId") != "m1" || string(r.Body) != "half") {
			t.Fatalf("check request %+v", r)
		}
	}
	if !codes[39] || !codes[307] {
		t.Fatalf("handled %v", codes)
	}
}

// A broker that misbehaves must not crash or wedge the client: each case
// ends with a retryable *Error, and the next call succeeds on a new
// connection.
func TestMisbehavingPeer(t *testing.T) {
	tests := []struct {
		name      string
		misbehave func(p *peer, req *remoting.Command)
		kind      client.Kind
	}{
		{"answers garbage", func(p *peer, req *remoting.Command) {
			_ = p.writeRaw([]byte{0, 0, 0, 12, 9, 0, 0, 4, 'j', 'u', 'n', 'k', 0, 0, 0, 0})
		}, client.KindConnection},
		{"answers a huge length", func(p *peer, req *remoting.Command) {
			_ = p.writeRaw([]byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0})
		}, client.KindConnection},
		{"closes mid-frame", func(p *peer, req *remoting.Command) {
			b, _ := remoting.AppendCommand(nil, answer(req, "half"))
			_ = p.writeRaw(b[:len(b)/2])
		}, client.KindConnection},
		{"closes without answering", func(p *peer, req *remoting.Command) {}, client.KindConnection},
		{"never answers", func(p *peer, req *remoting.Command) {
			_, _ = p.read() // hold the connection open until the client gives up
		}, client.KindTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			fb := newFakeBroker(t, func(p *peer) {
				for {
					req, err := p.read()
					if err != nil {
						return
					}
					if calls.Add(1) == 1 {
						tt.misbehave(p, req)
						return // and close the connection
					}
					_ = p.write(answer(req, "ok"))
				}
			})
			c := newClient(t, client.Config{ConnsPerAddr: 1, ReconnectMin: time.Millisecond, ReconnectMax: time.Millisecond})
			// The budget covers the dial too: a loaded machine has taken
			// more than 20 ms to connect on loopback (CI).
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err := c.Invoke(ctx, fb.addr(), request("1"))
			ce := asError(t, err)
			if ce.Kind != tt.kind || !ce.Retryable() || !ce.MaybeDelivered() {
				t.Fatalf("error %v: kind %v retryable %v delivered %v", err, ce.Kind, ce.Retryable(), ce.MaybeDelivered())
			}
			waitfor.Condition(t, 5*time.Second, 5*time.Millisecond, func() error {
				resp, err := c.Invoke(t.Context(), fb.addr(), request("2"))
				if err != nil {
					return err
				}
				if resp.Remark != "ok" {
					return fmt.Errorf("answer %q", resp.Remark)
				}
				return nil
			})
		})
	}
}

func TestInFlightBound(t *testing.T) {
	release := make(chan struct{})
	fb := newFakeBroker(t, func(p *peer) {
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			if req.Fields.Value("n") == "held" {
				go func() {
					select {
					case <-release:
					case <-time.After(10 * time.Second):
					}
					_ = p.write(answer(req, "held"))
				}()
				return nil
			}
			return answer(req, "ok")
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 1, MaxInFlight: 1})
	// Connect first: a probe below with its 20 ms budget must wait for the
	// slot, not be cut short while dialing on a loaded machine.
	invoke(t, c, fb.addr(), "warm")
	first := make(chan error, 1)
	go func() {
		resp, err := c.Invoke(t.Context(), fb.addr(), request("held"))
		if err == nil && resp.Remark != "held" {
			err = fmt.Errorf("answer %q", resp.Remark)
		}
		first <- err
	}()
	// Wait until the first call holds the only slot: a second call then
	// waits and ends with its context, unsent.
	waitfor.Condition(t, 5*time.Second, 5*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Invoke(ctx, fb.addr(), request("second"))
		if err == nil {
			return errors.New("second call got through: first not yet in flight")
		}
		ce := asError(t, err)
		if ce.Kind != client.KindTimeout {
			t.Fatalf("second call: %v", err)
		}
		if ce.MaybeDelivered() {
			// It took the slot before the first call and was sent, then
			// its answer came later than its 20 ms (a loaded machine).
			return errors.New("second call was sent: first not yet in flight")
		}
		return nil
	})
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	invoke(t, c, fb.addr(), "third")
}

func TestReconnectBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var dials atomic.Int32
	dial := func(ctx context.Context, a string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", a)
	}
	c := newClient(t, client.Config{ConnsPerAddr: 1, ReconnectMin: time.Hour, Dial: dial})
	_, err = c.Invoke(t.Context(), addr, request("1"))
	if ce := asError(t, err); ce.Kind != client.KindDial || !ce.Retryable() || ce.MaybeDelivered() {
		t.Fatalf("first: %v", err)
	}
	_, err = c.Invoke(t.Context(), addr, request("2"))
	if ce := asError(t, err); ce.Kind != client.KindDial || dials.Load() != 1 {
		t.Fatalf("second call during back-off: %v after %d dials", err, dials.Load())
	}

	// With a short back-off the client reconnects once the broker is up.
	c2 := newClient(t, client.Config{ConnsPerAddr: 1, ReconnectMin: time.Millisecond, ReconnectMax: 2 * time.Millisecond})
	fb := newFakeBroker(t, echo)
	bad := "127.0.0.1:1"
	if _, err := c2.Invoke(t.Context(), bad, request("x")); err == nil {
		t.Fatal("dial to port 1 succeeded")
	}
	waitfor.Condition(t, 5*time.Second, 5*time.Millisecond, func() error {
		_, err := c2.Invoke(t.Context(), fb.addr(), request("y"))
		return err
	})
}

func TestGoAwayMovesToANewConnection(t *testing.T) {
	var first atomic.Bool
	first.Store(true)
	fb := newFakeBroker(t, func(p *peer) {
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			resp := answer(req, "ok")
			if first.CompareAndSwap(true, false) {
				resp.Code = int32(remoting.ResponseGoAway)
			}
			return resp
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 1})
	resp, err := c.Invoke(t.Context(), fb.addr(), request("1"))
	if err != nil || remoting.Expect(resp) == nil || !remoting.Expect(resp).(*remoting.ResponseError).Retryable() {
		t.Fatalf("%+v %v", resp, err)
	}
	invoke(t, c, fb.addr(), "2")
	if n := fb.acceptedConns(); n != 2 {
		t.Fatalf("%d connections after GO_AWAY, want 2", n)
	}
}

func TestOnewayAndSigning(t *testing.T) {
	cred := remoting.Credentials{AccessKey: "rocketmq2", SecretKey: "12345678"}
	got := make(chan *remoting.Command, 1)
	fb := newFakeBroker(t, func(p *peer) {
		req, err := p.read()
		if err == nil {
			got <- req
		}
		_, _ = p.read()
	})
	c := newClient(t, client.Config{Sign: cred.Sign})
	req := remoting.NewRequest(remoting.RequestEndTransaction, remoting.Fields{{Key: "topic", Value: "TopicTest"}}, nil)
	if err := c.InvokeOneway(t.Context(), fb.addr(), req); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if !r.IsOneway() || r.Fields.Value("Signature") != "GeeGoP9mRvDhoVp4PD5omX0prgE=" || r.Fields.Value("AccessKey") != "rocketmq2" {
		t.Fatalf("%+v", r)
	}
}

func TestCloseEndsCallsInProgress(t *testing.T) {
	fb := newFakeBroker(t, func(p *peer) { _, _ = p.read(); _, _ = p.read() })
	c := client.New(client.Config{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Invoke(context.Background(), fb.addr(), request("1"))
		done <- err
	}()
	waitfor.Condition(t, 5*time.Second, 5*time.Millisecond, func() error {
		if fb.acceptedConns() == 0 {
			return errors.New("not connected yet")
		}
		return nil
	})
	c.Close()
	err := <-done
	if ce := asError(t, err); ce.Kind != client.KindClosed && ce.Kind != client.KindConnection {
		t.Fatalf("%v", err)
	}
	_, err = c.Invoke(t.Context(), fb.addr(), request("2"))
	if ce := asError(t, err); ce.Kind != client.KindClosed || ce.Retryable() {
		t.Fatalf("after close: %v", err)
	}
}

func TestTLS(t *testing.T) {
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	fb := fakeBrokerOn(t, ln, echo)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	c := newClient(t, client.Config{TLS: &tls.Config{RootCAs: pool}})
	resp, err := c.Invoke(t.Context(), fb.addr(), request("tls"))
	if err != nil || resp.Remark != "tls" {
		t.Fatalf("%+v %v", resp, err)
	}
	plain := newClient(t, client.Config{TLS: &tls.Config{}}) // no trust in the cert
	if _, err := plain.Invoke(t.Context(), fb.addr(), request("x")); asError(t, err).Kind != client.KindDial ||
		!strings.Contains(err.Error(), "TLS handshake failed") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	// A peer without TLS (a NameServer or broker with tls.server.mode
	// disabled) closes the connection on the ClientHello: the error said
	// only "EOF".
	noTLS := newFakeBroker(t, echo)
	if _, err := c.Invoke(t.Context(), noTLS.addr(), request("x")); asError(t, err).Kind != client.KindDial ||
		!strings.Contains(err.Error(), "TLS handshake failed") || !strings.Contains(err.Error(), "does it serve TLS?") {
		t.Fatalf("peer without TLS: %v", err)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	return certtest.SelfSigned(t, certtest.Spec{Serial: 1, Hosts: []string{"127.0.0.1"}}).TLS()
}

// TestLateAnswer: the answer to a call whose caller gave up goes to the
// call's late handler (a POP_MESSAGE's messages are released there), and
// is dropped for a call without one.
func TestLateAnswer(t *testing.T) {
	release := make(chan struct{})
	fb := newFakeBroker(t, func(p *peer) {
		for {
			req, err := p.read()
			if err != nil {
				return
			}
			<-release
			if err := p.write(answer(req, req.Fields.Value("n"))); err != nil {
				return
			}
		}
	})
	c := newClient(t, client.Config{})
	late := make(chan string, 2)
	for _, n := range []string{"with-handler", "without"} {
		var h client.LateHandler
		if n == "with-handler" {
			h = func(_ context.Context, addr string, req, resp *remoting.Command) {
				if addr != fb.addr() {
					t.Errorf("late answer from %s, want %s", addr, fb.addr())
				}
				if req.Opaque != resp.Opaque || req.Fields.Value("n") != resp.Remark {
					t.Errorf("late answer %q (opaque %d) handed with the request of %q (opaque %d)", resp.Remark, resp.Opaque, req.Fields.Value("n"), req.Opaque)
				}
				late <- resp.Remark
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := c.InvokeWithLate(ctx, fb.addr(), request(n), h)
		cancel()
		if ce := asError(t, err); ce.Kind != client.KindTimeout {
			t.Fatalf("%s: %v, want a timeout", n, err)
		}
	}
	close(release)
	select {
	case got := <-late:
		if got != "with-handler" {
			t.Fatalf("late handler got the answer to %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer never reached its handler")
	}
	// The connection still serves calls after the late answers.
	resp, err := c.Invoke(t.Context(), fb.addr(), request("after"))
	if err != nil || resp.Remark != "after" {
		t.Fatalf("call after the late answers: %v %v", resp, err)
	}
	select {
	case got := <-late:
		t.Fatalf("a second late answer %q reached the handler", got)
	default:
	}
}

// TestPinnedCallsShareOneConnection: pinned calls (HEART_BEAT and
// UNREGISTER_CLIENT, whose registrations a broker keeps per connection)
// all go on one connection of the pool, whichever connection other calls
// take, also after that connection is replaced.
func TestPinnedCallsShareOneConnection(t *testing.T) {
	fb := newFakeBroker(t, nameConnection)
	c := newClient(t, client.Config{ConnsPerAddr: 2, ReconnectMin: time.Millisecond})
	via := func(pinned bool) string {
		t.Helper()
		call := c.Invoke
		if pinned {
			call = c.InvokePinned
		}
		resp, err := call(t.Context(), fb.addr(), request("x"))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Remark
	}
	round := func() (pinned, others map[string]bool) {
		pinned, others = map[string]bool{}, map[string]bool{}
		for range 20 {
			others[via(false)] = true
			pinned[via(true)] = true
			others[via(false)] = true
		}
		return pinned, others
	}
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error { // the pool fills up (see TestPoolFillsUp)
		_, others := round()
		if len(others) != 2 {
			return fmt.Errorf("unpinned calls used %d connections of a pool of 2", len(others))
		}
		return nil
	})
	pinned, others := round()
	if len(others) != 2 {
		t.Fatalf("unpinned calls used %d connections of a pool of 2", len(others))
	}
	if len(pinned) != 1 {
		t.Fatalf("pinned calls used %d connections: %v", len(pinned), pinned)
	}
	// The pinned connection is lost: pinned calls move to its replacement
	// together.
	fb.mu.Lock()
	for _, nc := range fb.conns {
		if pinned[nc.RemoteAddr().String()] {
			nc.Close()
		}
	}
	fb.mu.Unlock()
	var again map[string]bool
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		if _, err := c.InvokePinned(t.Context(), fb.addr(), request("x")); err != nil {
			return err
		}
		again, _ = round()
		if len(again) != 1 {
			return fmt.Errorf("pinned calls used %d connections after a reconnect: %v", len(again), again)
		}
		return nil
	})
	for a := range again {
		if pinned[a] {
			t.Fatalf("pinned calls still go on the closed connection %s", a)
		}
	}
}

// nameConnection answers each request with the address of the connection
// it came on (the client's end).
func nameConnection(p *peer) {
	for {
		req, err := p.read()
		if err != nil {
			return
		}
		if err := p.write(answer(req, p.nc.RemoteAddr().String())); err != nil {
			return
		}
	}
}

// TestPoolFillsUp: one call after the other (never racing for a first
// connection), the calls end up spread over as many connections as the
// pool holds, and no more are opened.
func TestPoolFillsUp(t *testing.T) {
	fb := newFakeBroker(t, nameConnection)
	c := newClient(t, client.Config{ConnsPerAddr: 3})
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		seen := map[string]bool{}
		for range 30 {
			resp, err := c.Invoke(t.Context(), fb.addr(), request("x"))
			if err != nil {
				return err
			}
			seen[resp.Remark] = true
		}
		if len(seen) != 3 {
			return fmt.Errorf("30 calls in a row used %d connections of a pool of 3", len(seen))
		}
		return nil
	})
	if n := fb.acceptedConns(); n != 3 {
		t.Fatalf("%d connections accepted for a pool of 3", n)
	}
}

// TestLongPollsTakeNoInFlightSlot: polls a broker holds (here all it is
// sent of them, as many as the pool has slots) do not keep a quick request
// waiting for a slot; the quick requests themselves are still bounded.
func TestLongPollsTakeNoInFlightSlot(t *testing.T) {
	polls := make(chan struct{}, 64)
	fb := newFakeBroker(t, func(p *peer) {
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			if remoting.RequestCode(req.Code) == remoting.RequestPopMessage {
				polls <- struct{}{}
				return nil // held until the test ends
			}
			return answer(req, "ok")
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 2, MaxInFlight: 4})
	pollCtx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop() // runs before the wait
	// Twice the pool's slots.
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.InvokeLongPoll(pollCtx, fb.addr(), remoting.NewRequest(remoting.RequestPopMessage, nil, nil), nil)
		}()
	}
	for range 16 {
		select {
		case <-polls:
		case <-time.After(10 * time.Second):
			t.Fatal("the broker did not get every long poll: they waited for slots")
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if resp, err := c.Invoke(ctx, fb.addr(), remoting.NewRequest(remoting.RequestAckMessage, nil, nil)); err != nil || resp.Remark != "ok" {
		t.Fatalf("an ack behind held polls: %+v, %v", resp, err)
	}
}

// TestEndedContextSendsNothing: a call whose context has already ended is
// not written to the peer (Go's select picks at random among ready cases,
// so without a check a quarter of such calls still went out), and it says
// so: not delivered.
func TestEndedContextSendsNothing(t *testing.T) {
	var dead atomic.Int32
	fb := newFakeBroker(t, func(p *peer) {
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			if req.Fields.Value("n") == "dead" {
				dead.Add(1)
			}
			if req.IsOneway() {
				return nil
			}
			return answer(req, "ok")
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 1})
	invoke(t, c, fb.addr(), "warm")
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	for i := range 200 {
		var err error
		switch i % 3 {
		case 0:
			_, err = c.Invoke(ended, fb.addr(), request("dead"))
		case 1:
			_, err = c.InvokeLongPoll(ended, fb.addr(), request("dead"), nil)
		default:
			err = c.InvokeOneway(ended, fb.addr(), request("dead"))
		}
		if ce := asError(t, err); ce.Kind != client.KindCanceled || ce.MaybeDelivered() {
			t.Fatalf("call %d with an ended context: %v (delivered %v)", i, err, ce.MaybeDelivered())
		}
	}
	// One connection writes in order: the broker has read every earlier
	// frame when it answers this one.
	invoke(t, c, fb.addr(), "sync")
	if n := dead.Load(); n != 0 {
		t.Fatalf("%d of 200 calls with an ended context reached the broker", n)
	}
}

// TestSilentConnectionIsReplaced: a peer that stops answering without
// closing the connection (a lost network path) does not keep every later
// call timing out on that connection: once a call's deadline passes after
// the peer was silent for SilenceTimeout, the connection is dropped and
// the next call gets a new one.
func TestSilentConnectionIsReplaced(t *testing.T) {
	var conns atomic.Int32
	fb := newFakeBroker(t, func(p *peer) {
		silent := conns.Add(1) == 1
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			if silent {
				return nil
			}
			return answer(req, "ok")
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 1, SilenceTimeout: 100 * time.Millisecond})
	waitfor.Condition(t, 10*time.Second, time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := c.Invoke(ctx, fb.addr(), request("x"))
		return err
	})
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want the silent one and its replacement", n)
	}
}

// TestSlowAnswerOnALiveConnection: a call that times out on a connection
// whose peer answers other calls meanwhile does not drop it, however
// short SilenceTimeout is.
func TestSlowAnswerOnALiveConnection(t *testing.T) {
	gotSlow := make(chan struct{})
	fb := newFakeBroker(t, func(p *peer) {
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			if req.Fields.Value("n") == "slow" {
				close(gotSlow) // and never answered
				return nil
			}
			return answer(req, "ok")
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 1, SilenceTimeout: time.Millisecond})
	invoke(t, c, fb.addr(), "warm")
	slow := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := c.Invoke(ctx, fb.addr(), request("slow"))
		slow <- err
	}()
	<-gotSlow
	// An answer read after the slow call was written: the peer is alive.
	invoke(t, c, fb.addr(), "fast")
	if ce := asError(t, <-slow); ce.Kind != client.KindTimeout {
		t.Fatalf("slow call: %v", ce)
	}
	invoke(t, c, fb.addr(), "after")
	if n := fb.acceptedConns(); n != 1 {
		t.Fatalf("%d connections: a live one was dropped", n)
	}
}

// TestGoAwayConnectionsAreClosed: a connection the peer answered GO_AWAY on
// takes no new calls and is closed once no call waits on it; it was left
// open, so that a broker answering GO_AWAY through its shutdown grace
// period gathered one open connection per call until it exited.
func TestGoAwayConnectionsAreClosed(t *testing.T) {
	var open atomic.Int32
	fb := newFakeBroker(t, func(p *peer) {
		open.Add(1)
		defer open.Add(-1)
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			resp := answer(req, "go away")
			resp.Code = int32(remoting.ResponseGoAway)
			return resp
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 2})
	for range 20 {
		resp, err := c.Invoke(t.Context(), fb.addr(), request("x"))
		if err != nil || resp.Code != int32(remoting.ResponseGoAway) {
			t.Fatalf("%+v %v", resp, err)
		}
	}
	if n := fb.acceptedConns(); n != 20 {
		t.Fatalf("%d connections for 20 calls answered GO_AWAY, want one each", n)
	}
	waitfor.Condition(t, 5*time.Second, time.Millisecond, func() error {
		if n := open.Load(); n != 0 {
			return fmt.Errorf("%d connections answered GO_AWAY still open", n)
		}
		return nil
	})
}

// TestIdlePoolsAreForgotten: the client kept a pool (its slots and their
// dead connections) for every address it ever dialled, so brokers
// restarted at new addresses (a new pod IP) grew it for the life of the
// process. A pool without a live connection, not asked for within the
// idle time, is forgotten when a new address comes; one with a live
// connection is kept.
func TestIdlePoolsAreForgotten(t *testing.T) {
	c := newClient(t, client.Config{ConnsPerAddr: 2, ReconnectMin: time.Hour, ReconnectMax: time.Hour})
	client.SetPoolIdle(c, 0)
	gone, live := newFakeBroker(t, echo), newFakeBroker(t, echo)
	for _, fb := range []*fakeBroker{gone, live} {
		invoke(t, c, fb.addr(), "1")
	}
	gone.close()
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		if _, err := c.Invoke(t.Context(), gone.addr(), request("2")); err == nil {
			return errors.New("the closed broker still answers")
		}
		return nil
	})
	// New addresses (nothing listens there) each forget the idle pools:
	// the closed broker's, and the previous new address's.
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := ln.Addr().String()
		ln.Close()
		_, _ = c.Invoke(t.Context(), addr, request("3"))
		if n := client.Pools(c); n != 2 {
			return fmt.Errorf("%d pools, want 2 (the live broker's and the latest address's)", n)
		}
		return nil
	})
	if _, err := c.Invoke(t.Context(), live.addr(), request("4")); err != nil {
		t.Fatalf("the live broker's pool: %v", err)
	}
	if n := live.acceptedConns(); n > 2 {
		t.Fatalf("the live broker accepted %d connections: its pool was dropped", n)
	}
}

// TestInvokeWithin: a call bounded by InvokeWithin's timeout times out
// as one bounded by its context's deadline does (the same error, of
// context.DeadlineExceeded), on a pool not connected yet as well (it
// dials); its reused timer does not end the calls after it early, and a
// canceled context still ends a call. A call on a connected pool
// allocates no timer or context of its own.
func TestInvokeWithin(t *testing.T) {
	var late atomic.Int32 // requests that came after their time was over
	fb := newFakeBroker(t, func(p *peer) {
		p.answerEach(func(req *remoting.Command) *remoting.Command {
			if req.Fields.Value("n") == "over" {
				late.Add(1)
			}
			if req.Fields.Value("n") == "never" {
				return nil
			}
			return answer(req, req.Fields.Value("n"))
		})
	})
	c := newClient(t, client.Config{ConnsPerAddr: 1})
	ctx := context.Background()
	if _, err := c.InvokeWithin(ctx, fb.addr(), request("never"), 20*time.Millisecond); asError(t, err).Kind != client.KindTimeout {
		t.Fatalf("unanswered first call (dialling): %v", err)
	}
	_, err := c.InvokeWithin(ctx, fb.addr(), request("never"), 20*time.Millisecond)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, want := c.Invoke(dctx, fb.addr(), request("never"))
	if ce, we := asError(t, err), asError(t, want); !errors.Is(err, context.DeadlineExceeded) || ce.Error() != we.Error() || ce.Retryable() != we.Retryable() {
		t.Fatalf("unanswered call: %v (retryable %v), with a context's deadline %v (%v)", err, ce.Retryable(), want, we.Retryable())
	}
	for i := range 20 { // the timers reused: none fires into a later call
		n := strconv.Itoa(i)
		if resp, err := c.InvokeWithin(ctx, fb.addr(), request(n), time.Minute); err != nil || resp.Remark != n {
			t.Fatalf("call %d after a timeout: %v %v", i, resp, err)
		}
	}
	if _, err := c.InvokeWithin(ctx, fb.addr(), request("over"), 0); asError(t, err).Kind != client.KindTimeout || !asError(t, err).Retryable() {
		t.Fatalf("a call with no time left: %v", err)
	}
	if _, err := c.InvokeWithin(ctx, fb.addr(), request("last"), time.Minute); err != nil || late.Load() != 0 {
		t.Fatalf("a call with no time left was sent (%d), or the next failed: %v", late.Load(), err)
	}
	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if _, err := c.InvokeWithin(canceled, fb.addr(), request("x"), time.Minute); asError(t, err).Kind != client.KindCanceled {
		t.Fatalf("canceled call: %v", err)
	}
	n := testing.AllocsPerRun(50, func() {
		if _, err := c.InvokeWithin(ctx, fb.addr(), request("a"), time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	m := testing.AllocsPerRun(50, func() {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := c.Invoke(cctx, fb.addr(), request("a")); err != nil {
			t.Fatal(err)
		}
	})
	if n > m-3 {
		t.Errorf("InvokeWithin: %v allocations a call, Invoke with a context.WithTimeout %v; want at least 3 fewer", n, m)
	}
}

// TestInvokeLongPollWithin: a long poll bounded by a timeout instead of a
// derived context ends with the same timeout error, hands an answer that
// comes afterwards to its late handler with its request, takes no
// in-flight slot (a quick call behind a held poll on the only connection,
// with one slot, is answered), and makes at least 3 allocations fewer than
// InvokeLongPoll under a context.WithTimeout.
func TestInvokeLongPollWithin(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 2)
	fb := newFakeBroker(t, func(p *peer) {
		var held sync.WaitGroup
		defer held.Wait()
		for {
			req, err := p.read()
			if err != nil {
				return
			}
			if n := req.Fields.Value("n"); strings.HasPrefix(n, "held") {
				arrived <- n
				held.Go(func() {
					<-release
					_ = p.write(answer(req, n))
				})
				continue
			}
			_ = p.write(answer(req, req.Fields.Value("n")))
		}
	})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the fake's own cleanup, which waits for its held answers
	c := newClient(t, client.Config{ConnsPerAddr: 1, MaxInFlight: 1})
	ctx := context.Background()
	if _, err := c.Invoke(t.Context(), fb.addr(), request("warm")); err != nil {
		t.Fatal(err)
	}
	late := make(chan string, 1)
	handler := func(_ context.Context, _ string, req, resp *remoting.Command) {
		late <- req.Fields.Value("n") + "=" + resp.Remark
	}
	_, err := c.InvokeLongPollWithin(ctx, fb.addr(), request("held-1"), 50*time.Millisecond, handler)
	if ce := asError(t, err); ce.Kind != client.KindTimeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("held long poll: %v, want a timeout", err)
	}
	polled := make(chan error, 1)
	go func() {
		_, err := c.InvokeLongPollWithin(ctx, fb.addr(), request("held-2"), time.Minute, nil)
		polled <- err
	}()
	for n := range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("the broker got %d of the 2 long polls", n)
		}
	}
	qctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if resp, err := c.InvokeWithin(qctx, fb.addr(), request("quick"), 10*time.Second); err != nil || resp.Remark != "quick" {
		t.Fatalf("a quick call behind held polls: %v %v", resp, err)
	}
	unblock()
	select {
	case got := <-late:
		if got != "held-1=held-1" {
			t.Fatalf("late handler got %q, want the answer to held-1 with its request", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late answer never reached its handler")
	}
	if err := <-polled; err != nil {
		t.Fatalf("held-2, answered: %v", err)
	}
	n := testing.AllocsPerRun(50, func() {
		if _, err := c.InvokeLongPollWithin(ctx, fb.addr(), request("a"), time.Minute, nil); err != nil {
			t.Fatal(err)
		}
	})
	m := testing.AllocsPerRun(50, func() {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := c.InvokeLongPoll(cctx, fb.addr(), request("a"), nil); err != nil {
			t.Fatal(err)
		}
	})
	if n > m-3 {
		t.Errorf("InvokeLongPollWithin: %v allocations a call, InvokeLongPoll with a context.WithTimeout %v; want at least 3 fewer", n, m)
	}
}

// TestLongPollWithinStress: many long polls at once, bounded by the
// client's pooled timers, some given up by their timer, some by their
// context, some answered in time, with quick calls sharing the timer pool
// in between. Every request the peer received is accounted for exactly
// once: its answer returned to its caller, or handed to its late handler
// with that very request; never both, never neither. A call with a minute
// left that the peer answers at once never times out: a timer that fired
// for an earlier call (or was stopped after firing) does not end a later
// call that reuses it.
func TestLongPollWithinStress(t *testing.T) {
	var (
		mu       sync.Mutex
		received = map[string]bool{}
		returned = map[string]bool{}
		late     = map[string]int{}
		wrongReq atomic.Int32
	)
	fb := newFakeBroker(t, func(p *peer) {
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			req, err := p.read()
			if err != nil {
				return
			}
			n := req.Fields.Value("n")
			mu.Lock()
			received[n] = true
			mu.Unlock()
			d, _ := strconv.Atoi(req.Fields.Value("us"))
			wg.Go(func() {
				time.Sleep(time.Duration(d) * time.Microsecond) // a broker holding the poll
				_ = p.write(answer(req, n))
			})
		}
	})
	c := newClient(t, client.Config{ConnsPerAddr: 2, MaxHandlers: 4096})
	invoke(t, c, fb.addr(), "warm")
	invoke(t, c, fb.addr(), "warm2") // both connections of the pool, usually
	handler := func(_ context.Context, _ string, req, resp *remoting.Command) {
		if req.Opaque != resp.Opaque || req.Fields.Value("n") != resp.Remark {
			wrongReq.Add(1)
		}
		mu.Lock()
		late[resp.Remark]++
		mu.Unlock()
	}
	poll := func(n string, us int) *remoting.Command {
		return remoting.NewRequest(remoting.RequestPopMessage, remoting.Fields{{Key: "n", Value: n}, {Key: "us", Value: strconv.Itoa(us)}}, nil)
	}
	const workers, rounds = 8, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				n := fmt.Sprintf("%d-%d", w, i)
				var resp *remoting.Command
				var err error
				switch i % 4 {
				case 0: // given up by its timer, or just answered in time
					resp, err = c.InvokeLongPollWithin(context.Background(), fb.addr(), poll(n, (i*37)%2000), time.Duration(200+(i*53)%1500)*time.Microsecond, handler)
				case 1: // given up by its context
					ctx, cancel := context.WithCancel(context.Background())
					time.AfterFunc(time.Duration((i*41)%1500)*time.Microsecond, cancel)
					resp, err = c.InvokeLongPollWithin(ctx, fb.addr(), poll(n, (i*29)%2000), time.Minute, handler)
					cancel()
				case 2: // answered at once, with a minute left: must not time out
					resp, err = c.InvokeLongPollWithin(context.Background(), fb.addr(), poll(n, 0), time.Minute, handler)
					if err != nil {
						t.Errorf("long poll %s with a minute left, answered at once: %v", n, err)
					}
				case 3: // a quick call on the same timer pool
					resp, err = c.InvokeWithin(context.Background(), fb.addr(), poll(n, 0), time.Minute)
					if err != nil {
						t.Errorf("quick call %s with a minute left, answered at once: %v", n, err)
					}
				}
				if err == nil {
					if resp.Remark != n {
						t.Errorf("call %s got the answer to %s", n, resp.Remark)
					}
					mu.Lock()
					returned[n] = true
					mu.Unlock()
				} else if k := asError(t, err).Kind; k != client.KindTimeout && k != client.KindCanceled {
					t.Errorf("call %s: %v", n, err)
				}
			}
		})
	}
	wg.Wait()
	// Every request the peer got is answered (within 2 ms): wait until each
	// is accounted for.
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "every answer returned or handed to its late handler", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for n := range received {
			if !returned[n] && late[n] == 0 && !strings.HasPrefix(n, "warm") {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	timedOut := 0
	for n, k := range late {
		timedOut++
		if k != 1 || returned[n] {
			t.Errorf("answer to %s: handed %d times to the late handler, returned to its caller too: %v", n, k, returned[n])
		}
		if !received[n] {
			t.Errorf("late answer to %s, which the peer never got", n)
		}
	}
	if wrongReq.Load() != 0 {
		t.Errorf("%d late answers handed with another request", wrongReq.Load())
	}
	t.Logf("%d requests received, %d answers returned, %d handed to the late handler", len(received), len(returned), timedOut)
}
