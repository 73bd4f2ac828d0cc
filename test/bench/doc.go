// Package bench measures rmqproxy end to end through the official RocketMQ
// Go client v5.1.4, 1 KiB messages: durable produce throughput,
// send-to-consume latency, push and FIFO consumption, delay-message
// lateness under load, the cost of authentication and tracing, the
// server's CPU and allocations per send (the binary in a child process),
// and a rate-limited noisy neighbour's effect on another producer
// (docs/benchmarks.md, docs/operations.md). Run with test/scripts/bench.sh or
//
//	go test -run '^$' -bench . -benchtime 5000x ./test/bench
//
// Client and proxy share the machine (and, but for the benchmarks that run
// the binary, the process), so the numbers are a floor for what a dedicated
// proxy host does.
package bench
