package testenv

import (
	"crypto/x509"
	"os"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/testenv/certtest"
)

// CA issues server certificates for tests.
type CA struct {
	ca *certtest.CA
	// PEM is the CA certificate, for a client's trusted roots.
	PEM []byte
}

// NewCA returns a CA valid for an hour around now.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca := certtest.NewCA(t, "rmqproxy test CA")
	return &CA{ca: ca, PEM: ca.CertPEM()}
}

// WriteServerCert writes a PEM server certificate for localhost and
// 127.0.0.1 with this serial number, and its key, to certFile and keyFile
// (each written whole, then renamed, as an operator's tooling would).
func (ca *CA) WriteServerCert(t testing.TB, serial int64, certFile, keyFile string) {
	t.Helper()
	c := ca.ca.Issue(t, certtest.Spec{Serial: serial, Hosts: []string{"localhost", "127.0.0.1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	// The key first: a reload between the two renames sees a pair that
	// does not match, refuses it and loads the next change.
	writeFileAtomic(t, keyFile, c.KeyPEM(t))
	writeFileAtomic(t, certFile, c.CertPEM())
}

func writeFileAtomic(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name+".tmp", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		t.Fatal(err)
	}
}
