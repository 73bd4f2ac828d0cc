package grpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/rmqproxy/rmqproxy/adapters/internal/certreload"
	"github.com/rmqproxy/rmqproxy/adapters/internal/handshake"
	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
)

// TLS modes, as the Apache proxy's tls.server.mode.
const (
	TLSPermissive = "permissive" // TLS and plaintext on the same port
	TLSEnforcing  = "enforcing"  // TLS only
	TLSDisabled   = "disabled"   // plaintext only
)

// tlsRecordHandshake is the first byte of every TLS ClientHello.
const tlsRecordHandshake = 0x16

// sniffingCredentials serves TLS and plaintext on one listener: it reads the
// first byte of each connection and either runs the TLS handshake or hands
// the connection to gRPC as plaintext (HTTP/2 with prior knowledge).
type sniffingCredentials struct {
	mode string
	tls  credentials.TransportCredentials // nil when mode is disabled
	// wrap, when set, wraps the connection gRPC reads HTTP/2 from (after
	// TLS), e.g. to watch its frames.
	wrap func(net.Conn) net.Conn
	// failures, when set, counts and logs the handshakes refused.
	failures *handshake.Failures
}

func newSniffingCredentials(mode string, cfg *tls.Config) *sniffingCredentials {
	c := &sniffingCredentials{mode: mode}
	if cfg != nil {
		c.tls = credentials.NewTLS(cfg)
	}
	return c
}

// errWrongTransport is returned for a connection that speaks the transport
// the mode forbids; gRPC then closes it.
var errWrongTransport = errors.New("connection rejected by grpc.tls.mode")

func (c *sniffingCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	var first [1]byte
	if _, err := io.ReadFull(conn, first[:]); err != nil {
		// A connection closed before its first byte (a load balancer's
		// TCP probe) is no failure; one silent until the handshake
		// timeout is.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.failed(conn, handshake.Timeout, err)
		}
		return nil, nil, fmt.Errorf("read first byte: %w", err)
	}
	pc := &prefixedConn{Conn: conn, prefix: first[:]}
	if first[0] == tlsRecordHandshake {
		if c.tls == nil {
			err := fmt.Errorf("%w: TLS handshake on a plaintext-only port", errWrongTransport)
			c.failed(conn, handshake.TLSOnPlaintextPort, err)
			return nil, nil, err
		}
		tc, info, err := c.tls.ServerHandshake(pc)
		if err != nil {
			c.failed(conn, handshake.ClassifyTLSError(err), err)
			return nil, nil, err
		}
		h2, err := c.preface(conn, tc)
		if err != nil {
			return nil, nil, err // gRPC closes conn
		}
		return c.wrapped(h2), info, nil
	}
	if c.mode == TLSEnforcing {
		err := fmt.Errorf("%w: plaintext connection on a TLS-only port", errWrongTransport)
		c.failed(conn, handshake.PlaintextOnTLSPort, err)
		return nil, nil, err
	}
	h2, err := c.preface(conn, pc)
	if err != nil {
		return nil, nil, err
	}
	return c.wrapped(h2), plaintextInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

// errNotHTTP2 is returned for a connection whose first bytes (after TLS)
// are not the HTTP/2 client preface: an HTTP/1.1 request, say.
var errNotHTTP2 = errors.New("not an HTTP/2 client: the connection does not start with the HTTP/2 preface")

// preface reads the HTTP/2 client preface from conn (the connection after
// the transport's handshake; raw is the accepted one) and returns conn with
// it put back for gRPC to read, so that a client that is no HTTP/2 client (an
// HTTP/1.1 request, a health check speaking HTTP) is counted as such. It
// fails at the first byte that differs, without waiting for the rest.
func (c *sniffingCredentials) preface(raw, conn net.Conn) (net.Conn, error) {
	buf := make([]byte, len(http2Preface))
	n := 0
	for n < len(buf) {
		k, err := conn.Read(buf[n:])
		n += k
		if string(buf[:n]) != http2Preface[:n] {
			c.failed(raw, handshake.NotHTTP2, errNotHTTP2)
			return nil, errNotHTTP2
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.failed(raw, handshake.Timeout, err)
			}
			// Closed before the preface ended (nothing sent after TLS: a
			// load balancer's TLS probe) is no failure.
			return nil, fmt.Errorf("read the HTTP/2 preface: %w", err)
		}
	}
	return &prefixedConn{Conn: conn, prefix: buf}, nil
}

// failed reports a handshake refused for r.
func (c *sniffingCredentials) failed(conn net.Conn, r handshake.Reason, err error) {
	if c.failures != nil {
		c.failures.Record(conn.RemoteAddr().String(), r, err)
	}
}

func (c *sniffingCredentials) wrapped(conn net.Conn) net.Conn {
	if c.wrap != nil {
		conn = c.wrap(conn)
	}
	return conn
}

// connIndex holds the connections served, by remote address (ip:port, the
// peer address gRPC gives handlers), so that a handler can close its
// client's connection (see frameSender).
//
// It indexes the connections the listener accepts (indexingListener), not
// the ones the handshake returns: gRPC closes the accepted connection
// itself when the handshake or building its transport fails, and closing
// a TLS connection closes the accepted one under it, so every connection
// leaves the index however it is closed and by whom. Closing an accepted
// connection ends its TLS session and HTTP/2 transport with it.
type connIndex struct {
	mu    sync.Mutex
	conns map[string]map[*indexedConn]struct{}
}

func newConnIndex() *connIndex {
	return &connIndex{conns: map[string]map[*indexedConn]struct{}{}}
}

// indexingListener indexes every connection it accepts in idx.
type indexingListener struct {
	net.Listener
	idx *connIndex
}

func (l *indexingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.idx.add(c), nil
}

// len returns how many connections are indexed.
func (x *connIndex) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := 0
	for _, set := range x.conns {
		n += len(set)
	}
	return n
}

// indexedConn leaves its index when it is closed, and counts the bytes
// written to it.
type indexedConn struct {
	net.Conn
	idx     *connIndex
	key     string
	written atomic.Int64
}

func (c *indexedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// written returns the bytes written so far to the connections of remote
// address addr.
func (x *connIndex) written(addr net.Addr) int64 {
	key := addr.String()
	x.mu.Lock()
	defer x.mu.Unlock()
	var n int64
	for c := range x.conns[key] {
		n += c.written.Load()
	}
	return n
}

func (x *connIndex) add(c net.Conn) net.Conn {
	ic := &indexedConn{Conn: c, idx: x, key: c.RemoteAddr().String()}
	x.mu.Lock()
	defer x.mu.Unlock()
	set := x.conns[ic.key]
	if set == nil {
		set = map[*indexedConn]struct{}{}
		x.conns[ic.key] = set
	}
	set[ic] = struct{}{}
	return ic
}

// close closes the connections of remote address addr and reports whether
// there was one.
func (x *connIndex) close(addr net.Addr) bool {
	key := addr.String()
	x.mu.Lock()
	var found []*indexedConn
	for c := range x.conns[key] {
		found = append(found, c)
	}
	x.mu.Unlock()
	for _, c := range found {
		_ = c.Close()
	}
	return len(found) > 0
}

func (c *indexedConn) Close() error {
	c.idx.mu.Lock()
	if set := c.idx.conns[c.key]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(c.idx.conns, c.key)
		}
	}
	c.idx.mu.Unlock()
	return c.Conn.Close()
}

func (c *sniffingCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("sniffing credentials are server-side only")
}

func (c *sniffingCredentials) Info() credentials.ProtocolInfo {
	if c.tls != nil {
		return c.tls.Info()
	}
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}

func (c *sniffingCredentials) Clone() credentials.TransportCredentials {
	cp := *c
	if c.tls != nil {
		cp.tls = c.tls.Clone()
	}
	return &cp
}

func (c *sniffingCredentials) OverrideServerName(string) error { return nil }

type plaintextInfo struct{ credentials.CommonAuthInfo }

func (plaintextInfo) AuthType() string { return "insecure" }

// prefixedConn replays bytes already read from a connection.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixedConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// Client certificate policies (grpc.tls.clientAuth).
const (
	ClientAuthNone    = "none"
	ClientAuthRequest = "request"
	ClientAuthRequire = "require"
)

// serverTLSConfig loads the configured certificate, or a self-signed one
// kept in dir (generated on first start), as the Apache proxy's test mode.
// The returned store serves and reloads them.
func serverTLSConfig(cfg TLSConfig) (*tls.Config, *certreload.Store, bool, error) {
	if cfg.Mode == TLSDisabled {
		return nil, nil, false, nil
	}
	minVersion, err := tlspolicy.ParseMinVersion(cfg.MinVersion)
	if err != nil {
		return nil, nil, false, fmt.Errorf("grpc.tls.minVersion %w", err)
	}
	suites, err := tlspolicy.ParseCipherSuites(cfg.CipherSuites)
	if err != nil {
		return nil, nil, false, fmt.Errorf("grpc.tls.cipherSuites %w", err)
	}
	certFile, keyFile, generated := cfg.CertFile, cfg.KeyFile, false
	if certFile == "" {
		if cfg.SelfSignedDir == "" {
			return nil, nil, false, errors.New("grpc.tls: no certificate configured and no directory for a self-signed one (grpc.tls.selfSignedDir)")
		}
		certFile = filepath.Join(cfg.SelfSignedDir, "rmqproxy-selfsigned.crt")
		keyFile = filepath.Join(cfg.SelfSignedDir, "rmqproxy-selfsigned.key")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := writeSelfSigned(certFile, keyFile); err != nil {
				return nil, nil, false, fmt.Errorf("grpc.tls: generate self-signed certificate in %s: %w", cfg.SelfSignedDir, err)
			}
		}
		generated = true
	}
	clientAuth := tls.NoClientCert
	switch cfg.ClientAuth {
	case ClientAuthRequest:
		clientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		clientAuth = tls.RequireAndVerifyClientCert
	}
	store := certreload.New(certFile, keyFile, cfg.ClientCAFile, clientAuth, []string{"h2"})
	store.SetMinVersion(minVersion)
	store.SetCipherSuites("grpc.tls.cipherSuites", suites)
	if err := store.Load(time.Now()); err != nil {
		return nil, nil, false, fmt.Errorf("grpc.tls: %w", err)
	}
	return &tls.Config{GetConfigForClient: store.Config, MinVersion: minVersion}, store, generated, nil
}

// writeSelfSigned creates an ECDSA P-256 certificate for localhost, the
// loopback addresses and this host's name, valid for ten years.
func writeSelfSigned(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	names := []string{"localhost"}
	if host != "" && host != "localhost" {
		names = append(names, host)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "rmqproxy self-signed", Organization: []string{"rmqproxy"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
