package admin_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/adapters/internal/metrictest"
	"github.com/rmqproxy/rmqproxy/adapters/internal/observe"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// writeServerPair writes a self-signed certificate for 127.0.0.1 (its own
// CA) and its key into one file of dir, replaced at once (renamed over),
// so that a reload never sees a certificate with the key of another; it
// returns the file and a pool that trusts the certificate.
func writeServerPair(t *testing.T, dir string, serial int64) (pairFile string, roots *x509.CertPool) {
	t.Helper()
	c := certtest.SelfSigned(t, certtest.Spec{Serial: serial, Hosts: []string{"127.0.0.1"}, Root: true})
	pairFile = filepath.Join(dir, "admin.pem")
	writeAtomic(t, pairFile, append(c.CertPEM(), c.KeyPEM(t)...))
	return pairFile, c.Pool()
}

// writeAtomic replaces name with data at once.
func writeAtomic(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		t.Fatal(err)
	}
}

// tlsServer is an admin API with admin.tls.enabled whose metrics go to a
// manual reader.
type tlsServer struct {
	*admin.Server
	reader *sdkmetric.ManualReader
	logs   *logBuffer
}

func startTLSServer(t *testing.T, tc admin.TLSConfig, before ...func(*admin.Server)) *tlsServer {
	t.Helper()
	cfg := admin.DefaultConfig()
	cfg.TLS = tc
	return startTLSServerOf(t, cfg, before...)
}

// startTLSServerOf starts an admin API of cfg on 127.0.0.1 with
// admin.tls.enabled.
func startTLSServerOf(t *testing.T, cfg admin.Config, before ...func(*admin.Server)) *tlsServer {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	m, err := observe.NewMetrics(mp.Meter("test"), observe.NewLabels(nil, 10, nil, 10))
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger(t)
	cfg.Address = "127.0.0.1:0"
	cfg.TLS.Enabled = true
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := admin.New(cfg, application.NewAdmin(newFakeStore(), fixedClock{}), logger)
	srv.UseTelemetry(&observe.Telemetry{Metrics: m})
	for _, f := range before {
		f(srv)
	}
	if err := srv.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return &tlsServer{Server: srv, reader: reader, logs: logs}
}

// collect returns the values of metric name by their listener and reason
// or result label.
func (s *tlsServer) collect(t *testing.T, name string) map[[2]string]int64 {
	t.Helper()
	got := map[[2]string]int64{}
	m, ok := metrictest.Metric(t, s.reader, name)
	if _, sum := m.Data.(metricdata.Sum[int64]); ok && !sum {
		t.Fatalf("%s is no int64 counter", name)
	}
	for _, p := range metrictest.Int64Points(m) {
		l, _ := p.Attributes.Value(observe.LabelListener)
		r, ok := p.Attributes.Value(observe.LabelReason)
		if !ok {
			r, _ = p.Attributes.Value(observe.LabelResult)
		}
		got[[2]string{l.AsString(), r.AsString()}] = p.Value
	}
	return got
}

// get makes a GET /v1/topics over HTTPS with tc and returns the status.
func get(addr string, tc *tls.Config) (int, error) {
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/v1/topics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestTLSMinVersionAndHandshakeFailures: with admin.tls.minVersion 1.3 a
// TLS 1.3 client is served and a client that speaks TLS 1.2 at most is
// refused during its handshake; that refusal, a plain HTTP request and a
// record that is no TLS handshake are counted in
// rmqproxy_handshake_failures_total{listener="admin"} by reason and
// logged; a connection closed before it sent a byte (a TCP probe) is not.
// With the default minVersion the TLS 1.2 client is served.
func TestTLSMinVersionAndHandshakeFailures(t *testing.T) {
	pair, roots := writeServerPair(t, t.TempDir(), 1)
	s := startTLSServer(t, admin.TLSConfig{CertFile: pair, KeyFile: pair, MinVersion: "1.3"})
	addr := s.Addr().String()

	if code, err := get(addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}); err != nil || code != http.StatusOK {
		t.Fatalf("a TLS 1.3 client: %d, %v", code, err)
	}
	probe, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = probe.Close()
	_, err = get(addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12})
	if err == nil || !strings.Contains(err.Error(), "protocol version not supported") {
		t.Fatalf("a TLS 1.2 client of a minVersion 1.3 API: %v, want a protocol version alert", err)
	}
	resp, err := http.Get("http://" + addr + "/v1/topics")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP: %s, want 400", resp.Status)
	}
	garbage, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = garbage.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}) // a handshake record that is no ClientHello
	_ = garbage.SetReadDeadline(time.Now().Add(time.Minute))
	_, _ = io.Copy(io.Discard, garbage) // until the server closes it
	_ = garbage.Close()

	want := map[[2]string]int64{{"admin", "tls_version"}: 1, {"admin", "plaintext_on_tls_port"}: 1, {"admin", "tls_error"}: 1}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the failed handshakes counted", func() bool {
		return maps.Equal(s.collect(t, observe.MetricHandshakeFailures), want)
	})
	out := s.logs.String()
	for _, r := range []string{"tls_version", "plaintext_on_tls_port", "tls_error"} {
		if !strings.Contains(out, `"msg":"connection closed during its handshake","component":"admin","remote_addr":"127.0.0.1:`) ||
			!strings.Contains(out, fmt.Sprintf(`"reason":%q`, r)) {
			t.Errorf("reason %s is not logged with the remote address:\n%s", r, out)
		}
	}

	def := startTLSServer(t, admin.TLSConfig{CertFile: pair, KeyFile: pair, MinVersion: "1.2"})
	if code, err := get(def.Addr().String(), &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12}); err != nil || code != http.StatusOK {
		t.Fatalf("a TLS 1.2 client with minVersion 1.2: %d, %v", code, err)
	}
	if got := def.collect(t, observe.MetricHandshakeFailures); len(got) != 0 {
		t.Errorf("%s with no failure: %v", observe.MetricHandshakeFailures, got)
	}
}

// TestHandshakeTimeout: a client that opens a connection to the HTTPS
// port and never sends its ClientHello is closed once admin.handshakeTimeout
// has passed (not at the 5 s default), and counted with reason timeout.
func TestHandshakeTimeout(t *testing.T) {
	pair, _ := writeServerPair(t, t.TempDir(), 1)
	start := func(timeout time.Duration) (*tlsServer, net.Conn) {
		cfg := admin.DefaultConfig()
		cfg.TLS = admin.TLSConfig{CertFile: pair, KeyFile: pair}
		cfg.HandshakeTimeout = timeout
		s := startTLSServerOf(t, cfg)
		silent, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { silent.Close() })
		return s, silent
	}
	// The configured timeout, not the default, decides, whatever the
	// machine's load: a silent client of a server configured with an hour,
	// which connected first, is still connected when the one of a server
	// configured with 100 ms has been closed. (A bound in wall time on the
	// close, short of the default, was one a busy machine could miss.)
	_, patient := start(time.Hour)
	s, silent := start(100 * time.Millisecond)
	_ = silent.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a client that sends no ClientHello: read %d bytes, %v; want the connection closed by the server", n, err)
	}
	_ = patient.SetReadDeadline(time.Now().Add(time.Millisecond))
	if n, err := patient.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the silent client of a server with an hour's handshake timeout: read %d bytes, %v; want it still connected", n, err)
	}
	want := map[[2]string]int64{{"admin", "timeout"}: 1}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the stalled handshake counted", func() bool {
		return maps.Equal(s.collect(t, observe.MetricHandshakeFailures), want)
	})
}

// TestCertificateReloadsAreCounted: a changed certificate that loads and
// one that does not are counted in rmqproxy_tls_certificate_reloads_total
// {listener="admin"} as ok and failed; the new certificate is served.
func TestCertificateReloadsAreCounted(t *testing.T) {
	dir := t.TempDir()
	pair, _ := writeServerPair(t, dir, 1)
	s := startTLSServer(t, admin.TLSConfig{CertFile: pair, KeyFile: pair, ReloadInterval: 5 * time.Millisecond})
	reloads := func(ok, failed int64) {
		t.Helper()
		want := map[[2]string]int64{{"admin", "ok"}: ok, {"admin", "failed"}: failed}
		waitfor.True(t, 10*time.Second, 5*time.Millisecond, fmt.Sprintf("reloads ok=%d failed=%d", ok, failed), func() bool {
			return maps.Equal(s.collect(t, observe.MetricTLSCertificateReloads), want)
		})
	}
	reloads(0, 0)
	_, roots := writeServerPair(t, dir, 2)
	reloads(1, 0)
	if code, err := get(s.Addr().String(), &tls.Config{RootCAs: roots}); err != nil || code != http.StatusOK {
		t.Fatalf("the renewed certificate: %d, %v", code, err)
	}
	s.logs.allowErrors() // the refused change is logged at Error
	writeAtomic(t, pair, []byte("neither a certificate nor a key"))
	reloads(1, 1)
	if loaded, refused := s.CertificateReloads(); loaded != 1 || refused != 1 {
		t.Errorf("CertificateReloads() = %d, %d; want 1, 1", loaded, refused)
	}
}

// TestCertificateRenewedAsTwoFiles: a certificate and key in two files,
// renewed by writing the certificate, then (once the API has seen it
// without its key) the key, are served to HTTPS clients without a failed
// reload or an Error line.
func TestCertificateRenewedAsTwoFiles(t *testing.T) {
	dir := t.TempDir()
	pair, roots1 := writeServerPair(t, dir, 1)
	certFile, keyFile := filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	split := func(pemData []byte) (cert, key []byte) {
		for b, rest := pem.Decode(pemData); b != nil; b, rest = pem.Decode(rest) {
			if b.Type == "CERTIFICATE" {
				cert = append(cert, pem.EncodeToMemory(b)...)
			} else {
				key = append(key, pem.EncodeToMemory(b)...)
			}
		}
		return cert, key
	}
	read := func() (cert, key []byte) {
		b, err := os.ReadFile(pair)
		if err != nil {
			t.Fatal(err)
		}
		return split(b)
	}
	c, k := read()
	writeAtomic(t, certFile, c)
	writeAtomic(t, keyFile, k)
	s := startTLSServer(t, admin.TLSConfig{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 5 * time.Millisecond},
		func(s *admin.Server) { admin.SetCertificateSettle(s, time.Minute) }) // only the key ends the wait
	if code, err := get(s.Addr().String(), &tls.Config{RootCAs: roots1}); err != nil || code != http.StatusOK {
		t.Fatalf("the first certificate: %d, %v", code, err)
	}
	_, roots2 := writeServerPair(t, dir, 2)
	c, k = read()
	writeAtomic(t, certFile, c)
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the API saw the certificate without its key", func() bool {
		_, failed := s.CertificateReloads()
		return failed > 0 || strings.Contains(s.logs.String(), "waiting for them to settle")
	})
	writeAtomic(t, keyFile, k)
	want := map[[2]string]int64{{"admin", "ok"}: 1, {"admin", "failed"}: 0}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the renewed pair loaded", func() bool {
		return maps.Equal(s.collect(t, observe.MetricTLSCertificateReloads), want)
	})
	if code, err := get(s.Addr().String(), &tls.Config{RootCAs: roots2}); err != nil || code != http.StatusOK {
		t.Fatalf("the renewed certificate: %d, %v", code, err)
	}
}

// TestTLSCipherSuites: with admin.tls.cipherSuites a TLS 1.2 client
// offering none of them is refused and counted (tls_error), one offering
// one is served; a list with no suite for the certificate's key stops the
// start.
func TestTLSCipherSuites(t *testing.T) {
	pair, roots := writeServerPair(t, t.TempDir(), 1) // an ECDSA key
	s := startTLSServer(t, admin.TLSConfig{CertFile: pair, KeyFile: pair, CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}})
	addr := s.Addr().String()
	if code, err := get(addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12}); err != nil || code != http.StatusOK {
		t.Fatalf("a TLS 1.2 client offering Go's defaults: %d, %v", code, err)
	}
	if _, err := get(addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}); err == nil {
		t.Fatal("a TLS 1.2 client offering none of admin.tls.cipherSuites was served")
	}
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the refused handshake counted", func() bool {
		return maps.Equal(s.collect(t, observe.MetricHandshakeFailures), map[[2]string]int64{{"admin", "tls_error"}: 1})
	})

	cfg := admin.DefaultConfig()
	cfg.Address = "127.0.0.1:0"
	cfg.TLS = admin.TLSConfig{Enabled: true, CertFile: pair, KeyFile: pair, CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}}
	logger, _ := newLogger(t)
	srv := admin.New(cfg, application.NewAdmin(newFakeStore(), fixedClock{}), logger)
	if err := srv.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "admin.tls.cipherSuites lists no suite for the ECDSA key") {
		_ = srv.Stop(t.Context())
		t.Fatalf("RSA suites only for an ECDSA certificate: %v", err)
	}
}
