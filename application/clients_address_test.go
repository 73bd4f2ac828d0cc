package application

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

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

// A Telemetry settings command may be as large as a gRPC request
// (grpc.maxRecvMessageSize, 130 MiB), and the settings of a client are
// kept until it expires, two minutes after its last heartbeat: a client
// sending huge settings under one invented id after another made the proxy
// keep gigabytes (bandwidth × two minutes) until it was killed for its
// memory. The settings of the clients of one user, or without
// authentication of one client address, take at most
// messaging.clients.maxSettingsBytes (64 MiB); other addresses are served.
func TestHugeSettingsUnderManyIDsAreBounded(t *testing.T) {
	cfg := DefaultConfig()
	m, _, _ := newTestMessaging(cfg)
	ctx := t.Context()
	topics := make([]string, 8192)
	for i := range topics {
		topics[i] = fmt.Sprintf("%0127d", i) // 1 MiB of topic names
	}
	huge := ClientSettings{ClientType: ClientTypeProducer, RequestTimeout: 3 * time.Second, Publishing: &PublishingSettings{Topics: topics}}
	refused := -1
	for i := range 80 {
		_, err := m.UpdateSettings(fromAddress(ctx, fmt.Sprint("huge-", i), fmt.Sprintf("198.51.100.7:%d", 4000+i)), huge, newOpenChannel())
		if domain.HasReason(err, domain.ReasonTooManyRequests) {
			refused = i
			break
		}
		if err != nil {
			t.Fatalf("settings %d: %v", i, err)
		}
	}
	if refused < 0 || refused > 64 {
		t.Fatalf("80 MiB of settings from one address under 80 client ids were all kept (first refused: %d); want a refusal by 64 MiB", refused)
	}
	if m.sessions.known(fmt.Sprint("huge-", refused)) {
		t.Fatalf("the refused client is registered")
	}
	small := ClientSettings{ClientType: ClientTypeProducer, RequestTimeout: 3 * time.Second, Publishing: &PublishingSettings{Topics: []string{"t"}}}
	if _, err := m.UpdateSettings(fromAddress(ctx, "elsewhere", "192.0.2.9:4000"), huge, newOpenChannel()); err != nil {
		t.Fatalf("huge settings from another address: %v", err)
	}
	// A client of the full address that shrinks its settings is served,
	// and frees room.
	if _, err := m.UpdateSettings(fromAddress(ctx, "huge-0", "198.51.100.7:4000"), small, newOpenChannel()); err != nil {
		t.Fatalf("a known client of the full address shrinking its settings: %v", err)
	}
	if _, err := m.UpdateSettings(fromAddress(ctx, fmt.Sprint("huge-", refused), "198.51.100.7:5000"), huge, newOpenChannel()); err != nil {
		t.Fatalf("after another client of the address shrank its settings: %v", err)
	}
	if err := m.NotifyClientTermination(fromAddress(ctx, "huge-1", "198.51.100.7:4001"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UpdateSettings(fromAddress(ctx, "huge-again", "198.51.100.7:6000"), huge, newOpenChannel()); err != nil {
		t.Fatalf("after a client of the address terminated: %v", err)
	}
}
