package policyfile

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

// TestRewriteInProgressIsNotApplied: a look at the policy file in the
// middle of an in-place rewrite (truncated, nothing written yet: a policy
// of no users, which loads) must not put it in force, which refused every
// client and revoked their streams and long polls until the next look;
// the complete file is applied once it stays the same.
func TestRewriteInProgressIsNotApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Error(err)
		}
	}
	const alice = "users:\n  - name: alice\n    secret: alice-secret-0123\n"
	const aliceAndBob = alice + "  - name: bob\n    secret: bob-secret-012345\n"
	write(alice)
	src := NewSource(path, 5*time.Millisecond, slog.New(slog.DiscardHandler))
	if _, err := src.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	var settles atomic.Int32
	src.settle = func(context.Context) {
		if settles.Add(1) == 1 { // the writer finishes during the first look's wait
			write(aliceAndBob)
		}
	}
	write("") // the rewrite has truncated the file
	applied := WatchApplied(t, src)
	var got domain.PolicySnapshot
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "the complete file to be applied", func() bool {
		select {
		case got = <-applied:
			if len(got.Users) != 2 {
				t.Fatalf("applied a policy of %d users (the file read mid-rewrite), want the complete file's 2", len(got.Users))
			}
			return true
		default:
			return false
		}
	})
	if got.Revision != 2 {
		t.Errorf("revision %d, want 2", got.Revision)
	}
}
