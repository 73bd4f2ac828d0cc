// Package listenaddr checks the host part of a listen address setting
// (host:port) before anything starts, so that an address net.Listen would
// refuse stops the configuration's validation instead of the start.
// Adapters never import each other; this package is how the listening
// adapters (gRPC, admin, health) share the rule, and how every address
// setting (local.storeHost, cluster.nameServers too) says how to write an
// IPv6 address (IPv6Hint).
//
// Errors never echo a user part (user@host) as written: it may be a
// credential, and it is shown redacted as the redact package does.
package listenaddr

import (
	"fmt"
	"strings"

	"github.com/rmqproxy/rmqproxy/adapters/internal/redact"
)

// CheckUser returns an error when addr, a listen address setting,
// carries a user part (user@host:port or user:password@host:port), which
// a listen address has no use for and net.Listen refuses. Check it before
// splitting addr: a password's ":" makes the split fail with a message
// that does not say why. example is the form to suggest
// ("127.0.0.1:8081").
func CheckUser(addr, example string) error {
	if strings.Contains(addr, "@") {
		return fmt.Errorf("address %q has a user part (user@); a listen address is host:port without credentials, such as %s", redact.Userinfo(addr), example)
	}
	return nil
}

// CheckHost returns an error when host, the host net.SplitHostPort found
// in addr, has characters no IP address or host name has (such as the
// "/" of a URL path), or a user part. An empty host (every interface)
// passes.
func CheckHost(addr, host, example string) error {
	if err := CheckUser(addr, example); err != nil {
		return err
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_:%", c)) {
			return fmt.Errorf("address %q: host %q is not an IP address or host name; a listen address is host:port, such as %s", addr, host, example)
		}
	}
	return nil
}
