// Package childproc ties the processes tests start (rmqproxy children,
// NameServers, brokers, the Apache proxy) to the test process, so that a
// test binary killed from outside (a timeout, kill -9) does not leave them
// running: on Linux they get SIGKILL when it dies. Tests still stop them by
// PID when they end; this covers only the case where no cleanup runs.
package childproc
