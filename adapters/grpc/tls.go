package grpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
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
		return nil, nil, fmt.Errorf("read first byte: %w", err)
	}
	pc := &prefixedConn{Conn: conn, prefix: first[:]}
	if first[0] == tlsRecordHandshake {
		if c.tls == nil {
			return nil, nil, fmt.Errorf("%w: TLS handshake on a plaintext-only port", errWrongTransport)
		}
		tc, info, err := c.tls.ServerHandshake(pc)
		if err != nil {
			return nil, nil, err
		}
		return c.wrapped(tc), info, nil
	}
	if c.mode == TLSEnforcing {
		return nil, nil, fmt.Errorf("%w: plaintext connection on a TLS-only port", errWrongTransport)
	}
	return c.wrapped(pc), plaintextInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (c *sniffingCredentials) wrapped(conn net.Conn) net.Conn {
	if c.wrap == nil {
		return conn
	}
	return c.wrap(conn)
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

// certStore holds the certificate served and the client CA pool, and
// reloads them when their files change: new handshakes get the new ones,
// existing connections keep theirs. A change that does not load (a key
// that does not match, an unparsable or expired certificate, half-written
// files) is logged and the previous pair stays.
type certStore struct {
	certFile, keyFile, caFile string
	clientAuth                tls.ClientAuthType

	cert     atomic.Pointer[tls.Certificate]
	clientCA atomic.Pointer[x509.CertPool]
	sum      [32]byte // of the files last loaded (or last refused); load and watch only
	reloads  atomic.Uint64
	failures atomic.Uint64
}

func (c *certStore) fingerprint() ([32]byte, error) {
	var all []byte
	for _, name := range []string{c.certFile, c.keyFile, c.caFile} {
		if name == "" {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return [32]byte{}, err
		}
		all = append(append(all, b...), 0)
	}
	return sha256.Sum256(all), nil
}

// load reads the files and, when they form a usable set, swaps them in.
func (c *certStore) load(now time.Time) error {
	sum, err := c.fingerprint()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("certificate %s: %w", c.certFile, err)
	}
	if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return fmt.Errorf("certificate %s is valid from %s to %s, not now", c.certFile, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	cert.Leaf = leaf
	var pool *x509.CertPool
	if c.caFile != "" {
		pemData, err := os.ReadFile(c.caFile)
		if err != nil {
			return err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return fmt.Errorf("tls.clientCAFile %s holds no PEM certificate", c.caFile)
		}
	}
	c.cert.Store(&cert)
	if pool != nil {
		c.clientCA.Store(pool)
	}
	c.sum = sum
	return nil
}

// config returns the TLS configuration of one handshake.
func (c *certStore) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	return &tls.Config{
		Certificates: []tls.Certificate{*c.cert.Load()},
		ClientAuth:   c.clientAuth,
		ClientCAs:    c.clientCA.Load(),
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2"},
		// Full-size TLS records from the first byte: the small records Go
		// starts with after every idle second only cost more records (and
		// encryption calls) per response.
		DynamicRecordSizingDisabled: true,
	}, nil
}

// watch reloads changed files every interval until ctx ends.
func (c *certStore) watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sum, err := c.fingerprint()
		if err != nil || sum == c.sum {
			continue
		}
		if err := c.load(time.Now()); err != nil {
			c.failures.Add(1)
			c.sum = sum // do not retry the same bad files every tick
			log.LogAttrs(ctx, slog.LevelError, "TLS files changed but do not load; still serving the previous certificate",
				slog.String("cert_file", c.certFile), slog.Any("error", err))
			continue
		}
		c.reloads.Add(1)
		log.LogAttrs(ctx, slog.LevelInfo, "TLS certificate reloaded", slog.String("cert_file", c.certFile),
			slog.Time("not_after", c.cert.Load().Leaf.NotAfter))
	}
}

// serverTLSConfig loads the configured certificate, or a self-signed one
// kept in dir (generated on first start), as the Apache proxy's test mode.
// The returned store serves and reloads them.
func serverTLSConfig(cfg TLSConfig) (*tls.Config, *certStore, bool, error) {
	if cfg.Mode == TLSDisabled {
		return nil, nil, false, nil
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
	store := &certStore{certFile: certFile, keyFile: keyFile, caFile: cfg.ClientCAFile}
	switch cfg.ClientAuth {
	case ClientAuthRequest:
		store.clientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		store.clientAuth = tls.RequireAndVerifyClientCert
	}
	if err := store.load(time.Now()); err != nil {
		return nil, nil, false, fmt.Errorf("grpc.tls: %w", err)
	}
	return &tls.Config{GetConfigForClient: store.config, MinVersion: tls.VersionTLS12}, store, generated, nil
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
