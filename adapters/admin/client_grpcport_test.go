package admin_test

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
	"github.com/rmqproxy/rmqproxy/domain"
)

// TestClientAtAGRPCPort: the admin commands pointed at a gRPC port (such as
// --admin.address 127.0.0.1:8081, rmqproxy's grpc.address) get HTTP/2
// frames back (grpc-go) or the connection reset (rmqproxy's port, which
// tells TLS from HTTP/2 and hangs up on anything else). The error asks
// whether the address is the admin API's instead of only repeating the
// transport's complaint.
func TestClientAtAGRPCPort(t *testing.T) {
	grpcPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		served := make(chan struct{})
		go func() { defer close(served); _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Stop(); <-served })
		return ln.Addr().String()
	}
	resettingPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 1)
				_, _ = c.Read(buf)
				_ = c.(*net.TCPConn).SetLinger(0) // close with RST
				c.Close()
			}
		}()
		t.Cleanup(func() { ln.Close(); <-done })
		return ln.Addr().String()
	}
	for name, listen := range map[string]func(*testing.T) string{"grpc-go": grpcPort, "reset": resettingPort} {
		t.Run(name, func(t *testing.T) {
			addr := listen(t)
			tr := &http.Transport{}
			t.Cleanup(tr.CloseIdleConnections)
			c, err := admin.NewClient(addr, &http.Client{Transport: tr})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Topics(t.Context())
			t.Logf("cause: %v", errors.Unwrap(err))
			de := wantReason(t, err, domain.ReasonUnavailable)
			for _, want := range []string{addr + " did not answer in HTTP/1.1", "is it the rmqproxy admin API (admin.address, default 127.0.0.1:8082)", "grpc.address", "--admin.address"} {
				if !strings.Contains(de.Msg, want) {
					t.Errorf("message lacks %q: %s", want, de.Msg)
				}
			}
		})
	}
}
