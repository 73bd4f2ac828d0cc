package rocketmqenv

import "syscall"

// memoryRoot is where the test brokers' stores go: /dev/shm when it is a
// tmpfs with at least memoryRootFree bytes free, else "" (their
// directory under the cluster's, on disk). See [Cluster.storeDir].
func memoryRoot() string {
	const dir = "/dev/shm"
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Type != tmpfsMagic ||
		st.Bavail*uint64(st.Bsize) < memoryRootFree || syscall.Access(dir, 0o2 /* W_OK */) != nil {
		return ""
	}
	return dir
}
