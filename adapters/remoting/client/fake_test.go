package client_test

import (
	"bufio"
	"net"
	"sync"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// fakeBroker is a net.Listener on loopback whose connections are served by
// a test's function; it stands in for a broker that misbehaves on demand.
type fakeBroker struct {
	ln       net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	closed   bool // close() began: connections accepted since are closed at once
}

// peer is one accepted connection, with framing helpers.
type peer struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
	mu sync.Mutex // serializes writes
}

func (p *peer) read() (*remoting.Command, error) { return remoting.ReadCommand(p.br, 0) }

func (p *peer) write(cmd *remoting.Command) error {
	b, err := remoting.AppendCommand(nil, cmd)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err = p.nc.Write(b)
	return err
}

// answerEach reads the requests on the connection until it ends and writes
// what handle returns for each (nil: no answer).
func (p *peer) answerEach(handle func(req *remoting.Command) *remoting.Command) {
	for {
		req, err := p.read()
		if err != nil {
			return
		}
		if resp := handle(req); resp != nil {
			_ = p.write(resp)
		}
	}
}

func (p *peer) writeRaw(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.nc.Write(b)
	return err
}

// answer returns a success answer to req with remark.
func answer(req *remoting.Command, remark string) *remoting.Command {
	return &remoting.Command{Code: 0, Opaque: req.Opaque, Flag: remoting.FlagResponse, Remark: remark, Version: 479}
}

func newFakeBroker(t testing.TB, serve func(p *peer)) *fakeBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return fakeBrokerOn(t, ln, serve)
}

// fakeBrokerOn is newFakeBroker on a listener of the test's (a TLS one).
func fakeBrokerOn(t testing.TB, ln net.Listener, serve func(p *peer)) *fakeBroker {
	fb := &fakeBroker{ln: ln}
	fb.wg.Add(1)
	go func() {
		defer fb.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			fb.mu.Lock()
			if fb.closed {
				// Accepted just before close() closed the listener, and
				// after it closed the connections it knew: nothing would
				// close this one, and close() would wait for its server
				// for as long as the client keeps it open.
				fb.mu.Unlock()
				nc.Close()
				return
			}
			fb.conns = append(fb.conns, nc)
			fb.accepted++
			fb.mu.Unlock()
			fb.wg.Add(1)
			go func() {
				defer fb.wg.Done()
				defer nc.Close()
				serve(&peer{t: t, nc: nc, br: bufio.NewReader(nc)})
			}()
		}
	}()
	t.Cleanup(fb.close)
	return fb
}

func (fb *fakeBroker) addr() string { return fb.ln.Addr().String() }

func (fb *fakeBroker) acceptedConns() int {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.accepted
}

func (fb *fakeBroker) close() {
	fb.ln.Close()
	fb.mu.Lock()
	fb.closed = true
	for _, c := range fb.conns {
		c.Close()
	}
	fb.mu.Unlock()
	fb.wg.Wait()
}

// echo answers every request with its "n" field as remark, each from its
// own goroutine (so answers come out of order).
func echo(p *peer) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		req, err := p.read()
		if err != nil {
			return
		}
		if req.IsOneway() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.write(answer(req, req.Fields.Value("n")))
		}()
	}
}

// closeConns closes the connections accepted so far, as a peer going away
// would; the listener stays open.
func (fb *fakeBroker) closeConns() {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	for _, c := range fb.conns {
		c.Close()
	}
}
