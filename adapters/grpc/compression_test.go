package grpc

import (
	"bytes"
	"strings"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
)

// A gzip-compressed request is refused without being decompressed (1 MiB
// of zeros travels as about 1 KiB; grpc.maxRecvMessageSize would let it
// expand to 130 MiB before any limit of the proxy sees it).
func TestCompressedRequestsAreRefused(t *testing.T) {
	b := &fakeBroker{}
	ts := startTestServer(t, b)
	ctx := clientCtx(t.Context(), "c1")
	req := sendRequest("t")
	req.Messages[0].Body = bytes.Repeat([]byte{0}, 1<<20)
	_, err := ts.client.SendMessage(ctx, req, grpclib.UseCompressor(gzip.Name))
	if status.Code(err) != codes.Internal || !strings.Contains(status.Convert(err).Message(), "does not accept compressed requests") {
		t.Fatalf("compressed send: %v, want INTERNAL saying compressed requests are refused", err)
	}
	if len(b.sent) != 0 {
		t.Fatalf("a compressed request reached the broker: %d messages", len(b.sent))
	}
	// Uncompressed requests on the same connection are served.
	resp, err := ts.client.SendMessage(ctx, sendRequest("t"))
	if err != nil || resp.GetStatus().GetCode() != v2.Code_OK {
		t.Fatalf("uncompressed send after it: %v, %v", resp, err)
	}
}
