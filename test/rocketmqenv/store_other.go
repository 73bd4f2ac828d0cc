//go:build !linux

package rocketmqenv

// memoryRoot: no tmpfs is looked for outside Linux; the stores stay on
// disk (see [Cluster.storeDir]).
func memoryRoot() string { return "" }
