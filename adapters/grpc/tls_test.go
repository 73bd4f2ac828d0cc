package grpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

// serveHealthOnly runs a gRPC server with the sniffing credentials and the
// health service on 127.0.0.1:0.
func serveHealthOnly(t *testing.T, cfg TLSConfig) string {
	t.Helper()
	return startServer(t, cfg).Addr().String()
}

// startServer starts a server with cfg on 127.0.0.1:0, stopped when the
// test ends.
func startServer(t *testing.T, cfg TLSConfig) *Server {
	t.Helper()
	c := DefaultConfig()
	c.TLS = cfg
	return startServerOf(t, c)
}

// startServerOf starts a server of c on 127.0.0.1:0, stopped when the test
// ends.
func startServerOf(t *testing.T, c Config) *Server {
	t.Helper()
	c.Address = "127.0.0.1:0"
	log := slog.New(slog.DiscardHandler)
	s, err := NewServer(c, NewService(c, nil, log), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return s
}

func healthCheck(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpclib.NewClient(addr, grpclib.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func TestTLSModes(t *testing.T) {
	tlsClient := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	plain := insecure.NewCredentials()
	for _, c := range []struct {
		mode               string
		tlsOK, plaintextOK bool
	}{
		{TLSPermissive, true, true},
		{TLSEnforcing, true, false},
		{TLSDisabled, false, true},
	} {
		t.Run(c.mode, func(t *testing.T) {
			addr := serveHealthOnly(t, TLSConfig{Mode: c.mode, SelfSignedDir: t.TempDir()})
			if err := healthCheck(addr, tlsClient); (err == nil) != c.tlsOK {
				t.Errorf("TLS client: %v (want ok=%v)", err, c.tlsOK)
			}
			if err := healthCheck(addr, plain); (err == nil) != c.plaintextOK {
				t.Errorf("plaintext client: %v (want ok=%v)", err, c.plaintextOK)
			}
		})
	}
}

func TestSelfSignedIsKeptAndConfiguredCertificateWins(t *testing.T) {
	dir := t.TempDir()
	if _, _, generated, err := serverTLSConfig(TLSConfig{Mode: TLSPermissive, SelfSignedDir: dir}); err != nil || !generated {
		t.Fatalf("first start: generated=%v err=%v", generated, err)
	}
	first, _ := os.ReadFile(filepath.Join(dir, "rmqproxy-selfsigned.crt"))
	if _, _, _, err := serverTLSConfig(TLSConfig{Mode: TLSPermissive, SelfSignedDir: dir}); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(filepath.Join(dir, "rmqproxy-selfsigned.crt"))
	if string(first) != string(second) {
		t.Fatal("the self-signed certificate must be generated once and reused")
	}

	// An operator's certificate replaces the generated one.
	other := t.TempDir()
	cert, key := filepath.Join(other, "op.crt"), filepath.Join(other, "op.key")
	if err := writeSelfSigned(cert, key); err != nil {
		t.Fatal(err)
	}
	addr := serveHealthOnly(t, TLSConfig{Mode: TLSEnforcing, CertFile: cert, KeyFile: key, SelfSignedDir: dir})
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	served := conn.ConnectionState().PeerCertificates[0]
	block, _ := pem.Decode(mustRead(t, cert))
	want, _ := x509.ParseCertificate(block.Bytes)
	if !served.Equal(want) {
		t.Fatal("the server does not present the configured certificate")
	}
}

func TestSlowOrSilentConnectionsDoNotBlockOthers(t *testing.T) {
	addr := serveHealthOnly(t, TLSConfig{Mode: TLSPermissive, SelfSignedDir: t.TempDir()})
	silent, err := net.Dial("tcp", addr) // never sends a byte
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if err := healthCheck(addr, insecure.NewCredentials()); err != nil {
		t.Fatalf("a silent connection blocked a new one: %v", err)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConnIndexForgetsConnectionsClosedByGRPC: when gRPC fails after a
// successful handshake but before its transport is built, it closes the
// connection it accepted, not the one the handshake returned; the index of
// connections by client address (frameSender's closeConn) must forget it
// all the same. A connection still served is found and closed by address.
func TestConnIndexForgetsConnectionsClosedByGRPC(t *testing.T) {
	for _, mode := range []string{TLSDisabled, TLSPermissive} {
		t.Run(mode, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.TLS.Mode = mode
			cfg.TLS.SelfSignedDir = t.TempDir()
			log := slog.New(slog.DiscardHandler)
			srv, err := NewServer(cfg, NewService(cfg, nil, log), log)
			if err != nil {
				t.Fatal(err)
			}
			inner, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			lis := srv.listener(inner)
			defer lis.Close()
			// accept handshakes one connection as gRPC does and returns
			// the accepted connection, the client's end and the address
			// gRPC gives handlers.
			accept := func() (raw, client net.Conn, addr net.Addr) {
				t.Helper()
				dialed := make(chan net.Conn, 1)
				go func() {
					c, err := net.Dial("tcp", inner.Addr().String())
					if err != nil {
						dialed <- nil
						return
					}
					if mode == TLSDisabled {
						_, _ = c.Write([]byte(http2Preface))
						dialed <- c
						return
					}
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
					_, _ = tc.Write([]byte(http2Preface)) // handshakes first
					dialed <- tc
				}()
				raw, err := lis.Accept()
				if err != nil {
					t.Fatal(err)
				}
				conn, _, err := srv.creds.ServerHandshake(raw)
				client = <-dialed
				if err != nil || client == nil {
					t.Fatalf("handshake: %v", err)
				}
				t.Cleanup(func() { client.Close(); raw.Close() })
				return raw, client, conn.RemoteAddr()
			}

			raw, _, addr := accept()
			_ = raw.Close() // as grpc-go's newHTTP2Transport on an error
			if n := srv.conns.len(); n != 0 {
				t.Errorf("%d connections indexed after gRPC closed the only one", n)
			}
			if srv.svc.closeConn(addr) {
				t.Error("closeConn found a connection gRPC had closed")
			}

			_, client, addr := accept()
			if !srv.svc.closeConn(addr) {
				t.Fatal("closeConn did not find a served connection")
			}
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := client.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("the client's connection was not closed: %v", err)
			}
			if n := srv.conns.len(); n != 0 {
				t.Errorf("%d connections indexed after closeConn", n)
			}
		})
	}
}

// TestHandshakeTimeoutClosesStalledConnections: a connection that never
// finishes its handshake (no byte at all, a ClientHello cut short, TLS
// done but no HTTP/2 preface) is closed once grpc.handshakeTimeout has
// passed, so it holds no descriptor or goroutine for longer; one that
// speaks the transport the port refuses is closed at once.
func TestHandshakeTimeoutClosesStalledConnections(t *testing.T) {
	const timeout = 300 * time.Millisecond
	start := func(tc TLSConfig, handshakeTimeout time.Duration) string {
		c := DefaultConfig()
		c.TLS = tc
		c.HandshakeTimeout = handshakeTimeout
		return startServerOf(t, c).Addr().String()
	}
	// closedWithin reads c until the server closes it, failing the test
	// when that takes longer than within.
	closedWithin := func(what string, c net.Conn, within time.Duration) {
		t.Helper()
		defer c.Close()
		begin := time.Now()
		_ = c.SetReadDeadline(begin.Add(within))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("%s: still open after %v", what, time.Since(begin))
				}
				return
			}
		}
	}
	dial := func(addr string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Closed at all is what tells the timeout at work: without it gRPC
	// would wait 120 s (its default ConnectionTimeout). A bound of a few
	// timeouts was missed by a machine too busy to run the close on time.
	const long = time.Minute
	permissive := start(TLSConfig{Mode: TLSPermissive, SelfSignedDir: t.TempDir()}, timeout)
	closedWithin("a connection that sends nothing", dial(permissive), long/2)
	half := dial(permissive)
	_, _ = half.Write([]byte{0x16, 0x03, 0x01}) // the start of a TLS record
	closedWithin("a ClientHello cut short", half, long/2)
	// The TLS handshake itself has the timeout to finish (it runs within
	// it): on a machine too busy for that, the server closes the
	// connection during the handshake, a timeout as well. Try again then.
	var tc *tls.Conn
	for attempt := 1; tc == nil; attempt++ {
		c := tls.Client(dial(permissive), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		err := c.Handshake()
		switch {
		case err == nil:
			tc = c
		case attempt == 20:
			t.Fatalf("no TLS handshake of %d finished within the %v handshake timeout: %v", attempt, timeout, err)
		default:
			t.Logf("TLS handshake %d cut short by the timeout: %v", attempt, err)
			_ = c.Close()
		}
	}
	closedWithin("TLS without an HTTP/2 preface", tc, long/2)

	// The wrong transport is refused without waiting for the timeout (a
	// long one here, so that a slow machine cannot blur the two).
	enforcing := start(TLSConfig{Mode: TLSEnforcing, SelfSignedDir: t.TempDir()}, long)
	plain := dial(enforcing)
	_, _ = plain.Write([]byte(http2Preface))
	closedWithin("plaintext on an enforcing port", plain, long/2)
	disabled := start(TLSConfig{Mode: TLSDisabled}, long)
	hello := dial(disabled)
	_, _ = hello.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x05})
	closedWithin("TLS on a plaintext-only port", hello, long/2)
}
