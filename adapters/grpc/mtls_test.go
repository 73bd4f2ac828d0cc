package grpc

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
)

// testCA issues certificates for tests.
type testCA struct {
	*certtest.CA
	cert *x509.Certificate
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	ca := certtest.NewCA(t, "test CA")
	return &testCA{CA: ca, cert: ca.Leaf, pem: ca.CertPEM()}
}

// issue returns a PEM certificate and key for cn (and for localhost and
// 127.0.0.1), valid from notBefore to notAfter.
func (ca *testCA) issue(t *testing.T, cn string, serial int64, client bool, notBefore, notAfter time.Time) ([]byte, []byte) {
	t.Helper()
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	c := ca.Issue(t, certtest.Spec{Serial: serial, CommonName: cn, Hosts: []string{"localhost", "127.0.0.1"},
		NotBefore: notBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{usage}})
	return c.CertPEM(), c.KeyPEM(t)
}

func writeFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(name+".tmp", data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".tmp", name); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMutualTLS: with clientAuth require, a TLS client without a
// certificate (or with one from another CA) is refused and one with a
// certificate from clientCAFile is served; enforcing refuses plaintext.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t), newTestCA(t)
	certPEM, keyPEM := ca.issue(t, "server", 2, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	cert, key, caFile := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key"), filepath.Join(dir, "ca.pem")
	writeFiles(t, map[string][]byte{cert: certPEM, key: keyPEM, caFile: ca.pem})
	addr := serveHealthOnly(t, TLSConfig{Mode: TLSEnforcing, CertFile: cert, KeyFile: key, ClientAuth: ClientAuthRequire, ClientCAFile: caFile, ReloadInterval: time.Hour})
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(c *testCA) credentials.TransportCredentials {
		cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if c != nil {
			cp, kp := c.issue(t, "client", 3, true, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			pair, err := tls.X509KeyPair(cp, kp)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return credentials.NewTLS(cfg)
	}
	if err := healthCheck(addr, client(ca)); err != nil {
		t.Fatalf("client with a certificate from the CA: %v", err)
	}
	if err := healthCheck(addr, client(nil)); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if err := healthCheck(addr, client(other)); err == nil {
		t.Fatal("a client with a certificate from another CA was served")
	}
	if err := healthCheck(addr, insecure.NewCredentials()); err == nil {
		t.Fatal("enforcing served plaintext")
	}
}

// TestCertificateRotation: a new certificate written over the files is
// served to new connections without restart; a broken one is refused and
// the previous one stays.
func TestCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	c1, k1 := ca.issue(t, "server", 101, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeFiles(t, map[string][]byte{cert: c1, key: k1})
	srv := startServer(t, TLSConfig{Mode: TLSPermissive, CertFile: cert, KeyFile: key, ClientAuth: ClientAuthNone, ReloadInterval: 20 * time.Millisecond})
	addr := srv.Addr().String()
	serial := func() (int64, error) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
	}
	waitSerial := func(want int64) {
		t.Helper()
		tick, deadline := time.NewTicker(10*time.Millisecond), time.After(10*time.Second)
		defer tick.Stop()
		for {
			got, err := serial()
			if err == nil && got == want {
				return
			}
			select {
			case <-deadline:
				t.Fatalf("serving serial %d (%v), want %d", got, err, want)
			case <-tick.C:
			}
		}
	}
	waitSerial(101)
	c2, k2 := ca.issue(t, "server", 102, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeFiles(t, map[string][]byte{cert: c2, key: k2})
	waitSerial(102)
	// A certificate with the wrong key, then an expired one: each refused
	// (counted), and 102 stays.
	failures := func(n uint64) {
		t.Helper()
		tick, deadline := time.NewTicker(10*time.Millisecond), time.After(10*time.Second)
		defer tick.Stop()
		for srv.certs.Failures() < n {
			select {
			case <-deadline:
				t.Fatalf("%d reload failures, want %d", srv.certs.Failures(), n)
			case <-tick.C:
			}
		}
		if got, err := serial(); err != nil || got != 102 {
			t.Fatalf("after bad files: serial %d, %v", got, err)
		}
	}
	c3, _ := ca.issue(t, "server", 103, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeFiles(t, map[string][]byte{cert: c3})
	failures(1)
	c4, k4 := ca.issue(t, "server", 104, false, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	writeFiles(t, map[string][]byte{cert: c4, key: k4})
	failures(2)
	c5, k5 := ca.issue(t, "server", 105, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	writeFiles(t, map[string][]byte{cert: c5, key: k5})
	waitSerial(105)
}

// TestClientAuthRequireNeedsEnforcing: require on a permissive port is
// refused at start (a plaintext client there presents no certificate and
// would be served); request goes with permissive, require with enforcing.
func TestClientAuthRequireNeedsEnforcing(t *testing.T) {
	for _, tc := range []struct {
		mode, auth string
		ok         bool
	}{
		{TLSPermissive, ClientAuthRequire, false},
		{TLSEnforcing, ClientAuthRequire, true},
		{TLSPermissive, ClientAuthRequest, true},
		{TLSDisabled, ClientAuthRequest, false},
	} {
		cfg := DefaultConfig()
		cfg.TLS.Mode, cfg.TLS.ClientAuth, cfg.TLS.ClientCAFile = tc.mode, tc.auth, "ca.pem"
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("mode %s, clientAuth %s: Validate() = %v, want ok %v", tc.mode, tc.auth, err, tc.ok)
		}
		if err != nil && tc.mode == TLSPermissive && !strings.Contains(err.Error(), "needs tls.mode enforcing") {
			t.Errorf("mode %s, clientAuth %s: %v does not say what to do", tc.mode, tc.auth, err)
		}
	}
}
