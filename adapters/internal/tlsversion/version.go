// Package tlsversion reads the minimum TLS version settings
// (grpc.tls.minVersion, admin.tls.minVersion, cluster.tls.minVersion) for
// every adapter that serves or dials TLS. Adapters never import each
// other; this package is how they share the values and the wording of the
// refusal.
//
// Only TLS 1.2 and 1.3 are offered: crypto/tls already refuses anything
// older by default, and the names are the ones operators write ("1.2").
package tlsversion

import (
	"crypto/tls"
	"fmt"
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

// Parse returns the crypto/tls constant of v ("1.2", "1.3"; "" is
// Default). The error says what is allowed; the caller prefixes the
// setting's key.
func Parse(v string) (uint16, error) {
	switch v {
	case "", V12:
		return tls.VersionTLS12, nil
	case V13:
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q is not a TLS version rmqproxy accepts as a minimum: use %s", v, Allowed)
}

// Name returns the setting's value for the crypto/tls constant v, such as
// "1.3", or its hexadecimal code for a version Parse does not return.
func Name(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return V12
	case tls.VersionTLS13:
		return V13
	}
	return fmt.Sprintf("0x%04x", v)
}
