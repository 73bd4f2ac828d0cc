package grpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rmqproxy/rmqproxy/adapters/internal/handshake"
	"github.com/rmqproxy/rmqproxy/adapters/internal/metrictest"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// observedServer is a started server whose metrics go to a manual reader
// and whose log to a buffer.
type observedServer struct {
	*Server
	reader *sdkmetric.ManualReader
	logs   *logbuf.Buffer
}

func startObservedServer(t *testing.T, tc TLSConfig, handshakeTimeout time.Duration) *observedServer {
	t.Helper()
	m, reader := testMetrics(t)
	c := DefaultConfig()
	c.Address = "127.0.0.1:0"
	c.TLS = tc
	c.HandshakeTimeout = handshakeTimeout
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	svc := NewService(c, nil, log)
	svc.UseTelemetry(&observe.Telemetry{Metrics: m})
	s, err := NewServer(c, svc, log)
	if err != nil {
		t.Fatal(err)
	}
	// One log line per reason for the whole test, however slow the
	// machine.
	s.creds.failures.SetLogInterval(time.Hour)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
	})
	return &observedServer{Server: s, reader: reader, logs: logs}
}

// collect returns the observed values of metric name with their listener
// and reason (or "") labels.
func (s *observedServer) collect(t *testing.T, name string) map[[2]string]int64 {
	t.Helper()
	got := map[[2]string]int64{}
	m, _ := metrictest.Metric(t, s.reader, name)
	for _, p := range metrictest.Int64Points(m) {
		l, _ := p.Attributes.Value(observe.LabelListener)
		r, _ := p.Attributes.Value(observe.LabelReason)
		got[[2]string{l.AsString(), r.AsString()}] = p.Value
	}
	return got
}

// waitCounts waits until the server has counted want and closed every
// connection, then checks that it counted nothing else.
func (s *observedServer) waitCounts(t *testing.T, want map[handshake.Reason]uint64) {
	t.Helper()
	counts := func() map[handshake.Reason]uint64 {
		got := map[handshake.Reason]uint64{}
		for r := range handshake.NumReasons {
			if n := s.creds.failures.Count(r); n > 0 {
				got[r] = n
			}
		}
		return got
	}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "handshake failure counts", func() bool {
		got := counts()
		for r, n := range want {
			if got[r] < n {
				return false
			}
		}
		return true
	})
	// Every connection made so far is closed (and so done with): none
	// of them can still be counted.
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "every connection closed", func() bool { return s.conns.len() == 0 })
	if got := counts(); !maps.Equal(got, want) {
		t.Fatalf("handshake failures %v, want %v", got, want)
	}
}

// closeAfter dials addr, runs talk on the connection (if any) and reads
// until the server closes it.
func closeAfter(t *testing.T, addr string, talk func(net.Conn)) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if talk != nil {
		talk(c)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	_, _ = io.Copy(io.Discard, c)
}

// tlsHandshake runs a client handshake with cfg on c and reads until the
// server closes the connection (with TLS 1.3 the client may finish its
// side before the server refuses its certificate).
func tlsHandshake(cfg *tls.Config) func(net.Conn) {
	return func(c net.Conn) {
		tc := tls.Client(c, cfg)
		if tc.Handshake() == nil {
			_ = tc.SetReadDeadline(time.Now().Add(time.Minute))
			_, _ = io.Copy(io.Discard, tc)
		}
	}
}

// TestHandshakeFailuresAreCountedByReason: every connection closed before
// it is served is counted in rmqproxy_handshake_failures_total by reason,
// from raw TCP and TLS clients: plaintext on an enforcing port, TLS on a
// plaintext-only one, a handshake timeout (silent, or a ClientHello cut
// short), a TLS client that does not offer h2, a missing or untrusted
// client certificate under clientAuth require, any other TLS failure,
// HTTP/1.1 instead of HTTP/2. A client served and a connection closed
// before its first byte (a TCP probe) or right after TLS count nothing. Each reason is logged once per interval with the
// remote address, however many connections fail.
func TestHandshakeFailuresAreCountedByReason(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t), newTestCA(t)
	certPEM, keyPEM := ca.issue(t, "server", 2, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	cert, key, caFile := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), filepath.Join(dir, "ca.pem")
	writeFiles(t, map[string][]byte{cert: certPEM, key: keyPEM, caFile: ca.pem})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	clientCert := func(c *testCA) []tls.Certificate {
		cp, kp := c.issue(t, "client", 3, true, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
		pair, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{pair}
	}

	// Enforcing with client certificates required; a long handshake
	// timeout, so that no refusal here can be a timeout.
	mtls := startObservedServer(t, TLSConfig{Mode: TLSEnforcing, CertFile: cert, KeyFile: key, ClientAuth: ClientAuthRequire, ClientCAFile: caFile}, time.Minute)
	addr := mtls.Addr().String()
	if err := healthCheck(addr, credentialsFor(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: clientCert(ca)})); err != nil {
		t.Fatalf("a client with a certificate from the CA: %v", err)
	}
	probe, err := net.Dial("tcp", addr) // a TCP probe: connects, closes
	if err != nil {
		t.Fatal(err)
	}
	_ = probe.Close()
	const plaintextClients = 5
	for range plaintextClients {
		closeAfter(t, addr, func(c net.Conn) { _, _ = c.Write([]byte(http2Preface)) })
	}
	closeAfter(t, addr, tlsHandshake(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: clientCert(ca)}))                                   // no ALPN
	closeAfter(t, addr, tlsHandshake(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: clientCert(ca), NextProtos: []string{"http/1.1"}})) // no h2
	closeAfter(t, addr, tlsHandshake(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: clientCert(ca), NextProtos: []string{"spdy/3"}}))
	closeAfter(t, addr, tlsHandshake(&tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"h2"}}))                                              // no certificate
	closeAfter(t, addr, tlsHandshake(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: clientCert(other), NextProtos: []string{"h2"}}))             // another CA
	closeAfter(t, addr, func(c net.Conn) { _, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}) })                                                    // not a ClientHello
	closeAfter(t, addr, tlsHandshake(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, NextProtos: []string{"h2"}})) // too old
	mtls.waitCounts(t, map[handshake.Reason]uint64{
		handshake.PlaintextOnTLSPort: plaintextClients,
		handshake.NoALPN:             3,
		handshake.ClientCertificate:  2,
		handshake.TLS:                1,
		handshake.TLSVersion:         1,
	})
	want := map[[2]string]int64{
		{"grpc", "plaintext_on_tls_port"}: plaintextClients,
		{"grpc", "no_alpn_h2"}:            3,
		{"grpc", "client_certificate"}:    2,
		{"grpc", "tls_error"}:             1,
		{"grpc", "tls_version"}:           1,
	}
	if got := mtls.collect(t, observe.MetricHandshakeFailures); !maps.Equal(got, want) {
		t.Errorf("%s: %v, want %v", observe.MetricHandshakeFailures, got, want)
	}
	out := mtls.logs.String()
	for r, n := range map[string]int{"plaintext_on_tls_port": 1, "no_alpn_h2": 1, "client_certificate": 1, "tls_error": 1, "tls_version": 1, "timeout": 0} {
		if got := strings.Count(out, "reason="+r); got != n {
			t.Errorf("%d log lines of reason %s, want %d (one per interval):\n%s", got, r, n, out)
		}
	}
	if !strings.Contains(out, "level=INFO msg=\"connection closed during its handshake\" component=grpc remote_addr=127.0.0.1:") {
		t.Errorf("the log line does not name the remote address:\n%s", out)
	}

	// A short handshake timeout: a silent connection, a ClientHello cut
	// short and TLS without an HTTP/2 preface are closed and counted when
	// it passes.
	short := startObservedServer(t, TLSConfig{Mode: TLSPermissive, SelfSignedDir: t.TempDir()}, 300*time.Millisecond)
	closeAfter(t, short.Addr().String(), nil)
	closeAfter(t, short.Addr().String(), func(c net.Conn) { _, _ = c.Write([]byte{0x16, 0x03, 0x01}) })
	closeAfter(t, short.Addr().String(), tlsHandshake(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}))
	short.waitCounts(t, map[handshake.Reason]uint64{handshake.Timeout: 3})

	// HTTP/1.1 instead of HTTP/2, in plaintext or over TLS, is closed at
	// once (a long timeout here); a client served, or one that closes
	// right after TLS (a load balancer's TLS probe), counts nothing.
	permissive := startObservedServer(t, TLSConfig{Mode: TLSPermissive, SelfSignedDir: t.TempDir()}, time.Minute)
	paddr := permissive.Addr().String()
	if err := healthCheck(paddr, insecure.NewCredentials()); err != nil {
		t.Fatalf("plaintext gRPC client: %v", err)
	}
	if err := healthCheck(paddr, credentialsFor(&tls.Config{InsecureSkipVerify: true})); err != nil {
		t.Fatalf("TLS gRPC client: %v", err)
	}
	httpGet := []byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	closeAfter(t, paddr, func(c net.Conn) { _, _ = c.Write(httpGet) })
	closeAfter(t, paddr, func(c net.Conn) {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err := tc.Handshake(); err != nil {
			t.Errorf("TLS handshake: %v", err)
			return
		}
		_, _ = tc.Write(httpGet)
		_ = tc.SetReadDeadline(time.Now().Add(time.Minute))
		_, _ = io.Copy(io.Discard, tc)
	})
	probe, err = tls.Dial("tcp", paddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = probe.Close()
	permissive.waitCounts(t, map[handshake.Reason]uint64{handshake.NotHTTP2: 2})

	// TLS on a plaintext-only port.
	plain := startObservedServer(t, TLSConfig{Mode: TLSDisabled}, time.Minute)
	closeAfter(t, plain.Addr().String(), tlsHandshake(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}))
	plain.waitCounts(t, map[handshake.Reason]uint64{handshake.TLSOnPlaintextPort: 1})
	if got := plain.collect(t, observe.MetricHandshakeFailures); !maps.Equal(got, map[[2]string]int64{{"grpc", "tls_on_plaintext_port"}: 1}) {
		t.Errorf("%s on the plaintext port: %v", observe.MetricHandshakeFailures, got)
	}
}

// TestCertificateExpiryIsObserved: the gRPC port reports the NotAfter of
// the certificate it serves under listener="grpc", and a certificate that
// expires within grpc.tls.expiryWarning is logged at Warn at start.
func TestCertificateExpiryIsObserved(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	notAfter := time.Now().Add(time.Hour).Truncate(time.Second)
	certPEM, keyPEM := ca.issue(t, "server", 2, false, time.Now().Add(-time.Hour), notAfter)
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	writeFiles(t, map[string][]byte{cert: certPEM, key: keyPEM})
	s := startObservedServer(t, TLSConfig{Mode: TLSEnforcing, CertFile: cert, KeyFile: key, ClientAuth: ClientAuthNone, ExpiryWarning: DefaultExpiryWarning}, time.Minute)
	if got, want := s.collect(t, observe.MetricTLSCertificateExpiry), map[[2]string]int64{{"grpc", ""}: notAfter.Unix()}; !maps.Equal(got, want) {
		t.Errorf("%s: %v, want %v", observe.MetricTLSCertificateExpiry, got, want)
	}
	if out := s.logs.String(); strings.Count(out, "level=WARN msg=\"TLS certificate in use expires soon") != 1 || !strings.Contains(out, "s.crt") {
		t.Errorf("a certificate expiring in an hour is not warned about at start:\n%s", out)
	}
	// Disabled TLS: no certificate, no series.
	if got := startObservedServer(t, TLSConfig{Mode: TLSDisabled}, time.Minute).collect(t, observe.MetricTLSCertificateExpiry); len(got) != 0 {
		t.Errorf("%s without TLS: %v", observe.MetricTLSCertificateExpiry, got)
	}
}

func credentialsFor(cfg *tls.Config) credentials.TransportCredentials { return credentials.NewTLS(cfg) }

// TestTLSMinVersion: with grpc.tls.minVersion 1.3 a client that speaks
// TLS 1.2 at most is refused during its handshake and counted (reason
// tls_version), while a TLS 1.3 client and, in permissive mode, a
// plaintext one are served; with the default (1.2) the TLS 1.2 client is
// served too.
func TestTLSMinVersion(t *testing.T) {
	tls12 := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}
	tls13 := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}

	s := startObservedServer(t, TLSConfig{Mode: TLSPermissive, MinVersion: "1.3", SelfSignedDir: t.TempDir()}, time.Minute)
	addr := s.Addr().String()
	if err := healthCheck(addr, credentialsFor(tls13)); err != nil {
		t.Fatalf("a TLS 1.3 client: %v", err)
	}
	if err := healthCheck(addr, insecure.NewCredentials()); err != nil {
		t.Fatalf("a plaintext client on the permissive port: %v", err)
	}
	err := healthCheck(addr, credentialsFor(tls12))
	if err == nil {
		t.Fatal("a TLS 1.2 client was served by a port with minVersion 1.3")
	}
	if !strings.Contains(err.Error(), "protocol version not supported") {
		t.Errorf("the TLS 1.2 client's error does not say why: %v", err)
	}
	s.waitCounts(t, map[handshake.Reason]uint64{handshake.TLSVersion: 1})
	if got, want := s.collect(t, observe.MetricHandshakeFailures), map[[2]string]int64{{"grpc", "tls_version"}: 1}; !maps.Equal(got, want) {
		t.Errorf("%s: %v, want %v", observe.MetricHandshakeFailures, got, want)
	}
	if out := s.logs.String(); !strings.Contains(out, "reason=tls_version") || !strings.Contains(out, "client offered only unsupported versions") {
		t.Errorf("the refusal is not logged with its reason:\n%s", out)
	}

	def := startObservedServer(t, TLSConfig{Mode: TLSEnforcing, SelfSignedDir: t.TempDir()}, time.Minute)
	if err := healthCheck(def.Addr().String(), credentialsFor(tls12)); err != nil {
		t.Fatalf("a TLS 1.2 client with the default minVersion: %v", err)
	}
	def.waitCounts(t, map[handshake.Reason]uint64{})
}

// TestTLSCipherSuites: with grpc.tls.cipherSuites the port accepts TLS 1.2
// clients that offer one of the suites listed and refuses (tls_error)
// those that offer none; TLS 1.3 clients, whose suites cannot be chosen,
// are served. A list with no suite for the certificate's key is refused
// at start.
func TestTLSCipherSuites(t *testing.T) {
	dir := t.TempDir() // the self-signed certificate has an ECDSA key
	s := startObservedServer(t, TLSConfig{Mode: TLSEnforcing, SelfSignedDir: dir,
		CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}}, time.Minute)
	addr := s.Addr().String()
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		cfg.InsecureSkipVerify, cfg.NextProtos = true, []string{"h2"}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		return c.ConnectionState(), nil
	}
	st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 {
		t.Fatalf("a TLS 1.2 client offering Go's defaults: %s, %v; want TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", tls.CipherSuiteName(st.CipherSuite), err)
	}
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}); err == nil {
		t.Fatal("a TLS 1.2 client offering none of grpc.tls.cipherSuites was served")
	}
	if st, err := dial(&tls.Config{MinVersion: tls.VersionTLS13}); err != nil || st.Version != tls.VersionTLS13 {
		t.Fatalf("a TLS 1.3 client: %v", err)
	}
	if err := healthCheck(addr, credentialsFor(&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})); err != nil {
		t.Fatalf("a TLS 1.2 gRPC client: %v", err)
	}
	s.waitCounts(t, map[handshake.Reason]uint64{handshake.TLS: 1})
	if out := s.logs.String(); !strings.Contains(out, "no cipher suite supported by both client and server") {
		t.Errorf("the refusal does not say why:\n%s", out)
	}

	c := DefaultConfig()
	c.Address = "127.0.0.1:0"
	c.TLS = TLSConfig{Mode: TLSEnforcing, SelfSignedDir: dir, CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}}
	_, err = NewServer(c, NewService(c, nil, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "grpc.tls.cipherSuites lists no suite for the ECDSA key of the certificate") {
		t.Fatalf("RSA suites only for an ECDSA certificate: %v", err)
	}
}
