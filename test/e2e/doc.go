// Package e2e holds rmqproxy's end-to-end tests: the proxy runs in process
// (the same fx graph cmd/rmqproxy runs) or as a child process, and the
// official RocketMQ Go client v5.1.4 talks to it over gRPC with its default
// settings (TLS on, certificate not verified).
package e2e
