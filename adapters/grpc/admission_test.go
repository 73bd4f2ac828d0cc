package grpc

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/rmqproxy/rmqproxy/application"
)

// TestOtherServicesStreamsCountInAdmission: a grpc.health.v1 Watch stream
// lasts as long as its client keeps it, as a Telemetry stream does, and
// counts in grpc.maxInflightPerKind (kind "other") while it is open;
// beyond it the stream is refused with RESOURCE_EXHAUSTED. Before, such
// streams counted nowhere: one address could hold
// grpc.maxConcurrentStreams × grpc.maxConnectionsPerAddress of them, each
// with its goroutine.
func TestOtherServicesStreamsCountInAdmission(t *testing.T) {
	const limit = 3
	ts := startTestServer(t, &fakeBroker{}, func(c *Config, _ *application.Config) { c.MaxInflightPerKind = limit })
	conn, err := grpclib.NewClient("passthrough:///bufnet",
		grpclib.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ts.lis.DialContext(ctx) }),
		grpclib.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	watch := func() (healthpb.Health_WatchClient, context.CancelFunc, error) {
		ctx, cancel := context.WithCancel(context.Background())
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = w.Recv()
		}
		if err != nil {
			cancel()
		}
		return w, cancel, err
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range limit {
		_, cancel, err := watch()
		if err != nil {
			t.Fatalf("watch %d of %d: %v", i+1, limit, err)
		}
		cancels = append(cancels, cancel)
	}
	if _, _, err := watch(); status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "grpc.maxInflightPerKind") {
		t.Fatalf("a watch beyond grpc.maxInflightPerKind: %v, want RESOURCE_EXHAUSTED naming the setting", err)
	}
	// A stream that ends gives its place back.
	cancels[0]()
	waitFor(t, 10*time.Second, func() error {
		_, cancel, err := watch()
		if err != nil {
			return err
		}
		cancels = append(cancels, cancel)
		return nil
	})
	// Health checks (unary) are not streams that stay open: still served.
	if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("a health check with every place of kind other taken: %v", err)
	}
}
