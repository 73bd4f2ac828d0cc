package application

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/ports"
)

func addressCtx(clientID, addr string) context.Context {
	return ports.WithRequestInfo(context.Background(), ports.RequestInfo{ClientID: clientID, RemoteAddr: netip.MustParseAddrPort(addr)})
}

// Without authentication a client id is the client's choice: one client
// inventing an id per long poll (or per Telemetry stream) passed
// traffic.maxInflightPerClient, and from one address (ten connections of
// grpc.maxConcurrentStreams each) took every slot of grpc.maxInflightPerKind:
// every other client of the proxy was refused "flow limit". The address
// (an IPv6 /64) is what such a client cannot choose: it holds at most
// traffic.maxInflightPerAddress requests (half of the kind's slots by
// default) when it is not authenticated, other addresses are served, and
// acks count apart.
func TestUnauthenticatedAddressCannotTakeEverySlot(t *testing.T) {
	cfg := DefaultTrafficConfig()
	tr := NewTraffic(cfg, ports.SystemClock{})
	var held []ClientRequest
	defer func() {
		for _, e := range held {
			e.Leave()
		}
	}()
	const limit = 5000 // the default, half of grpc.maxInflightPerKind's
	for i := range limit {
		e, err := tr.EnterClientRequest(addressCtx(fmt.Sprint("invented-", i), fmt.Sprintf("[2001:db8:0:1::%x]:4000", i+1)), DirectionReceive)
		if err != nil {
			t.Fatalf("request %d of the address: %v", i, err)
		}
		held = append(held, e)
	}
	_, err := tr.EnterClientRequest(addressCtx("invented-more", "[2001:db8:0:1:ffff::1]:4000"), DirectionReceive)
	if !domain.HasReason(err, domain.ReasonTooManyRequests) {
		t.Fatalf("request %d from the same /64 under a new client id: %v, want TOO_MANY_REQUESTS", limit+1, err)
	}
	e, err := tr.EnterClientRequest(addressCtx("other", "192.0.2.7:4000"), DirectionReceive)
	if err != nil {
		t.Fatalf("a client at another address: %v", err)
	}
	held = append(held, e)
	ack, err := tr.EnterFinishingRequest(addressCtx("invented-0", "[2001:db8:0:1::1]:4000"), DirectionReceive)
	if err != nil {
		t.Fatalf("an ack from the full address: %v", err)
	}
	held = append(held, ack)
	// An authenticated client is bounded by its user instead.
	authd := WithPrincipal(addressCtx("u-client", "[2001:db8:0:1::2]:4000"), Principal{User: domain.User{Name: "u"}})
	e, err = tr.EnterClientRequest(authd, DirectionReceive)
	if err != nil {
		t.Fatalf("an authenticated client at the full address: %v", err)
	}
	held = append(held, e)
	held[0].Leave()
	held = held[1:]
	e, err = tr.EnterClientRequest(addressCtx("invented-more", "[2001:db8:0:1::2]:4000"), DirectionReceive)
	if err != nil {
		t.Fatalf("after one of the address's requests ended: %v", err)
	}
	held = append(held, e)
}
