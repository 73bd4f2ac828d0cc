package certtest

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// TestSelfSignedRootVerifiesForItsHosts: a Root certificate is trusted by
// its own pool for each of its hosts, by IP address or DNS name, and is
// valid for an hour either side of now by default; one that is not Root
// is no CA.
func TestSelfSignedRootVerifiesForItsHosts(t *testing.T) {
	c := SelfSigned(t, Spec{Serial: 3, Hosts: []string{"127.0.0.1", "localhost"}, Root: true})
	for _, h := range []string{"127.0.0.1", "localhost"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: c.Pool()}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	if c.Leaf.Subject.CommonName != "127.0.0.1" || c.Leaf.SerialNumber.Int64() != 3 {
		t.Errorf("common name %q, serial %d; want 127.0.0.1, 3", c.Leaf.Subject.CommonName, c.Leaf.SerialNumber)
	}
	if d := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore); d < 2*time.Hour-2*time.Second || d > 2*time.Hour {
		t.Errorf("valid for %v, want two hours", d)
	}
	if _, err := tls.X509KeyPair(c.CertPEM(), c.KeyPEM(t)); err != nil {
		t.Errorf("the PEM pair: %v", err)
	}
	if leaf := SelfSigned(t, Spec{Hosts: []string{"localhost"}}).Leaf; leaf.IsCA || leaf.KeyUsage != 0 {
		t.Errorf("a certificate without Root: IsCA %v, key usage %v", leaf.IsCA, leaf.KeyUsage)
	}
}

// TestIssuedCertificateVerifiesWithTheCA: a certificate a CA issues is
// trusted by the CA's pool for the usage it names, and not for another.
func TestIssuedCertificateVerifiesWithTheCA(t *testing.T) {
	ca := NewCA(t, "test CA")
	notAfter := time.Now().Add(30 * time.Minute).Truncate(time.Second)
	c := ca.Issue(t, Spec{Serial: 2, CommonName: "client", Hosts: []string{"localhost", "127.0.0.1"}, NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	opts := x509.VerifyOptions{DNSName: "127.0.0.1", Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := c.Leaf.Verify(opts); err != nil {
		t.Fatal(err)
	}
	if !c.Leaf.NotAfter.Equal(notAfter) || c.Leaf.Subject.CommonName != "client" {
		t.Errorf("NotAfter %v, common name %q; want %v, client", c.Leaf.NotAfter, c.Leaf.Subject.CommonName, notAfter)
	}
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if _, err := c.Leaf.Verify(opts); err == nil {
		t.Error("a client certificate verifies for server auth")
	}
}
