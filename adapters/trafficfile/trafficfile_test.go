package trafficfile_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/trafficfile"
	"github.com/rmqproxy/rmqproxy/application"
	"github.com/rmqproxy/rmqproxy/ports"
	"github.com/rmqproxy/rmqproxy/test/testenv/waitfor"
)

func TestDecodeExample(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := trafficfile.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	rate := func(per, burst float64) application.Rate { return application.Rate{PerSecond: per, Burst: burst} }
	if r.Clients.Send.Messages != rate(2000, 0) || r.Clients.Send.Bytes != rate(16<<20, 0) || r.Clients.Receive.Messages != rate(4000, 0) {
		t.Errorf("clients: %+v", r.Clients)
	}
	if r.Topics.Default == nil || r.Topics.Default.Send.Messages != rate(10000, 0) {
		t.Errorf("topics default: %+v", r.Topics.Default)
	}
	o := r.Topics.Named["orders"]
	if o.Send.Messages != rate(500, 1000) || o.Send.Bytes != rate(4<<20, 0) || o.Receive.Messages != rate(1000, 0) {
		t.Errorf("orders: %+v", o)
	}
	if b := r.Groups.Named["billing"].Receive; b.Messages != rate(200, 0) || b.Bytes != rate(2<<20, 4<<20) {
		t.Errorf("billing: %+v", b)
	}
	if r.Namespaces.Named["tenant-a"].Send.Messages != rate(3000, 0) || r.Users.Named["analytics"].Receive.Messages != rate(100, 0) {
		t.Errorf("tenants: %+v %+v", r.Namespaces, r.Users)
	}
}

func TestDecodeJSON(t *testing.T) {
	r, err := trafficfile.Decode([]byte(`{"topics": {"t": {"send": {"messagesPerSecond": 5, "bytesPerSecond": "1KiB"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Topics.Named["t"].Send; got.Messages.PerSecond != 5 || got.Bytes.PerSecond != 1024 {
		t.Fatalf("%+v", got)
	}
	if r, err := trafficfile.Decode(nil); err != nil || r.Topics.Named != nil {
		t.Fatalf("empty file: %+v, %v", r, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"clients:\n  send: {messagesPerSecnd: 5}\n", `line 2: unknown key "messagesPerSecnd"`},
		{"topic:\n  t: {}\n", `line 1: unknown key "topic"`},
		{"topics:\n  t: {send: {bytesPerSecond: 5 parsecs}}\n", "unknown unit"},
		{"topics:\n  t: {send: {bytesPerSecond: 1.5}}\n", "whole, non-negative"},
		{"topics:\n  t: {send: {messagesPerSecond: -3}}\n", "must be finite and not negative"},
		{"topics:\n  t: {send: {messagesPerSecond: .inf}}\n", "must be finite"},
		{"groups:\n  g: {send: {messagesPerSecond: 3}}\n", "receive limits only"},
		{"topics:\n  t: {send: {burstMessages: 100}}\n", "without send.messagesPerSecond"},
		{"topics:\n  \"\": {send: {messagesPerSecond: 3}}\n", "is not a name"},
		{"topics: [1, 2]\n", "not a traffic rules file"},
		{strings.Repeat("#", trafficfile.MaxFileSize+1), "more than"},
		// A second document would be ignored: half the file in force.
		{"topics:\n  a: {send: {messagesPerSecond: 5}}\n---\ntopics:\n  b: {send: {messagesPerSecond: 5}}\n", "second YAML document"},
		{`{"topics": {"a": {"send": {"messagesPerSecond": 5}}}} {"groups": {}}`, "not a traffic rules file"},
	} {
		_, err := trafficfile.Decode([]byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.40q: %v; want an error containing %q", c.file, err, c.want)
		}
		if err != nil && strings.Contains(c.want, "unknown key") && strings.Contains(err.Error(), "trafficfile.") {
			t.Errorf("%.40q: %v names a Go type", c.file, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"clients": {"receive": {"messagesPerSecond": 1e3, "bytesPerSecond": "1 MB", "burstBytes": "2 MB"}}}`))
	f.Add([]byte("users:\n  \"*\": {send: {bytesPerSecond: 1GiB}}\nnamespaces:\n  \"\": {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := trafficfile.Decode(data)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("invalid rules accepted: %v", err)
		}
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitRevision waits until the rules in force have revision rev.
func waitRevision(t *testing.T, tr *application.Traffic, rev int64) application.TrafficRules {
	t.Helper()
	var r application.TrafficRules
	waitfor.Condition(t, 10*time.Second, 5*time.Millisecond, func() error {
		var got int64
		if r, got = tr.Rules(); got != rev {
			return fmt.Errorf("rules revision %d, want %d", got, rev)
		}
		return nil
	})
	return r
}

func TestSourceReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	writeFile(t, path, "clients: {send: {messagesPerSecond: 1}}\n")
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	s := trafficfile.NewSource(path, 0, tr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if r, rev := tr.Rules(); rev != 1 || r.Clients.Send.Messages.PerSecond != 1 {
		t.Fatalf("at start: revision %d, %+v", rev, r.Clients)
	}
	writeFile(t, path, "clients: {send: {messagesPerSecond: 2}}\n")
	s.Reload()
	if r := waitRevision(t, tr, 2); r.Clients.Send.Messages.PerSecond != 2 {
		t.Fatalf("after reload: %+v", r.Clients)
	}
	// A broken file keeps the rules in force and is reported.
	writeFile(t, path, "clients: {send: {messagesPerSecond: oops}}\n")
	s.Reload()
	waitfor.True(t, 10*time.Second, 5*time.Millisecond, "a broken file is reported", func() bool { return s.Health() != nil })
	if r, rev := tr.Rules(); rev != 2 || r.Clients.Send.Messages.PerSecond != 2 || !strings.Contains(s.Health().Error(), "revision 2") {
		t.Fatalf("after a broken file: revision %d, %+v, %v", rev, r.Clients, s.Health())
	}
	writeFile(t, path, "clients: {send: {messagesPerSecond: 3}}\n")
	s.Reload()
	waitRevision(t, tr, 3)
	if err := s.Health(); err != nil {
		t.Fatalf("after a good file: %v", err)
	}
}

func TestSourceWatchesChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.json")
	writeFile(t, path, `{"topics": {"a": {"send": {"messagesPerSecond": 1}}}}`)
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	s := trafficfile.NewSource(path, 10*time.Millisecond, tr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	writeFile(t, path, `{"topics": {"b": {"send": {"messagesPerSecond": 1}}}}`)
	if r := waitRevision(t, tr, 2); r.Topics.Named["b"].Send.Messages.PerSecond != 1 {
		t.Fatalf("%+v", r.Topics)
	}
}

func TestSourceStartFailsOnABadFile(t *testing.T) {
	tr := application.NewTraffic(application.DefaultTrafficConfig(), ports.SystemClock{})
	s := trafficfile.NewSource(filepath.Join(t.TempDir(), "missing.yaml"), 0, tr, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "traffic.rulesFile") {
		t.Fatalf("missing file: %v", err)
	}
}
