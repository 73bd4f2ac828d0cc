package rocketmqenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBrokerStoresOnTmpfs checks that a cluster puts its (non-benchmark)
// brokers' stores on the tmpfs when there is one, benchmark brokers' on
// disk, that Close removes them, and that the store directories of a test
// process that is gone are removed while a live one's stay.
func TestBrokerStoresOnTmpfs(t *testing.T) {
	root := memoryRoot()
	if root == "" {
		t.Skip("no tmpfs with room at /dev/shm: the stores stay on disk")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale, err := os.MkdirTemp(root, storePrefix+strconv.Itoa(dead.Process.Pid)+"-stores-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(stale)
	c := &Cluster{Dir: t.TempDir()}
	defer c.Close()
	a, b := c.storeDir("broker-a", false), c.storeDir("broker-b", false)
	if !strings.HasPrefix(a, root+"/") || filepath.Dir(a) != filepath.Dir(b) {
		t.Errorf("stores %s and %s; want both in one directory under %s", a, b, root)
	}
	if bench := c.storeDir("broker-bench", true); bench != filepath.Join(c.Dir, "broker-bench", "store") {
		t.Errorf("benchmark broker's store %s; want it on disk, in the cluster's directory", bench)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stores of a process that is gone are still there: %v", err)
	}
	if err := os.MkdirAll(a, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := os.Stat(filepath.Dir(a)); !os.IsNotExist(err) {
		t.Errorf("Close left the stores' directory %s: %v", filepath.Dir(a), err)
	}
}
