package trafficfile

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
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

// A SIGHUP (Reload) whose check finds the file in the middle of a rewrite
// leaves it for a later check; with traffic.reloadInterval 0 there is no
// tick to make that check, so the reload asked for must happen once the
// file stays the same, not never.
func TestReloadOfAFileBeingWrittenIsNotLost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Error(err)
		}
	}
	write("clients: {send: {messagesPerSecond: 1}}\n")
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	s := NewSource(path, 0, tr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var settles atomic.Int32
	s.settle = func(context.Context) {
		if settles.Add(1) == 1 { // the writer finishes during the first check's wait
			write("clients: {send: {messagesPerSecond: 2}}\n")
		}
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())

	write("clients: {send: {messagesPerSecond: 2") // the rewrite is half done
	s.Reload()
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		if r, rev := tr.Rules(); rev != 2 || r.Clients.Send.Messages.PerSecond != 2 {
			return fmt.Errorf("after SIGHUP and the rewrite's end: revision %d, %+v; want revision 2 with 2 messages/s", rev, r.Clients)
		}
		return nil
	})
}
