// Package goclient points the log files of the official RocketMQ Go client
// (v5.1.4), which the tests and benchmarks drive rmqproxy with, into a
// directory of the caller's, so that a run leaves nothing in $HOME or /tmp.
package goclient

import (
	"os"
	"path/filepath"
	"sync"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/pkg/zaplog"
	"go.uber.org/zap"
)

// rpcLog is the connections' call logger (see LogTo): one for the process,
// as the client's default is, so that one file has one writer.
var (
	mu       sync.Mutex
	rpcLog   *zap.Logger
	wrapOnce sync.Once
)

// LogTo makes the Go client write its log files under dir: its client log
// (rocketmq.client.logRoot, else $HOME/logs/rocketmqlogs), and the log of
// every unary call each of its connections writes through zap. That one
// ignores the log root: it went to /tmp/rocketmq-logger.log, rotated at
// 500 MB with three backups, so that test and benchmark runs left up to
// 2 GB there. The calls are still logged, now to dir/rocketmq-rpc.log. Call
// it before the first client is made; connections made after a later call
// log under that call's dir.
func LogTo(dir string) {
	os.Setenv("rocketmq.client.logRoot", dir)
	// The client chose its log file when its package was initialised;
	// make it choose again.
	rmq.ResetLogger()
	mu.Lock()
	rpcLog = zaplog.New(zaplog.WithFileName(filepath.Join(dir, "rocketmq-rpc.log")))
	mu.Unlock()
	wrapOnce.Do(func() {
		newRPCClient := rmq.NewRpcClient
		rmq.NewRpcClient = func(target string, opts ...rmq.RpcClientOption) (rmq.RpcClient, error) {
			mu.Lock()
			logger := rpcLog
			mu.Unlock()
			return newRPCClient(target, append(opts, rmq.WithRpcClientConnOption(rmq.WithZapLogger(logger)))...)
		}
	})
}
