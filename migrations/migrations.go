// Package migrations embeds the SQL migrations of rmqproxy's PostgreSQL
// schema (users, secrets, ACL entries, policy revision, audit log) into
// the binary. golang-migrate applies them (rmqproxy migrate up|down|version,
// through adapters/postgres); file names are NNNNNN_name.up.sql and
// NNNNNN_name.down.sql, each wrapping its statements in BEGIN/COMMIT, or
// holding one statement that cannot run in a transaction (CREATE INDEX
// CONCURRENTLY) and nothing else. A file with the line "-- rmqproxy: rerun"
// may be run again after it failed half-way (see [Rerun]).
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

// rerunMark marks an up migration that rmqproxy migrate up may run again
// when it failed half-way (the version is dirty): it is one transaction
// (a failure leaves nothing behind), or one idempotent statement whose
// only leftover after a failure is an INVALID index, which is dropped
// first.
const rerunMark = "-- rmqproxy: rerun"

// Rerun reports whether the up migration of version v may be run again
// after a failure (it carries the rerun mark), its text, and the version
// before it (0: none).
func Rerun(v uint) (ok bool, up string, previous uint) {
	var name string
	for x, n := range upFiles() {
		if x < v {
			previous = max(previous, x)
		} else if x == v {
			name = n
		}
	}
	if name == "" {
		return false, "", previous
	}
	body, err := fs.ReadFile(FS, name)
	if err != nil {
		return false, "", previous
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.TrimSpace(line) == rerunMark {
			return true, string(body), previous
		}
	}
	return false, "", previous
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
	for v := range upFiles() {
		out = append(out, v)
	}
	return out
}

// upFiles returns the up migration files in FS by version.
func upFiles() map[uint]string {
	out := map[uint]string{}
	entries, _ := fs.ReadDir(FS, ".")
	for _, e := range entries {
		num, rest, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(rest, ".up.sql") {
			continue
		}
		if v, err := strconv.ParseUint(num, 10, 32); err == nil {
			out[uint(v)] = e.Name()
		}
	}
	return out
}
