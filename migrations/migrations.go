// Package migrations embeds the SQL migrations of rmqproxy's PostgreSQL
// schema (users, secrets, ACL entries, policy revision, audit log) into
// the binary. golang-migrate applies them (rmqproxy migrate up|down|version,
// through adapters/postgres); file names are NNNNNN_name.up.sql and
// NNNNNN_name.down.sql, each wrapping its statements in BEGIN/COMMIT.
package migrations

import (
	"embed"
	"io/fs"
	"strconv"
	"strings"
)

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS

// Applied returns how many migrations a schema at version v has applied.
func Applied(v uint) int {
	n := 0
	for _, x := range versions() {
		if x <= v {
			n++
		}
	}
	return n
}

// Latest returns the highest migration version in FS: the schema version
// this build knows.
func Latest() uint {
	var latest uint
	for _, v := range versions() {
		latest = max(latest, v)
	}
	return latest
}

// versions lists the versions that have an up migration.
func versions() []uint {
	var out []uint
	entries, _ := fs.ReadDir(FS, ".")
	for _, e := range entries {
		num, rest, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(rest, ".up.sql") {
			continue
		}
		if v, err := strconv.ParseUint(num, 10, 32); err == nil {
			out = append(out, uint(v))
		}
	}
	return out
}
