package client_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting/client"
)

// TestDialsTheAddressFormOfAnIPv6Broker: a broker with brokerIP1 set to an
// IPv6 address registers itself with the NameServers as "::1:10911" (the
// address, a colon and the port, without brackets, which RocketMQ's own
// clients split at the last colon), and routes name it so. The proxy
// failed to reach such a broker ("too many colons in address"); it dials
// it, and the bracketed form too.
func TestDialsTheAddressFormOfAnIPv6Broker(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	fb := fakeBrokerOn(t, ln, echo)
	c := newClient(t, client.Config{ConnsPerAddr: 1})
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for _, addr := range []string{"::1:" + port, "[::1]:" + port, fb.addr()} {
		invoke(t, c, addr, "x")
	}
}
