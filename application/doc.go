// Package application holds rmqproxy's use cases: routing, sending,
// receiving (with auto-renewal of push consumers' messages), acknowledging,
// transactions and their check-backs, pull and offsets, client sessions and
// the operations on connected clients, administration of topics and groups,
// authentication, authorization and auditing (users, ACLs, admin call
// signatures, coalesced refusals), and traffic governance (rate limits and
// in-flight budgets). Use cases
// depend only on [domain] and [ports]; inbound adapters (gRPC, Remoting,
// admin HTTP) drive them and outbound adapters (embedded broker, cluster
// client) implement the ports they call.
//
// The use cases reproduce the Apache RocketMQ proxy's observable behaviour:
// the order of validation checks, the limits and defaults, and the errors
// (as *domain.Error reasons) a client sees.
package application
