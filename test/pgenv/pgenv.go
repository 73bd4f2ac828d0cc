// Package pgenv gives tests PostgreSQL databases: a fresh database per test
// on the server RMQPROXY_TEST_POSTGRES names (test/scripts/test.sh starts
// one with test/scripts/install-postgres.sh), with rmqproxy's migrations
// applied or not, dropped when the test ends; and, for tests that stop and
// restart PostgreSQL, a private server of their own.
//
// Without RMQPROXY_TEST_POSTGRES the tests skip with the command that
// provides it, or fail under RMQPROXY_TEST_REQUIRE_SERVICES=1.
package pgenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rmqproxy/rmqproxy/adapters/postgres"
)

// EnvDSN names the variable holding the test server's DSN.
const EnvDSN = "RMQPROXY_TEST_POSTGRES"

func unavailable(t testing.TB, why string) {
	t.Helper()
	msg := "PostgreSQL not available: " + why + `; run: eval "$(test/scripts/install-postgres.sh start /tmp/rmqproxy-pg)"`
	if os.Getenv("RMQPROXY_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// ServerDSN returns the test server's DSN (its maintenance database).
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		unavailable(t, EnvDSN+" is not set")
	}
	return dsn
}

// NewDatabase creates an empty database on the server at serverDSN and
// returns its DSN; the database is dropped when the test ends.
func NewDatabase(t testing.TB, serverDSN string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverDSN)
	if err != nil {
		unavailable(t, "cannot connect: "+err.Error())
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "rmqtest_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, serverDSN)
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(serverDSN)
	if err != nil || u.Scheme == "" {
		t.Fatalf("%s must be a URL DSN (postgres://...)", EnvDSN)
	}
	u.Path = "/" + name
	return u.String()
}

// Database returns the DSN of a fresh database on the test server with
// rmqproxy's migrations applied.
func Database(t testing.TB) string {
	t.Helper()
	dsn := NewDatabase(t, ServerDSN(t))
	Migrate(t, dsn)
	return dsn
}

// Migrate applies every migration to dsn.
func Migrate(t testing.TB, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := postgres.Migrate(ctx, dsn, postgres.MigrateUp, 0); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
}

// Server is a private PostgreSQL server, for tests that stop and restart it.
type Server struct {
	Dir string
	DSN string // its maintenance database
}

func script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "scripts", "install-postgres.sh")
}

// StartServer starts a private server (install-postgres.sh start) in a
// temporary directory; it is stopped by PID and removed when the test ends.
// It needs the same installation as the shared server, so it skips (or
// fails) the same way when RMQPROXY_TEST_POSTGRES is not set.
func StartServer(t testing.TB) *Server {
	t.Helper()
	ServerDSN(t)
	dir, err := os.MkdirTemp("", "rmqproxy-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir}
	t.Cleanup(func() {
		s.Stop(t)
		os.RemoveAll(dir)
	})
	s.Start(t)
	return s
}

// Start starts (or restarts) the server, on the same port every time.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	out, err := exec.Command("bash", script(), "start", s.Dir).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("start PostgreSQL in %s: %v\n%s", s.Dir, err, stderr)
	}
	line := strings.TrimSpace(string(out))
	_, dsn, ok := strings.Cut(line, "=")
	if !ok {
		t.Fatalf("install-postgres.sh printed %q", line)
	}
	s.DSN = strings.Trim(dsn, "'")
}

// Stop stops the server (fast shutdown by PID) and waits for it to exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("bash", script(), "stop", s.Dir).CombinedOutput(); err != nil {
		t.Errorf("stop PostgreSQL in %s: %v\n%s", s.Dir, err, out)
	}
}

// String describes the server for messages.
func (s *Server) String() string { return fmt.Sprintf("PostgreSQL in %s", s.Dir) }
