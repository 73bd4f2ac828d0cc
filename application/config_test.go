package application

import (
	"strings"
	"testing"
	"time"
)

// TestRenewAheadCoversRenewPeriod: auto-renewal looks for messages about to
// become visible every renewPeriod and renews those due within renewAhead,
// so renewAhead must exceed renewPeriod: otherwise a message that becomes
// due just after a scan turns visible before the next one and is delivered
// again while its push consumer still holds it. A negative
// invisibleTimeOnClear is no invisible time either.
func TestRenewAheadCoversRenewPeriod(t *testing.T) {
	for name, edit := range map[string]func(*ConsumerConfig){
		"renewAhead below renewPeriod": func(c *ConsumerConfig) { c.RenewPeriod, c.RenewAhead = 30*time.Second, 10*time.Second },
		"renewAhead equal":             func(c *ConsumerConfig) { c.RenewPeriod, c.RenewAhead = 5*time.Second, 5*time.Second },
		"renewAhead negative":          func(c *ConsumerConfig) { c.RenewAhead = -time.Second },
	} {
		cfg := DefaultConfig()
		edit(&cfg.Consumer)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "renewAhead") {
			t.Errorf("%s: %v; want refused", name, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Consumer.InvisibleTimeOnClear = -time.Second
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "invisibleTimeOnClear") {
		t.Errorf("negative invisibleTimeOnClear: %v; want refused", err)
	}
	cfg = DefaultConfig()
	cfg.Consumer.AutoRenew = false
	cfg.Consumer.RenewPeriod, cfg.Consumer.RenewAhead = 30*time.Second, time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatalf("without autoRenew the renewal settings are unused: %v", err)
	}
}
