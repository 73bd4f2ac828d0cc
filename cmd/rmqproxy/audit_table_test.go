package main

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rmqproxy/rmqproxy/domain"
)

// TestAuditTableShowsNoControls: audit query's table shows text clients
// chose (an unauthenticated caller's claimed AccessKey, a denied topic
// name) in a terminal. It replaced the C0 controls and DEL only, so a
// C1 control (U+009B, a CSI to terminals that read C1 controls in UTF-8)
// or a bidirectional override (U+202E, which shows the rest of the line
// reversed) reached the terminal, where it could hide or rearrange what
// the table says; and a long name was cut inside a character, printing
// invalid UTF-8.
func TestAuditTableShowsNoControls(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []domain.AuditEvent{
		{Time: t0, Category: domain.AuditAuthn, Principal: "mallory\u009b2K\u009b1A", SourceIP: netip.MustParseAddr("10.0.0.1"),
			Operation: "admin GET /v1/topics", Decision: domain.AuditDeny, Reason: domain.ReasonUnknownUser},
		{Time: t0, Category: domain.AuditAuthz, Principal: "alice", Operation: "QueryRoute", Resource: "Topic:\u202eWOLLA\u2028x",
			Actions: "Pub,Sub", Decision: domain.AuditDeny, Reason: domain.ReasonNoMatch},
		{Time: t0, Category: domain.AuditAuthz, Principal: "alice", Operation: "QueryRoute", Resource: "Topic:" + strings.Repeat("é", 40),
			Actions: "Pub,Sub", Decision: domain.AuditDeny, Reason: domain.ReasonNoMatch},
	}
	var out bytes.Buffer
	if err := printAuditTable(&out, evs); err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(out.Bytes()) {
		t.Errorf("the table is not valid UTF-8:\n%q", out.String())
	}
	for _, r := range out.String() {
		if r != '\n' && (unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)) {
			t.Errorf("the table holds %U:\n%q", r, out.String())
		}
	}
}

// TestAuditTableShowsTheRequestAndClient: audit query selects events by
// --request-id and --client-id, but its table showed neither, so an
// auditor who found a denial in it had to run it again with --json to
// learn which request (to find in the access log) and which client it
// was.
func TestAuditTableShowsTheRequestAndClient(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []domain.AuditEvent{
		{Time: t0, Category: domain.AuditAuthz, Principal: "alice", Operation: "SendMessage", Resource: "Topic:orders",
			Actions: "Pub", Decision: domain.AuditDeny, Reason: domain.ReasonNoMatch, RequestID: "req-7f3a", ClientID: "host@123#1"},
		{Time: t0, Category: domain.AuditAdmin, Principal: "root", Operation: "acl.put", Decision: domain.AuditAllow},
	}
	var out bytes.Buffer
	if err := printAuditTable(&out, evs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%s", out.String())
	}
	if h := strings.Fields(lines[0]); !slices.Contains(h, "REQUEST-ID") || !slices.Contains(h, "CLIENT-ID") {
		t.Errorf("header has no REQUEST-ID or CLIENT-ID column: %q", lines[0])
	}
	if f := strings.Fields(lines[1]); !slices.Contains(f, "req-7f3a") || !slices.Contains(f, "host@123#1") {
		t.Errorf("the denial's row shows no request or client id: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); !slices.Equal(f[len(f)-3:], []string{"-", "-", "-"}) { // LAST, REQUEST-ID, CLIENT-ID
		t.Errorf("a row without ids does not end with - for each: %q", lines[2])
	}
}
