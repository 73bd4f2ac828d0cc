// Package cluster holds the tests of rmqproxy in cluster mode that have no
// local-mode counterpart: rmqproxy in front of a real Apache RocketMQ
// NameServer and Broker (test/rocketmqenv), driven by the official Go
// client: failover (a broker or an rmqproxy instance SIGKILLed mid-run),
// handles shared between instances, brokers with authentication or TLS,
// requests brokers send to the proxy, a differential test against the
// Apache RocketMQ proxy in front of the same broker
// (TestDifferentialAgainstApacheProxy), and the cluster-mode benchmarks
// (docs/cluster.md, "Performance"). The scenarios both modes share run in
// test/e2e against both. Most of the tests run in parallel, 4 at once by
// default (see TestMain), each under names of its own on the shared
// broker or on brokers of its own.
package cluster
