//go:build linux

package localbroker

import "golang.org/x/sys/unix"

// diskUsage returns the bytes used and the size of the file system holding
// dir, as df counts them (space reserved for root counts as used).
func diskUsage(dir string) (used, size uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Bsize)
	size = st.Blocks * bs
	return size - st.Bavail*bs, size, nil
}
