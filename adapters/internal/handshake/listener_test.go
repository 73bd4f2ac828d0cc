package handshake_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/internal/handshake"
	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// serverConfig returns a TLS configuration of a self-signed certificate
// for 127.0.0.1 offering ALPN http/1.1 only (as the admin API's), and a
// pool that trusts it.
func serverConfig(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	c := certtest.SelfSigned(t, certtest.Spec{Serial: 1, Hosts: []string{"127.0.0.1"}, Root: true})
	return &tls.Config{Certificates: []tls.Certificate{c.TLS()}, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}, c.Pool()
}

// tlsInfo is what the handler saw of a request's TLS state.
type tlsInfo struct {
	set   bool
	proto string
}

// serve runs a real net/http server over a handshake.Listener of cfg with
// timeout on 127.0.0.1:0; net/http's ErrorLog is discarded, so nothing
// that is counted can come from what net/http logs. It returns the
// address, the failures and the server's log; every request's TLS state
// is sent to seen. Cleanup stops the server.
func serve(t *testing.T, cfg *tls.Config, timeout time.Duration, seen chan<- tlsInfo) (string, *handshake.Failures, *logbuf.Buffer) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	failures := handshake.NewFailures(slog.New(slog.NewTextHandler(logs, nil)))
	ln := handshake.NewListener(inner, cfg, timeout, failures)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := tlsInfo{set: r.TLS != nil}
			if r.TLS != nil {
				info.proto = r.TLS.NegotiatedProtocol
			}
			select {
			case seen <- info:
			default:
			}
			_, _ = io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-done
	})
	return ln.Addr().String(), failures, logs
}

// get makes a GET / over HTTPS with tc (and HTTP/2 allowed, so that the
// ALPN the server picks shows) and returns the response's protocol.
func get(addr string, tc *tls.Config) (string, error) {
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status)
	}
	return resp.Proto, nil
}

// TestListenerCountsFailuresWithoutTheServersLog: a net/http server over
// the listener whose ErrorLog is discarded still has its failed TLS
// handshakes counted by reason and logged (with the fields of the gRPC
// port's lines): a client below minVersion, a plaintext HTTP request (it
// gets a 400), a handshake record that is no ClientHello; a connection
// closed before it sent a byte is not counted. A completed handshake
// reaches the handler as before: r.TLS set, ALPN http/1.1 (the client
// offered h2 too).
func TestListenerCountsFailuresWithoutTheServersLog(t *testing.T) {
	cfg, roots := serverConfig(t)
	seen := make(chan tlsInfo, 1)
	addr, failures, logs := serve(t, cfg, 10*time.Second, seen)

	if proto, err := get(addr, &tls.Config{RootCAs: roots}); err != nil || proto != "HTTP/1.1" {
		t.Fatalf("a TLS 1.3 client offering h2 and http/1.1: %q, %v; want HTTP/1.1", proto, err)
	}
	if info := <-seen; !info.set || info.proto != "http/1.1" {
		t.Fatalf("the handler saw r.TLS set %v, ALPN %q; want true, http/1.1", info.set, info.proto)
	}

	probe, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = probe.Close()
	if _, err := get(addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2 client of a TLS 1.3 listener was served")
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Client sent an HTTP request to an HTTPS server") {
		t.Fatalf("plain HTTP: %s %q, want 400 saying so", resp.Status, body)
	}
	garbage, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = garbage.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5})
	_ = garbage.SetReadDeadline(time.Now().Add(time.Minute))
	_, _ = io.Copy(io.Discard, garbage) // until the listener closes it
	_ = garbage.Close()

	want := map[handshake.Reason]uint64{handshake.TLSVersion: 1, handshake.PlaintextOnTLSPort: 1, handshake.TLS: 1}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the three failed handshakes counted", func() bool {
		for r := range handshake.NumReasons {
			if failures.Count(r) != want[r] {
				return false
			}
		}
		return true
	})
	out := logs.String()
	for r := range want {
		if !strings.Contains(out, `msg="connection closed during its handshake" remote_addr=127.0.0.1:`) ||
			!strings.Contains(out, "reason="+r.String()+" error=") {
			t.Errorf("reason %s is not logged with the remote address and the error:\n%s", r, out)
		}
	}
	if !strings.Contains(out, `error="client sent an HTTP request to an HTTPS server"`) {
		t.Errorf("the plaintext request is not logged as before:\n%s", out)
	}
}

// TestStalledHandshakesTimeOut: clients that connect and send nothing,
// or half a ClientHello, are closed once the handshake timeout passes and
// counted (and logged) as timeouts.
func TestStalledHandshakesTimeOut(t *testing.T) {
	cfg, _ := serverConfig(t)
	addr, failures, logs := serve(t, cfg, 50*time.Millisecond, make(chan tlsInfo, 1))
	for _, first := range [][]byte{nil, {0x16, 0x03, 0x01, 0x01, 0x00, 0x01}} { // silent; a ClientHello cut short
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.Copy(io.Discard, c); err != nil { // until the listener closes it
			t.Fatalf("a stalled client was not closed by the listener: %v", err)
		}
	}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "two timeouts counted", func() bool {
		return failures.Count(handshake.Timeout) == 2
	})
	if out := logs.String(); !strings.Contains(out, "reason=timeout") || !strings.Contains(out, "i/o timeout") {
		t.Errorf("the timeout is not logged as an i/o timeout:\n%s", out)
	}
}

// TestStalledHandshakesDoNotDelayAClient: with a handshake timeout longer
// than the test, a served client does not wait for stalled ones, and
// closing the listener ends their handshakes (closes their connections)
// without counting them; goleak checks no goroutine is left.
func TestStalledHandshakesDoNotDelayAClient(t *testing.T) {
	cfg, roots := serverConfig(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	failures := handshake.NewFailures(slog.New(slog.DiscardHandler))
	ln := handshake.NewListener(inner, cfg, time.Hour, failures)
	defer ln.Close()
	addr := ln.Addr().String()
	var stalled []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stalled = append(stalled, c)
	}
	errs := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err == nil {
			err = c.Close()
		}
		errs <- err
	}()
	c, err := ln.Accept() // the handshaken client, while three stall
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := c.(*tls.Conn)
	if !ok || !tc.ConnectionState().HandshakeComplete {
		t.Fatalf("Accept returned %T, want a *tls.Conn whose handshake completed", c)
	}
	_ = c.Close()
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range stalled {
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("a stalled handshake was not ended by Close: %v", err)
		}
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	for r := range handshake.NumReasons {
		if n := failures.Count(r); n != 0 {
			t.Errorf("%d %s counted for handshakes ended by Close", n, r)
		}
	}
}
