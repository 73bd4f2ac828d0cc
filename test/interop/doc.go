// Package interop runs rmqproxy's core scenarios (normal, FIFO, delay,
// transaction commit/rollback/check-back) with the official RocketMQ 5
// clients of other languages: Java (org.apache.rocketmq:rocketmq-client-java),
// Node.js (rocketmq-client-nodejs) and Python (rocketmq-python-client), each
// with its default settings (Java dials TLS without verifying the
// certificate, Node.js and Python dial plaintext; rmqproxy serves both on
// one port).
//
// Each language has a small program under test/java, test/node and
// test/python that runs one scenario against an endpoint and prints one JSON
// object per line per event (sent, received, acked, checked, done). The tests
// here start rmqproxy in process, create the topics and groups a scenario
// needs, run the program, and check what it printed: every message arrives
// exactly once and intact, FIFO groups in order, delay messages not before
// their time, committed and checked-back transactions arrive and rolled-back
// ones never do.
//
// test/scripts/install-clients.sh installs the pinned clients. Without them
// (or without the language's toolchain) the tests skip, naming what is
// missing; with RMQPROXY_TEST_REQUIRE_SERVICES=1, as test/scripts/test.sh
// sets it, they fail instead. To run them alone:
//
//	test/scripts/install-clients.sh
//	go test -race ./test/interop
//
// A program can also be run by hand against any rmqproxy, e.g.
//
//	node test/node/interop.js normal --endpoint 127.0.0.1:8081 --topic T --group G --count 5
//	test/python/.venv/bin/python test/python/interop.py fifo --endpoint 127.0.0.1:8081 --topic F --group G
//	java -cp 'test/java/target/classes:test/java/target/lib/*' rmqproxy.interop.Main delay --endpoint 127.0.0.1:8081 --topic D --group G
//
// (the simple consumers long-poll 2 s, so the proxy's
// messaging.consumer.minLongPolling must be at most 2 s, as in the tests).
package interop
