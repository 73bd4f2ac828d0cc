package ports_test

import (
	"context"
	"net/netip"
	"testing"

	"github.com/rmqproxy/rmqproxy/ports"
)

type otherKey struct{}

func TestRequestInfo(t *testing.T) {
	bare := context.WithValue(t.Context(), otherKey{}, "other")
	if info, ok := ports.LookupRequestInfo(bare); ok || info != (ports.RequestInfo{}) {
		t.Fatalf("LookupRequestInfo of a context without one = %+v, %v", info, ok)
	}
	if info := ports.RequestInfoFrom(bare); info != (ports.RequestInfo{}) {
		t.Fatalf("RequestInfoFrom of a context without one = %+v", info)
	}
	outer := ports.RequestInfo{ClientID: "c1", Language: "GO", Namespace: "ns", RequestID: "r1",
		RemoteAddr: netip.MustParseAddrPort("10.0.0.1:4000"), LocalAddr: netip.MustParseAddrPort("10.0.0.2:8081"), Protocol: "grpc"}
	ctx, cancel := context.WithCancel(ports.WithRequestInfo(bare, outer))
	if info, ok := ports.LookupRequestInfo(ctx); !ok || info != outer {
		t.Fatalf("LookupRequestInfo = %+v, %v; want %+v", info, ok, outer)
	}
	if ctx.Value(otherKey{}) != "other" {
		t.Fatal("a value of the parent is lost")
	}
	// The accessors return copies.
	info := ports.RequestInfoFrom(ctx)
	info.ClientID = "changed"
	if ports.RequestInfoFrom(ctx).ClientID != "c1" {
		t.Fatal("changing a returned RequestInfo changed the context's")
	}
	// An inner RequestInfo shadows the outer one.
	inner := ports.RequestInfo{ClientID: "c2", Protocol: "remoting"}
	ctx2 := ports.WithRequestInfo(ctx, inner)
	if got := ports.RequestInfoFrom(ctx2); got != inner {
		t.Fatalf("inner RequestInfoFrom = %+v, want %+v", got, inner)
	}
	// Deadlines and cancellation pass through.
	cancel()
	<-ctx2.Done()
	if ctx2.Err() != context.Canceled {
		t.Fatalf("Err = %v", ctx2.Err())
	}
	stopped := make(chan struct{})
	ctx3, cancel3 := context.WithCancel(ports.WithRequestInfo(t.Context(), inner))
	context.AfterFunc(ctx3, func() { close(stopped) })
	cancel3()
	<-stopped
}

var sink context.Context

// TestWithRequestInfoAllocatesOnce: one allocation per request (the
// context), where context.WithValue takes two.
func TestWithRequestInfoAllocatesOnce(t *testing.T) {
	info := ports.RequestInfo{ClientID: "c1", Protocol: "grpc"}
	parent := t.Context()
	got := testing.AllocsPerRun(100, func() {
		sink = ports.WithRequestInfo(parent, info)
		if ports.RequestInfoFrom(sink).ClientID != "c1" {
			t.Fatal("lost")
		}
	})
	if got > 1 {
		t.Fatalf("%.0f allocations per WithRequestInfo and lookup, want 1", got)
	}
}
