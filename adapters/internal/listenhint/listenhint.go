// Package listenhint words what an operator can do about a listener that
// cannot bind its address, from the cause: a port another process holds, a
// privileged port, an IP address this host does not have. The gRPC port,
// the admin API and the health endpoints share it, so that each names its
// own setting with the same advice.
package listenhint

import (
	"errors"
	"fmt"
	"syscall"
)

// Hint returns the advice for err, an error of listening on the address
// of setting (such as grpc.address); holder says who probably holds a port
// in use ("another process").
func Hint(err error, setting, holder string) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Sprintf("%s uses this port: stop it, or set %s to a free address", holder, setting)
	case errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: set %s to a port above 1023, or grant the capability", setting)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Sprintf("this host has no network interface with that IP address: set %s to one of its addresses (or 0.0.0.0 for every interface)", setting)
	}
	return "check " + setting
}
