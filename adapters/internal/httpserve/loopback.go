package httpserve

import (
	"net"
	"net/netip"
	"strings"
)

// LoopbackName reports whether host (a name or an address, IPv6 in
// brackets or not, without a port) names this host only: localhost or a
// loopback address. An empty host, an unspecified address (0.0.0.0, ::)
// or any other name does not.
func LoopbackName(host string) bool {
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// LoopbackHostHeader reports whether an HTTP Host header (host with an
// optional port) names this host only (see LoopbackName).
func LoopbackHostHeader(hostHeader string) bool {
	host, _, err := net.SplitHostPort(hostHeader)
	if err != nil {
		host = hostHeader
	}
	return LoopbackName(host)
}
