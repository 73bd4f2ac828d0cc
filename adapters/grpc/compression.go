package grpc

import (
	"errors"
	"io"

	grpclib "google.golang.org/grpc"
)

// Compressed requests. grpc-go accepts a request in any encoding registered
// in the process, and the OpenTelemetry exporter registers gzip. A gzip
// request may expand a thousandfold (130 KiB into grpc.maxRecvMessageSize,
// 130 MiB), and it is decompressed before any admission or limit of the
// proxy sees it: a client could make the proxy allocate gigabytes per
// megabyte it sends. No official RocketMQ client compresses its requests
// (message bodies are compressed by the client, inside the message, and
// stay so), so the server refuses gzip requests without reading them: the
// client gets INTERNAL "grpc: failed to decompress the received message"
// with refusedCompression's text. The exporter's own gzip (outgoing, and
// the answers to it) is untouched: this option applies to the server only.

// errCompressedRequest is why a compressed request is refused.
var errCompressedRequest = errors.New("rmqproxy does not accept compressed requests (grpc-encoding gzip); " +
	"send requests uncompressed (a message body may still be gzip-compressed inside the message, with body_encoding GZIP)")

// refusedCompression is the server's decompressor for gzip.
type refusedCompression struct{}

func (refusedCompression) Do(io.Reader) ([]byte, error) { return nil, errCompressedRequest }
func (refusedCompression) Type() string                 { return "gzip" }

// refuseCompressedRequests is the server option that installs it. It takes
// precedence over the process's registered gzip for this server's requests
// (RPCDecompressor is deprecated in favour of the registry, which is
// process-wide and would refuse the exporter's answers too; grpc-go keeps it
// throughout 1.x).
func refuseCompressedRequests() grpclib.ServerOption {
	return grpclib.RPCDecompressor(refusedCompression{}) //nolint:staticcheck // see above
}
