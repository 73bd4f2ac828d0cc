// Package grpc is rmqproxy's inbound gRPC adapter: it serves
// apache.rocketmq.v2.MessagingService, the protocol of the official
// RocketMQ 5 clients, and drives the application's messaging use cases.
//
// It owns the transport (one port for TLS and plaintext, told apart by the
// first byte of each connection; a self-signed certificate is generated when
// none is configured), the request pipeline (client id, flow limits, panic
// containment) and the translation between protobuf and domain values. It
// maps every domain error to an apache.rocketmq.v2.Code in exactly one place,
// status.go. Like the Apache proxy it answers business failures with gRPC OK
// and a non-OK status in the response; only Telemetry failures and
// unimplemented methods use gRPC status codes.
//
// The package does not store anything and holds no state beyond the
// lifetime of a stream.
package grpc
