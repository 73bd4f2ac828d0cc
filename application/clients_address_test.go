package application

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func fromAddress(ctx context.Context, clientID, addr string) context.Context {
	return ports.WithRequestInfo(ctx, ports.RequestInfo{ClientID: clientID, ClientVersion: "5.1.4", Protocol: "grpc",
		RemoteAddr: netip.MustParseAddrPort(addr)})
}

// Without authentication a client inventing a client id per heartbeat
// filled the registry (messaging.clients.maxClients, 100,000) from one
// address, and every other new client of the proxy was refused
// TOO_MANY_REQUESTS until the invented ones expired, two minutes after the
// flood stopped; each of them also kept its settings (a Telemetry command
// may hold 130 MiB) for that long. The unauthenticated clients of one
// address (an IPv6 /64) may be at most messaging.clients.maxClientsPerAddress
// (5000) of the known ones, as the clients of one user are.
func TestUnauthenticatedAddressCannotFillTheRegistry(t *testing.T) {
	cfg := DefaultConfig()
	m, _, clock := newTestMessaging(cfg)
	ctx := t.Context()
	const limit = 5000
	for i := range limit {
		if err := m.Heartbeat(fromAddress(ctx, fmt.Sprint("invented-", i), fmt.Sprintf("[2001:db8:0:7::%x]:4000", i+1)), "", ClientTypeProducer); err != nil {
			t.Fatalf("client %d of the address: %v", i, err)
		}
	}
	if err := m.Heartbeat(fromAddress(ctx, "invented-more", "[2001:db8:0:7:1::1]:4000"), "", ClientTypeProducer); !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("client %d of the same /64: %v, want TOO_MANY_REQUESTS", limit+1, err)
	}
	if err := m.Heartbeat(fromAddress(ctx, "invented-0", "[2001:db8:0:7::1]:4000"), "", ClientTypeProducer); err != nil {
		t.Fatalf("a known client of the full address: %v", err)
	}
	if err := m.Heartbeat(fromAddress(ctx, "elsewhere", "192.0.2.9:4000"), "", ClientTypeProducer); err != nil {
		t.Fatalf("a client at another address: %v", err)
	}
	if err := m.Heartbeat(asUser(fromAddress(ctx, "bob-1", "[2001:db8:0:7::2]:4000"), "bob-1", "bob"), "", ClientTypeProducer); err != nil {
		t.Fatalf("an authenticated client at the full address: %v", err)
	}
	if err := m.NotifyClientTermination(fromAddress(ctx, "invented-1", "[2001:db8:0:7::2]:4000"), ""); err != nil {
		t.Fatal(err)
	}
	if err := m.Heartbeat(fromAddress(ctx, "invented-more", "[2001:db8:0:7:1::1]:4000"), "", ClientTypeProducer); err != nil {
		t.Fatalf("after one of the address's clients terminated: %v", err)
	}
	clock.Advance(cfg.Clients.ExpiryTimeout + 1)
	m.sessions.expire(ctx)
	if err := m.Heartbeat(fromAddress(ctx, "invented-again", "[2001:db8:0:7::9]:4000"), "", ClientTypeProducer); err != nil {
		t.Fatalf("after the address's clients expired: %v", err)
	}
}
