package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/test/pgenv"
	"github.com/rmqproxy/rmqproxy/test/testenv/logbuf"
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
		{[]string{"migrate", "version", "--postgres.dsn", dsn}, 0, "schema version 0; this rmqproxy knows up to 7"},
		// up and down say what they did: from which version to which, or
		// that there was nothing to do.
		{[]string{"migrate", "up", "--postgres.dsn=" + dsn}, 0, "migrated the schema from version 0 to 7; this rmqproxy knows up to 7"},
		{[]string{"migrate", "up", "--postgres.dsn", dsn}, 0, "schema already at version 7, nothing to apply; this rmqproxy knows up to 7"},
		{[]string{"migrate", "down", "8", "--postgres.dsn", dsn}, 1, "cannot revert 8 migrations: only 7 applied"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "reverted the schema from version 7 to 6;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "reverted the schema from version 6 to 5;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "reverted the schema from version 5 to 4;"},
		{[]string{"migrate", "down", "--postgres.dsn", dsn}, 0, "reverted the schema from version 4 to 3;"},
		{[]string{"migrate", "down", "2", "--postgres.dsn", dsn}, 0, "reverted the schema from version 3 to 1;"},
		{[]string{"migrate", "up", "--postgres.dsn", dsn}, 0, "migrated the schema from version 1 to 7;"},
		{[]string{"migrate", "down", "--all", "--postgres.dsn", dsn}, 0, "reverted the schema from version 7 to 0;"},
		{[]string{"migrate", "down", "--all", "--postgres.dsn", dsn}, 0, "schema already at version 0, nothing to revert;"},
		{[]string{"migrate", "version", "--postgres.dsn", dsn}, 0, "schema version 0;"},
		{[]string{"migrate", "down", "zero", "--postgres.dsn", dsn}, 2, "takes a number"},
		{[]string{"migrate", "sideways"}, 2, `unknown migrate command "sideways"`},
		{[]string{"migrate", "up", "--postgres.dns", dsn}, 2, "did you mean --postgres.dsn?"},
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

// TestMigrateCancelledBySignal: rmqproxy migrate up waiting for another
// run's lock stops waiting on SIGTERM and exits 1, saying it was
// cancelled; the schema is untouched, and the next run migrates it. The
// command runs in a child process (this test binary), which the signal
// would otherwise end at once.
func TestMigrateCancelledBySignal(t *testing.T) {
	if dsn := os.Getenv("RMQPROXY_TEST_MIGRATE_CHILD_DSN"); dsn != "" {
		os.Exit(run([]string{"migrate", "up", "--postgres.dsn", dsn}, config.Sources{}, os.Stdout, os.Stderr))
	}
	dsn := pgenv.NewDatabase(t, pgenv.ServerDSN(t))
	ctx := t.Context()
	holder, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	// Another run holds the migrations lock (adapters/postgres lockMigrations).
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(0x726d71706d696772)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateCancelledBySignal$")
	cmd.Env = append(os.Environ(), "RMQPROXY_TEST_MIGRATE_CHILD_DSN="+dsn)
	var out logbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	// It waits once it has tried the lock.
	deadline := time.Now().Add(time.Minute)
	for {
		var waiting int
		if err := holder.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
  AND pid <> pg_backend_pid() AND query LIKE '%pg_try_advisory_lock%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("migrate up ended before it waited for the lock: %v\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("migrate up does not wait for the lock\n%s", out.String())
		}
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The lock is held until after the exit and the wait for it has no
	// end of its own: an exit at all is the signal's doing, which the
	// message says too. (A bound in wall time on the exit, 10 s, was one a
	// busy machine could miss.)
	var werr error
	select {
	case werr = <-exited:
		exited <- werr
	case <-time.After(30 * time.Second):
		t.Fatalf("migrate up still runs 30s after SIGTERM\n%s", out.String())
	}
	took := time.Since(sent)
	code := cmd.ProcessState.ExitCode()
	if code != 1 || !strings.Contains(out.String(), "migrate up cancelled by a signal (terminated)") {
		t.Fatalf("exit %d %v after SIGTERM (%v), want 1 and the cancellation said:\n%s", code, took, werr, out.String())
	}
	t.Logf("exit %d %v after SIGTERM: %s", code, took, out.String())
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(0x726d71706d696772)); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI("migrate", "up", "--postgres.dsn", dsn); code != 0 || !strings.Contains(out, "migrated the schema from version 0 to 7;") {
		t.Fatalf("the next run: exit %d %s %s", code, out, errOut)
	}
}
