package application

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain/filter"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

// benchSessions returns a registry of n clients: half producers of n/20
// topics (ten each), half push consumers of n/20 groups (ten each), every
// one with a live command channel.
func benchSessions(b *testing.B, n int) *Sessions {
	b.Helper()
	cfg := DefaultConfig()
	cfg.Clients.MaxClients = 2 * n
	s := NewSessions(cfg, clocktest.New(time.Unix(1_700_000_000, 0)), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range n {
		id := fmt.Sprintf("client-%d", i)
		var st ClientSettings
		if i%2 == 0 {
			st = ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{fmt.Sprintf("topic-%d", i/20)}}}
		} else {
			st = ClientSettings{ClientType: ClientTypePushConsumer, Subscription: &SubscriptionSettings{Group: fmt.Sprintf("group-%d", i/20),
				Entries: []SubscriptionEntry{{Topic: fmt.Sprintf("topic-%d", i/20), Filter: filter.Expression{Type: filter.TypeTag, Text: "*"}}}}}
		}
		if _, err := s.put(id, st, newOpenChannel()); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// The registry's lookups with 10,000 known clients: what every request
// pays (owned, touch), a push consumer's QueryAssignment of an orderly
// group (pushConsumersOf) and a transaction check-back (hasProducerOf,
// producersOf).
func BenchmarkSessions(b *testing.B) {
	const n = 10_000
	s := benchSessions(b, n)
	b.Run("owned", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, ok, _ := s.owned(fmt.Sprintf("client-%d", i%n), ""); !ok {
				b.Fatal("unknown")
			}
		}
	})
	b.Run("touch", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			s.touch(fmt.Sprintf("client-%d", i%n), "")
		}
	})
	b.Run("pushConsumersOf", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			g := (i % (n / 20))
			if ids := s.pushConsumersOf(fmt.Sprintf("group-%d", g), fmt.Sprintf("topic-%d", g)); len(ids) != 10 {
				b.Fatalf("%d consumers", len(ids))
			}
		}
	})
	b.Run("checkBack", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			topic := fmt.Sprintf("topic-%d", i%(n/20))
			if !s.hasProducerOf(topic) || len(s.producersOf(topic)) != 10 {
				b.Fatal("no producers")
			}
		}
	})
}
