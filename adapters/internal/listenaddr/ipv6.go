package listenaddr

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// IPv6Hint returns, for an address setting that did not split as
// host:port because it is an IPv6 address without brackets (as RocketMQ
// writes them: "::1:9876") or without a port ("[::1]", "fd00::1"), how to
// write it: "; an IPv6 address goes in brackets, then the port:
// [::1]:9876", with port (the setting's usual one) where addr has none.
// For any other address it returns "". Nothing of addr beyond an IP
// address and a port is echoed.
func IPv6Hint(addr string, port int) string {
	suggest := func(ip netip.Addr, p string) string {
		return "; an IPv6 address goes in brackets, then the port: " + net.JoinHostPort(ip.String(), p)
	}
	if inner, ok := strings.CutPrefix(addr, "["); ok {
		if host, ok := strings.CutSuffix(inner, "]"); ok {
			if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
				return suggest(ip, strconv.Itoa(port))
			}
		}
		return ""
	}
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		host, p := addr[:i], addr[i+1:]
		if n, err := strconv.ParseUint(p, 10, 16); err == nil && strconv.FormatUint(n, 10) == p {
			if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
				return suggest(ip, p)
			}
		}
	}
	if ip, err := netip.ParseAddr(addr); err == nil && ip.Is6() {
		return suggest(ip, strconv.Itoa(port))
	}
	return ""
}

// PortOnlyHint returns, for an address setting that is a port alone
// ("18081", as a YAML number or a flag gives it), how to write it: on every
// interface (":18081"), or on loopback only ("127.0.0.1:18081") for a
// setting whose default is loopback. For any other address it returns "".
func PortOnlyHint(addr string, loopback bool) string {
	n, err := strconv.ParseUint(addr, 10, 16)
	if err != nil || strconv.FormatUint(n, 10) != addr {
		return ""
	}
	if loopback {
		return "; for port " + addr + " on loopback only write \"127.0.0.1:" + addr + "\""
	}
	return "; for port " + addr + " on every interface write \":" + addr + "\""
}
