// Package interop runs rmqproxy's core scenarios (normal, FIFO, delay with
// a recall, transaction commit/rollback/check-back, a tag and a SQL92
// filter, changeInvisibleDuration) with the official RocketMQ 5 clients of
// other languages: Java (org.apache.rocketmq:rocketmq-client-java),
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
// their time, a recalled one never, committed and checked-back
// transactions arrive and rolled-back ones never do, a consumer subscribed
// with "TagA||TagC" or with "color = 'red' AND n >= 2" (SQL92) gets exactly
// the messages that match, a message whose invisible duration was extended
// is acked with the receipt handle the change returned and one shortened to
// 1 s comes again (attempt 2) no sooner. After every program, each of its
// clients must have said goodbye (NotifyClientTermination answered OK, seen
// in the proxy's rocketmq_rpc_latency_milliseconds counts), and the RPCs answered with
// another code than OK are logged.
//
// The Java program also runs "limits": receives with an invisible duration
// out of bounds get ILLEGAL_INVISIBLE_TIME with the Apache
// proxy's text, and a 10 KiB tag expression receives its messages; and
// "fiforun": a simple consumer receiving with a batch size of 3 from one
// message group gets a run of 3, and the run comes again when its first
// message is not acked; "pastdue": delay messages whose delivery time
// lies 20 s in the past reach a simple consumer that is already waiting;
// and "verify": rmqproxy client verify has its push consumer's listener
// verify two messages (OK and FAILED_TO_CONSUME_MESSAGE), in the cluster
// target also through the broker (CONSUME_MESSAGE_DIRECTLY).
// (The Java simple consumer receives while the scenario sends, so the time
// from a send to its receive is the proxy's delivery time, not the time the
// program took to send the rest.)
//
// Every scenario runs against local mode and then cluster mode (a real
// Apache RocketMQ broker behind rmqproxy). After a program ends, the
// group's stats in rmqproxy's admin API must show every message acked; in
// cluster mode they show only what the broker delivered, so there the
// programs' simple consumers receive with a 15 s invisible duration,
// rmqproxy gives push consumers' messages 5 s (renewed until acked), and
// once every language's scenarios have run, TestInterop receives from each
// of their groups until that time and the broker's revive delay have
// passed since its program ended: a message delivered again is one whose
// ack did not reach the broker.
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
// The simple consumers wait 2 s per receive, so each receive's deadline is
// about 5 s (await plus the clients' 3 s request timeout). Against the
// proxy's default messaging.consumer.minLongPolling of 5 s that leaves too
// little, and the proxy refuses the receive (ILLEGAL_POLLING_TIME, or
// BAD_REQUEST for client versions below 5.0.3 such as Node.js 1.0.8, as the
// Apache proxy does); start it with --messaging.consumer.minLongPolling=1s,
// as testenv.Config does.
package interop
