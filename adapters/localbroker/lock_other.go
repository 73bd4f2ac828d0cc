//go:build !unix

package localbroker

import (
	"os"
	"path/filepath"
)

// lockDataDir only creates <dataDir>/LOCK where advisory locks are not
// available; running two processes on one data directory is not detected.
func lockDataDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o644)
}
