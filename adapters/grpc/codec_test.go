package grpc

import (
	"bytes"
	"context"
	"net"
	"testing"

	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
	grpclib "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // the default codec, compared with
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// codecMessages are messages of the sizes and kinds the server decodes and
// encodes: a send (fast decoder), a send it falls back on, answers small
// and large.
func codecMessages() []proto.Message {
	send := sendRequest("t")
	send.Messages[0].UserProperties = map[string]string{"k": "v"}
	big := sendRequest("t")
	big.Messages[0].Body = bytes.Repeat([]byte("b"), 64<<10)
	return []proto.Message{
		send, big, &v2.SendMessageRequest{},
		&v2.SendMessageResponse{Status: okStatus(), Entries: []*v2.SendResultEntry{{Status: okStatus(), MessageId: "01AB", TransactionId: "tx", Offset: 42}}},
		&v2.SendMessageResponse{},
		&v2.QueryRouteRequest{Topic: &v2.Resource{Name: "t"}},
		&v2.AckMessageRequest{Group: &v2.Resource{Name: "g"}, Topic: &v2.Resource{Name: "t"},
			Entries: []*v2.AckMessageEntry{{MessageId: "01AB", ReceiptHandle: "handle"}}},
		&v2.AckMessageRequest{},
		&v2.ReceiveMessageResponse{Content: &v2.ReceiveMessageResponse_Message{Message: big.Messages[0]}},
	}
}

// TestServerCodecMatchesDefault encodes and decodes each message with the
// server codec and grpc-go's default codec: the same bytes, the same
// decoded message, from a receive buffer in one piece or in several.
func TestServerCodecMatchesDefault(t *testing.T) {
	def := encoding.GetCodecV2("proto")
	var c serverCodec
	if c.Name() != def.Name() {
		t.Fatalf("Name %q, default %q", c.Name(), def.Name())
	}
	for _, m := range codecMessages() {
		got, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := def.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Materialize(), want.Materialize()) {
			t.Errorf("%T: Marshal differs from the default codec", m)
		}
		wire := want.Materialize()
		got.Free()
		want.Free()
		for _, pieces := range []int{1, 3} {
			var in mem.BufferSlice
			step := len(wire)/pieces + 1
			for off := 0; off < len(wire); off += step {
				in = append(in, mem.SliceBuffer(wire[off:min(off+step, len(wire))]))
			}
			out := m.ProtoReflect().New().Interface()
			if err := c.Unmarshal(in, out); err != nil {
				t.Fatalf("%T: %v", m, err)
			}
			if !proto.Equal(out, m) {
				t.Errorf("%T in %d pieces: decoded %v, want %v", m, pieces, out, m)
			}
		}
	}
	if err := c.Unmarshal(nil, struct{}{}); err == nil {
		t.Error("Unmarshal into a non-message succeeded")
	}
	if _, err := c.Marshal(struct{}{}); err == nil {
		t.Error("Marshal of a non-message succeeded")
	}
}

// TestServerCodecErrorsAreProtobufs: a request the fast decoder falls back
// on fails with proto.Unmarshal's error, wrapped as the default codec's.
func TestServerCodecErrorsAreProtobufs(t *testing.T) {
	bad := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), // messages
		protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), // topic
			protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0xff}))) // name
	for _, in := range [][]byte{bad, bad[:len(bad)-1], {0x0a}} {
		got := serverCodec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(in)}, new(v2.SendMessageRequest))
		want := encoding.GetCodecV2("proto").Unmarshal(mem.BufferSlice{mem.SliceBuffer(in)}, new(v2.SendMessageRequest))
		if got == nil || want == nil || got.Error() != want.Error() {
			t.Errorf("%x: error %v, default codec %v", in, got, want)
		}
	}
	badAck := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), // entries
		protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0xff})) // receipt_handle
	for _, in := range [][]byte{badAck, badAck[:len(badAck)-1], {0x1a}} {
		got := serverCodec{}.Unmarshal(mem.BufferSlice{mem.SliceBuffer(in)}, new(v2.AckMessageRequest))
		want := encoding.GetCodecV2("proto").Unmarshal(mem.BufferSlice{mem.SliceBuffer(in)}, new(v2.AckMessageRequest))
		if got == nil || want == nil || got.Error() != want.Error() {
			t.Errorf("ack %x: error %v, default codec %v", in, got, want)
		}
	}
}

// TestServerCodecNotRegistered: the codec is the MessagingService server's
// only; the process's codec (the OpenTelemetry exporters') stays
// grpc-go's.
func TestServerCodecNotRegistered(t *testing.T) {
	if _, ok := encoding.GetCodecV2("proto").(serverCodec); ok {
		t.Fatal("serverCodec is registered for the whole process")
	}
}

// TestSmallAnswerIsPooled: an answer of a few dozen bytes is encoded into
// a pooled buffer (one allocation, the BufferSlice), where the default
// codec allocates three times.
func TestSmallAnswerIsPooled(t *testing.T) {
	if mem.IsBelowBufferPoolingThreshold(smallAnswerBuffer) {
		t.Fatalf("smallAnswerBuffer (%d) is below grpc-go's pooling threshold: small answers would not be pooled", smallAnswerBuffer)
	}
	resp := &v2.SendMessageResponse{Status: okStatus(), Entries: []*v2.SendResultEntry{{Status: okStatus(), MessageId: "0100155D0A1B2C3D4E5F60718293A4B5C6", Offset: 42}}}
	allocs := func(c encoding.CodecV2) float64 {
		return testing.AllocsPerRun(100, func() {
			out, err := c.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			out.Free()
		})
	}
	got, def := allocs(serverCodec{}), allocs(encoding.GetCodecV2("proto"))
	t.Logf("%.0f allocations per answer (default codec: %.0f)", got, def)
	if got > 1 {
		t.Errorf("%.0f allocations to encode a SendMessageResponse, want at most 1 (default codec: %.0f)", got, def)
	}
}

// TestServerDecodesMalformedSendAsBefore sends bytes that are no valid
// SendMessageRequest to the server: the client gets INTERNAL with
// protobuf's error, as from grpc-go's default codec.
func TestServerDecodesMalformedSendAsBefore(t *testing.T) {
	ts := startTestServer(t, &fakeBroker{})
	conn, err := grpclib.NewClient("passthrough:///bufnet",
		grpclib.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ts.lis.DialContext(ctx) }),
		grpclib.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	invalid := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), []byte("body"))[:5])
	want := proto.Unmarshal(invalid, new(v2.SendMessageRequest))
	if want == nil {
		t.Fatal("the test input is valid")
	}
	err = conn.Invoke(clientCtx(t.Context(), "c1"), "/apache.rocketmq.v2.MessagingService/SendMessage", rawBytes(invalid),
		new(v2.SendMessageResponse), grpclib.ForceCodecV2(rawCodec{}))
	if status.Code(err) != codes.Internal || status.Convert(err).Message() != "grpc: failed to unmarshal the received message: "+want.Error() {
		t.Fatalf("send of malformed bytes: %v, want INTERNAL with %q", err, want)
	}
}

// rawBytes is a request the client sends as is (rawCodec).
type rawBytes []byte

// rawCodec sends rawBytes unencoded and decodes answers with protobuf.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.(rawBytes))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}
