package grpc

import (
	"context"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"

	"github.com/rmqproxy/rmqproxy/ports"
)

// tapHeaders runs once per stream, before its handler, in the connection's
// reader (grpc.InTapHandle): it reads the caller's metadata in one pass
// over the header map the transport built, instead of one lookup per key
// later (each lookup of an absent key, the usual case for the reserved
// keys, walks every header; each found key copies its values). It drops the
// reserved keys as stripReserved does and leaves the caller's RequestInfo
// in the context for callerInfo. Nothing here blocks.
func (s *Service) tapHeaders(ctx context.Context, in *tap.Info) (context.Context, error) {
	info := ports.RequestInfo{Protocol: "grpc"}
	reserved := false
	for k, v := range in.Header {
		if len(v) == 0 {
			continue
		}
		switch k {
		case mdClientID:
			info.ClientID = v[0]
		case mdLanguage:
			info.Language = v[0]
		case mdVersion:
			info.ClientVersion = v[0]
		case mdNamespace:
			info.Namespace = v[0]
		case mdRequestID:
			info.RequestID = v[0]
		case reservedAK, reservedChannelID, reservedRemoteAddr, reservedLocalAddr:
			reserved = true
		}
	}
	if p, ok := peer.FromContext(ctx); ok {
		info.RemoteAddr = addrPort(p.Addr)
		info.LocalAddr = addrPort(p.LocalAddr)
	}
	if reserved && s.auth != nil {
		md := in.Header.Copy()
		for _, k := range reservedMetadata {
			delete(md, k)
		}
		s.auth.stripped.Add(1)
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	return ports.WithRequestInfo(s.awaitRequest(ctx, in.FullMethodName), info), nil
}

// callerInfo returns what the request's metadata says about its caller and
// a context that carries it (ports.RequestInfoFrom) without the reserved
// metadata keys (when security is in use, see UseSecurity): tapHeaders made
// it when it ran; otherwise (a service called without its server, as in
// unit tests) it is made now.
func (s *Service) callerInfo(ctx context.Context) (ports.RequestInfo, context.Context) {
	if info, ok := ports.LookupRequestInfo(ctx); ok {
		return info, ctx
	}
	info := requestInfo(ctx)
	if s.auth != nil {
		ctx = s.auth.stripReserved(ctx)
	}
	return info, ports.WithRequestInfo(ctx, info)
}
