package grpc

import (
	"strings"
	"testing"
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
