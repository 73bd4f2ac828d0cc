// Package ports declares what rmqproxy's use cases need from the outside world
// and the request-scoped values inbound adapters hand to them ([RequestInfo]):
// the broker side ([Broker], [Metadata], [Admin], [Transactions], [Recaller],
// [Offsets], [MessageLookup], [ClientTracker], [ConsumerRelay], [Readiness]),
// the connected clients' command streams ([ClientChannel]), security
// ([PolicySource], [PolicyCompiler], [Policy], [SecurityStore], [AuditSink])
// and time ([Clock]).
//
// Interfaces here are shaped by the use cases, not by any protocol: the local
// embedded broker and the cluster (Remoting) adapter implement the same
// [Broker], and the gRPC and Remoting ingresses drive the same use cases.
// Implementations return *domain.Error values with a precise reason for
// every failure a client can cause or observe.
package ports
