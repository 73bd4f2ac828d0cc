package application

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports/clocktest"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func testMessaging(t *testing.T) *Messaging {
	t.Helper()
	cfg := DefaultConfig()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clock := fixedClock{time.Unix(1_700_000_000, 0)}
	s := NewSessions(cfg, clock, log)
	return NewMessaging(MessagingParams{Config: cfg, Clock: clock, Log: log, Sessions: s, Renewer: NewRenewer(cfg, nil, nil, clock, log)})
}

func TestPollingTime(t *testing.T) {
	m := testMessaging(t)
	now := m.clock.Now()
	d := func(v time.Duration) *time.Duration { return &v }
	cases := []struct {
		name      string
		deadline  time.Duration // 0: none
		longPoll  *time.Duration
		reqTO     time.Duration
		version   string
		want      time.Duration
		wantError domain.Reason
	}{
		{"client long polling clamped to max", 40 * time.Second, d(30 * time.Second), 3 * time.Second, "5.1.4", 20 * time.Second, 0},
		{"client long polling raised to min", 40 * time.Second, d(time.Second), 3 * time.Second, "5.1.4", 5 * time.Second, 0},
		{"deadline minus half the request timeout", 8 * time.Second, nil, 3 * time.Second, "5.1.4", 6500 * time.Millisecond, 0},
		{"remaining deadline when polling would pass it", 6 * time.Second, d(20 * time.Second), 3 * time.Second, "5.1.4", 6 * time.Second, 0},
		{"deadline too short", 3 * time.Second, nil, 3 * time.Second, "5.1.4", 0, domain.ReasonIllegalPollingTime},
		{"deadline too short, old client", 3 * time.Second, nil, 3 * time.Second, "5.0.2", 0, domain.ReasonBadRequest},
		{"deadline too short, client 5.0.10", 3 * time.Second, nil, 3 * time.Second, "5.0.10", 0, domain.ReasonIllegalPollingTime},
		{"no deadline", 0, nil, 3 * time.Second, "5.1.4", 20 * time.Second, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, now.Add(c.deadline))
				defer cancel()
			}
			got, err := m.pollingTime(ctx, ReceiveRequest{LongPollingTimeout: c.longPoll}, ClientSettings{RequestTimeout: c.reqTO}, c.version)
			if c.wantError != 0 {
				if !domain.HasReason(err, c.wantError) {
					t.Fatalf("got %v, %v; want %v", got, err, c.wantError)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestAllocateAveragely(t *testing.T) {
	queues := make([]Assignment, 5)
	for i := range queues {
		queues[i].QueueID = int32(i)
	}
	ids := func(as []Assignment) (out []int32) {
		for _, a := range as {
			out = append(out, a.QueueID)
		}
		return out
	}
	for n, want := range map[int][][]int32{
		1: {{0, 1, 2, 3, 4}},
		2: {{0, 1, 2}, {3, 4}},
		3: {{0, 1}, {2, 3}, {4}},
		7: {{0}, {1}, {2}, {3}, {4}, nil, nil},
	} {
		for i := range n {
			got := ids(allocateAveragely(queues, n, i))
			if len(got) != len(want[i]) || (len(got) > 0 && (got[0] != want[i][0] || got[len(got)-1] != want[i][len(want[i])-1])) {
				t.Errorf("n=%d i=%d: %v, want %v", n, i, got, want[i])
			}
		}
	}
}

func TestSessionsExpireSilentClients(t *testing.T) {
	cfg := DefaultConfig()
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	s := NewSessions(cfg, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var gone []string
	s.setOnGone(func(_ context.Context, id string, _ ClientSettings) { gone = append(gone, id) })
	s.put("a", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t"}}}, nil)
	s.put("b", ClientSettings{ClientType: ClientTypeSimpleConsumer, Subscription: &SubscriptionSettings{Group: "g"}}, nil)
	clock.Advance(100 * time.Second)
	s.touch("b", "")
	clock.Advance(30 * time.Second) // a: 130s silent, b: 30s
	s.expire(context.Background())
	if len(gone) != 1 || gone[0] != "a" || s.Count() != 1 {
		t.Fatalf("expired %v, %d left", gone, s.Count())
	}
}

// TestSessionsIndexFollowSettings: the registry's indexes of groups and
// topics (what QueryAssignment and check-backs read) follow a client's
// settings as they change, and forget a client that leaves or expires.
func TestSessionsIndexFollowSettings(t *testing.T) {
	cfg := DefaultConfig()
	clock := clocktest.New(time.Unix(1_700_000_000, 0))
	s := NewSessions(cfg, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ch := newOpenChannel()
	push := func(group string) ClientSettings {
		return ClientSettings{ClientType: ClientTypePushConsumer, Subscription: &SubscriptionSettings{Group: group}}
	}
	if _, err := s.put("c", ClientSettings{ClientType: ClientTypeProducer, Publishing: &PublishingSettings{Topics: []string{"t1", "t2"}}}, ch); err != nil {
		t.Fatal(err)
	}
	if !s.hasProducerOf("t1") || len(s.producersOf("t2")) != 1 {
		t.Fatal("the producer is not found by its topics")
	}
	if _, err := s.put("c", push("g1"), ch); err != nil {
		t.Fatal(err)
	}
	if s.hasProducerOf("t1") || len(s.byTopic) != 0 {
		t.Fatalf("a producer turned consumer is still a producer: %v", s.byTopic)
	}
	if got := s.pushConsumersOf("g1", "t"); len(got) != 1 {
		t.Fatalf("consumers of g1: %v", got)
	}
	if _, err := s.put("c", push("g2"), ch); err != nil {
		t.Fatal(err)
	}
	if got := s.pushConsumersOf("g1", "t"); len(got) != 0 {
		t.Fatalf("consumers of g1 after the client moved to g2: %v", got)
	}
	if _, _, ok := s.remove("c", "", netip.AddrPort{}); !ok || len(s.byGroup) != 0 {
		t.Fatalf("after the goodbye: %v", s.byGroup)
	}
	if _, err := s.putProvisional("d", push("g3"), true); err != nil {
		t.Fatal(err)
	}
	if got := s.pushConsumersOf("g3", "t"); len(got) != 1 {
		t.Fatalf("consumers of g3 (a heartbeat's): %v", got)
	}
	clock.Advance(cfg.Clients.ExpiryTimeout + 1)
	s.expire(t.Context())
	if len(s.byGroup)+len(s.byTopic) != 0 || s.Count() != 0 {
		t.Fatalf("after expiry: %v %v", s.byGroup, s.byTopic)
	}
}
