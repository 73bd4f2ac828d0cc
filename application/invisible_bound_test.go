package application

import (
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestUnlimitedInvisibleTimeIsBounded: with consumer.maxInvisibleTime 0 (no
// limit), an invisible time beyond a hundred years is refused: brokers
// keep a deadline in nanoseconds since 1970, and a longer one wrapped into
// the past, making the message visible again at once.
func TestUnlimitedInvisibleTimeIsBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Consumer.MinInvisibleTime, cfg.Consumer.MaxInvisibleTime = 0, 0
	m, _, _ := newTestMessaging(cfg)
	ctx := asClient(t.Context(), "c1")
	_, err := m.ChangeInvisibleDuration(ctx, "g", "t", "m", "handle", 250*365*24*time.Hour)
	if !domain.HasReason(err, domain.ReasonIllegalInvisibleTime) {
		t.Fatalf("250 years without a limit: %v, want ILLEGAL_INVISIBLE_TIME", err)
	}
	_, err = m.ChangeInvisibleDuration(ctx, "g", "t", "m", "handle", 50*365*24*time.Hour)
	if domain.HasReason(err, domain.ReasonIllegalInvisibleTime) {
		t.Fatalf("50 years without a limit: %v", err)
	}
}
