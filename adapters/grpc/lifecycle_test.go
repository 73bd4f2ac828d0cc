package grpc

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"go.uber.org/goleak"

	"github.com/rmqproxy/rmqproxy/test/testenv/leakcheck"
)

// TestServerThatNeverServedLeavesNoGoroutines: a server built but never
// started (another module's start failed first) or whose start failed
// (its port in use) leaves no goroutine behind: fx stops only the modules
// that started, so nothing else would stop it. The gRPC stream workers
// were started with the server, 256 goroutines left per failed start.
func TestServerThatNeverServedLeavesNoGoroutines(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for name, address := range map[string]string{"not started": "", "port in use": busy.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
			cfg := DefaultConfig()
			cfg.TLS.SelfSignedDir = t.TempDir()
			log := slog.New(slog.DiscardHandler)
			srv, err := NewServer(cfg, NewService(cfg, nil, log), log)
			if err != nil {
				t.Fatal(err)
			}
			if address != "" {
				srv.cfg.Address = address
				if err := srv.Start(context.Background()); err == nil {
					t.Fatal("started on a port in use")
				}
			}
		})
	}
}
