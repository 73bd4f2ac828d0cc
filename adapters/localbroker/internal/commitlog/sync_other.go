//go:build !linux

package commitlog

import (
	"math"
	"os"
)

// fdatasync falls back to fsync where fdatasync is not available.
func fdatasync(f *os.File) error { return f.Sync() }

// allocate gives f's range [off, off+n) real blocks by writing zeros.
func allocate(f *os.File, off, n int64) error { return writeZeros(f, off, n) }

// freeSpace reports no bound where the file system's free space is not
// read.
func freeSpace(*os.File) (int64, error) { return math.MaxInt64, nil }
