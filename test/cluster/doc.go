// Package cluster holds the tests of rmqproxy in cluster mode that have no
// local-mode counterpart: rmqproxy in front of a real Apache RocketMQ
// NameServer and Broker (test/rocketmqenv), driven by the official Go
// client. The scenarios both modes share run in test/e2e against both.
package cluster
