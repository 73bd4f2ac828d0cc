package admin_test

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
)

// TestClientAddressIPv6: "[::1]:8082" and its URL are taken; "::1:8082",
// as RocketMQ writes addresses, was refused as "not host:port or an
// http(s) URL" alone; the error now shows the bracketed form to write.
func TestClientAddressIPv6(t *testing.T) {
	for _, ok := range []string{"[::1]:8082", "http://[::1]:8082"} {
		if _, err := admin.NewClient(ok, nil); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	_, err := admin.NewClient("::1:8082", nil)
	if err == nil || !strings.Contains(err.Error(), "an IPv6 address goes in brackets, then the port: [::1]:8082") {
		t.Fatalf("::1:8082: got %v", err)
	}
}
