package trafficfile

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
)

// A check that reads a file in the middle of an in-place rewrite (here:
// truncated, nothing written yet, which loads as "no limits") must not put
// that part in force; the complete file is applied once it stays the same.
func TestRewriteInProgressIsNotApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("clients: {send: {messagesPerSecond: 1}}\n")
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	s := NewSource(path, 0, tr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())

	write("") // the rewrite has truncated the file
	s.settle = func(context.Context) { write("clients: {send: {messagesPerSecond: 2}}\n") }
	s.check(context.Background(), false)
	if r, rev := tr.Rules(); rev != 1 || r.Clients.Send.Messages.PerSecond != 1 {
		t.Fatalf("a file read mid-rewrite was applied: revision %d, %+v", rev, r.Clients)
	}
	if err := s.Health(); err != nil {
		t.Fatalf("a file being written is not a failure: %v", err)
	}

	s.settle = func(context.Context) {}
	s.check(context.Background(), false)
	if r, rev := tr.Rules(); rev != 2 || r.Clients.Send.Messages.PerSecond != 2 {
		t.Fatalf("the complete file was not applied: revision %d, %+v", rev, r.Clients)
	}
}
