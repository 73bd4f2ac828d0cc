//go:build !linux

package localbroker

import "errors"

// diskUsage is not measured on this platform.
func diskUsage(string) (used, size uint64, err error) {
	return 0, 0, errors.New("disk usage is only measured on Linux")
}
