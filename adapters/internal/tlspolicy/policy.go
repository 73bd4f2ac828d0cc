// Package tlspolicy reads the TLS policy settings every adapter that
// serves or dials TLS has: the minimum version (grpc.tls.minVersion,
// admin.tls.minVersion, cluster.tls.minVersion) and the TLS 1.2 cipher
// suites (the cipherSuites beside them). Adapters never import each
// other; this package is how they share the values and the wording of the
// refusals. Each error says what is allowed; the caller prefixes the
// setting's key.
//
// Only TLS 1.2 and 1.3 are offered as minimums: crypto/tls refuses
// anything older anyway. Only forward-secret (ECDHE) TLS 1.2 suites that
// crypto/tls does not list as insecure can be chosen; TLS 1.3 suites are
// not configurable in crypto/tls.
package tlspolicy

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Values of a minVersion setting.
const (
	V12 = "1.2"
	V13 = "1.3"
	// Default is what an empty setting means: TLS 1.2, the least every
	// official RocketMQ client and broker speaks.
	Default = V12
	// Allowed names the values for messages and help text.
	Allowed = V12 + " or " + V13
)

// ParseMinVersion returns the crypto/tls constant of v ("1.2", "1.3"; ""
// is Default).
func ParseMinVersion(v string) (uint16, error) {
	switch v {
	case "", V12:
		return tls.VersionTLS12, nil
	case V13:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not a TLS version rmqproxy accepts as a minimum: use %s", v, Allowed)
}

// VersionName returns the setting's value for the crypto/tls constant v,
// such as "1.3", or its hexadecimal code for a version ParseMinVersion
// does not return.
func VersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return V12
	case tls.VersionTLS13:
		return V13
	}
	return fmt.Sprintf("0x%04x", v)
}

// CipherSuites returns the names ParseCipherSuites accepts, in crypto/tls's
// order: the TLS 1.2 suites with ECDHE key exchange it does not list as
// insecure.
func CipherSuites() []string {
	var names []string
	for _, cs := range tls.CipherSuites() {
		if strings.HasPrefix(cs.Name, "TLS_ECDHE_") && slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			names = append(names, cs.Name)
		}
	}
	return names
}

// ParseCipherSuites returns the IDs of the TLS 1.2 cipher suites names
// lists by their IANA names (such as TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
// nil for none (crypto/tls's defaults). A name twice, one crypto/tls does
// not implement or lists as insecure, one without ECDHE key exchange
// (not forward secret) and a TLS 1.3 suite are refused.
func ParseCipherSuites(names []string) ([]uint16, error) {
	if len(names) == 0 {
		return nil, nil
	}
	allowed := CipherSuites()
	byName := map[string]uint16{}
	for _, cs := range tls.CipherSuites() {
		byName[cs.Name] = cs.ID
	}
	for _, cs := range tls.InsecureCipherSuites() {
		byName[cs.Name] = cs.ID
	}
	ids := make([]uint16, 0, len(names))
	for i, n := range names {
		id, known := byName[n]
		switch {
		case slices.Contains(names[:i], n):
			return nil, fmt.Errorf("lists %s twice", n)
		case known && strings.HasPrefix(n, "TLS_AES_"), n == "TLS_CHACHA20_POLY1305_SHA256":
			return nil, fmt.Errorf("%q is a TLS 1.3 cipher suite, and those cannot be chosen; list TLS 1.2 suites only, from: %s", n, strings.Join(allowed, ", "))
		case !slices.Contains(allowed, n):
			why := "is not a cipher suite crypto/tls implements"
			if known {
				why = "is not a forward-secret (ECDHE) suite without known weaknesses"
			}
			return nil, fmt.Errorf("%q %s; use TLS 1.2 suites from: %s", n, why, strings.Join(allowed, ", "))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// CheckCertificate refuses a list of TLS 1.2 suites (ParseCipherSuites's)
// with none for the key of leaf: a server so configured fails the
// handshake of every TLS 1.2 client. An empty list (the defaults) always
// passes.
func CheckCertificate(suites []uint16, leaf *x509.Certificate) error {
	if len(suites) == 0 || leaf == nil {
		return nil
	}
	want := "_ECDSA_" // ECDSA and Ed25519 keys sign with the ECDSA suites
	if _, ok := leaf.PublicKey.(*rsa.PublicKey); ok {
		want = "_RSA_"
	}
	for _, id := range suites {
		if strings.Contains(tls.CipherSuiteName(id), want) {
			return nil
		}
	}
	return fmt.Errorf("lists no suite for the %s key of the certificate (names with %s): TLS 1.2 clients could not connect", leaf.PublicKeyAlgorithm, want)
}
