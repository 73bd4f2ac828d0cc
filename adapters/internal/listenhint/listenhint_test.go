package listenhint_test

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/internal/listenhint"
)

// bindError is the error net.Listen returns when bind(2) fails with errno.
func bindError(errno syscall.Errno) error {
	return &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}
}

func TestHintFollowsTheCause(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"port in use", bindError(syscall.EADDRINUSE),
			"another process uses this port: stop it, or set grpc.address to a free address"},
		// A privileged port is not taken by anyone: the hint must not send
		// the operator looking for another process.
		{"privileged port", bindError(syscall.EACCES),
			"ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: set grpc.address to a port above 1023, or grant the capability"},
		{"address not on this host", bindError(syscall.EADDRNOTAVAIL),
			"this host has no network interface with that IP address: set grpc.address to one of its addresses (or 0.0.0.0 for every interface)"},
		{"other", bindError(syscall.EINVAL), "check grpc.address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listenhint.Hint(tt.err, "grpc.address", "another process"); got != tt.want {
				t.Errorf("Hint = %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestHintOfARealBind checks that a real listen error on a taken port is
// recognised as such (the errno survives net's wrapping).
func TestHintOfARealBind(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = net.Listen("tcp", taken.Addr().String())
	if err == nil {
		t.Fatal("second listen on a taken port succeeded")
	}
	if got := listenhint.Hint(err, "health.address", "another process"); !strings.Contains(got, "uses this port") {
		t.Errorf("Hint(%v) = %q", err, got)
	}
}
