// Package certtest makes TLS certificates for tests: self-signed ones, and
// a CA that issues certificates, each with a new ECDSA P-256 key, in the
// forms tests need (a tls.Certificate, PEM, files, a pool that trusts it).
//
// It is for test code only; nothing built into rmqproxy imports it. It
// imports only the standard library, so that any test package, testenv
// included, may use it without weight. Every failure ends the test (t.Fatal).
package certtest

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
	"testing"
	"time"
)

// Spec says what certificate to make.
type Spec struct {
	// Serial is the certificate's serial number.
	Serial int64
	// CommonName is the subject's common name; when empty, the first of
	// Hosts.
	CommonName string
	// Hosts are the certificate's subject alternative names: each an IP
	// address where it parses as one ("127.0.0.1"), else a DNS name
	// ("localhost").
	Hosts []string
	// NotBefore and NotAfter bound its validity; when zero, an hour before
	// now and an hour after now.
	NotBefore, NotAfter time.Time
	// Root makes a self-signed certificate its own CA, so that a pool of it
	// verifies it: basic constraints with IsCA, and the key usages digital
	// signature and certificate signing.
	Root bool
	// ExtKeyUsage, if any, limits what the certificate is for.
	ExtKeyUsage []x509.ExtKeyUsage
}

// Cert is a certificate and its private key.
type Cert struct {
	// DER is the certificate as signed, Leaf the same parsed.
	DER  []byte
	Leaf *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// SelfSigned returns a certificate made to s, signed by its own key.
func SelfSigned(t testing.TB, s Spec) *Cert {
	t.Helper()
	return create(t, template(s), nil)
}

// TLS returns c as a server's or client's certificate.
func (c *Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.DER}, PrivateKey: c.Key, Leaf: c.Leaf}
}

// CertPEM returns the certificate, PEM encoded ("CERTIFICATE").
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
}

// KeyPEM returns the private key, PKCS #8 in PEM ("PRIVATE KEY").
func (c *Cert) KeyPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Pool returns a pool that trusts c as a root.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Leaf)
	return p
}

// WriteFiles writes the certificate to certFile, then the key to keyFile,
// PEM encoded, each with os.WriteFile (mode 0600): a watcher may see them
// half written, as it may an operator's.
func (c *Cert) WriteFiles(t testing.TB, certFile, keyFile string) {
	t.Helper()
	if err := os.WriteFile(certFile, c.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
}

// CA issues certificates. Its own certificate is self-signed, serial 1,
// with the common name it was made with and no subject alternative name,
// valid from an hour before it was made to an hour after.
type CA struct {
	*Cert
}

// NewCA returns a CA called commonName.
func NewCA(t testing.TB, commonName string) *CA {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: commonName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	return &CA{Cert: create(t, tmpl, nil)}
}

// Issue returns a certificate made to s, signed by ca (s.Root is for
// self-signed certificates and must be false).
func (ca *CA) Issue(t testing.TB, s Spec) *Cert {
	t.Helper()
	if s.Root {
		t.Fatal("certtest: Issue of a Spec with Root")
	}
	return create(t, template(s), ca.Cert)
}

// template returns the x509 template of s.
func template(s Spec) *x509.Certificate {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(s.Serial), Subject: pkix.Name{CommonName: s.CommonName},
		NotBefore: s.NotBefore, NotAfter: s.NotAfter, ExtKeyUsage: s.ExtKeyUsage}
	now := time.Now()
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(time.Hour)
	}
	for i, h := range s.Hosts {
		if i == 0 && tmpl.Subject.CommonName == "" {
			tmpl.Subject.CommonName = h
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if s.Root {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	}
	return tmpl
}

// create makes a new key and the certificate tmpl for it, signed by
// issuer, or by the new key itself when issuer is nil.
func create(t testing.TB, tmpl *x509.Certificate, issuer *Cert) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	parent, signer := tmpl, key
	if issuer != nil {
		parent, signer = issuer.Leaf, issuer.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Cert{DER: der, Leaf: leaf, Key: key}
}
