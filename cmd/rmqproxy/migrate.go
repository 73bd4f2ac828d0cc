package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rmqproxy/rmqproxy/adapters/config"
	"github.com/rmqproxy/rmqproxy/adapters/postgres"
	"github.com/rmqproxy/rmqproxy/cmd/rmqproxy/app"
)

const migrateUsage = `Usage:
  rmqproxy migrate up                 apply every pending migration
  rmqproxy migrate down [N | --all]   revert the last N migrations (default 1)
  rmqproxy migrate version            print the schema version

up and down print the version they moved the schema from and to, or that
it already was where they would take it.

Manages the PostgreSQL schema rmqproxy keeps users, ACL policies and the
audit log in (schema rmqproxy, created when missing), with the migrations
built into this binary. Run it with the schema owner's connection string;
concurrent runs wait for each other (advisory lock). SIGINT or SIGTERM
stops a run between migrations (or its wait for another run) and it
exits 1; a second signal ends it at once. A proxy refuses to start on a
schema older or newer than it knows.

Settings: --postgres.dsn DSN (or RMQPROXY_POSTGRES_DSN, or postgres.dsn in
--config FILE). "down" drops tables and with them the audit log: it is for
development; production schemas only move forward.
`

// splitArgs separates a command's own arguments from settings: --config
// FILE and --key=value / --key value for dotted keys (--postgres.dsn) go
// to the configuration, the rest (positional words and the own flags in
// own, each with whether it takes a value) is returned in order.
func splitArgs(args []string, own map[string]bool) (rest, settings []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(rest, args[i+1:]...), settings, nil
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, isOwn := own[name]
		switch {
		case isOwn:
			rest = append(rest, a)
			if takesValue && !hasValue {
				if i+1 >= len(args) {
					return nil, nil, fmt.Errorf("%w: flag --%s needs a value", errUsage, name)
				}
				i++
				rest = append(rest, args[i])
			}
		case name == "config" || strings.Contains(name, "."):
			settings = append(settings, a)
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				settings = append(settings, args[i])
			}
		default:
			names := []string{"config", "postgres.dsn"}
			for n := range own {
				names = append(names, n)
			}
			return nil, nil, fmt.Errorf("%w: unknown flag --%s%s", errUsage, name, didYouMean(name, names, "--"))
		}
	}
	return rest, settings, nil
}

func migrateCommand(args []string, src config.Sources, stdout io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) || slices.ContainsFunc(args[1:], isHelpFlag) {
		if len(args) == 0 {
			return fmt.Errorf("%w: rmqproxy migrate needs a command\n%s", errUsage, migrateUsage)
		}
		_, err := io.WriteString(stdout, migrateUsage)
		return err
	}
	if err := flagsFirst("rmqproxy migrate", args, []string{"up", "down", "version"}); err != nil {
		return fmt.Errorf("%w\n%s", err, migrateUsage)
	}
	if args[0] == "down" {
		for _, a := range args[1:] {
			// "-1" would otherwise be read as an unknown flag "--1".
			if n, err := strconv.Atoi(a); err == nil && n < 1 {
				return fmt.Errorf("%w: migrate down takes a number of migrations (1 or more) or --all, not %q\n%s", errUsage, a, migrateUsage)
			}
		}
	}
	rest, settings, err := splitArgs(args[1:], map[string]bool{"all": false})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, migrateUsage)
	}
	op, steps := postgres.MigrateVersion, 0
	switch args[0] {
	case "up":
		op = postgres.MigrateUp
		if len(rest) > 0 {
			return fmt.Errorf("%w: migrate up takes no arguments, got %q\n%s", errUsage, rest[0], migrateUsage)
		}
	case "down":
		op, steps = postgres.MigrateDown, 1
		switch {
		case len(rest) == 0:
		case len(rest) == 1 && (rest[0] == "--all" || rest[0] == "-all"):
			steps = 0
		case len(rest) == 1:
			n, err := strconv.Atoi(rest[0])
			if err != nil || n < 1 {
				return fmt.Errorf("%w: migrate down takes a number of migrations (1 or more) or --all, not %q\n%s", errUsage, rest[0], migrateUsage)
			}
			steps = n
		default:
			return fmt.Errorf("%w: migrate down takes N or --all\n%s", errUsage, migrateUsage)
		}
	case "version":
		if len(rest) > 0 {
			return fmt.Errorf("%w: migrate version takes no arguments\n%s", errUsage, migrateUsage)
		}
	default:
		return fmt.Errorf("%w: unknown migrate command %q%s\n%s", errUsage, args[0], didYouMean(args[0], []string{"up", "down", "version"}, ""), migrateUsage)
	}
	cfg, err := loadClientConfig(settings, src, app.MigrateKeys)
	if err != nil {
		return err
	}
	if err := cfg.CheckPostgresClient(false); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if cfg.Postgres.DSN == "" {
		return errors.New("no PostgreSQL to migrate: set --postgres.dsn, RMQPROXY_POSTGRES_DSN or postgres.dsn in --config FILE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ctx, signalled := cancelOnSignal(ctx)
	st, err := postgres.Migrate(ctx, cfg.Postgres.DSN, op, steps)
	dirty := ""
	if st.Dirty {
		dirty = " (dirty: a migration failed half-way)"
	}
	if s := signalled(); s != nil {
		// Migrate stops between migrations (a statement running when
		// the signal came finishes first), or stops waiting for the lock.
		msg := fmt.Sprintf("migrate %s cancelled by a signal (%s)", args[0], s)
		switch {
		case err != nil:
			msg += ": " + err.Error()
		case op != postgres.MigrateVersion:
			msg += fmt.Sprintf(" at schema version %d%s (this rmqproxy knows up to %d)", st.Version, dirty, st.Latest)
		}
		return errors.New(msg + "; run the command again")
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, migrateOutcome(op, st))
	return nil
}

// migrateOutcome says what a migrate run that succeeded did: for up and
// down, from which version to which, or that there was nothing to do.
func migrateOutcome(op postgres.MigrateOp, st postgres.SchemaState) string {
	version := func(v uint, dirty bool) string {
		if dirty {
			return fmt.Sprintf("%d (dirty: a migration failed half-way)", v)
		}
		return strconv.FormatUint(uint64(v), 10)
	}
	knows := fmt.Sprintf("; this rmqproxy knows up to %d", st.Latest)
	moved := st.From != st.Version || st.FromDirty != st.Dirty
	switch {
	case op == postgres.MigrateUp && moved:
		return fmt.Sprintf("migrated the schema from version %s to %s%s", version(st.From, st.FromDirty), version(st.Version, st.Dirty), knows)
	case op == postgres.MigrateUp:
		return fmt.Sprintf("schema already at version %s, nothing to apply%s", version(st.Version, st.Dirty), knows)
	case op == postgres.MigrateDown && moved:
		return fmt.Sprintf("reverted the schema from version %s to %s%s", version(st.From, st.FromDirty), version(st.Version, st.Dirty), knows)
	case op == postgres.MigrateDown:
		return fmt.Sprintf("schema already at version %s, nothing to revert%s", version(st.Version, st.Dirty), knows)
	}
	return fmt.Sprintf("schema version %s%s", version(st.Version, st.Dirty), knows)
}

// cancelOnSignal returns a context that SIGINT or SIGTERM cancels, and
// the signal that did (nil until one came). After the first signal the
// process no longer catches them: a second one ends it at once, as if
// nothing caught them.
func cancelOnSignal(parent context.Context) (context.Context, func() os.Signal) {
	ctx, cancel := context.WithCancel(parent)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	var (
		mu  sync.Mutex
		got os.Signal
	)
	go func() {
		select {
		case s := <-c:
			mu.Lock()
			got = s
			mu.Unlock()
			cancel()
		case <-ctx.Done():
		}
		signal.Stop(c)
	}()
	return ctx, func() os.Signal {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}
