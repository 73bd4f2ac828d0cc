// Package application holds rmqproxy's use cases: routing, sending,
// receiving, acknowledging, client sessions and administration. Use cases
// depend only on [domain] and [ports]; inbound adapters (gRPC, Remoting,
// admin HTTP) drive them and outbound adapters (embedded broker, cluster
// client) implement the ports they call.
//
// The use cases reproduce the Apache RocketMQ proxy's observable behaviour:
// the order of validation checks, the limits and defaults, and the errors
// (as *domain.Error reasons) a client sees.
package application
