package main

import (
	"errors"
	"strings"
	"testing"
)

// FuzzAdminArgs parses arbitrary arguments of the topic and group commands:
// parsing never panics, and every refusal is a usage error.
func FuzzAdminArgs(f *testing.F) {
	for _, s := range []string{
		"t\x00--type\x00FIFO\x00--queues=4",
		"g\x00--maxDeliveryAttempts\x00x",
		"--retryExponential=1s,2h,2\x00g\x00--orderly=false",
		"--tpye\x00FIFO",
		"--\x00--x",
		"-\x00---\x00--=\x00-=x",
		"--admin.address\x00--json",
		"--wait=-1s\x00--config",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, joined string, group bool) {
		cmd := topics
		if group {
			cmd = groups
		}
		fl := newAdminFlags(cmd.name)
		cmd.setup(fl.fs)
		args := strings.Split(joined, "\x00")
		if _, err := fl.parse(args, cmd.usage); err != nil && !errors.Is(err, errUsage) {
			t.Fatalf("parse %q: %v is not a usage error", args, err)
		}
	})
}
