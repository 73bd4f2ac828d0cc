//go:build !linux

package childproc

import "os/exec"

// DieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's; tests then rely on their cleanups alone.
func DieWithParent(cmd *exec.Cmd) {}
