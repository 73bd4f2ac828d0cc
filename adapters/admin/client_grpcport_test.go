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
// tells TLS from HTTP/2 and hangs up on anything else). The error says the
// address is not an admin API, as a gRPC port answers so, and names the
// setting, its default and the ways to give the admin API's address,
// instead of only repeating the transport's complaint (or asking "is it
// the gRPC port?").
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
			for _, want := range []string{
				addr + " is not an rmqproxy admin API: it did not answer in HTTP/1.1",
				"as rmqproxy's gRPC port, grpc.address, does",
				"The admin API listens on the proxy's admin.address (default 127.0.0.1:8082): give that address with --admin.address HOST:PORT, RMQPROXY_ADMIN_ADDRESS or admin.address in --config FILE",
			} {
				if !strings.Contains(de.Msg, want) {
					t.Errorf("message lacks %q: %s", want, de.Msg)
				}
			}
		})
	}
}
