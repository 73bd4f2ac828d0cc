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

// requestInfoCtx carries a RequestInfo: one allocation per request where
// context.WithValue takes two (the value boxed into an interface, and the
// context).
type requestInfoCtx struct {
	context.Context
	info RequestInfo
}

// Value returns a pointer to the RequestInfo for requestInfoKey (the
// accessors copy it out) and asks the parent for every other key.
func (c *requestInfoCtx) Value(key any) any {
	if _, ok := key.(requestInfoKey); ok {
		return &c.info
	}
	return c.Context.Value(key)
}

// WithRequestInfo returns a context carrying info.
func WithRequestInfo(ctx context.Context, info RequestInfo) context.Context {
	if ctx == nil {
		panic("ports: WithRequestInfo of a nil context")
	}
	return &requestInfoCtx{Context: ctx, info: info}
}

// LookupRequestInfo returns the RequestInfo of ctx and whether ctx carries
// one.
func LookupRequestInfo(ctx context.Context) (RequestInfo, bool) {
	if info, ok := ctx.Value(requestInfoKey{}).(*RequestInfo); ok {
		return *info, true
	}
	return RequestInfo{}, false
}

// RequestInfoFrom returns the RequestInfo of ctx, or the zero value.
func RequestInfoFrom(ctx context.Context) RequestInfo {
	info, _ := LookupRequestInfo(ctx)
	return info
}
