// Package tmpfs mounts small tmpfs file systems for disk-full tests (Linux,
// as root). Tests that need one skip with the reason when they cannot
// mount, unless RMQPROXY_TEST_REQUIRE_SERVICES=1 (test/scripts/test.sh sets
// it): then they fail, so that the check never silently does not run.
package tmpfs

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of size (a mount option value such as "2m") on a new
// temporary directory and unmounts it when the test ends.
func Mount(t testing.TB, size string) string {
	t.Helper()
	unavailable := func(why string) {
		t.Helper()
		if os.Getenv("RMQPROXY_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("disk-full test cannot run: %s (RMQPROXY_TEST_REQUIRE_SERVICES=1 forbids skipping)", why)
		}
		t.Skipf("disk-full test skipped: %s", why)
	}
	if os.Geteuid() != 0 {
		unavailable("it mounts a small tmpfs, which needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		unavailable(fmt.Sprintf("mount -t tmpfs failed: %v: %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Resize changes the size of the tmpfs mounted on dir.
func Resize(t testing.TB, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("resize tmpfs %s to %s: %v: %s", dir, size, err, out)
	}
}
