package rocketmqenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// memoryRootFree is the free room a tmpfs needs for the brokers' stores
// to go there (see [Cluster.storeDir]): a broker's commit log files are
// 128 MiB, of which a tmpfs holds only what was written.
const memoryRootFree = 2 << 30

// storePrefix starts the name of a cluster's directory of broker stores
// on the tmpfs: rmqproxy-rocketmq-PID-stores-.
const storePrefix = "rmqproxy-rocketmq-"

// storeDir returns the store directory of the broker whose JVM is named
// name. A test broker's store goes on a tmpfs (/dev/shm) when there is one
// with room, in a directory of the cluster's that Close removes. A
// RocketMQ 5.5.0 broker rewrites topics.json or subscriptionGroup.json at
// every change of a topic or group with three fsyncs (the file, and its
// directory twice) on the thread of the request, while it holds the lock
// of its admin requests (a topic deletion does it once more for each pop
// retry topic of the topic, a first dead-letter forward of a group for
// its %RETRY% and %DLQ% topics), and its consumer offsets every 5 s: on a
// disk the rest of the suite keeps busy (builds, race binaries,
// PostgreSQL, the embedded broker's tests) one fsync took up to 2 s,
// time those requests spent within cluster.requestTimeout (5 s). Benchmark
// brokers (serverJIT) keep theirs on disk, as in production, so that their
// figures stay comparable with earlier ones.
func (c *Cluster) storeDir(name string, serverJIT bool) string {
	onDisk := filepath.Join(c.Dir, name, "store")
	if serverJIT {
		return onDisk
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stores == "" {
		root := memoryRoot()
		if root == "" {
			return onDisk
		}
		removeStaleStores(root)
		dir, err := os.MkdirTemp(root, fmt.Sprintf("%s%d-stores-", storePrefix, os.Getpid()))
		if err != nil {
			return onDisk
		}
		c.stores = dir
	}
	return filepath.Join(c.stores, name)
}

// removeStaleStores removes the store directories under root of test
// processes that are gone (killed before their clusters were closed): a
// tmpfs keeps them in memory until the machine restarts.
func removeStaleStores(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, storePrefix+"*-stores-*"))
	for _, d := range dirs {
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(d), storePrefix+"%d-", &pid); err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}
