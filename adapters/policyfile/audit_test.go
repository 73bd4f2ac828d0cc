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
