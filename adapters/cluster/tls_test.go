package cluster

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// selfSignedBroker returns a certificate for 127.0.0.1 and the PEM file of
// it (the CA file that trusts it).
func selfSignedBroker(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

// TestBrokerTLSMinVersion: with cluster.tls.minVersion 1.3, a broker (here
// its own NameServer) that speaks TLS 1.2 at most is refused at the
// handshake, and the start-up fails with an error that says so and names
// the setting; with 1.2 the same broker is used.
func TestBrokerTLSMinVersion(t *testing.T) {
	cert, caFile := selfSignedBroker(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12})
	var addr string
	addr = serveFakeSocket(t, tln, func(req *remoting.Command) *remoting.Command {
		resp := remoting.NewResponse(req, remoting.ResponseSuccess, "")
		if remoting.RequestCode(req.Code) == remoting.RequestGetBrokerClusterInfo {
			resp.Body = oneBrokerCluster(addr)
		}
		return resp
	})
	start := func(minVersion string) error {
		cfg := DefaultConfig()
		cfg.NameServers = []string{addr}
		cfg.StartTimeout = time.Second // how long the refused start keeps trying
		cfg.TLS = BrokerTLS{Enabled: true, CAFile: caFile, MinVersion: minVersion}
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
	if err := start("1.2"); err != nil {
		t.Fatalf("minVersion 1.2 against a TLS 1.2 broker: %v", err)
	}
	err = start("1.3")
	if err == nil {
		t.Fatal("minVersion 1.3 against a broker that speaks TLS 1.2 at most: started")
	}
	for _, want := range []string{"TLS handshake failed", "protocol version not supported", "the peer speaks no TLS version from 1.3 up", "as cluster.tls.minVersion is 1.3, with TLS 1.3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
}
