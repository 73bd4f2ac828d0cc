package postgres

import (
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/migrations"
)

// TestIndexesBuilt: the indexes a migration builds are the names of its
// CREATE INDEX statements, whole; names in comments, names that are part
// of another, and other statements' names are not.
func TestIndexesBuilt(t *testing.T) {
	for _, tt := range []struct {
		sql  string
		want []string
	}{
		{"CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_events_last_occurred ON rmqproxy.audit_events ((coalesce(last_occurred_at, occurred_at)));", []string{"audit_events_last_occurred"}},
		{"create unique index concurrently Audit_X on rmqproxy.t (a);", []string{"audit_x"}},
		{`CREATE INDEX "Odd ""name""" ON t (a); CREATE UNIQUE INDEX rmqproxy.qualified ON t (b)`, []string{`Odd "name"`, "qualified"}},
		{"-- replaces CREATE INDEX old_one ON t (a)\n/* CREATE INDEX older ON t (a) */\nALTER TABLE t ADD COLUMN audit_events_x int;", nil},
		{"CREATE INDEX a_b_c ON t (x);\nCREATE INDEX a_b\n  ON t (y); -- CREATE INDEX a ON t (z)", []string{"a_b", "a_b_c"}},
	} {
		got := slices.Sorted(maps.Keys(indexesBuilt(tt.sql)))
		if !slices.Equal(got, tt.want) {
			t.Errorf("indexesBuilt(%q) = %q, want %q", tt.sql, got, tt.want)
		}
	}
	// Each shipped migration that builds an index: its name is found.
	for v, want := range map[string]string{"000004": "audit_events_event_id", "000007": "audit_events_last_occurred"} {
		names, _ := fs.Glob(migrations.FS, v+"_*.up.sql")
		if len(names) != 1 {
			t.Fatalf("version %s: %q", v, names)
		}
		body, _ := fs.ReadFile(migrations.FS, names[0])
		if got := slices.Sorted(maps.Keys(indexesBuilt(string(body)))); !slices.Equal(got, []string{want}) {
			t.Errorf("%s builds %q, want %s", names[0], got, want)
		}
		if !strings.Contains(string(body), "rmqproxy: rerun") {
			t.Errorf("%s is not marked rerun", names[0])
		}
	}
}
