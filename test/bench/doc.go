// Package bench measures rmqproxy end to end through the official RocketMQ
// Go client v5.1.4: durable produce throughput and send-to-consume latency
// of 1 KiB messages. Run with test/scripts/bench.sh or
//
//	go test -run '^$' -bench . -benchtime 5000x ./test/bench
//
// Client and proxy share the machine (and, here, the process), so the
// numbers are a floor for what a dedicated proxy host does.
package bench
