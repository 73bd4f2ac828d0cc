package grpc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// slowReadiness is the readiness of checks that need 1.5 s to answer: well
// within health.checkTimeout (2 s by default), which the readiness (the
// health adapter) enforces itself. It fails only when its context would end
// before then.
type slowReadiness struct{}

func (slowReadiness) Ready(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 1500*time.Millisecond {
		return errors.New("cut short before the checks could answer")
	}
	return nil
}

// grpc.health.v1 follows the readiness checks as /readyz does: it gives
// them the time health.checkTimeout gives them, not its own poll interval
// (a check taking between 1 s and health.checkTimeout made /readyz 200
// and grpc.health.v1 NOT_SERVING).
func TestGRPCHealthGivesChecksTheirOwnTimeout(t *testing.T) {
	c := DefaultConfig()
	c.Address = "127.0.0.1:0"
	c.TLS = TLSConfig{Mode: TLSDisabled}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := NewServer(c, NewService(c, nil, log), log)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReadiness(slowReadiness{})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
	})
	conn, err := grpclib.NewClient(s.Addr().String(), grpclib.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	waitfor.True(t, 10*time.Second, 20*time.Millisecond, "grpc.health.v1 SERVING", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})
}

// TestHealthWatchDoesNotHoldTheDrain: a grpc.health.v1 Watch stream (what
// gRPC's client-side health checking and some load balancers keep open)
// is told NOT_SERVING when the server stops and then ends, as the
// Telemetry streams do; it does not hold the drain until
// shutdown.grpcDrain runs out (every stop took the whole budget, logged
// as an overrun, while a health-checking client was connected).
func TestHealthWatchDoesNotHoldTheDrain(t *testing.T) {
	c := DefaultConfig()
	c.Address = "127.0.0.1:0"
	c.TLS = TLSConfig{Mode: TLSDisabled}
	log := slog.New(slog.DiscardHandler)
	s, err := NewServer(c, NewService(c, nil, log), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := grpclib.NewClient(s.Addr().String(), grpclib.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w, err := healthpb.NewHealthClient(conn).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatal(err)
	}
	statuses := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
	ended := make(chan error, 1)
	go func() {
		for {
			resp, err := w.Recv()
			if err != nil {
				ended <- err
				return
			}
			statuses <- resp.GetStatus()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("Stop waited for its whole budget: the open health Watch stream held the drain")
	}
	select {
	case err := <-ended:
		t.Logf("the Watch stream ended with %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the Watch stream did not end with the server")
	}
	var last healthpb.HealthCheckResponse_ServingStatus
	for len(statuses) > 0 {
		last = <-statuses
	}
	if last != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("the Watch stream's last status is %v, want NOT_SERVING before it ends", last)
	}
}
