package grpc

import (
	"context"
	"net"
	"net/netip"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/rmqproxy/rmqproxy/ports"
)

// Metadata keys the official clients send.
const (
	mdClientID  = "x-mq-client-id"
	mdLanguage  = "x-mq-language"
	mdVersion   = "x-mq-client-version"
	mdNamespace = "x-mq-namespace"
	mdRequestID = "x-mq-request-id"
)

// requestInfo reads the caller's metadata. Only the keys above are read:
// internal keys a client might smuggle (x-mq-authorization-ak,
// x-mq-channel-id, rpc-*) are never consulted. The addresses come from the
// connection.
func requestInfo(ctx context.Context) ports.RequestInfo {
	// One value at a time: metadata.FromIncomingContext would copy every
	// header of every request.
	get := func(k string) string {
		if v := metadata.ValueFromIncomingContext(ctx, k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	info := ports.RequestInfo{
		ClientID:      get(mdClientID),
		Language:      get(mdLanguage),
		ClientVersion: get(mdVersion),
		Namespace:     get(mdNamespace),
		RequestID:     get(mdRequestID),
		Protocol:      "grpc",
	}
	if p, ok := peer.FromContext(ctx); ok {
		info.RemoteAddr = addrPort(p.Addr)
		info.LocalAddr = addrPort(p.LocalAddr)
	}
	return info
}

func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
