package postgres_test

import (
	"net/netip"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestAuditQueryFindsAnEventByWhatItNames: an auditor asked who touched a
// topic, what a refused request id (a client's error, an admin call's
// X-Request-Id) was, or what came from an address could filter only by
// principal, decision, category and time, and had to read the newest
// 10000 events of a range and search them by hand. The query now also
// selects by resource, operation, request id, client id and source
// address (an address or a prefix).
func TestAuditQueryFindsAnEventByWhatItNames(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := t.Context()
	events := []domain.AuditEvent{
		{Category: domain.AuditAuthz, Principal: "alice", SourceIP: netip.MustParseAddr("10.1.2.3"), Protocol: "grpc", Operation: "SendMessage",
			Resource: "Topic:payments", Actions: "Pub", Decision: domain.AuditDeny, Reason: "no_match_default_deny", RequestID: "req-1", ClientID: "client-a"},
		{Category: domain.AuditAuthz, Principal: "alice", SourceIP: netip.MustParseAddr("10.9.9.9"), Protocol: "grpc", Operation: "ReceiveMessage",
			Resource: "Topic:orders", Actions: "Sub", Decision: domain.AuditDeny, Reason: "no_match_default_deny", RequestID: "req-2", ClientID: "client-b"},
		{Category: domain.AuditAuthz, Principal: "bob", SourceIP: netip.MustParseAddr("192.168.0.7"), Protocol: "grpc", Operation: "SendMessage",
			Resource: "Topic:orders", Actions: "Pub", Decision: domain.AuditDeny, Reason: "no_match_default_deny", RequestID: "req-3", ClientID: "client-c"},
	}
	for _, e := range events {
		if err := s.RecordAdmin(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		q    domain.AuditQuery
		want []string // request ids, newest first
	}{
		{"resource", domain.AuditQuery{Resource: "Topic:orders"}, []string{"req-3", "req-2"}},
		{"operation", domain.AuditQuery{Operation: "SendMessage"}, []string{"req-3", "req-1"}},
		{"request id", domain.AuditQuery{RequestID: "req-2"}, []string{"req-2"}},
		{"client id", domain.AuditQuery{ClientID: "client-a"}, []string{"req-1"}},
		{"address", domain.AuditQuery{Source: netip.MustParsePrefix("192.168.0.7/32")}, []string{"req-3"}},
		{"prefix", domain.AuditQuery{Source: netip.MustParsePrefix("10.0.0.0/8")}, []string{"req-2", "req-1"}},
		{"resource and principal", domain.AuditQuery{Resource: "Topic:orders", Principal: "alice"}, []string{"req-2"}},
	} {
		evs, err := s.QueryAudit(ctx, c.q)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.RequestID)
		}
		if len(got) != len(c.want) || (len(got) > 0 && got[0] != c.want[0]) || (len(got) > 1 && got[1] != c.want[1]) {
			t.Errorf("%s: request ids %v, want %v", c.name, got, c.want)
		}
	}
}
