package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
)

// selfSignedBroker returns a certificate for 127.0.0.1 and the PEM file of
// it (the CA file that trusts it).
func selfSignedBroker(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	c := certtest.SelfSigned(t, certtest.Spec{Serial: 1, CommonName: "fake broker", Hosts: []string{"127.0.0.1"}, Root: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, c.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return c.TLS(), caFile
}

// startTLSNameServer serves a fake broker that is its own NameServer over
// TLS with server (its certificate added), returning its address.
func startTLSNameServer(t *testing.T, cert tls.Certificate, server *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server.Certificates = []tls.Certificate{cert}
	return newFakeNameServer("", 1, rw).serve(t, tls.NewListener(ln, server), nil).addr
}

// startOverTLS starts a Broker with cluster.tls tc against the NameServer
// at addr and stops it; it returns why it did not start.
func startOverTLS(t *testing.T, addr string, tc BrokerTLS) error {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NameServers = []string{addr}
	cfg.StartTimeout = time.Second // how long a refused start keeps trying
	tc.Enabled = true
	cfg.TLS = tc
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Start(t.Context())
	if err == nil {
		b.Close(t.Context())
	}
	return err
}

// TestBrokerTLSMinVersion: with cluster.tls.minVersion 1.3, a broker (here
// its own NameServer) that speaks TLS 1.2 at most is refused at the
// handshake, and the start-up fails with an error that says so and names
// the setting; with 1.2 the same broker is used.
func TestBrokerTLSMinVersion(t *testing.T) {
	cert, caFile := selfSignedBroker(t)
	addr := startTLSNameServer(t, cert, &tls.Config{MaxVersion: tls.VersionTLS12})
	if err := startOverTLS(t, addr, BrokerTLS{CAFile: caFile, MinVersion: "1.2"}); err != nil {
		t.Fatalf("minVersion 1.2 against a TLS 1.2 broker: %v", err)
	}
	err := startOverTLS(t, addr, BrokerTLS{CAFile: caFile, MinVersion: "1.3"})
	if err == nil {
		t.Fatal("minVersion 1.3 against a broker that speaks TLS 1.2 at most: started")
	}
	for _, want := range []string{"TLS handshake failed", "protocol version not supported", "the peer speaks no TLS version from 1.3 up", "as cluster.tls.minVersion is 1.3, with TLS 1.3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
}

// TestBrokerTLSCipherSuites: cluster.tls.cipherSuites are the TLS 1.2
// suites offered to brokers: a broker that accepts none of them is
// refused at the handshake; one that accepts one of them is used.
func TestBrokerTLSCipherSuites(t *testing.T) {
	cert, caFile := selfSignedBroker(t) // an ECDSA key
	addr := startTLSNameServer(t, cert, &tls.Config{MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	if err := startOverTLS(t, addr, BrokerTLS{CAFile: caFile}); err != nil {
		t.Fatalf("Go's default suites against a broker that takes TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: %v", err)
	}
	if err := startOverTLS(t, addr, BrokerTLS{CAFile: caFile, CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"}}); err != nil {
		t.Fatalf("a list with the broker's suite: %v", err)
	}
	err := startOverTLS(t, addr, BrokerTLS{CAFile: caFile, CipherSuites: []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"}})
	if err == nil || !strings.Contains(err.Error(), "TLS handshake failed: remote error: tls: handshake failure") {
		t.Fatalf("a list without the broker's suite: %v, want a refused handshake", err)
	}
}
