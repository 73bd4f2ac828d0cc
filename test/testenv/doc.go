// Package testenv runs rmqproxy for tests and benchmarks: in process (the
// same fx graph cmd/rmqproxy runs) or as a child process that can be killed
// with SIGKILL, and connects the official RocketMQ Go client v5.1.4 to it
// with its default settings. It also offers a raw MessagingService stub,
// built from the client module's protocol types, for what the client API
// does not expose (batches, malformed requests).
package testenv
