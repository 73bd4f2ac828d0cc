package grpc

import (
	"strings"
	"testing"
	"time"
)

// TestConfigStreamsFitHTTP2: SETTINGS_MAX_CONCURRENT_STREAMS is 32 bits; a
// larger grpc.maxConcurrentStreams must be refused, not wrapped (2^32
// became 0, which grpc-go reads as no limit at all).
func TestConfigStreamsFitHTTP2(t *testing.T) {
	for _, n := range []int{0, 1 << 32, 1<<32 + 5} {
		cfg := DefaultConfig()
		cfg.MaxConcurrentStreams = n
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "maxConcurrentStreams") {
			t.Errorf("maxConcurrentStreams %d: %v; want refused", n, err)
		}
	}
	cfg := DefaultConfig()
	cfg.MaxConcurrentStreams = 1<<32 - 1
	if err := cfg.Validate(); err != nil {
		t.Fatalf("maxConcurrentStreams 2^32-1: %v", err)
	}
}

// TestConfigAddressPort: a grpc.address whose port no listener can take is
// refused by Validate (and so by config print), naming the setting, rather
// than at the start with a hint about another process on the port.
func TestConfigAddressPort(t *testing.T) {
	for _, addr := range []string{":99999", ":-1", "127.0.0.1:65536", ":port-of-nothing"} {
		cfg := DefaultConfig()
		cfg.Address = addr
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `address "`+addr+`": port`) {
			t.Errorf("address %q: %v; want refused, naming the port", addr, err)
		}
	}
	for _, addr := range []string{":8081", "127.0.0.1:0", "[::1]:65535", ":https"} {
		cfg := DefaultConfig()
		cfg.Address = addr
		if err := cfg.Validate(); err != nil {
			t.Errorf("address %q: %v", addr, err)
		}
	}
}

// TestConfigTimeoutsNamedOneByOne: an error names the one setting at fault
// and its value, not a list of settings one of which is wrong.
func TestConfigTimeoutsNamedOneByOne(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HandshakeTimeout = -time.Second
	cfg.MaxConnections = -1
	cfg.KeepaliveTime = 500 * time.Millisecond
	err := cfg.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"handshakeTimeout must be positive, not -1s", "maxConnections must not be negative (0: no limit), not -1",
		"keepaliveTime must be 0 (never ping) or at least 1s, not 500ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lacks %q: %v", want, err)
		}
	}
	for _, unwanted := range []string{"clientIdleTimeout", "maxConnectionsPerAddress", "maxStreamResetsPerSecond", "keepaliveTimeout"} {
		if strings.Contains(err.Error(), unwanted) {
			t.Errorf("names %s, which is fine: %v", unwanted, err)
		}
	}
}
