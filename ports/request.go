package ports

import (
	"context"
	"net/netip"
)

// RequestInfo is what an inbound adapter knows about the caller of one
// request. Identity fields come from the connection and verified
// credentials, never from unverified client metadata.
type RequestInfo struct {
	ClientID      string
	Language      string
	ClientVersion string
	Namespace     string
	RequestID     string
	RemoteAddr    netip.AddrPort
	LocalAddr     netip.AddrPort
	// Protocol is "grpc" or "remoting".
	Protocol string
}

type requestInfoKey struct{}

// WithRequestInfo returns a context carrying info.
func WithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// LookupRequestInfo returns the RequestInfo of ctx and whether ctx carries
// one.
func LookupRequestInfo(ctx context.Context) (RequestInfo, bool) {
	info, ok := ctx.Value(requestInfoKey{}).(RequestInfo)
	return info, ok
}

// RequestInfoFrom returns the RequestInfo of ctx, or the zero value.
func RequestInfoFrom(ctx context.Context) RequestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(RequestInfo)
	return info
}
