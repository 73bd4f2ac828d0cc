package grpc

import (
	"bytes"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
)

// BenchmarkReceiveFrame is the gRPC adapter's own work for one delivered
// 1 KiB message as a cluster-mode receive hands it over (tag, born and
// store times, receipt handle, no user properties): the frame that
// carries it, before protobuf marshals it.
func BenchmarkReceiveFrame(b *testing.B) {
	at := time.UnixMilli(1764763200123)
	m := &domain.StoredMessage{Message: domain.Message{Topic: "bench", Body: bytes.Repeat([]byte("x"), 1024), Tag: "tag-a",
		ID: "0100155D0A1B2C3D4E5F60718293A4B5C6", BornHost: "10.0.0.7", BornAt: at}, QueueID: 3, QueueOffset: 123456,
		StoredAt: at.Add(time.Millisecond), StoreHost: "10.0.0.9:10911", DeliveryAttempt: 1,
		ReceiptHandle: "0d0 1764763200123 60000 0 0 broker-a 3 123456 987654321"}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		messageFrame(m)
	}
}
