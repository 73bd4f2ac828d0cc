package cluster

import (
	"bytes"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
	"github.com/rmqproxy/rmqproxy/domain"
)

// BenchmarkSendCodec is the cluster adapter's own work for one 1 KiB send
// as the Go client makes it (message id, tag, born host and time, no
// keys): properties, request header, the frame the Remoting client writes,
// decoding a 5.5.0 broker's answer frame and the receipt. The network and
// the broker are left out (see the client's BenchmarkInvokeSend and
// test/cluster's BenchmarkClusterProduce).
func BenchmarkSendCodec(b *testing.B) {
	q := domain.QueueRef{Topic: "bench", BrokerName: "broker-a", QueueID: 3}
	msgs := []domain.Message{{Topic: "bench", Body: bytes.Repeat([]byte("x"), 1024), Tag: "tag-a",
		ID: "0100155D0A1B2C3D4E5F60718293A4B5C6", BornHost: "10.0.0.7", BornAt: time.UnixMilli(1764763200123)}}
	answer, err := remoting.AppendCommand(nil, &remoting.Command{Opaque: 77, Flag: remoting.FlagResponse, Version: 513,
		Fields: (&remoting.SendMessageResponseHeader{MsgID: "7F00000100002A9F0000000000A1B2C3", QueueID: 3, QueueOffset: 123456,
			TransactionID: "0100155D0A1B2C3D4E5F60718293A4B5C6", MsgRegion: "DefaultRegion", TraceOn: "true"}).AppendFields(nil)})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 0, 4096)
	now := time.Now()
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		body, code, props, err := encodeSend(msgs)
		if err != nil {
			b.Fatal(err)
		}
		if frame, err = remoting.AppendCommand(frame[:0], sendRequest(q, msgs, body, code, props, now)); err != nil {
			b.Fatal(err)
		}
		resp, _, err := remoting.Decode(answer, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sendReceipts(resp, q, msgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(frame)-1024), "frame-overhead-B")
}
