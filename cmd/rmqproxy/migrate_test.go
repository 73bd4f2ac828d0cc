package main

import (
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/test/pgenv"
)

// TestMigrateCommand runs rmqproxy migrate up, version and down against a
// fresh database.
func TestMigrateCommand(t *testing.T) {
	dsn := pgenv.NewDatabase(t, pgenv.ServerDSN(t))
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"migrate", "version", "--postgres.dsn", dsn}, 0, "schema version 0;"},
		{[]string{"migrate", "up", "--postgres.dsn=" + dsn}, 0, "schema version 7;"},
		{[]string{"migrate", "up", "--postgres.dsn", dsn}, 0, "schema version 7;"},
		{[]string{"migrate", "down", "8", "--postgres.dsn", dsn}, 1, "cannot revert 8 migrations: only 7 applied"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "schema version 6;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "schema version 5;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "schema version 4;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "schema version 3;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "schema version 2;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "schema version 1;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "schema version 0;"},
		{[]string{"migrate", "up", "--postgres.dsn", dsn}, 0, "schema version 7;"},
		{[]string{"migrate", "down", "--all", "--postgres.dsn", dsn}, 0, "schema version 0;"},
		{[]string{"migrate", "down", "zero", "--postgres.dsn", dsn}, 2, "takes a number"},
		{[]string{"migrate", "sideways"}, 2, `unknown migrate command "sideways"`},
		{[]string{"migrate", "up", "--postgres.dns", dsn}, 1, "did you mean --postgres.dsn?"},
		{[]string{"migrate", "up", "--al"}, 2, "did you mean --all?"},
		{[]string{"migrate", "version", "--postgres.dsn", "postgres://u:hunter2@127.0.0.1:1/x"}, 1, "connect to PostgreSQL"},
	}
	for _, s := range steps {
		code, out, errOut := runCLI(s.args...)
		if code != s.code || !strings.Contains(out+errOut, s.out) {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", s.args[:2], code, out, errOut, s.code, s.out)
		}
		if strings.Contains(out+errOut, "hunter2") {
			t.Fatalf("password printed: %s", out+errOut)
		}
	}
}
