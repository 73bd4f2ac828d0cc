//go:build unix

package consumequeue

import "syscall"

// processFileLimit is the process's soft limit on open files.
func processFileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Cur > 1<<30 {
		return 1 << 16
	}
	return int(l.Cur)
}
