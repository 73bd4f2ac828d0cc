package e2e_test

import (
	"testing"

	rmq "github.com/apache/rocketmq-clients/golang/v5"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv"
)

// TestStoppedClientsFreeTheirTelemetryStreams: the official Go client
// v5.1.4 says goodbye (NotifyClientTermination) when it stops but keeps
// its connection, and with it its Telemetry stream, open until its idle
// check closes the connection half an hour later. The proxy ends the
// stream of a client that terminated, so that stopped clients do not hold
// Telemetry admission slots (grpc.maxInflightPerKind): with two slots,
// producers started and stopped one after another all start.
func TestStoppedClientsFreeTheirTelemetryStreams(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.GRPC.MaxInflightPerKind = 2
	p := testenv.Start(t, cfg)
	topic := testenv.Name(t, "stopped-streams")
	p.CreateTopic(t, topic, domain.MessageTypeNormal, 1)
	for i := range 5 {
		pr, err := rmq.NewProducer(p.ClientConfig(""), rmq.WithTopics(topic))
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Start(); err != nil {
			t.Fatalf("producer %d (after %d started and stopped): %v", i+1, i, err)
		}
		if _, err := pr.Send(t.Context(), &rmq.Message{Topic: topic, Body: []byte("x")}); err != nil {
			t.Fatalf("producer %d send: %v", i+1, err)
		}
		if err := pr.GracefulStop(); err != nil {
			t.Fatal(err)
		}
	}
}
