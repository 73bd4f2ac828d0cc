package admin_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/admin"
)

// TestPrintClientsShowsTypeAndLastSeen: `rmqproxy client list` printed
// neither the client type nor when the client was last heard from, which
// docs/operations.md lists and --json has: a stale consumer and a push
// consumer (the only ones verify runs a listener on) could not be told
// from the table.
func TestPrintClientsShowsTypeAndLastSeen(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	err := admin.PrintClients(&b, admin.ClientList{Clients: []admin.ConnectedClient{{
		ClientID: "c1", Kind: "consumer", ClientType: "PUSH_CONSUMER", Language: "GOLANG", Version: "5.1.4",
		Group: "g", Topics: []string{"t"}, RemoteAddress: "127.0.0.1:5000",
		ConnectedSince: since, LastSeen: since.Add(90 * time.Second), TelemetryStream: true,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("table:\n%s", b.String())
	}
	head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if len(head) != len(row) {
		t.Fatalf("header and row differ in columns:\n%s", b.String())
	}
	col := map[string]string{}
	for i, h := range head {
		col[h] = row[i]
	}
	if col["TYPE"] != "PUSH_CONSUMER" || col["LAST-SEEN"] != "2026-01-02T03:05:35Z" || col["CONNECTED-SINCE"] != "2026-01-02T03:04:05Z" {
		t.Errorf("TYPE and LAST-SEEN columns missing or wrong:\n%s", b.String())
	}
}
