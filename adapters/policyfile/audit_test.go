package policyfile_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/policyfile"
	"github.com/rmqproxy/rmqproxy/domain"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
)

// TestLogAuditWritesCounts: a coalesced event's line carries how many
// refusals it stands for, the last one's time and how it was formed; a
// single event's line is as before.
func TestLogAuditWritesCounts(t *testing.T) {
	var out logbuf.Buffer
	a := policyfile.NewLogAudit(slog.New(slog.NewJSONHandler(&out, nil)), 8)
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	a.Record(domain.AuditEvent{Time: first, Category: domain.AuditAuthz, Principal: "tenant-a", Operation: "SendMessage", Decision: domain.AuditDeny})
	a.Record(domain.AuditEvent{Time: first, LastTime: first.Add(time.Second), Occurrences: 99, Category: domain.AuditAuthz, Principal: "tenant-a",
		Operation: "SendMessage", Decision: domain.AuditDeny, Details: `{"coalesced":"repeats"}`})
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var rec struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(rec.Event), &e); err != nil {
			t.Fatalf("%q: %v", rec.Event, err)
		}
		events = append(events, e)
	}
	if len(events) != 2 {
		t.Fatalf("%d lines, want 2", len(events))
	}
	if _, ok := events[0]["occurrences"]; ok {
		t.Errorf("a single event got a count: %v", events[0])
	}
	d, _ := events[1]["details"].(map[string]any)
	if events[1]["occurrences"] != float64(99) || events[1]["last_time"] != "2026-12-05T12:00:01Z" || d["coalesced"] != "repeats" {
		t.Errorf("coalesced event's line: %v", events[1])
	}
}

// TestLogAuditRecordWithin: an event that must be recorded is refused after
// its wait while the buffer stays full (and counted as dropped), and taken
// once the writer empties it.
func TestLogAuditRecordWithin(t *testing.T) {
	var out logbuf.Buffer
	a := policyfile.NewLogAudit(slog.New(slog.NewJSONHandler(&out, nil)), 1)
	ev := domain.AuditEvent{Category: domain.AuditAuthz, Principal: "root", Operation: "admin POST /v1/topics", Decision: domain.AuditAllow}
	if !a.RecordWithin(t.Context(), ev, time.Second) {
		t.Fatal("an empty buffer refused the event")
	}
	if a.RecordWithin(t.Context(), ev, 20*time.Millisecond) {
		t.Fatal("a full buffer that nothing empties took the event")
	}
	if a.Dropped() != 1 {
		t.Fatalf("dropped %d, want the refused event counted", a.Dropped())
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !a.RecordWithin(t.Context(), ev, 10*time.Second) {
		t.Fatal("the event was refused although the writer empties the buffer")
	}
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "admin POST /v1/topics"); n != 2 {
		t.Fatalf("%d events written, want the 2 taken", n)
	}
}

// TestLogAuditIgnoresTheLogLevel: with auth.source file the audit log is
// the process log, and its records were written at Info, so a proxy run
// with log.level warn or error (a usual production setting) wrote none:
// every denial, authentication failure and admin call went unrecorded
// while rmqproxy_audit_events_total counted them as written. Audit
// records are now written whatever the level.
func TestLogAuditIgnoresTheLogLevel(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelWarn, slog.LevelError} {
		var out logbuf.Buffer
		log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: level})).With("component", "audit")
		a := policyfile.NewLogAudit(log, 8)
		if err := a.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		a.Record(domain.AuditEvent{Time: time.Now(), Category: domain.AuditAuthz, Principal: "tenant-a", Operation: "SendMessage",
			Resource: "Topic:payments", Decision: domain.AuditDeny})
		if err := a.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		var rec struct {
			Msg       string `json:"msg"`
			Component string `json:"component"`
			Event     string `json:"event"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &rec); err != nil || rec.Msg != "audit" || rec.Component != "audit" ||
			!strings.Contains(rec.Event, `"resource":"Topic:payments"`) {
			t.Errorf("log level %s: audit output %q (%v), want the event", level, out.String(), err)
		}
		if got := a.Stats().Written; got != 1 {
			t.Errorf("log level %s: written %d", level, got)
		}
	}
}
