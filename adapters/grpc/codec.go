package grpc

import (
	"fmt"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

	"github.com/rmqproxy/rmqproxy/adapters/grpc/internal/ackpb"
	"github.com/rmqproxy/rmqproxy/adapters/grpc/internal/sendpb"
)

// The server's codec. grpc-go's default codec (encoding/proto) allocates
// about ten times to decode a SendMessageRequest and three times to encode
// a small answer; serverCodec is that codec with two changes, installed on
// the MessagingService server only (forceServerCodec): the OpenTelemetry
// exporters use grpc-go too and keep the registered default.
//
//   - It decodes *v2.SendMessageRequest with sendpb.Unmarshal (three
//     allocations for a typical send) and *v2.AckMessageRequest, one per
//     consumed message, with ackpb.Unmarshal (two instead of eight); both
//     give the same result and errors as proto.Unmarshal, which they fall
//     back to for anything unusual.
//   - It encodes answers of up to grpc-go's pooling threshold (1 KiB) into a
//     buffer from grpc-go's pool, as the default codec does for larger
//     ones, instead of a fresh slice wrapped in a mem.SliceBuffer: one
//     allocation (the BufferSlice) instead of three. The bytes are the same.
//
// Everything else (messageV2Of, the materialized receive buffer and its
// release, the marshal options, the error texts) is the default codec's.
// Forcing a codec makes the server use it whatever content-subtype a
// request names; the process registers no codec but "proto", which
// requests without a subtype use anyway.
type serverCodec struct{}

// smallAnswerBuffer is the pooled buffer size for answers below the pooling
// threshold: the pool's 4 KiB tier. A pooled buffer must be larger than
// the threshold, or mem.NewBuffer wraps it unpooled.
const smallAnswerBuffer = 4 << 10

// forceServerCodec is the server option that installs serverCodec.
func forceServerCodec() grpclib.ServerOption { return grpclib.ForceServerCodecV2(serverCodec{}) }

func (serverCodec) Name() string { return "proto" }

func (serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	vv := messageV2Of(v)
	if vv == nil {
		return nil, fmt.Errorf("proto: failed to marshal, message is %T, want proto.Message", v)
	}
	// The size first, so that MarshalAppend may use the cached sizes (see
	// the default codec).
	size := proto.Size(vv)
	opts := proto.MarshalOptions{UseCachedSize: true}
	pool := mem.DefaultBufferPool()
	want := size
	if mem.IsBelowBufferPoolingThreshold(want) {
		want = smallAnswerBuffer
	}
	buf := pool.Get(want)
	out, err := opts.MarshalAppend((*buf)[:0], vv)
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	vv := messageV2Of(v)
	if vv == nil {
		return fmt.Errorf("failed to unmarshal, message is %T, want proto.Message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	switch req := v.(type) {
	case *v2.SendMessageRequest:
		return sendpb.Unmarshal(buf.ReadOnlyData(), req)
	case *v2.AckMessageRequest:
		return ackpb.Unmarshal(buf.ReadOnlyData(), req)
	}
	return proto.Unmarshal(buf.ReadOnlyData(), vv)
}

func messageV2Of(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	case protoadapt.MessageV2:
		return v
	}
	return nil
}
