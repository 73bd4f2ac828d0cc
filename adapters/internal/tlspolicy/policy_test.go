package tlspolicy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/internal/tlspolicy"
)

func TestParseMinVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"", tls.VersionTLS12, true},
		{"1.2", tls.VersionTLS12, true},
		{"1.3", tls.VersionTLS13, true},
		{"1.1", 0, false},
		{"1.0", 0, false},
		{"TLS1.3", 0, false},
		{"1.30", 0, false},
		{"tls13", 0, false},
		{" 1.3", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := tlspolicy.ParseMinVersion(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseMinVersion(%q) = %#x, %v; want %#x, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "1.2 or 1.3") {
				t.Errorf("the error does not name the allowed values: %v", err)
			}
			if err == nil && tc.in != "" && tlspolicy.VersionName(got) != tc.in {
				t.Errorf("VersionName(%#x) = %q, want %q", got, tlspolicy.VersionName(got), tc.in)
			}
		})
	}
}

func TestParseCipherSuites(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []string
		want  []uint16
		error string // a substring; "" when accepted
	}{
		{"none: the defaults", nil, nil, ""},
		{"two", []string{"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
			[]uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, ""},
		{"CBC with ECDHE", []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, ""},
		{"RSA key exchange", []string{"TLS_RSA_WITH_AES_128_GCM_SHA256"}, nil, "not a forward-secret (ECDHE) suite"},
		{"insecure", []string{"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"}, nil, "not a forward-secret (ECDHE) suite without known weaknesses"},
		{"TLS 1.3", []string{"TLS_AES_128_GCM_SHA256"}, nil, "TLS 1.3 cipher suite"},
		{"unknown", []string{"ECDHE-RSA-AES128-GCM-SHA256"}, nil, "not a cipher suite crypto/tls implements; use TLS 1.2 suites from: TLS_ECDHE_"},
		{"twice", []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}, nil, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tlspolicy.ParseCipherSuites(tc.in)
			if tc.error == "" {
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("ParseCipherSuites(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Fatalf("ParseCipherSuites(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.error)
			}
		})
	}
	for _, n := range tlspolicy.CipherSuites() {
		if !strings.HasPrefix(n, "TLS_ECDHE_") {
			t.Errorf("CipherSuites() lists %s", n)
		}
	}
}

func TestCheckCertificate(t *testing.T) {
	ecdsaKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaCert := &x509.Certificate{PublicKey: &ecdsaKey.PublicKey, PublicKeyAlgorithm: x509.ECDSA}
	rsaCert := &x509.Certificate{PublicKey: &rsaKey.PublicKey, PublicKeyAlgorithm: x509.RSA}
	ecdsaOnly := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	if err := tlspolicy.CheckCertificate(ecdsaOnly, ecdsaCert); err != nil {
		t.Errorf("an ECDSA suite for an ECDSA key: %v", err)
	}
	if err := tlspolicy.CheckCertificate(ecdsaOnly, rsaCert); err == nil || !strings.Contains(err.Error(), "RSA key") {
		t.Errorf("only ECDSA suites for an RSA key: %v", err)
	}
	if err := tlspolicy.CheckCertificate(nil, rsaCert); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}
